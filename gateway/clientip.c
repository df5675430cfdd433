/* clientip: the trusted proxy list and the walk over X-Forwarded-For. Addresses are kept as
 * (family, 16 bytes) with IPv4-mapped IPv6 folded into IPv4, so both sides compare alike. */
#include "clientip.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* Longest text taken as one address or network: an IPv6 address with brackets, port and
 * prefix fits well within it. */
#define TEXT_MAX 63

struct addr {
  unsigned char b[16]; /* IPv4 in b[0..4), the rest zero */
  unsigned char family; /* 4 or 6 */
};

static const unsigned char mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Fills *a from 16 IPv6 bytes, folding ::ffff:a.b.c.d into IPv4. */
static void addr_from_v6(struct addr *a, const unsigned char *b)
{
  memset(a, 0, sizeof(*a));
  if (memcmp(b, mapped_prefix, sizeof(mapped_prefix)) == 0) {
    memcpy(a->b, b + 12, 4);
    a->family = 4;
  } else {
    memcpy(a->b, b, 16);
    a->family = 6;
  }
}

/* Parses exactly p[0..len) as a bare IPv4 or IPv6 address. */
static bool addr_parse(const char *p, size_t len, struct addr *a)
{
  char text[TEXT_MAX + 1];
  unsigned char b[16];

  if (len == 0 || len > TEXT_MAX)
    return false;
  memcpy(text, p, len);
  text[len] = '\0';
  memset(a, 0, sizeof(*a));
  if (inet_pton(AF_INET, text, a->b) == 1) {
    a->family = 4;
    return true;
  }
  if (inet_pton(AF_INET6, text, b) == 1) {
    addr_from_v6(a, b);
    return true;
  }
  return false;
}

/* True if p[0..len) is a port: 1 to 5 digits, at most 65535. */
static bool port_valid(const char *p, size_t len)
{
  unsigned long v = 0;

  if (len == 0 || len > 5)
    return false;
  for (size_t i = 0; i < len; i++) {
    if (p[i] < '0' || p[i] > '9')
      return false;
    v = v * 10 + (unsigned long)(p[i] - '0');
  }
  return v <= 65535;
}

/* Parses an X-Forwarded-For entry: an address, [IPv6], [IPv6]:port or IPv4:port. */
static bool entry_parse(const char *p, size_t len, struct addr *a)
{
  const char *close, *colon;

  if (len > TEXT_MAX)
    return false;
  if (len > 0 && p[0] == '[') {
    close = memchr(p, ']', len);
    if (!close)
      return false;
    /* Brackets hold IPv6 text only, though ::ffff:a.b.c.d then folds to IPv4. */
    if (!memchr(p, ':', (size_t)(close - p)) || !addr_parse(p + 1, (size_t)(close - p - 1), a))
      return false;
    if (close + 1 == p + len)
      return true;
    return close[1] == ':' && port_valid(close + 2, (size_t)(p + len - close - 2));
  }
  if (addr_parse(p, len, a))
    return true;
  /* IPv4:port has exactly one colon; an IPv6 address without brackets takes no port. */
  colon = memchr(p, ':', len);
  if (!colon || memchr(colon + 1, ':', (size_t)(p + len - colon - 1)))
    return false;
  return addr_parse(p, (size_t)(colon - p), a) && a->family == 4 &&
         port_valid(colon + 1, (size_t)(p + len - colon - 1));
}

static bool is_space(char ch)
{
  return ch == ' ' || ch == '\t';
}

/* Trims spaces and tabs from both ends of p[0..*len); returns the new start. */
static const char *trim(const char *p, size_t *len)
{
  while (*len > 0 && is_space(p[0])) {
    p++;
    (*len)--;
  }
  while (*len > 0 && is_space(p[*len - 1]))
    (*len)--;
  return p;
}

/* True if the first bits bits of x and y agree. */
static bool prefix_equal(const unsigned char *x, const unsigned char *y, unsigned bits)
{
  size_t whole = bits / 8;
  unsigned rest = bits % 8;
  unsigned char mask = (unsigned char)(0xff << (8 - rest));

  if (memcmp(x, y, whole) != 0)
    return false;
  return rest == 0 || ((x[whole] ^ y[whole]) & mask) == 0;
}

static bool trusted(const struct clientip_cfg *cfg, const struct addr *a)
{
  for (size_t i = 0; cfg && i < cfg->n; i++) {
    const struct clientip_net *net = &cfg->nets[i];

    if (net->family == a->family && prefix_equal(net->addr, a->b, net->prefix))
      return true;
  }
  return false;
}

/* Parses p[0..len) as a prefix length of 1 to 3 digits, at most max, into *out. */
static bool prefix_parse(const char *p, size_t len, unsigned max, unsigned long *out)
{
  unsigned long v = 0;

  if (len == 0 || len > 3)
    return false;
  for (size_t i = 0; i < len; i++) {
    if (p[i] < '0' || p[i] > '9')
      return false;
    v = v * 10 + (unsigned long)(p[i] - '0');
  }
  *out = v;
  return v <= max;
}

