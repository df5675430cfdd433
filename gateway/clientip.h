/* clientip: who the client is, for per-IP rate limits and logs. The socket peer, unless the
 * peer is one of the configured trusted proxies: then the right-most X-Forwarded-For entry that
 * is not a trusted proxy. A forged header from an untrusted peer changes nothing. */
#ifndef CREDITO_CLIENTIP_H
#define CREDITO_CLIENTIP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "err.h"

/* Most networks in a trusted proxy list. */
#define CLIENTIP_MAX_PROXIES 64
/* Bytes for a resolved address as text, NUL included (INET6_ADDRSTRLEN is 46). */
#define CLIENTIP_TEXT_SIZE 64

/* One trusted network. IPv4 networks hold IPv4 addresses only, IPv6 ones IPv6 only; an
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) counts as the IPv4 address a.b.c.d on both sides. */
struct clientip_net {
  unsigned char addr[16]; /* network address; an IPv4 one in addr[0..4) */
  unsigned char family;   /* 4 or 6 */
  unsigned char prefix;   /* prefix length in bits: 0..32 or 0..128 */
};

/* The trusted proxies: a value on the caller's storage, no allocation, nothing to free.
 * Immutable after clientip_cfg_parse, so any number of threads may resolve with it. A zeroed
 * struct trusts no one (the client is always the socket peer). */
struct clientip_cfg {
  struct clientip_net nets[CLIENTIP_MAX_PROXIES]; /* nets[0..n) */
  size_t n;                                       /* networks in use */
};

/*
 * Parses a comma-separated list of trusted proxies (borrowed; NULL or "" trusts no one) into
 * *cfg: IPv4 or IPv6 addresses, each optionally with a /prefix ("10.0.0.0/8,127.0.0.1,::1,
 * fd00::/8"); white space around entries is ignored, empty entries are skipped. A network with
 * bits set beyond its prefix (10.1.0.0/8) is an error, as it is usually a typo.
 * Returns 0; CM_E_INVALID with err naming the bad entry; CM_E_TOOLARGE past
 * CLIENTIP_MAX_PROXIES entries. On failure *cfg trusts no one.
 */
int clientip_cfg_parse(struct clientip_cfg *cfg, const char *list, struct cm_error *err);

/*
 * Finds the client's address and writes it, canonical (IPv4 dotted quad, IPv6 as inet_ntop
 * writes it: lower case, zeros compressed, no zone; a mapped IPv4 address as plain IPv4), to
 * out.
 *  - If the socket peer (borrowed; AF_INET or AF_INET6) is not trusted, or xff_header is NULL
 *    or empty, the client is the peer: X-Forwarded-For from an untrusted peer is ignored.
 *  - Otherwise X-Forwarded-For (borrowed; a comma-separated list; several headers may be
 *    joined with ',') is walked from the right, skipping trusted entries; the first untrusted
 *    one is the client. Empty entries and white space around entries are ignored.
 *  - If every entry is trusted, the client is the left-most entry.
 *  - If an entry is malformed, the walk stops there and the client is the last good address
 *    seen, i.e. the trusted entry just right of it, or the peer if it is the right-most one:
 *    nothing left of a broken hop can be believed, and the proxy address is what a trusted hop
 *    vouched for (all such clients then share that proxy's per-IP limit, failing safe).
 * An entry is an address, "[IPv6]" or "[IPv6]:port" or "IPv4:port" (the port is dropped);
 * anything else ("unknown", a host name, a zone "%eth0", over-long text) is malformed.
 * Returns 0; CM_E_INVALID if peer is NULL or neither IPv4 nor IPv6 (then out is "").
 * cfg NULL trusts no one. Pure function: thread-safe.
 */
int clientip_resolve(const struct clientip_cfg *cfg, const struct sockaddr *peer,
                     const char *xff_header, char out[CLIENTIP_TEXT_SIZE]);

#endif
