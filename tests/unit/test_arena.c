/* Unit tests for common/arena: alignment, limits, big blocks, cleanups in
 * reverse order, use as protobuf-c's allocator, and a failure loop over
 * every allocation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <string.h>

#include "arena.h"
#include "err.h"
#include "mem.h"

/*
 * A hand-written protobuf-c descriptor, equivalent to what protoc-c emits
 * for: message TestMsg { string name = 1; repeated int32 vals = 2;
 * bytes blob = 3; } (proto3). It lets the test unpack real wire bytes
 * without a generated file.
 */
struct test_msg {
  ProtobufCMessage base;
  char *name;
  size_t n_vals;
  int32_t *vals;
  ProtobufCBinaryData blob;
};

static void test_msg_init(ProtobufCMessage *m);

static const ProtobufCFieldDescriptor test_msg_fields[] = {
    {"name", 1, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_STRING, 0, offsetof(struct test_msg, name),
     NULL, &protobuf_c_empty_string, 0, 0, NULL, NULL},
    {"vals", 2, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_INT32, offsetof(struct test_msg, n_vals),
     offsetof(struct test_msg, vals), NULL, NULL, PROTOBUF_C_FIELD_FLAG_PACKED, 0, NULL, NULL},
    {"blob", 3, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_BYTES, 0, offsetof(struct test_msg, blob),
     NULL, NULL, 0, 0, NULL, NULL},
};
static const unsigned test_msg_by_name[] = {2, 0, 1};
static const ProtobufCIntRange test_msg_ranges[] = {{1, 0}, {0, 3}};
static const ProtobufCMessageDescriptor test_msg_descriptor = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "test.TestMsg",
    "TestMsg",
    "TestMsg",
    "test",
    sizeof(struct test_msg),
    3,
    test_msg_fields,
    test_msg_by_name,
    1,
    test_msg_ranges,
    test_msg_init,
    NULL,
    NULL,
    NULL,
};

static void test_msg_init(ProtobufCMessage *m)
{
  static const struct test_msg init = {PROTOBUF_C_MESSAGE_INIT(&test_msg_descriptor),
                                       (char *)protobuf_c_empty_string,
                                       0,
                                       NULL,
                                       {0, NULL}};

  *(struct test_msg *)m = init;
}

/* Packs a sample message with 1000 values and a 10 KiB blob into wire
 * bytes; the caller frees them with cm_free. */
static uint8_t *sample_wire(size_t *len)
{
  static int32_t vals[1000];
  static uint8_t blob[10240];
  struct test_msg m;
  uint8_t *wire;
  size_t i;

  for (i = 0; i < 1000; i++)
    vals[i] = (int32_t)i * 7 - 3000;
  memset(blob, 0xab, sizeof(blob));
  test_msg_init(&m.base);
  m.name = "german-credit";
  m.n_vals = 1000;
  m.vals = vals;
  m.blob.len = sizeof(blob);
  m.blob.data = blob;
  *len = protobuf_c_message_get_packed_size(&m.base);
  wire = cm_malloc(*len);
  assert_non_null(wire);
  assert_int_equal(protobuf_c_message_pack(&m.base, wire), *len);
  return wire;
}

static int setup_arena(void **state)
{
  *state = cm_arena_new(0);
  return *state ? 0 : -1;
}

static int teardown_arena(void **state)
{
  cm_mem_fail_after(-1);
  cm_arena_free(*state);
  return 0;
}

static void test_alignment_and_no_overlap(void **state)
{
  cm_arena *a = *state;
  unsigned char *p[200];
  size_t i, j;

  for (i = 0; i < 200; i++) {
    p[i] = cm_arena_alloc(a, i);
    assert_non_null(p[i]);
    assert_int_equal((uintptr_t)p[i] % 16, 0);
    memset(p[i], (int)i, i);
  }
  for (i = 0; i < 200; i++) {
    for (j = 0; j < i; j++)
      assert_int_equal(p[i][j], (unsigned char)i);
  }
  assert_ptr_not_equal(p[0], p[1]); /* size 0 still gets its own spot */
  assert_false(cm_arena_exceeded(a));
}

static void test_used_counts_rounded_sizes(void **state)
{
  cm_arena *a = *state;

  assert_int_equal(cm_arena_used(a), 0);
  assert_non_null(cm_arena_alloc(a, 1));
  assert_int_equal(cm_arena_used(a), 16);
  assert_non_null(cm_arena_alloc(a, 17));
  assert_int_equal(cm_arena_used(a), 48);
  assert_non_null(cm_arena_alloc(a, 0));
  assert_int_equal(cm_arena_used(a), 64);
}

