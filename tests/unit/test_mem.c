/* Unit tests for common/mem: allocator forwarding, hooks, overflow checks
 * and the failure injection the other modules' chaos tests rely on. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* Counting hooks installed by setup_hooks; the fixture lives in *state. */
struct hook_counts {
  long mallocs;
  long reallocs;
  long frees;
};

static struct hook_counts *counts; /* what the hooks below update */

static void *count_malloc(size_t n)
{
  counts->mallocs++;
  return malloc(n);
}

static void *count_realloc(void *p, size_t n)
{
  counts->reallocs++;
  return realloc(p, n);
}

static void count_free(void *p)
{
  counts->frees++;
  free(p);
}

static int setup_hooks(void **state)
{
  static const struct cm_mem_hooks hooks = {count_malloc, count_realloc, count_free};

  counts = calloc(1, sizeof(*counts));
  if (!counts)
    return -1;
  cm_mem_set_hooks(&hooks);
  *state = counts;
  return 0;
}

static int teardown_hooks(void **state)
{
  cm_mem_set_hooks(NULL);
  cm_mem_fail_after(-1);
  free(*state);
  counts = NULL;
  return 0;
}

static int teardown_fail(void **state)
{
  (void)state;
  cm_mem_fail_after(-1);
  return 0;
}

static void test_malloc_zero_is_unique(void **state)
{
  void *a = cm_malloc(0);
  void *b = cm_malloc(0);

  (void)state;
  assert_non_null(a);
  assert_non_null(b);
  assert_ptr_not_equal(a, b);
  cm_free(a);
  cm_free(b);
  cm_free(NULL);
}

static void test_calloc_zeroes_and_checks_overflow(void **state)
{
  unsigned char *p = cm_calloc(64, 4);
  size_t i;

  (void)state;
  assert_non_null(p);
  for (i = 0; i < 256; i++)
    assert_int_equal(p[i], 0);
  cm_free(p);
  assert_null(cm_calloc(SIZE_MAX / 2, 3));
  assert_null(cm_calloc(SIZE_MAX, SIZE_MAX));
  p = cm_calloc(0, 16);
  assert_non_null(p);
  cm_free(p);
}

static void test_realloc_keeps_a_block(void **state)
{
  char *p = cm_realloc(NULL, 4);
  char *q;

  (void)state;
  assert_non_null(p);
  memcpy(p, "abc", 4);
  q = cm_realloc(p, 4096);
  assert_non_null(q);
  assert_string_equal(q, "abc");
  p = cm_realloc(q, 0);
  assert_non_null(p); /* size 0 keeps a block instead of freeing */
  cm_free(p);
}

static void test_strdup_strndup(void **state)
{
  char *a = cm_strdup("hello");
  char *b = cm_strndup("hello", 3);
  char *c = cm_strndup("hi", 100);
  char *d = cm_strdup("");

  (void)state;
  assert_string_equal(a, "hello");
  assert_string_equal(b, "hel");
  assert_string_equal(c, "hi");
  assert_string_equal(d, "");
  cm_free(a);
  cm_free(b);
  cm_free(c);
  cm_free(d);
}

static void test_fail_after(void **state)
{
  void *p[3];
  long before;

  (void)state;
  cm_mem_fail_after(2);
  before = cm_mem_count();
  p[0] = cm_malloc(8);
  p[1] = cm_strdup("x");
  p[2] = cm_malloc(8);
  assert_non_null(p[0]);
  assert_non_null(p[1]);
  assert_null(p[2]);
  /* Every later attempt fails too, whatever the allocator function. */
  assert_null(cm_calloc(1, 1));
  assert_null(cm_strndup("abc", 2));
  assert_null(cm_realloc(p[0], 64));
  assert_int_equal(cm_mem_count() - before, 6);
  cm_mem_fail_after(-1);
  p[2] = cm_malloc(8);
  assert_non_null(p[2]);
  cm_free(p[0]);
  cm_free(p[1]);
  cm_free(p[2]);
}

static void test_fail_after_zero_and_realloc_keeps_block(void **state)
{
  char *p = cm_strdup("keep");
  char *q;

  (void)state;
  assert_non_null(p);
  cm_mem_fail_after(0);
  q = cm_realloc(p, 1 << 20);
  assert_null(q);
  assert_string_equal(p, "keep"); /* untouched and still ours */
  cm_mem_fail_after(-1);
  cm_free(p);
}

static void test_calloc_overflow_counts_attempt(void **state)
{
  long before = cm_mem_count();

  (void)state;
  assert_null(cm_calloc(SIZE_MAX, 2));
  assert_int_equal(cm_mem_count() - before, 1);
}

static void test_hooks_are_used_and_restored(void **state)
{
  struct hook_counts *c = *state;
  char *p = cm_malloc(10);
  char *q;

  assert_non_null(p);
  q = cm_realloc(p, 20);
  assert_non_null(q);
  cm_free(q);
  cm_free(NULL); /* must not reach the hook */
  p = cm_calloc(2, 2);
  cm_free(p);
  assert_int_equal(c->mallocs, 2);
  assert_int_equal(c->reallocs, 1);
  assert_int_equal(c->frees, 2);
  cm_mem_set_hooks(NULL);
  p = cm_malloc(1);
  cm_free(p);
  assert_int_equal(c->mallocs, 2);
  assert_int_equal(c->frees, 2);
}

#define THREADS    4
#define PER_THREAD 2000

static void *alloc_worker(void *arg)
{
  int i;
  void *p;

  (void)arg;
  for (i = 0; i < PER_THREAD; i++) {
    p = cm_malloc(16);
    cm_free(p);
  }
  return NULL;
}

static void test_count_is_atomic(void **state)
{
  pthread_t t[THREADS];
  long before = cm_mem_count();
  int i;

  (void)state;
  for (i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, alloc_worker, NULL), 0);
  for (i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  assert_int_equal(cm_mem_count() - before, THREADS * PER_THREAD);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_malloc_zero_is_unique),
      cmocka_unit_test(test_calloc_zeroes_and_checks_overflow),
      cmocka_unit_test(test_realloc_keeps_a_block),
      cmocka_unit_test(test_strdup_strndup),
      cmocka_unit_test_teardown(test_fail_after, teardown_fail),
      cmocka_unit_test_teardown(test_fail_after_zero_and_realloc_keeps_block, teardown_fail),
      cmocka_unit_test(test_calloc_overflow_counts_attempt),
      cmocka_unit_test_setup_teardown(test_hooks_are_used_and_restored, setup_hooks,
                                      teardown_hooks),
      cmocka_unit_test(test_count_is_atomic),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