/* Parses one trimmed, non-empty network "ADDR" or "ADDR/PREFIX" into *net. */
static int net_parse(const char *p, size_t len, struct clientip_net *net, struct cm_error *err)
{
  const char *slash = memchr(p, '/', len);
  size_t alen = slash ? (size_t)(slash - p) : len;
  struct addr a;
  unsigned long prefix, written;
  unsigned max;
  bool v6text;
  int shown = len > TEXT_MAX ? TEXT_MAX : (int)len;

  if (!addr_parse(p, alen, &a))
    return cm_error_set(err, CM_E_INVALID, "trusted proxy '%.*s': not an IPv4 or IPv6 address",
                        shown, p);
  /* The prefix counts bits of the address as written: 128 for IPv6 text, mapped or not. */
  v6text = memchr(p, ':', alen) != NULL;
  max = v6text ? 128 : 32;
  prefix = max;
  if (slash && !prefix_parse(slash + 1, len - alen - 1, max, &prefix))
    return cm_error_set(err, CM_E_INVALID, "trusted proxy '%.*s': the prefix must be 0..%u",
                        shown, p, max);
  written = prefix;
  /* ::ffff:10.0.0.0/104 was folded to IPv4 10.0.0.0: its prefix counts IPv4 bits. */
  if (a.family == 4 && v6text) {
    if (prefix < 96)
      return cm_error_set(err, CM_E_INVALID,
                          "trusted proxy '%.*s': an IPv4-mapped network needs a prefix of at "
                          "least 96", shown, p);
    prefix -= 96;
  }
  max = a.family == 4 ? 32 : 128;
  /* Bits beyond the prefix must be zero: compare the address with itself masked. */
  memset(net, 0, sizeof(*net));
  memcpy(net->addr, a.b, 16);
  net->family = a.family;
  net->prefix = (unsigned char)prefix;
  for (unsigned bit = (unsigned)prefix; bit < max; bit++)
    net->addr[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
  if (memcmp(net->addr, a.b, 16) != 0)
    return cm_error_set(err, CM_E_INVALID,
                        "trusted proxy '%.*s': bits are set beyond the /%lu prefix", shown, p,
                        written);
  return 0;
}

int clientip_cfg_parse(struct clientip_cfg *cfg, const char *list, struct cm_error *err)
{
  const char *p = list;
  int rc = 0;

  memset(cfg, 0, sizeof(*cfg));
  while (!rc && p && *p) {
    size_t len = strcspn(p, ",");
    const char *item = trim(p, &len);

    p += strcspn(p, ",");
    p += *p == ',' ? 1 : 0;
    if (len == 0)
      continue;
    if (cfg->n == CLIENTIP_MAX_PROXIES)
      rc = cm_error_set(err, CM_E_TOOLARGE, "more than %d trusted proxies",
                        CLIENTIP_MAX_PROXIES);
    else
      rc = net_parse(item, len, &cfg->nets[cfg->n], err);
    if (!rc)
      cfg->n++;
  }
  if (rc)
    memset(cfg, 0, sizeof(*cfg));
  return rc;
}

/* The peer's address; false if it is neither IPv4 nor IPv6. */
static bool peer_addr(const struct sockaddr *peer, struct addr *a)
{
  memset(a, 0, sizeof(*a));
  if (peer && peer->sa_family == AF_INET) {
    struct sockaddr_in sin;

    memcpy(&sin, peer, sizeof(sin));
    memcpy(a->b, &sin.sin_addr, 4);
    a->family = 4;
    return true;
  }
  if (peer && peer->sa_family == AF_INET6) {
    struct sockaddr_in6 sin6;

    memcpy(&sin6, peer, sizeof(sin6));
    addr_from_v6(a, sin6.sin6_addr.s6_addr);
    return true;
  }
  return false;
}

/* Walks X-Forwarded-For from the right; *a starts as the (trusted) peer and ends as the
 * client by clientip_resolve's rules. */
static void xff_walk(const struct clientip_cfg *cfg, const char *xff, struct addr *a)
{
  size_t end = strlen(xff);

  for (;;) {
    size_t start = end, len;
    const char *item;
    struct addr next;

    while (start > 0 && xff[start - 1] != ',')
      start--;
    len = end - start;
    item = trim(xff + start, &len);
    if (len > 0) {
      if (!entry_parse(item, len, &next))
        return; /* a broken hop: keep the last good address */
      *a = next;
      if (!trusted(cfg, a))
        return;
    }
    if (start == 0)
      return; /* all trusted: the left-most one */
    end = start - 1;
  }
}

int clientip_resolve(const struct clientip_cfg *cfg, const struct sockaddr *peer,
                     const char *xff_header, char out[CLIENTIP_TEXT_SIZE])
{
  struct addr a;

  out[0] = '\0';
  if (!peer_addr(peer, &a))
    return CM_E_INVALID;
  if (xff_header && trusted(cfg, &a))
    xff_walk(cfg, xff_header, &a);
  if (!inet_ntop(a.family == 4 ? AF_INET : AF_INET6, a.b, out, CLIENTIP_TEXT_SIZE))
    out[0] = '\0'; /* cannot happen: the buffer fits any address */
  return 0;
}
