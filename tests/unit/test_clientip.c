/* Unit tests for gateway/clientip: the trusted proxy list (IPv4, IPv6, mapped, prefixes and
 * its errors) and the X-Forwarded-For walk: a forged header from an untrusted peer changes
 * nothing; behind trusted proxies the right-most untrusted entry wins; malformed entries stop
 * the walk at the last good address. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "clientip.h"
#include "err.h"

#define TRUSTED "10.0.0.0/8, 127.0.0.1 ,::1,fd00::/8"

static int setup(void **state)
{
  struct clientip_cfg *cfg = test_malloc(sizeof(*cfg));
  struct cm_error err = {0};

  assert_int_equal(clientip_cfg_parse(cfg, TRUSTED, &err), 0);
  assert_int_equal(cfg->n, 4);
  *state = cfg;
  return 0;
}

static int teardown(void **state)
{
  test_free(*state);
  return 0;
}

/* A socket address for text (IPv4 or IPv6), as accept(2) would give it. */
static const struct sockaddr *peer_of(const char *text, struct sockaddr_storage *ss)
{
  struct sockaddr_in *sin = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

  memset(ss, 0, sizeof(*ss));
  if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(40000);
  } else {
    assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(40000);
  }
  return (const struct sockaddr *)ss;
}

/* The client for a peer and a header under cfg. */
static const char *resolve(const struct clientip_cfg *cfg, const char *peer, const char *xff,
                           char out[CLIENTIP_TEXT_SIZE])
{
  struct sockaddr_storage ss;

  assert_int_equal(clientip_resolve(cfg, peer_of(peer, &ss), xff, out), 0);
  return out;
}

struct walk_case {
  const char *peer;
  const char *xff;    /* NULL: no header */
  const char *client; /* expected */
};

static void walk_cases(const struct clientip_cfg *cfg, const struct walk_case *cases, size_t n)
{
  char out[CLIENTIP_TEXT_SIZE];

  for (size_t i = 0; i < n; i++) {
    resolve(cfg, cases[i].peer, cases[i].xff, out);
    if (strcmp(out, cases[i].client) != 0)
      fail_msg("case %zu: peer %s, X-Forwarded-For '%s': got %s, want %s", i, cases[i].peer,
               cases[i].xff ? cases[i].xff : "(none)", out, cases[i].client);
  }
}

/* An untrusted peer is the client whatever it claims: a forged header cannot move it into
 * another client's per-IP limit. */
