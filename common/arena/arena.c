/* arena: chunked bump allocator. Small allocations come from the newest
 * chunk (4 KiB first, doubling up to 64 KiB); big ones get a chunk of their
 * own so they do not waste a regular chunk's tail. */
#include "arena.h"

#include "err.h"
#include "mem.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define ARENA_ALIGN       16
#define ARENA_FIRST_CHUNK 4096
#define ARENA_MAX_CHUNK   65536

/* A block of memory that allocations are carved from. */
struct arena_chunk {
  struct arena_chunk *next; /* older chunk */
  unsigned char *pos;       /* next free byte, ARENA_ALIGN-aligned */
  unsigned char *end;       /* one past the chunk's last byte */
};

/* A function to run at cm_arena_free. */
struct arena_cleanup {
  struct arena_cleanup *next; /* registered earlier */
  void (*fn)(void *);
  void *arg;
};

struct cm_arena {
  struct arena_chunk *chunks;     /* regular chunks, newest (current) first */
  struct arena_chunk *big;        /* one-allocation chunks */
  struct arena_cleanup *cleanups; /* newest first, the order they run in */
  size_t limit;                   /* max of used; 0 means none */
  size_t used;                    /* bytes handed out, rounded */
  size_t next_size;               /* size of the next regular chunk */
  bool exceeded;                  /* an allocation has failed */
  ProtobufCAllocator pb;          /* allocator_data points back here */
};

/* Largest request we round and wrap in a chunk without overflowing. */
#define ARENA_MAX_REQUEST (SIZE_MAX - sizeof(struct arena_chunk) - 4 * ARENA_ALIGN)

/* Allocates a chunk with room for size bytes at an aligned start. */
static struct arena_chunk *arena_chunk_new(size_t size)
{
  struct arena_chunk *c = NULL;
  uintptr_t start;

  c = cm_malloc(sizeof(*c) + ARENA_ALIGN - 1 + size);
  if (!c)
    goto out;
  /* Align ourselves rather than trust the hook's malloc alignment. */
  start = ((uintptr_t)(c + 1) + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1);
  c->pos = (unsigned char *)start;
  c->end = c->pos + size;
  c->next = NULL;
out:
  return c;
}

/* Frees a list of chunks. */
static void arena_chunks_free(struct arena_chunk *c)
{
  struct arena_chunk *next;

  while (c) {
    next = c->next;
    cm_free(c);
    c = next;
  }
}

/* Adds a chunk that can hold size (already rounded) bytes: a chunk of its
 * own for a big request, else the next regular chunk, which becomes current.
 * NULL on out of memory. */
static struct arena_chunk *arena_chunk_add(cm_arena *a, size_t size)
{
  struct arena_chunk *c = NULL;

  if (size > a->next_size / 4) {
    c = arena_chunk_new(size);
    if (!c)
      goto out;
    c->next = a->big;
    a->big = c;
  } else {
    c = arena_chunk_new(a->next_size);
    if (!c)
      goto out;
    c->next = a->chunks;
    a->chunks = c;
    if (a->next_size < ARENA_MAX_CHUNK)
      a->next_size *= 2;
  }
out:
  return c;
}

/* Carves size (already rounded) bytes out of a, adding a chunk if needed. */
static void *arena_carve(cm_arena *a, size_t size)
{
  struct arena_chunk *c = a->chunks;
  void *p = NULL;

  if (!c || (size_t)(c->end - c->pos) < size)
    c = arena_chunk_add(a, size);
  if (c) {
    p = c->pos;
    c->pos += size;
  }
  return p;
}

/* Allocates n bytes; counted allocations are checked against the limit. */
static void *arena_take(cm_arena *a, size_t n, bool counted)
{
  void *p = NULL;
  size_t size;

  if (n > ARENA_MAX_REQUEST)
    goto out;
  size = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
  if (size == 0)
    size = ARENA_ALIGN;
  if (counted && a->limit && size > a->limit - a->used)
    goto out;
  p = arena_carve(a, size);
  if (p && counted)
    a->used += size;
out:
  if (!p)
    a->exceeded = true;
  return p;
}

static void *arena_pb_alloc(void *data, size_t size)
{
  return cm_arena_alloc(data, size);
}

static void arena_pb_free(void *data, void *p)
{
  /* Memory goes back when the arena dies. */
  (void)data;
  (void)p;
}

cm_arena *cm_arena_new(size_t limit)
{
  cm_arena *a = cm_calloc(1, sizeof(*a));

  if (a) {
    a->limit = limit;
    a->next_size = ARENA_FIRST_CHUNK;
    a->pb.alloc = arena_pb_alloc;
    a->pb.free = arena_pb_free;
    a->pb.allocator_data = a;
  }
  return a;
}

void cm_arena_free(cm_arena *a)
{
  struct arena_cleanup *cl;

  if (!a)
    goto out;
  /* Cleanup records live in the chunks: walk them before freeing those. */
  for (cl = a->cleanups; cl; cl = cl->next)
    cl->fn(cl->arg);
  arena_chunks_free(a->chunks);
  arena_chunks_free(a->big);
  cm_free(a);
out:
  return;
}

void *cm_arena_alloc(cm_arena *a, size_t n)
{
  return arena_take(a, n, true);
}

void *cm_arena_calloc(cm_arena *a, size_t n, size_t size)
{
  void *p = NULL;

  if (size && n > SIZE_MAX / size) {
    a->exceeded = true;
    goto out;
  }
  p = arena_take(a, n * size, true);
  if (p)
    memset(p, 0, n * size);
out:
  return p;
}

char *cm_arena_strndup(cm_arena *a, const char *s, size_t n)
{
  size_t len = strnlen(s, n);
  char *p = arena_take(a, len + 1, true);

  if (p) {
    memcpy(p, s, len);
    p[len] = '\0';
  }
  return p;
}

char *cm_arena_strdup(cm_arena *a, const char *s)
{
  return cm_arena_strndup(a, s, SIZE_MAX);
}

char *cm_arena_printf(cm_arena *a, const char *fmt, ...)
{
  char *p = NULL;
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    goto out;
  p = arena_take(a, (size_t)n + 1, true);
  if (!p)
    goto out;
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
out:
  return p;
}

int cm_arena_cleanup_add(cm_arena *a, void (*fn)(void *), void *arg)
{
  int rc = 0;
  struct arena_cleanup *cl = arena_take(a, sizeof(*cl), false);

  if (!cl) {
    /* _take: the caller gave arg away, so release it now. */
    fn(arg);
    rc = CM_E_NOMEM;
    goto out;
  }
  cl->fn = fn;
  cl->arg = arg;
  cl->next = a->cleanups;
  a->cleanups = cl;
out:
  return rc;
}

ProtobufCAllocator *cm_arena_allocator(cm_arena *a)
{
  return &a->pb;
}

bool cm_arena_exceeded(const cm_arena *a)
{
  return a->exceeded;
}

size_t cm_arena_used(const cm_arena *a)
{
  return a->used;
}
