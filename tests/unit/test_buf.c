/* Unit tests for common/buf: appends, the hard cap, NUL termination,
 * ownership transfer, and a failure loop over every allocation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "mem.h"

static int setup_buf(void **state)
{
  struct cm_buf *b = test_malloc(sizeof(*b));

  cm_buf_init(b, 64);
  *state = b;
  return 0;
}

static int teardown_buf(void **state)
{
  struct cm_buf *b = *state;

  cm_mem_fail_after(-1);
  cm_buf_cleanup(b);
  test_free(b);
  return 0;
}

static void test_init_is_empty(void **state)
{
  struct cm_buf *b = *state;

  assert_null(b->data);
  assert_int_equal(b->len, 0);
  assert_int_equal(b->max, 64);
  assert_string_equal(cm_buf_str(b), "");
}

static void test_add_variants(void **state)
{
  struct cm_buf *b = *state;

  assert_int_equal(cm_buf_add(b, "ab", 2), 0);
  assert_int_equal(cm_buf_addc(b, 'c'), 0);
  assert_int_equal(cm_buf_adds(b, "de"), 0);
  assert_int_equal(cm_buf_addf(b, "-%d-%s", 42, "x"), 0);
  assert_int_equal(cm_buf_add(b, NULL, 0), 0);
  assert_int_equal(b->len, 10);
  assert_string_equal(b->data, "abcde-42-x");
  assert_int_equal(b->data[b->len], '\0');
  assert_true(b->cap >= b->len + 1);
}

static void test_binary_data(void **state)
{
  struct cm_buf *b = *state;
  const char bin[4] = {'a', '\0', 'b', '\0'};

  assert_int_equal(cm_buf_add(b, bin, sizeof(bin)), 0);
  assert_int_equal(b->len, 4);
  assert_memory_equal(b->data, bin, 4);
  assert_int_equal(b->data[4], '\0');
}

static void test_cap_is_exact(void **state)
{
  struct cm_buf *b = *state;
  char block[64];

  memset(block, 'z', sizeof(block));
  assert_int_equal(cm_buf_add(b, block, 60), 0);
  assert_int_equal(cm_buf_add(b, block, 5), CM_E_TOOLARGE);
  assert_int_equal(b->len, 60); /* unchanged on failure */
  assert_int_equal(cm_buf_addf(b, "%s", "12345"), CM_E_TOOLARGE);
  assert_int_equal(b->len, 60);
  assert_int_equal(b->data[60], '\0');
  assert_int_equal(cm_buf_add(b, block, 4), 0);
  assert_int_equal(b->len, 64);
  assert_int_equal(cm_buf_addc(b, 'x'), CM_E_TOOLARGE);
  assert_int_equal(cm_buf_add(b, block, 0), 0);
  /* Growth never allocates beyond the cap plus the NUL. */
  assert_true(b->cap <= b->max + 1);
}

static void test_huge_requests_do_not_overflow(void **state)
{
  struct cm_buf *b = *state;
  struct cm_buf big;
  char c = 'q';

  assert_int_equal(cm_buf_add(b, "abc", 3), 0);
  assert_int_equal(cm_buf_add(b, &c, SIZE_MAX), CM_E_TOOLARGE);
  assert_int_equal(cm_buf_add(b, &c, SIZE_MAX - 1), CM_E_TOOLARGE);
  assert_string_equal(b->data, "abc");
  /* With no practical cap, len + n + 1 would wrap: must fail cleanly. */
  cm_buf_init(&big, SIZE_MAX);
  assert_int_equal(cm_buf_add(&big, "abc", 3), 0);
  assert_int_equal(cm_buf_add(&big, &c, SIZE_MAX - 3), CM_E_NOMEM);
  assert_string_equal(big.data, "abc");
  cm_buf_cleanup(&big);
}

static void test_max_zero(void **state)
{
  struct cm_buf b;

  (void)state;
  cm_buf_init(&b, 0);
  assert_int_equal(cm_buf_addc(&b, 'a'), CM_E_TOOLARGE);
  assert_int_equal(cm_buf_add(&b, "", 0), 0);
  assert_string_equal(cm_buf_str(&b), "");
  cm_buf_cleanup(&b);
}

static void test_growth_keeps_content(void **state)
{
  struct cm_buf b;
  size_t i;

  (void)state;
  cm_buf_init(&b, 100000);
  for (i = 0; i < 10000; i++)
    assert_int_equal(cm_buf_addc(&b, (char)('a' + i % 26)), 0);
  assert_int_equal(b.len, 10000);
  for (i = 0; i < 10000; i++)
    assert_int_equal(b.data[i], 'a' + i % 26);
  cm_buf_cleanup(&b);
}

static void test_reset_keeps_memory(void **state)
{
  struct cm_buf *b = *state;
  char *data;
  size_t cap;

  assert_int_equal(cm_buf_adds(b, "hello"), 0);
  data = b->data;
  cap = b->cap;
  cm_buf_reset(b);
  assert_int_equal(b->len, 0);
  assert_ptr_equal(b->data, data);
  assert_int_equal(b->cap, cap);
  assert_string_equal(b->data, "");
  assert_int_equal(cm_buf_adds(b, "x"), 0);
  assert_string_equal(b->data, "x");
}

