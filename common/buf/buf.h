/* buf: a growable byte buffer with a hard cap (curl's dynbuf), for anything
 * that accumulates untrusted input: HTTP bodies, downloads, payloads, rows.
 * A value type on the caller's storage: cm_buf_init / cm_buf_cleanup. */
#ifndef CREDITO_BUF_H
#define CREDITO_BUF_H

#include <stddef.h>

/* Fields are readable; change them only through the functions below. */
struct cm_buf {
  char *data; /* NULL until the first allocation; then data[len] == '\0' */
  size_t len; /* bytes held, terminating NUL not counted */
  size_t cap; /* bytes allocated for data, NUL included */
  size_t max; /* largest len allowed; adds beyond it fail with CM_E_TOOLARGE */
};

/* Makes b an empty buffer (no allocation) that may hold up to max bytes. */
void cm_buf_init(struct cm_buf *b, size_t max);

/* Appends n bytes from p (borrowed; may be NULL when n == 0). Returns 0,
 * CM_E_TOOLARGE when len + n would exceed max, or CM_E_NOMEM. On failure b
 * is unchanged. */
int cm_buf_add(struct cm_buf *b, const void *p, size_t n);

/* Appends the NUL-terminated s (borrowed). Same results as cm_buf_add. */
int cm_buf_adds(struct cm_buf *b, const char *s);

/* Appends one byte. Same results as cm_buf_add. */
int cm_buf_addc(struct cm_buf *b, char c);

/* Appends printf-formatted text. Same results as cm_buf_add, plus
 * CM_E_INVALID if the format cannot be rendered. On failure b is unchanged. */
int cm_buf_addf(struct cm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The contents as a C string (borrowed from b; valid until the next change
 * to b): "" when nothing was ever allocated. Never NULL. */
const char *cm_buf_str(const struct cm_buf *b);

/* Empties b but keeps its memory for reuse. */
void cm_buf_reset(struct cm_buf *b);

/* Frees b's memory and leaves it empty with the same max; b can be reused. */
void cm_buf_cleanup(struct cm_buf *b);

/* Hands the contents to the caller, who frees them with cm_free; *len (if
 * len is not NULL) gets their length. The result is NUL-terminated and is
 * "" (a fresh allocation) for an empty buffer. b is left empty with the
 * same max. Returns NULL only on out of memory, with b unchanged. */
char *cm_buf_take(struct cm_buf *b, size_t *len);

#endif