static void test_limit(void **state)
{
  cm_arena *a = cm_arena_new(100);

  (void)state;
  assert_non_null(a);
  assert_non_null(cm_arena_alloc(a, 64));
  assert_false(cm_arena_exceeded(a));
  assert_null(cm_arena_alloc(a, 64));
  assert_true(cm_arena_exceeded(a));
  assert_int_equal(cm_arena_used(a), 64);
  /* A request that still fits is served; the flag stays set. */
  assert_non_null(cm_arena_alloc(a, 32));
  assert_int_equal(cm_arena_used(a), 96);
  assert_true(cm_arena_exceeded(a));
  assert_null(cm_arena_strdup(a, "this is longer than four bytes"));
  cm_arena_free(a);
}

static void test_huge_and_overflowing_requests(void **state)
{
  cm_arena *a = *state;

  assert_null(cm_arena_alloc(a, SIZE_MAX));
  assert_true(cm_arena_exceeded(a));
  assert_null(cm_arena_alloc(a, SIZE_MAX - 8));
  assert_null(cm_arena_calloc(a, SIZE_MAX / 2, 3));
  assert_null(cm_arena_calloc(a, 3, SIZE_MAX / 2));
  assert_int_equal(cm_arena_used(a), 0);
  assert_non_null(cm_arena_alloc(a, 8));
}

static void test_big_blocks_and_many_chunks(void **state)
{
  cm_arena *a = *state;
  unsigned char *small1 = cm_arena_alloc(a, 100);
  unsigned char *big = cm_arena_alloc(a, 200000);
  unsigned char *small2 = cm_arena_alloc(a, 100);
  size_t i;

  assert_non_null(small1);
  assert_non_null(big);
  assert_non_null(small2);
  /* The big block did not retire the current chunk. */
  assert_ptr_equal(small2, small1 + 112);
  memset(big, 0xee, 200000);
  /* Enough small blocks to need many growing chunks. */
  for (i = 0; i < 5000; i++) {
    unsigned char *p = cm_arena_alloc(a, 200);

    assert_non_null(p);
    memset(p, 0x11, 200);
  }
  assert_int_equal(big[199999], 0xee);
  assert_int_equal(cm_arena_used(a), 112 + 200000 + 112 + 5000 * 208);
}

static void test_calloc_and_strings(void **state)
{
  cm_arena *a = *state;
  unsigned char *z;
  char *s;
  size_t i;

  z = cm_arena_alloc(a, 256);
  memset(z, 0xff, 256); /* dirty memory that calloc must not reuse */
  z = cm_arena_calloc(a, 32, 8);
  assert_non_null(z);
  for (i = 0; i < 256; i++)
    assert_int_equal(z[i], 0);
  assert_string_equal(cm_arena_strdup(a, "model"), "model");
  assert_string_equal(cm_arena_strdup(a, ""), "");
  assert_string_equal(cm_arena_strndup(a, "champion", 5), "champ");
  assert_string_equal(cm_arena_strndup(a, "ab", 10), "ab");
  s = cm_arena_printf(a, "%s/%d", "credit-default", 7);
  assert_string_equal(s, "credit-default/7");
  s = cm_arena_printf(a, "%s", "");
  assert_string_equal(s, "");
}

/* Records the order cleanups run in. */
struct order {
  int seen[8];
  int n;
};

struct order_item {
  struct order *order;
  int id;
};

static void record_cleanup(void *arg)
{
  struct order_item *item = arg;

  item->order->seen[item->order->n++] = item->id;
}

static void test_cleanups_run_in_reverse(void **state)
{
  cm_arena *a = cm_arena_new(16);
  struct order order = {{0}, 0};
  struct order_item items[3] = {{&order, 1}, {&order, 2}, {&order, 3}};
  int i;

  (void)state;
  assert_non_null(a);
  /* Fill the limit: cleanup records must not count against it. */
  assert_non_null(cm_arena_alloc(a, 16));
  for (i = 0; i < 3; i++)
    assert_int_equal(cm_arena_cleanup_add(a, record_cleanup, &items[i]), 0);
  assert_int_equal(order.n, 0);
  cm_arena_free(a);
  assert_int_equal(order.n, 3);
  assert_int_equal(order.seen[0], 3);
  assert_int_equal(order.seen[1], 2);
  assert_int_equal(order.seen[2], 1);
  cm_arena_free(NULL);
}

static void test_cleanup_add_failure_runs_now(void **state)
{
  cm_arena *a = *state;
  struct order order = {{0}, 0};
  struct order_item item = {&order, 9};

  /* A fresh arena has no chunk yet, so the record needs an allocation. */
  cm_mem_fail_after(0);
  assert_int_equal(cm_arena_cleanup_add(a, record_cleanup, &item), CM_E_NOMEM);
  cm_mem_fail_after(-1);
  assert_int_equal(order.n, 1);
  assert_int_equal(order.seen[0], 9);
}

