/* Unit tests for common/err: the code table is stable, its gRPC and HTTP
 * columns agree with gRPC's own numbers and gRPC-gateway's HTTP table, and
 * struct cm_error formatting truncates safely. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include <grpc/status.h>

#include "err.h"

/* Values are a wire and log contract: this pins every one of them. */
static const struct {
  int code;
  int value;
  const char *name;
} stable[] = {
    {CM_OK, 0, "CM_OK"},
    {CM_E_INVALID, -1, "CM_E_INVALID"},
    {CM_E_NOTFOUND, -2, "CM_E_NOTFOUND"},
    {CM_E_EXISTS, -3, "CM_E_EXISTS"},
    {CM_E_PERMISSION, -4, "CM_E_PERMISSION"},
    {CM_E_UNAUTHENTICATED, -5, "CM_E_UNAUTHENTICATED"},
    {CM_E_EXHAUSTED, -6, "CM_E_EXHAUSTED"},
    {CM_E_TOOLARGE, -7, "CM_E_TOOLARGE"},
    {CM_E_FAILED_PRECONDITION, -8, "CM_E_FAILED_PRECONDITION"},
    {CM_E_ABORTED, -9, "CM_E_ABORTED"},
    {CM_E_OUT_OF_RANGE, -10, "CM_E_OUT_OF_RANGE"},
    {CM_E_UNIMPLEMENTED, -11, "CM_E_UNIMPLEMENTED"},
    {CM_E_INTERNAL, -12, "CM_E_INTERNAL"},
    {CM_E_UNAVAILABLE, -13, "CM_E_UNAVAILABLE"},
    {CM_E_DEADLINE, -14, "CM_E_DEADLINE"},
    {CM_E_CANCELLED, -15, "CM_E_CANCELLED"},
    {CM_E_NOMEM, -16, "CM_E_NOMEM"},
    {CM_E_IO, -17, "CM_E_IO"},
    {CM_E_CORRUPT, -18, "CM_E_CORRUPT"},
    {CM_E_UNKNOWN, -19, "CM_E_UNKNOWN"},
};

#define NSTABLE (sizeof(stable) / sizeof(stable[0]))

