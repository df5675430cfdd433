/* Unit tests for gateway/body.c under allocation failure: the request body mapping allocates on
 * untrusted input (jansson's parse, the 422 detail entries, the features in the arena), so every
 * allocation is failed in turn, jansson's included (json_set_alloc_funcs routes it through
 * cm_mem), until the call succeeds. Each failing run must end cleanly with no crash and nothing
 * left allocated; the run that succeeds must give what a run without failures gives. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "body.h"
#include "err.h"
#include "live_blocks.h"
#include "mem.h"


/* A cut-down German Credit schema: a required number, an optional number, a categorical feature
 * that rejects unknown categories. */
static char *purposes[] = {"car", "radio/tv", "education"};
static Credito__V1__FeatureSpec duration = {
    PROTOBUF_C_MESSAGE_INIT(&credito__v1__feature_spec__descriptor), "duration",
    CREDITO__V1__FEATURE_KIND__FEATURE_KIND_NUMERIC, 0, NULL, 1, "", NULL,
    CREDITO__V1__UNKNOWN_CATEGORY__UNKNOWN_CATEGORY_UNSPECIFIED};
static Credito__V1__FeatureSpec age = {
    PROTOBUF_C_MESSAGE_INIT(&credito__v1__feature_spec__descriptor), "age",
    CREDITO__V1__FEATURE_KIND__FEATURE_KIND_NUMERIC, 0, NULL, 0, "", NULL,
    CREDITO__V1__UNKNOWN_CATEGORY__UNKNOWN_CATEGORY_UNSPECIFIED};
static Credito__V1__FeatureSpec purpose = {
    PROTOBUF_C_MESSAGE_INIT(&credito__v1__feature_spec__descriptor), "purpose",
    CREDITO__V1__FEATURE_KIND__FEATURE_KIND_CATEGORICAL, 3, purposes, 1, "", NULL,
    CREDITO__V1__UNKNOWN_CATEGORY__UNKNOWN_CATEGORY_REJECT};
static Credito__V1__FeatureSpec *specs[] = {&duration, &age, &purpose};
static Credito__V1__Schema schema = {
    PROTOBUF_C_MESSAGE_INIT(&credito__v1__schema__descriptor), 3, specs, "class", "bad"};

/* What one mapping of a body gave: the return code, the features' count, the 422 text. */
struct outcome {
  int rc;          /* 0, CM_E_INVALID, CM_E_NOMEM, or -1: the body did not parse */
  size_t n;
  char *detail;    /* JSON text of the detail list (malloc'd), NULL when none */
};

static struct outcome map_body(const char *text)
{
  struct outcome o = {CM_E_NOMEM, 0, NULL};
  json_t *detail = NULL, *doc, *loc;
  cm_arena *a = cm_arena_new(0);
  Credito__V1__Feature **f = NULL;

  if (!a)
    return o;
  doc = body_parse(text, strlen(text), &detail);
  if (!doc) {
    o.rc = detail ? -1 : CM_E_NOMEM;
  } else {
    detail = json_array();
    loc = json_pack("[s]", "body");
    o.rc = detail && loc ? body_applicant(doc, &schema, loc, a, &f, &o.n, detail) : CM_E_NOMEM;
    json_decref(loc);
  }
  if (o.rc && o.rc != CM_E_NOMEM && detail) {
    char *s = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
    o.detail = s ? strdup(s) : NULL;
    cm_free(s);
    if (!o.detail)
      o.rc = CM_E_NOMEM;
  }
  json_decref(detail);
  json_decref(doc);
  cm_arena_free(a);
  return o;
}

/* Fails the n-th allocation for n = 0, 1, ... until the mapping of text succeeds, and checks
 * every failing run against the clean one. */
