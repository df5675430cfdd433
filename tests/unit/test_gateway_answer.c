/* Unit tests for gateway/answer.c: the /predict answer written by hand must be byte for byte
 * what jansson writes for the same values (json_pack, then json_dumps with JSON_COMPACT |
 * JSON_ENSURE_ASCII, as the gateway did before), for numbers across the whole double range and
 * for strings with every kind of character; and what jansson refuses, it refuses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "answer.h"
#include "err.h"

/* jansson's text for the answer, or NULL when jansson cannot build it. */
static char *jansson_answer(const Credito__V1__Prediction *p, const char *rid, const char *model,
                            int64_t version, const char *alias)
{
  json_t *reasons = json_array(), *doc;
  char *s;

  for (size_t i = 0; i < p->n_reasons; i++)
    json_array_append_new(reasons, json_pack("{s:s, s:f, s:s}", "feature", p->reasons[i]->feature,
                                             "impact", p->reasons[i]->impact, "text",
                                             p->reasons[i]->text));
  doc = json_pack("{s:f, s:f, s:s, s:o, s:s, s:{s:s, s:I, s:s}}", "probability", p->probability,
                  "score", p->score, "decision",
                  p->decision == CREDITO__V1__DECISION__DECISION_DECLINE ? "decline" : "approve",
                  "reasons", reasons, "request_id", rid, "model", "name", model, "version",
                  (json_int_t)version, "alias", alias);
  if (!doc || json_array_size(reasons) != p->n_reasons) {
    json_decref(doc);
    return NULL;
  }
  s = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
  json_decref(doc);
  return s;
}

/* Writes the answer both ways and compares; returns what answer.c returned. */
static int compare(double prob, double score, double impact, const char *feature,
                   const char *text, const char *rid, int64_t version)
{
  Credito__V1__Reason r1 = CREDITO__V1__REASON__INIT, r2 = CREDITO__V1__REASON__INIT;
  Credito__V1__Reason *rs[2] = {&r1, &r2};
  Credito__V1__Prediction p = CREDITO__V1__PREDICTION__INIT;
  struct cm_buf o;
  char *want;
  int rc;

  r1.feature = (char *)feature;
  r1.impact = impact;
  r1.text = (char *)text;
  r2.feature = (char *)"age";
  r2.impact = -impact / 3;
  r2.text = (char *)"age = 67 raised the risk of default";
  p.probability = prob;
  p.score = score;
  p.decision = prob >= 0.5 ? CREDITO__V1__DECISION__DECISION_DECLINE
                           : CREDITO__V1__DECISION__DECISION_APPROVE;
  p.reasons = rs;
  p.n_reasons = 2;
  cm_buf_init(&o, 1 << 20);
  rc = gw_answer_predict(&o, &p, rid, "credit-default", version, "champion");
  want = jansson_answer(&p, rid, "credit-default", version, "champion");
  if (rc == 0) {
    assert_non_null(want);
    if (o.len != strlen(want) || memcmp(o.data, want, o.len) != 0)
      print_message("got  %.*s\nwant %s\n", (int)o.len, o.data, want);
    assert_int_equal(o.len, strlen(want));
    assert_memory_equal(o.data, want, o.len);
  } else {
    assert_int_equal(rc, CM_E_INVALID);
    assert_null(want); /* jansson refuses it too */
  }
  free(want);
  cm_buf_cleanup(&o);
  return rc;
}

static void test_numbers(void **state)
{
  static const double v[] = {0.0,      -0.0,     1.0,      0.5,     0.1,     0.049218057691751367,
                             572.55997365889425, 1e-5, 1.5e-7, 1e-300, 5e-324, DBL_MIN,
                             DBL_MAX,  1e21,     1e22,     123456789012345678.0, 1e16, 1e17,
                             -2.5e-10, 3.0e100, 0.30000000000000004, 100.0, 9.999999999999999e22};
  (void)state;
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k += 3)
      assert_int_equal(compare(v[i], v[k], v[(i + k) % (sizeof v / sizeof v[0])], "duration",
                               "duration = 6 raised the risk", "gw-1", (int64_t)i), 0);
}

