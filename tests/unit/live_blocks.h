/* live_blocks: cm_mem hooks that count the blocks alive, for the allocation-failure tests.
 * With jansson routed through cm_mem too (json_set_alloc_funcs(cm_malloc, cm_free)), a leak shows
 * in the plain build as well as under ASan. Install with cm_mem_set_hooks(&live_hooks); the tests
 * are single-threaded. Header-only: each test includes it once. */
#ifndef CREDITO_TEST_LIVE_BLOCKS_H
#define CREDITO_TEST_LIVE_BLOCKS_H

#include <stdlib.h>

#include "mem.h"

static long live_blocks;

static void *live_malloc(size_t n)
{
  void *p = malloc(n ? n : 1);

  if (p)
    live_blocks++;
  return p;
}

static void *live_realloc(void *p, size_t n)
{
  void *q = realloc(p, n ? n : 1);

  if (q && !p)
    live_blocks++;
  return q;
}

static void live_free(void *p)
{
  live_blocks--;
  free(p);
}

static const struct cm_mem_hooks live_hooks = {live_malloc, live_realloc, live_free};

#endif
