/* mem: forwards allocations to swappable hooks (libc by default) and can
 * inject failures for tests. The hooks are start-up configuration; the
 * failure counter is atomic so multi-threaded tests stay well defined. */
#include "mem.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct cm_mem_hooks hooks = {malloc, realloc, free};

/* Count of allocation attempts, and the attempt index from which all fail
 * (-1: never). */
static atomic_long alloc_count;
static atomic_long fail_from = -1;

/* Counts one attempt and says whether it must fail. */
static int mem_should_fail(void)
{
  long idx = atomic_fetch_add(&alloc_count, 1);
  long from = atomic_load(&fail_from);

  return from >= 0 && idx >= from;
}

void *cm_malloc(size_t n)
{
  void *p = NULL;

  /* Zero-byte requests get a real block so NULL only ever means OOM. */
  if (!mem_should_fail())
    p = hooks.malloc_fn(n ? n : 1);
  return p;
}

void *cm_calloc(size_t n, size_t size)
{
  void *p = NULL;

  if (size && n > SIZE_MAX / size) {
    /* Still count the attempt so fail_after indices stay predictable. */
    (void)mem_should_fail();
    goto out;
  }
  p = cm_malloc(n * size);
  if (p)
    memset(p, 0, n * size);
out:
  return p;
}

void *cm_realloc(void *p, size_t n)
{
  void *q = NULL;

  /* realloc(p, 0) may free p and return NULL; keep a block instead. */
  if (!mem_should_fail())
    q = hooks.realloc_fn(p, n ? n : 1);
  return q;
}

void cm_free(void *p)
{
  if (p)
    hooks.free_fn(p);
}

char *cm_strndup(const char *s, size_t n)
{
  size_t len = strnlen(s, n);
  char *copy = cm_malloc(len + 1);

  if (copy) {
    memcpy(copy, s, len);
    copy[len] = '\0';
  }
  return copy;
}

char *cm_strdup(const char *s)
{
  return cm_strndup(s, SIZE_MAX);
}

void cm_mem_set_hooks(const struct cm_mem_hooks *h)
{
  if (h) {
    hooks = *h;
  } else {
    hooks.malloc_fn = malloc;
    hooks.realloc_fn = realloc;
    hooks.free_fn = free;
  }
}

void cm_mem_fail_after(long n)
{
  if (n < 0)
    atomic_store(&fail_from, -1);
  else
    atomic_store(&fail_from, atomic_load(&alloc_count) + n);
}

long cm_mem_count(void)
{
  return atomic_load(&alloc_count);
}