static void test_random_numbers(void **state)
{
  uint64_t x = 88172645463325252ull;
  (void)state;
  for (int i = 0; i < 20000; i++) {
    double d;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    memcpy(&d, &x, sizeof d); /* any bit pattern: every exponent */
    if (!isfinite(d))
      assert_int_equal(compare(d, 1.0, 1.0, "a", "b", "c", 1), CM_E_INVALID);
    else
      assert_int_equal(compare(d, d / 3, -d, "a", "b", "c", (int64_t)x), 0);
  }
}

/* answer.c writes 1e-11 <= |v| < 1e17 with its own exact digits instead of printf: every
 * decimal exponent of that range, the doubles next to each power of ten and to numbers with
 * few digits (where rounding carries), halves, and random mantissas. */
static void test_exact_digits_range(void **state)
{
  uint64_t x = 0x9E3779B97F4A7C15ull;
  int n = 0;
  (void)state;
  for (int e = -12; e <= 17; e++) {
    double p = pow(10.0, e);
    double around[] = {p, nextafter(p, 0), nextafter(p, INFINITY), p * 0.5, p * 1.5, p * 9.5,
                       p * 0.1 + p, 3 * p, p / 3, p * 0.7, nextafter(p / 3, 0),
                       nextafter(7.0 * p, INFINITY), 1.0 / 1024 * p};
    for (size_t i = 0; i < sizeof around / sizeof around[0]; i++, n++) {
      assert_int_equal(compare(around[i], -around[i], around[i], "a", "b", "c", 1), 0);
    }
  }
  for (int i = 0; i < 200000; i++, n++) {
    double d;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    /* a random mantissa at a random binary exponent between 2^-40 and 2^60 */
    d = ldexp((double)(x >> 11) / 9007199254740992.0 + 0.5, (int)(x % 101) - 40);
    assert_int_equal(compare(d, (x & 1) ? -d : d, d / 7, "a", "b", "c", 1), 0);
  }
  assert_true(n > 200000);
}

static void test_strings(void **state)
{
  static const char *const s[] = {
      "",
      "plain ASCII with spaces / slash",
      "quote \" backslash \\ and both \\\"",
      "controls \b \f \n \r \t \x01 \x1f end",
      "DEL \x7f kept",
      "Latin: \xc3\xa4\xc3\xb6\xc3\xbc \xc3\x9f",                 /* äöü ß */
      "CJK: \xe4\xbf\xa1\xe7\x94\xa8",                            /* 信用 */
      "emoji: \xf0\x9f\x92\xb3 and \xf0\x9f\x98\x80",            /* 💳 😀: surrogate pairs */
      "max: \xf4\x8f\xbf\xbf",                                    /* U+10FFFF */
      "checking_status = <0 raised the risk of default",
  };
  (void)state;
  for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
    for (size_t k = 0; k < sizeof s / sizeof s[0]; k++)
      assert_int_equal(compare(0.25, 600.0, 0.75, s[i], s[k], s[(i + k) % 10], 3), 0);
}

static void test_not_utf8_is_refused_as_jansson_does(void **state)
{
  static const char *const bad[] = {
      "\xff", "cut \xc3", "overlong \xc0\xaf", "surrogate \xed\xa0\x80", "past max \xf4\x90\x80\x80",
      "lone continuation \x80", "short \xe4\xbf",
  };
  (void)state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(compare(0.25, 600.0, 0.75, bad[i], "ok", "rid", 1), CM_E_INVALID);
    assert_int_equal(compare(0.25, 600.0, 0.75, "ok", bad[i], "rid", 1), CM_E_INVALID);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_numbers),
      cmocka_unit_test(test_random_numbers),
      cmocka_unit_test(test_exact_digits_range),
      cmocka_unit_test(test_strings),
      cmocka_unit_test(test_not_utf8_is_refused_as_jansson_does),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