static void test_protobuf_unpack(void **state)
{
  cm_arena *a = *state;
  struct test_msg *m;
  size_t len, i;
  uint8_t *wire = sample_wire(&len);

  m = (struct test_msg *)protobuf_c_message_unpack(&test_msg_descriptor, cm_arena_allocator(a), len,
                                                   wire);
  cm_free(wire);
  assert_non_null(m);
  assert_string_equal(m->name, "german-credit");
  assert_int_equal(m->n_vals, 1000);
  for (i = 0; i < 1000; i++)
    assert_int_equal(m->vals[i], (int32_t)i * 7 - 3000);
  assert_int_equal(m->blob.len, 10240);
  assert_int_equal(m->blob.data[10239], 0xab);
  assert_true(cm_arena_used(a) >= 10240 + 4000);
  /* Freeing through the allocator is a no-op, so this is harmless. */
  protobuf_c_message_free_unpacked(&m->base, cm_arena_allocator(a));
}

static void test_protobuf_unpack_over_limit(void **state)
{
  cm_arena *a = cm_arena_new(4096);
  size_t len;
  uint8_t *wire = sample_wire(&len);

  (void)state;
  assert_non_null(a);
  assert_null(protobuf_c_message_unpack(&test_msg_descriptor, cm_arena_allocator(a), len, wire));
  assert_true(cm_arena_exceeded(a));
  cm_free(wire);
  cm_arena_free(a);
}

/* The failure-loop sequence: one request's worth of arena use. Returns 0
 * when every step succeeded. *made counts objects given to a cleanup,
 * *cleaned the cleanups that ran; they must always match. */
static int request_sequence(const uint8_t *wire, size_t len, int *made, int *cleaned)
{
  static struct order order;
  struct order_item *item;
  cm_arena *a = cm_arena_new(0);
  ProtobufCMessage *m;
  int rc = CM_E_NOMEM;
  int i;

  order.n = 0;
  *made = 0;
  if (!a)
    goto out;
  for (i = 0; i < 3; i++) {
    item = cm_arena_alloc(a, sizeof(*item));
    if (!item)
      goto out;
    item->order = &order;
    item->id = i;
    *made += 1;
    if (cm_arena_cleanup_add(a, record_cleanup, item) != 0)
      goto out;
  }
  if (!cm_arena_printf(a, "%s-%d", "req", 42) || !cm_arena_alloc(a, 100000))
    goto out;
  m = protobuf_c_message_unpack(&test_msg_descriptor, cm_arena_allocator(a), len, wire);
  if (!m)
    goto out;
  rc = 0;
out:
  if (a && rc != 0)
    assert_true(cm_arena_exceeded(a));
  cm_arena_free(a);
  *cleaned = order.n;
  return rc;
}

static void test_allocation_failure_loop(void **state)
{
  size_t len;
  uint8_t *wire = sample_wire(&len);
  int cleaned = 0, made = 0;
  int rc = -1;
  long n;

  (void)state;
  for (n = 0; n < 1000 && rc != 0; n++) {
    long before = cm_mem_count();

    cm_mem_fail_after(n);
    rc = request_sequence(wire, len, &made, &cleaned);
    cm_mem_fail_after(-1);
    /* Every registered object was released exactly once, even when
     * registering it failed (then it ran at once). */
    assert_int_equal(cleaned, made);
    /* Failing allocation n means at most n + 1 attempts were made. */
    if (rc != 0)
      assert_true(cm_mem_count() - before <= n + 1);
  }
  assert_int_equal(rc, 0);
  assert_int_equal(cleaned, 3);
  assert_true(n > 3);
  cm_free(wire);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_alignment_and_no_overlap, setup_arena, teardown_arena),
      cmocka_unit_test_setup_teardown(test_used_counts_rounded_sizes, setup_arena, teardown_arena),
      cmocka_unit_test(test_limit),
      cmocka_unit_test_setup_teardown(test_huge_and_overflowing_requests, setup_arena,
                                      teardown_arena),
      cmocka_unit_test_setup_teardown(test_big_blocks_and_many_chunks, setup_arena, teardown_arena),
      cmocka_unit_test_setup_teardown(test_calloc_and_strings, setup_arena, teardown_arena),
      cmocka_unit_test(test_cleanups_run_in_reverse),
      cmocka_unit_test_setup_teardown(test_cleanup_add_failure_runs_now, setup_arena,
                                      teardown_arena),
      cmocka_unit_test_setup_teardown(test_protobuf_unpack, setup_arena, teardown_arena),
      cmocka_unit_test(test_protobuf_unpack_over_limit),
      cmocka_unit_test(test_allocation_failure_loop),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
