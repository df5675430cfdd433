/* arena: a per-request memory pool (nginx pools). Everything allocated from
 * it, protobuf-c unpacked messages included, and every registered cleanup
 * (file descriptors, curl handles) goes away with one cm_arena_free. */
#ifndef CREDITO_ARENA_H
#define CREDITO_ARENA_H

#include <stdbool.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

typedef struct cm_arena cm_arena;

/* Creates an arena that may hand out at most limit bytes in total (0: no
 * limit). Allocations count as their size rounded up to 16; the memory
 * taken from the system is at most about twice that plus one chunk. The
 * caller frees the arena with cm_arena_free. NULL on out of memory. */
cm_arena *cm_arena_new(size_t limit);

/* Runs the registered cleanups, newest first, then frees every block the
 * arena handed out and the arena itself. NULL does nothing. */
void cm_arena_free(cm_arena *a);

/* Allocates n bytes, 16-byte aligned and uninitialised, owned by a (never
 * free them yourself). n == 0 gives a valid unique pointer. NULL when the
 * limit would be exceeded or on out of memory; cm_arena_exceeded(a) is then
 * true. */
void *cm_arena_alloc(cm_arena *a, size_t n);

/* Like cm_arena_alloc for n * size zeroed bytes; NULL (and exceeded) also
 * when n * size overflows. */
void *cm_arena_calloc(cm_arena *a, size_t n, size_t size);

/* Copies the NUL-terminated s (borrowed, not NULL) into a. NULL on failure
 * as for cm_arena_alloc. */
char *cm_arena_strdup(cm_arena *a, const char *s);

/* Copies at most n bytes of s (borrowed, not NULL), stopping at a NUL, into
 * a and terminates the copy. NULL on failure as for cm_arena_alloc. */
char *cm_arena_strndup(cm_arena *a, const char *s, size_t n);

/* Formats printf-style into a string owned by a. NULL on failure as for
 * cm_arena_alloc, or if the format cannot be rendered (then exceeded stays
 * as it was). */
char *cm_arena_printf(cm_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Registers fn(arg) to run when a is freed (cleanups run newest first and
 * must not use a). _take semantics: responsibility for arg passes to the
 * arena even on failure. Returns 0, or CM_E_NOMEM when the cleanup could not
 * be recorded, in which case fn(arg) has already run. Cleanup records do not
 * count against the limit, so only out of memory can make this fail. */
int cm_arena_cleanup_add(cm_arena *a, void (*fn)(void *), void *arg);

/* An allocator for protobuf_c_message_unpack that allocates from a; its free
 * is a no-op, so protobuf_c_message_free_unpacked may be skipped. Borrowed
 * from a: valid until cm_arena_free(a). */
ProtobufCAllocator *cm_arena_allocator(cm_arena *a);

/* True once any allocation from a failed (limit or out of memory). Sticky:
 * later successful allocations do not clear it. */
bool cm_arena_exceeded(const cm_arena *a);

/* Bytes handed out so far, each allocation rounded up to 16; this is what
 * the limit is checked against. */
size_t cm_arena_used(const cm_arena *a);

#endif