static void test_untrusted_peer_ignores_xff(void **state)
{
  static const struct walk_case cases[] = {
      {"203.0.113.5", "1.2.3.4", "203.0.113.5"},
      {"203.0.113.5", "10.0.0.1", "203.0.113.5"},
      {"203.0.113.5", "1.2.3.4, 10.0.0.1", "203.0.113.5"},
      {"203.0.113.5", "garbage", "203.0.113.5"},
      {"203.0.113.5", NULL, "203.0.113.5"},
      {"2001:db8::7", "1.2.3.4", "2001:db8::7"},
      {"11.0.0.1", "1.2.3.4", "11.0.0.1"},     /* just outside 10.0.0.0/8 */
      {"127.0.0.2", "1.2.3.4", "127.0.0.2"},   /* 127.0.0.1 is a host, not 127/8 */
      {"::2", "1.2.3.4", "::2"},
      {"fe00::1", "1.2.3.4", "fe00::1"},       /* outside fd00::/8 */
  };

  walk_cases(*state, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_trusted_peer(void **state)
{
  static const struct walk_case cases[] = {
      {"10.0.0.1", "1.2.3.4", "1.2.3.4"},
      {"127.0.0.1", "1.2.3.4", "1.2.3.4"},
      {"10.0.0.1", NULL, "10.0.0.1"},                    /* no header */
      {"10.0.0.1", "", "10.0.0.1"},                      /* empty header */
      {"10.0.0.1", " , ,", "10.0.0.1"},                  /* only empty entries */
      /* A client behind a trusted proxy forges entries on the left: they are not reached. */
      {"10.0.0.1", "6.6.6.6, 1.2.3.4", "1.2.3.4"},
      {"10.0.0.1", "10.9.9.9, 1.2.3.4", "1.2.3.4"},
      /* Chains of trusted proxies are skipped from the right. */
      {"10.0.0.1", "1.2.3.4, 10.1.1.1, 10.2.2.2", "1.2.3.4"},
      {"10.0.0.1", "6.6.6.6, 1.2.3.4, 127.0.0.1, 10.2.2.2", "1.2.3.4"},
      /* Every entry trusted: the left-most one. */
      {"10.0.0.1", "10.0.0.5, 10.0.0.6", "10.0.0.5"},
      {"10.0.0.1", "10.0.0.5", "10.0.0.5"},
      /* Several headers joined with ',', and spaces or tabs around commas. */
      {"10.0.0.1", "6.6.6.6,1.2.3.4,10.0.0.9", "1.2.3.4"},
      {"10.0.0.1", "  1.2.3.4  ,\t5.6.7.8\t ", "5.6.7.8"},
      {"10.0.0.1", "1.2.3.4,,10.0.0.2,", "1.2.3.4"},
      /* Ports and brackets, as some proxies write them, are dropped. */
      {"10.0.0.1", "1.2.3.4:5678", "1.2.3.4"},
      {"10.0.0.1", "[2001:db8::1]:443", "2001:db8::1"},
      {"10.0.0.1", "[2001:db8::1]", "2001:db8::1"},
      {"10.0.0.1", "1.2.3.4, 10.0.0.3:8080", "1.2.3.4"},
  };

  walk_cases(*state, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_ipv6(void **state)
{
  static const struct walk_case cases[] = {
      {"::1", "2001:db8::1", "2001:db8::1"},
      {"fd00::5", "2001:DB8:0:0:0:0:0:1", "2001:db8::1"}, /* canonical text */
      {"fd12:3456::1", "2001:db8::1, fd00::2, ::1", "2001:db8::1"},
      {"::1", "1.2.3.4", "1.2.3.4"},                        /* IPv6 proxy, IPv4 client */
      {"10.0.0.1", "2001:db8:0::a", "2001:db8::a"},         /* and the reverse */
      {"2001:0DB8::0001", NULL, "2001:db8::1"},
      {"::1", "fd00::1, fd00::2", "fd00::1"},
  };

  walk_cases(*state, cases, sizeof(cases) / sizeof(cases[0]));
}

/* ::ffff:a.b.c.d is a.b.c.d, as a peer (a dual-stack socket's IPv4 client), as an entry and
 * as a configured network. */
static void test_mapped_ipv4(void **state)
{
  static const struct walk_case cases[] = {
      {"::ffff:10.0.0.1", "1.2.3.4", "1.2.3.4"},           /* trusted through 10.0.0.0/8 */
      {"::ffff:203.0.113.9", "1.2.3.4", "203.0.113.9"},    /* untrusted, printed as IPv4 */
      {"::ffff:127.0.0.1", "::ffff:1.2.3.4", "1.2.3.4"},
      {"10.0.0.1", "1.2.3.4, ::ffff:10.0.0.3", "1.2.3.4"}, /* a mapped proxy is skipped */
      {"::ffff:10.0.0.1", "[::ffff:1.2.3.4]:80", "1.2.3.4"},
  };
  struct clientip_cfg mapped;
  struct cm_error err = {0};
  char out[CLIENTIP_TEXT_SIZE];

  walk_cases(*state, cases, sizeof(cases) / sizeof(cases[0]));
  /* A mapped network in the list is the IPv4 network. */
  assert_int_equal(clientip_cfg_parse(&mapped, "::ffff:192.168.0.0/112,::ffff:172.16.0.1", &err),
                   0);
  assert_string_equal(resolve(&mapped, "192.168.3.4", "1.2.3.4", out), "1.2.3.4");
  assert_string_equal(resolve(&mapped, "::ffff:192.168.3.4", "1.2.3.4", out), "1.2.3.4");
  assert_string_equal(resolve(&mapped, "172.16.0.1", "1.2.3.4", out), "1.2.3.4");
  assert_string_equal(resolve(&mapped, "192.169.0.1", "1.2.3.4", out), "192.169.0.1");
  assert_int_equal(clientip_cfg_parse(&mapped, "::ffff:192.168.0.0/95", &err), CM_E_INVALID);
}

/* A malformed entry stops the walk: the last good address (the trusted hop right of it, or the
 * peer) is the client. */
static void test_malformed_entries(void **state)
{
  static const struct walk_case cases[] = {
      {"10.0.0.1", "garbage", "10.0.0.1"},
      {"10.0.0.1", "1.2.3.4, garbage", "10.0.0.1"},
      {"10.0.0.1", "1.2.3.4, unknown, 10.0.0.2", "10.0.0.2"},
      {"10.0.0.1", "garbage, 1.2.3.4", "1.2.3.4"},     /* left of the client: never reached */
      {"10.0.0.1", "garbage, 10.0.0.7", "10.0.0.7"},
      {"10.0.0.1", "1.2.3.4 5.6.7.8", "10.0.0.1"},     /* spaces are not separators */
      {"10.0.0.1", "fe80::1%eth0", "10.0.0.1"},        /* zones */
      {"10.0.0.1", "example.com", "10.0.0.1"},         /* names */
      {"10.0.0.1", "1.2.3", "10.0.0.1"},
      {"10.0.0.1", "1.2.3.256", "10.0.0.1"},
      {"10.0.0.1", "010.0.0.1", "10.0.0.1"},           /* no octal ambiguity */
      {"10.0.0.1", "1.2.3.4:99999", "10.0.0.1"},
      {"10.0.0.1", "1.2.3.4:", "10.0.0.1"},
      {"10.0.0.1", "[1.2.3.4]", "10.0.0.1"},
      {"10.0.0.1", "[2001:db8::1", "10.0.0.1"},
      {"10.0.0.1", "[2001:db8::1]x", "10.0.0.1"},
      {"10.0.0.1", "\"[2001:db8::1]\"", "10.0.0.1"},
      {"10.0.0.1", "1.2.3.4/32", "10.0.0.1"},
      {"10.0.0.1",
       "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd:eeee:ffff:0000:1111",
       "10.0.0.1"},
  };

  walk_cases(*state, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_cfg_parse(void **state)
{
  struct clientip_cfg cfg;
  struct cm_error err = {0};
  char out[CLIENTIP_TEXT_SIZE];

  (void)state;
  assert_int_equal(clientip_cfg_parse(&cfg, "", &err), 0);
  assert_int_equal(cfg.n, 0);
  assert_int_equal(clientip_cfg_parse(&cfg, NULL, &err), 0);
  assert_int_equal(cfg.n, 0);
  assert_string_equal(resolve(&cfg, "10.0.0.1", "1.2.3.4", out), "10.0.0.1");
  assert_string_equal(resolve(NULL, "10.0.0.1", "1.2.3.4", out), "10.0.0.1");
  assert_int_equal(clientip_cfg_parse(&cfg, " , 192.168.0.0/23 ,, 2001:db8::/32 , ", &err), 0);
  assert_int_equal(cfg.n, 2);
  /* Prefixes that do not fall on a byte. */
  assert_string_equal(resolve(&cfg, "192.168.1.7", "1.2.3.4", out), "1.2.3.4");
  assert_string_equal(resolve(&cfg, "192.168.2.1", "1.2.3.4", out), "192.168.2.1");
  assert_string_equal(resolve(&cfg, "2001:db8:ffff::1", "1.2.3.4", out), "1.2.3.4");
  assert_string_equal(resolve(&cfg, "2001:db9::1", "1.2.3.4", out), "2001:db9::1");
  /* /0 trusts a whole family, and only that family. */
  assert_int_equal(clientip_cfg_parse(&cfg, "0.0.0.0/0", &err), 0);
  assert_string_equal(resolve(&cfg, "8.8.8.8", "1.2.3.4, 5.6.7.8", out), "1.2.3.4");
  assert_string_equal(resolve(&cfg, "2001:db8::1", "1.2.3.4", out), "2001:db8::1");
  assert_int_equal(clientip_cfg_parse(&cfg, "::/0", &err), 0);
  assert_string_equal(resolve(&cfg, "8.8.8.8", "1.2.3.4", out), "8.8.8.8");
  assert_string_equal(resolve(&cfg, "::ffff:8.8.8.8", "1.2.3.4", out), "8.8.8.8");
  assert_string_equal(resolve(&cfg, "2001:db8::1", "1.2.3.4", out), "1.2.3.4");
}

static void test_cfg_errors(void **state)
{
  static const struct {
    const char *list;
    const char *msg; /* expected in the message */
  } cases[] = {
      {"10.0.0.0/33", "'10.0.0.0/33': the prefix must be 0..32"},
      {"::1/129", "'::1/129': the prefix must be 0..128"},
      {"10.0.0.0/", "the prefix"},
      {"10.0.0.0/8x", "the prefix"},
      {"10.0.0.0/-8", "the prefix"},
      {"10.0.0.0/0008", "the prefix"},
      {"10.1.0.0/8", "'10.1.0.0/8': bits are set beyond the /8 prefix"},
      {"10.0.0.1/0", "bits are set"},
      {"fd00::1/8", "bits are set"},
      {"127.0.0.1, proxy.local", "'proxy.local': not an IPv4 or IPv6 address"},
      {"10.0.0.0 /8", "not an IPv4 or IPv6 address"},
      {"fe80::1%eth0", "not an IPv4 or IPv6 address"},
      {"[::1]", "not an IPv4 or IPv6 address"},
  };
  struct clientip_cfg cfg;
  struct cm_error err = {0};
  char many[CLIENTIP_MAX_PROXIES * 16 + 16] = "";
  size_t used = 0;

  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    cm_error_clear(&err);
    assert_int_equal(clientip_cfg_parse(&cfg, cases[i].list, &err), CM_E_INVALID);
    if (!strstr(err.msg, cases[i].msg))
      fail_msg("case %zu '%s': '%s' lacks '%s'", i, cases[i].list, err.msg, cases[i].msg);
    assert_int_equal(cfg.n, 0); /* a failed parse trusts no one */
  }
  for (int i = 0; i < CLIENTIP_MAX_PROXIES; i++)
    used += (size_t)snprintf(many + used, sizeof(many) - used, "10.0.%d.1,", i);
  assert_int_equal(clientip_cfg_parse(&cfg, many, &err), 0);
  assert_int_equal(cfg.n, CLIENTIP_MAX_PROXIES);
  snprintf(many + used, sizeof(many) - used, "10.1.0.1");
  assert_int_equal(clientip_cfg_parse(&cfg, many, &err), CM_E_TOOLARGE);
  assert_int_equal(cfg.n, 0);
}

static void test_bad_peer(void **state)
{
  struct sockaddr_un sun;
  char out[CLIENTIP_TEXT_SIZE] = "x";

  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  assert_int_equal(clientip_resolve(*state, (const struct sockaddr *)&sun, "1.2.3.4", out),
                   CM_E_INVALID);
  assert_string_equal(out, "");
  assert_int_equal(clientip_resolve(*state, NULL, "1.2.3.4", out), CM_E_INVALID);
}

/* The peer's port and an IPv6 scope never reach the text. */
static void test_peer_details_dropped(void **state)
{
  struct sockaddr_in6 sin6;
  char out[CLIENTIP_TEXT_SIZE];

  memset(&sin6, 0, sizeof(sin6));
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(443);
  sin6.sin6_scope_id = 2;
  assert_int_equal(inet_pton(AF_INET6, "fe80::1", &sin6.sin6_addr), 1);
  assert_int_equal(clientip_resolve(*state, (const struct sockaddr *)&sin6, NULL, out), 0);
  assert_string_equal(out, "fe80::1");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_untrusted_peer_ignores_xff, setup, teardown),
      cmocka_unit_test_setup_teardown(test_trusted_peer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ipv6, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mapped_ipv4, setup, teardown),
      cmocka_unit_test_setup_teardown(test_malformed_entries, setup, teardown),
      cmocka_unit_test(test_cfg_parse),
      cmocka_unit_test(test_cfg_errors),
      cmocka_unit_test_setup_teardown(test_bad_peer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_peer_details_dropped, setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