static void fail_each_allocation(const char *text)
{
  struct outcome want, got = {CM_E_NOMEM, 0, NULL};
  long n, before;

  cm_mem_set_hooks(&live_hooks);
  json_set_alloc_funcs(cm_malloc, cm_free);
  before = live_blocks;
  want = map_body(text);
  assert_int_not_equal(want.rc, CM_E_NOMEM);
  assert_int_equal(live_blocks, before);
  for (n = 0; got.rc == CM_E_NOMEM; n++) {
    assert_true(n < 100000);
    cm_mem_fail_after(n);
    got = map_body(text);
    cm_mem_fail_after(-1);
    assert_int_equal(live_blocks, before); /* nothing left behind, failing or not */
    if (got.rc == CM_E_NOMEM)
      continue;
    /* A failure inside the echo of an input may shorten nothing else: same code, same list. */
    assert_int_equal(got.rc, want.rc);
    assert_int_equal(got.n, want.n);
    if (want.detail)
      assert_string_equal(got.detail, want.detail);
    free(got.detail);
  }
  print_message("%s...: %ld allocations failed in turn\n", text, n - 1);
  assert_true(n > 3);
  free(want.detail);
  json_set_alloc_funcs(malloc, free);
  cm_mem_set_hooks(NULL);
}

static void test_valid_body(void **state)
{
  (void)state;
  fail_each_allocation("{\"duration\": 12, \"age\": null, \"purpose\": \"car\"}");
}

static void test_body_with_every_kind_of_problem(void **state)
{
  (void)state;
  fail_each_allocation("{\"duration\": \"twelve\", \"age\": [1, 2], \"purpose\": \"boat\", "
                       "\"colour\": \"blue\", \"x\": {\"deep\": [1, {\"a\": 2}]}}");
}

static void test_malformed_json(void **state)
{
  (void)state;
  fail_each_allocation("{\"duration\": 12, \"purpose\": \"car\"");
}

static void test_not_an_object(void **state)
{
  (void)state;
  fail_each_allocation("[1, 2, 3]");
}

/* An echoed input over BODY_ECHO_MAX bytes is cut at a character boundary: cut inside a UTF-8
 * sequence it was not valid JSON text, jansson refused it, and the 422 became a 500 "out of
 * memory" (found by this test). */
static void test_long_multibyte_input_is_cut_at_a_character(void **state)
{
  char body[1024];
  size_t len = (size_t)snprintf(body, sizeof body, "{\"duration\": 1, \"purpose\": \"");
  struct outcome o;
  json_t *d;
  const char *in;

  (void)state;
  for (int i = 0; i < 100; i++) /* the euro sign, 3 bytes: 256 is not a multiple of 3 */
    len += (size_t)snprintf(body + len, sizeof body - len, "\xe2\x82\xac");
  snprintf(body + len, sizeof body - len, "\"}");
  o = map_body(body);
  assert_int_equal(o.rc, CM_E_INVALID);
  d = json_loads(o.detail, 0, NULL);
  assert_non_null(d);
  in = json_string_value(json_object_get(json_array_get(d, 0), "input"));
  assert_non_null(in);
  assert_int_equal(strlen(in), 255); /* 85 euro signs */
  assert_string_equal(json_string_value(json_object_get(json_array_get(d, 0), "type")), "enum");
  json_decref(d);
  free(o.detail);
}

/* jansson's error text quotes the bytes near the error; a cut UTF-8 sequence there made the
 * 422's detail null (found by gateway_body_fuzzer). */
static void test_error_text_near_bad_bytes(void **state)
{
  static const char *const bodies[] = {"{\"a\": \xc5", "{\"a\xc5\x90\": tru", "[1, 2 \xff]",
                                       "{\"a\": 1 \x01"};
  (void)state;
  for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
    json_t *detail = NULL;
    assert_null(body_parse(bodies[i], strlen(bodies[i]), &detail));
    assert_int_equal(json_array_size(detail), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(detail, 0), "type")),
                        "json_invalid");
    json_decref(detail);
  }
}

/* body_applicant_fast against the full path: what it takes, it maps identically; what is in
 * any way unusual, it leaves to the full path. */