static void test_cleanup_reinits(void **state)
{
  struct cm_buf *b = *state;

  assert_int_equal(cm_buf_adds(b, "hello"), 0);
  cm_buf_cleanup(b);
  assert_null(b->data);
  assert_int_equal(b->len, 0);
  assert_int_equal(b->cap, 0);
  assert_int_equal(b->max, 64);
  cm_buf_cleanup(b); /* twice is fine */
}

static void test_take(void **state)
{
  struct cm_buf *b = *state;
  size_t len = 99;
  char *s;

  assert_int_equal(cm_buf_adds(b, "owned"), 0);
  s = cm_buf_take(b, &len);
  assert_string_equal(s, "owned");
  assert_int_equal(len, 5);
  assert_null(b->data);
  assert_int_equal(b->max, 64);
  cm_free(s);
  /* Empty buffer: a fresh "" rather than NULL. */
  s = cm_buf_take(b, &len);
  assert_non_null(s);
  assert_string_equal(s, "");
  assert_int_equal(len, 0);
  cm_free(s);
  s = cm_buf_take(b, NULL);
  cm_free(s);
}

static void test_nomem_leaves_buffer_unchanged(void **state)
{
  struct cm_buf *b = *state;
  char block[40];

  memset(block, 'k', sizeof(block));
  assert_int_equal(cm_buf_adds(b, "abc"), 0);
  cm_mem_fail_after(0);
  assert_int_equal(cm_buf_add(b, block, sizeof(block)), CM_E_NOMEM);
  assert_int_equal(cm_buf_addf(b, "%40s", "k"), CM_E_NOMEM);
  assert_int_equal(b->len, 3);
  assert_string_equal(b->data, "abc");
  cm_mem_fail_after(-1);
  cm_buf_cleanup(b);
  cm_mem_fail_after(0);
  assert_null(cm_buf_take(b, NULL)); /* the "" copy cannot be made */
  cm_mem_fail_after(-1);
}

/* An operation sequence for the failure loop: builds a 6 KiB document and
 * takes it. Returns 0 or the first error; *out gets the taken string. */
static int build_document(char **out, size_t *len)
{
  struct cm_buf b;
  int rc = 0;
  int i;

  *out = NULL;
  cm_buf_init(&b, 1 << 20);
  for (i = 0; i < 200 && rc == 0; i++) {
    rc = cm_buf_addf(&b, "row %03d;", i);
    if (rc == 0)
      rc = cm_buf_adds(&b, "xxxxxxxxxxxxxxxxxxxxx");
  }
  if (rc == 0)
    rc = cm_buf_addc(&b, '\n');
  if (rc == 0) {
    *out = cm_buf_take(&b, len);
    rc = *out ? 0 : CM_E_NOMEM;
  }
  cm_buf_cleanup(&b);
  return rc;
}

static void test_allocation_failure_loop(void **state)
{
  char *doc = NULL;
  size_t len = 0;
  long n;
  int rc = -1;

  (void)state;
  for (n = 0; n < 1000 && rc != 0; n++) {
    cm_mem_fail_after(n);
    rc = build_document(&doc, &len);
    cm_mem_fail_after(-1);
    if (rc != 0) {
      /* Clean failure: the right code, nothing handed out. */
      assert_int_equal(rc, CM_E_NOMEM);
      assert_null(doc);
    }
  }
  assert_int_equal(rc, 0);
  assert_true(n > 3); /* growth really went through several allocations */
  assert_int_equal(len, 200 * 29 + 1);
  assert_int_equal(strlen(doc), len);
  assert_memory_equal(doc, "row 000;xxxxxxxxxxxxxxxxxxxxxrow 001;", 37);
  cm_free(doc);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_init_is_empty, setup_buf, teardown_buf),
      cmocka_unit_test_setup_teardown(test_add_variants, setup_buf, teardown_buf),
      cmocka_unit_test_setup_teardown(test_binary_data, setup_buf, teardown_buf),
      cmocka_unit_test_setup_teardown(test_cap_is_exact, setup_buf, teardown_buf),
      cmocka_unit_test_setup_teardown(test_huge_requests_do_not_overflow, setup_buf, teardown_buf),
      cmocka_unit_test(test_max_zero),
      cmocka_unit_test(test_growth_keeps_content),
      cmocka_unit_test_setup_teardown(test_reset_keeps_memory, setup_buf, teardown_buf),
      cmocka_unit_test_setup_teardown(test_cleanup_reinits, setup_buf, teardown_buf),
      cmocka_unit_test_setup_teardown(test_take, setup_buf, teardown_buf),
      cmocka_unit_test_setup_teardown(test_nomem_leaves_buffer_unchanged, setup_buf, teardown_buf),
      cmocka_unit_test(test_allocation_failure_loop),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
