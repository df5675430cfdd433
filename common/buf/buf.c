/* buf: capped growable buffer. Capacity doubles from a small start and never
 * goes past max + 1 (room for the NUL), so a hostile peer cannot make it
 * allocate more than the cap. */
#include "buf.h"

#include "err.h"
#include "mem.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define BUF_MIN_CAP 32

void cm_buf_init(struct cm_buf *b, size_t max)
{
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
}

/* Makes room for n more bytes plus the NUL. Leaves b unchanged on failure. */
static int buf_grow(struct cm_buf *b, size_t n)
{
  int rc = 0;
  size_t need;
  size_t limit;
  size_t cap;
  char *p = NULL;

  if (n > b->max - b->len) {
    rc = CM_E_TOOLARGE;
    goto out;
  }
  /* len + n <= max here; the NUL needs one more byte, which only fails
   * to exist when max is SIZE_MAX. */
  if (b->len + n == SIZE_MAX) {
    rc = CM_E_NOMEM;
    goto out;
  }
  need = b->len + n + 1;
  if (need <= b->cap)
    goto out;
  limit = b->max == SIZE_MAX ? SIZE_MAX : b->max + 1;
  cap = b->cap ? b->cap : BUF_MIN_CAP;
  while (cap < need && cap <= SIZE_MAX / 2)
    cap *= 2;
  if (cap < need)
    cap = need;
  if (cap > limit)
    cap = limit;
  p = cm_realloc(b->data, cap);
  if (!p) {
    rc = CM_E_NOMEM;
    goto out;
  }
  if (!b->data)
    p[0] = '\0';
  b->data = p;
  b->cap = cap;
out:
  return rc;
}

int cm_buf_add(struct cm_buf *b, const void *p, size_t n)
{
  int rc;

  rc = buf_grow(b, n);
  if (rc)
    goto out;
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
out:
  return rc;
}

int cm_buf_adds(struct cm_buf *b, const char *s)
{
  return cm_buf_add(b, s, strlen(s));
}

int cm_buf_addc(struct cm_buf *b, char c)
{
  return cm_buf_add(b, &c, 1);
}

int cm_buf_addf(struct cm_buf *b, const char *fmt, ...)
{
  int rc = 0;
  int n;
  va_list ap;

  /* Measure first so the cap is checked before anything is written. */
  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) {
    rc = CM_E_INVALID;
    goto out;
  }
  rc = buf_grow(b, (size_t)n);
  if (rc)
    goto out;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
out:
  return rc;
}

const char *cm_buf_str(const struct cm_buf *b)
{
  return b->data ? b->data : "";
}

void cm_buf_reset(struct cm_buf *b)
{
  b->len = 0;
  if (b->data)
    b->data[0] = '\0';
}

void cm_buf_cleanup(struct cm_buf *b)
{
  cm_free(b->data);
  cm_buf_init(b, b->max);
}

char *cm_buf_take(struct cm_buf *b, size_t *len)
{
  char *p = b->data;
  size_t n = b->len;

  if (!p)
    p = cm_strdup("");
  if (p)
    cm_buf_init(b, b->max);
  else
    n = 0;
  if (len)
    *len = n;
  return p;
}