static void fast_case(const char *text, int want)
{
  cm_arena *a = cm_arena_new(0), *b = cm_arena_new(0);
  Credito__V1__Feature **f = NULL, **g = NULL;
  json_t *detail = json_array(), *doc, *loc = json_pack("[s]", "body"), *d2 = NULL;
  size_t n = 0, m = 0;
  int rc = body_applicant_fast(text, strlen(text), &schema, a, &f, &n);

  if (rc != want)
    print_message("%s: fast path %d, want %d\n", text, rc, want);
  assert_int_equal(rc, want);
  if (rc == 0) {
    doc = body_parse(text, strlen(text), &d2);
    assert_non_null(doc);
    assert_int_equal(body_applicant(doc, &schema, loc, b, &g, &m, detail), 0);
    assert_int_equal(m, n);
    for (size_t i = 0; i < n; i++) {
      assert_string_equal(f[i]->name, g[i]->name);
      assert_int_equal(f[i]->value->value_case, g[i]->value->value_case);
      if (f[i]->value->value_case == CREDITO__V1__FEATURE_VALUE__VALUE_NUMBER)
        assert_memory_equal(&f[i]->value->number, &g[i]->value->number, sizeof(double));
      if (f[i]->value->value_case == CREDITO__V1__FEATURE_VALUE__VALUE_TEXT)
        assert_string_equal(f[i]->value->text, g[i]->value->text);
    }
    json_decref(doc);
  }
  json_decref(detail);
  json_decref(loc);
  cm_arena_free(a);
  cm_arena_free(b);
}

static void test_fast_path(void **state)
{
  (void)state;
  /* taken */
  fast_case("{\"duration\": 12, \"purpose\": \"car\"}", 0);
  fast_case(" {\"purpose\":\"radio/tv\",\"age\":null,\"duration\":-0.5e-3}\r\n", 0);
  fast_case("{\"duration\": 9223372036854775807, \"purpose\": \"car\", \"age\": 1.5e-400}", 0);
  fast_case("{\"duration\": -0, \"age\": 1E+2, \"purpose\": \"education\"}", 0);
  /* left to the full path (which refuses or reports each) */
  fast_case("{\"duration\": 01, \"purpose\": \"car\"}", CM_E_INVALID);         /* leading 0 */
  fast_case("{\"duration\": 1e999, \"purpose\": \"car\"}", CM_E_INVALID);      /* overflow */
  fast_case("{\"duration\": 99999999999999999999, \"purpose\": \"car\"}", CM_E_INVALID);
  fast_case("{\"duration\": 1, \"duration\": 2, \"purpose\": \"car\"}", CM_E_INVALID);
  fast_case("{\"duration\": 1, \"purpose\": \"car\", \"colour\": 1}", CM_E_INVALID);
  fast_case("{\"duration\": 1, \"purpose\": \"c\\u0061r\"}", CM_E_INVALID);  /* escape */
  fast_case("{\"duration\": 1, \"purpose\": \"boat\"}", CM_E_INVALID);         /* enum */
  fast_case("{\"duration\": null, \"purpose\": \"car\"}", CM_E_INVALID);       /* required */
  fast_case("{\"purpose\": \"car\"}", CM_E_INVALID);                            /* missing */
  fast_case("{\"duration\": \"12\", \"purpose\": \"car\"}", CM_E_INVALID);     /* a string */
  fast_case("{\"duration\": 12, \"purpose\": 3}", CM_E_INVALID);                /* a number */
  fast_case("{\"duration\": true, \"purpose\": \"car\"}", CM_E_INVALID);
  fast_case("{\"duration\": 12, \"purpose\": \"car\"} x", CM_E_INVALID);        /* trailing */
  fast_case("{\"duration\": 12, \"purpose\": \"car\",}", CM_E_INVALID);
  fast_case("{\"duration\": 1.e5, \"purpose\": \"car\"}", CM_E_INVALID);
  fast_case("{\"duration\": +1, \"purpose\": \"car\"}", CM_E_INVALID);
  fast_case("[{\"duration\": 12, \"purpose\": \"car\"}]", CM_E_INVALID);
  fast_case("{\"duration\": 12, \"purpose\": \"caf\xc3\xa9\"}", CM_E_INVALID); /* not ASCII */
  fast_case("", CM_E_INVALID);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_body),
      cmocka_unit_test(test_body_with_every_kind_of_problem),
      cmocka_unit_test(test_malformed_json),
      cmocka_unit_test(test_not_an_object),
      cmocka_unit_test(test_long_multibyte_input_is_cut_at_a_character),
      cmocka_unit_test(test_fast_path),
      cmocka_unit_test(test_error_text_near_bad_bytes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
