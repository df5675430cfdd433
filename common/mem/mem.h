/* mem: the one allocator every Credito module calls, so tests can swap it
 * or fail the N-th allocation (jansson test_chaos, curl torture).
 * Sits at the bottom of the module graph: it depends on nothing but libc. */
#ifndef CREDITO_MEM_H
#define CREDITO_MEM_H

#include <stddef.h>

/* Functions the allocator forwards to; all three must be set. */
struct cm_mem_hooks {
  void *(*malloc_fn)(size_t);          /* like malloc(3) */
  void *(*realloc_fn)(void *, size_t); /* like realloc(3) */
  void (*free_fn)(void *);             /* like free(3); never given NULL */
};

/* Allocates n bytes. Returns a pointer the caller frees with cm_free, or
 * NULL on failure. n == 0 still returns a unique pointer (never NULL on
 * success), so NULL always means "out of memory". */
void *cm_malloc(size_t n);

/* Allocates n * size zeroed bytes; the caller frees with cm_free. Returns
 * NULL on failure, including when n * size overflows size_t. */
void *cm_calloc(size_t n, size_t size);

/* Resizes p (NULL allocates) to n bytes; n == 0 keeps a 1-byte block rather
 * than freeing. Returns the new block, which the caller frees with cm_free;
 * on failure returns NULL and p is untouched and still owned by the caller. */
void *cm_realloc(void *p, size_t n);

/* Frees a block from any cm_ allocator. NULL does nothing. */
void cm_free(void *p);

/* Copies the NUL-terminated s (borrowed, must not be NULL). The caller frees
 * the copy with cm_free; NULL on failure. */
char *cm_strdup(const char *s);

/* Copies at most n bytes of s (borrowed), stopping at a NUL, and terminates
 * the copy. The caller frees it with cm_free; NULL on failure. */
char *cm_strndup(const char *s, size_t n);

/* Installs allocator hooks (copied; the struct is borrowed). NULL restores
 * libc's malloc/realloc/free. Not thread-safe: call only at program start,
 * before any allocation whose block could outlive the swap, or in tests. */
void cm_mem_set_hooks(const struct cm_mem_hooks *hooks);

/* Test helper: the n-th allocation from now (0-based, counting cm_malloc,
 * cm_calloc, cm_realloc, cm_strdup, cm_strndup) and every later one fails,
 * until cm_mem_fail_after(-1) turns failures off. Thread-safe (atomics). */
void cm_mem_fail_after(long n);

/* Test helper: number of allocation attempts since the program started,
 * failed ones included. Thread-safe. */
long cm_mem_count(void);

#endif