/* gRPC's own numbering, from grpc/status.h, with the names we print. */
static const struct {
  int status;
  const char *name;
} grpc_names[] = {
    {GRPC_STATUS_OK, "OK"},
    {GRPC_STATUS_CANCELLED, "CANCELLED"},
    {GRPC_STATUS_UNKNOWN, "UNKNOWN"},
    {GRPC_STATUS_INVALID_ARGUMENT, "INVALID_ARGUMENT"},
    {GRPC_STATUS_DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"},
    {GRPC_STATUS_NOT_FOUND, "NOT_FOUND"},
    {GRPC_STATUS_ALREADY_EXISTS, "ALREADY_EXISTS"},
    {GRPC_STATUS_PERMISSION_DENIED, "PERMISSION_DENIED"},
    {GRPC_STATUS_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED"},
    {GRPC_STATUS_FAILED_PRECONDITION, "FAILED_PRECONDITION"},
    {GRPC_STATUS_ABORTED, "ABORTED"},
    {GRPC_STATUS_OUT_OF_RANGE, "OUT_OF_RANGE"},
    {GRPC_STATUS_UNIMPLEMENTED, "UNIMPLEMENTED"},
    {GRPC_STATUS_INTERNAL, "INTERNAL"},
    {GRPC_STATUS_UNAVAILABLE, "UNAVAILABLE"},
    {GRPC_STATUS_DATA_LOSS, "DATA_LOSS"},
    {GRPC_STATUS_UNAUTHENTICATED, "UNAUTHENTICATED"},
};

/* gRPC-gateway's HTTP mapping for the statuses STYLE.md names. */
static const struct {
  int status;
  int http;
} gateway[] = {
    {GRPC_STATUS_INVALID_ARGUMENT, 400},  {GRPC_STATUS_UNAUTHENTICATED, 401},
    {GRPC_STATUS_PERMISSION_DENIED, 403}, {GRPC_STATUS_NOT_FOUND, 404},
    {GRPC_STATUS_ALREADY_EXISTS, 409},    {GRPC_STATUS_RESOURCE_EXHAUSTED, 429},
    {GRPC_STATUS_UNAVAILABLE, 503},       {GRPC_STATUS_DEADLINE_EXCEEDED, 504},
};

static int setup_err(void **state)
{
  struct cm_error *err = test_malloc(sizeof(*err));

  memset(err, 0x5a, sizeof(*err)); /* garbage, as on a fresh stack */
  *state = err;
  return 0;
}

static int teardown_err(void **state)
{
  test_free(*state);
  return 0;
}

static void test_values_are_stable(void **state)
{
  size_t i, j;

  (void)state;
  for (i = 0; i < NSTABLE; i++) {
    assert_int_equal(stable[i].code, stable[i].value);
    assert_string_equal(cm_code_name(stable[i].code), stable[i].name);
    assert_true(stable[i].value <= 0);
    assert_true(strlen(cm_code_text(stable[i].code)) > 0);
    for (j = 0; j < i; j++)
      assert_int_not_equal(stable[i].value, stable[j].value);
  }
  assert_string_equal(cm_code_text(CM_E_NOTFOUND), "not found");
  assert_string_equal(cm_code_text(CM_E_INVALID), "invalid argument");
}

static void test_grpc_numbers_match_header(void **state)
{
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(grpc_names) / sizeof(grpc_names[0]); i++)
    assert_string_equal(cm_grpc_code_name(grpc_names[i].status), grpc_names[i].name);
}

static void test_gateway_http_table(void **state)
{
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(gateway) / sizeof(gateway[0]); i++) {
    int code = cm_code_from_grpc(gateway[i].status);

    assert_int_equal(cm_code_to_http(code), gateway[i].http);
    assert_int_equal(cm_code_to_grpc(code), gateway[i].status);
  }
  assert_int_equal(cm_code_to_http(CM_OK), 200);
  assert_int_equal(cm_code_to_http(CM_E_TOOLARGE), 413);
  assert_int_equal(cm_code_to_grpc(CM_E_TOOLARGE), GRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(cm_code_to_http(CM_E_NOMEM), 503);
  assert_int_equal(cm_code_to_grpc(CM_E_CORRUPT), GRPC_STATUS_DATA_LOSS);
  assert_int_equal(cm_code_to_grpc(CM_E_IO), GRPC_STATUS_UNAVAILABLE);
}

static void test_round_trips(void **state)
{
  size_t i;
  int g;

  (void)state;
  /* Each gRPC status maps to a CM code that maps back to it. */
  for (g = 0; g <= 16; g++)
    assert_int_equal(cm_code_to_grpc(cm_code_from_grpc(g)), g);
  assert_int_equal(cm_code_from_grpc(GRPC_STATUS_RESOURCE_EXHAUSTED), CM_E_EXHAUSTED);
  /* Each CM code survives a trip through gRPC up to its gRPC class. */
  for (i = 0; i < NSTABLE; i++) {
    int back = cm_code_from_grpc(cm_code_to_grpc(stable[i].code));

    assert_int_equal(cm_code_to_grpc(back), cm_code_to_grpc(stable[i].code));
  }
}

static void test_unknown_codes(void **state)
{
  (void)state;
  assert_string_equal(cm_code_name(-999), "CM_E_UNKNOWN");
  assert_string_equal(cm_code_name(1), "CM_E_UNKNOWN");
  assert_string_equal(cm_code_text(-999), cm_code_text(CM_E_UNKNOWN));
  assert_int_equal(cm_code_to_grpc(-999), GRPC_STATUS_INTERNAL);
  assert_int_equal(cm_code_to_http(-999), 500);
  assert_int_equal(cm_code_from_grpc(17), CM_E_UNKNOWN);
  assert_int_equal(cm_code_from_grpc(-1), CM_E_UNKNOWN);
  assert_string_equal(cm_grpc_code_name(17), "UNKNOWN");
  assert_string_equal(cm_grpc_code_name(-1), "UNKNOWN");
}

static void test_error_set_and_clear(void **state)
{
  struct cm_error *err = *state;

  assert_int_equal(cm_error_set(err, CM_E_NOTFOUND, "model %s/%d", "credit", 3), CM_E_NOTFOUND);
  assert_int_equal(err->code, CM_E_NOTFOUND);
  assert_string_equal(err->msg, "model credit/3");
  assert_int_equal(cm_error_set(NULL, CM_E_IO, "ignored %d", 1), CM_E_IO);
  assert_int_equal(cm_error_set(err, CM_E_IO, NULL), CM_E_IO);
  assert_string_equal(err->msg, "i/o error");
  cm_error_clear(err);
  assert_int_equal(err->code, CM_OK);
  assert_string_equal(err->msg, "");
  cm_error_clear(NULL);
}

static void test_error_wrap_aliasing(void **state)
{
  struct cm_error *err = *state;

  cm_error_set(err, CM_E_CORRUPT, "bad header");
  cm_error_set(err, err->code, "loading %s: %s", "m.bin", err->msg);
  assert_int_equal(err->code, CM_E_CORRUPT);
  assert_string_equal(err->msg, "loading m.bin: bad header");
}

static void test_error_truncates(void **state)
{
  struct cm_error *err = *state;
  char big[400];

  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  cm_error_set(err, CM_E_INVALID, "%s", big);
  assert_int_equal(strlen(err->msg), CM_ERROR_MSG_SIZE - 1);
  assert_int_equal(err->msg[0], 'x');
}

/* Appends s to buf (of size 400) at *len. */
static void append(char *buf, size_t *len, const char *s)
{
  size_t n = strlen(s);

  assert_true(*len + n < 400);
  memcpy(buf + *len, s, n + 1);
  *len += n;
}

/* True if s is well-formed UTF-8 (structure only; enough for cut checks). */
static int utf8_whole(const char *s)
{
  const unsigned char *p = (const unsigned char *)s;
  size_t need, i;

  while (*p) {
    need = *p < 0x80 ? 1 : *p >= 0xF0 ? 4 : *p >= 0xE0 ? 3 : *p >= 0xC0 ? 2 : 0;
    if (need == 0)
      return 0;
    for (i = 1; i < need; i++) {
      if ((p[i] & 0xC0) != 0x80)
        return 0;
    }
    p += need;
  }
  return 1;
}

static void test_error_truncates_on_utf8_boundary(void **state)
{
  struct cm_error *err = *state;
  char big[400];
  size_t i, k, n = 0;

  /* "x" then 2-byte "é"s: the cut at 159 bytes is on a boundary... */
  big[0] = '\0';
  append(big, &n, "x");
  for (i = 0; i < 150; i++)
    append(big, &n, "\xC3\xA9");
  cm_error_set(err, CM_E_INVALID, "%s", big);
  assert_int_equal(strlen(err->msg), 159);
  /* ...and one byte later it would split an "é", which is dropped. */
  cm_error_set(err, CM_E_INVALID, "y%s", big);
  assert_int_equal(strlen(err->msg), 158);
  assert_true(utf8_whole(err->msg));
  /* 3- and 4-byte sequences, cut at every offset, stay whole. */
  for (i = 0; i < 4; i++) {
    n = 0;
    big[0] = '\0';
    for (k = 0; k < i; k++)
      append(big, &n, "a");
    for (k = 0; k < 50; k++)
      append(big, &n, k % 2 ? "\xE2\x82\xAC" : "\xF0\x9F\x98\x80");
    cm_error_set(err, CM_E_INVALID, "%s", big);
    assert_true(strlen(err->msg) >= 156 && strlen(err->msg) <= 159);
    assert_true(utf8_whole(err->msg));
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_values_are_stable),
      cmocka_unit_test(test_grpc_numbers_match_header),
      cmocka_unit_test(test_gateway_http_table),
      cmocka_unit_test(test_round_trips),
      cmocka_unit_test(test_unknown_codes),
      cmocka_unit_test_setup_teardown(test_error_set_and_clear, setup_err, teardown_err),
      cmocka_unit_test_setup_teardown(test_error_wrap_aliasing, setup_err, teardown_err),
      cmocka_unit_test_setup_teardown(test_error_truncates, setup_err, teardown_err),
      cmocka_unit_test_setup_teardown(test_error_truncates_on_utf8_boundary, setup_err,
                                      teardown_err),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
