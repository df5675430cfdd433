/* log: builds each JSON line in a fixed buffer on the stack (no allocation,
 * so logging works when memory is short), then writes it in one write(2).
 * The threshold and fd are atomics; the program name is set at start. */
#include "log.h"

#include "err.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Bytes kept free at the end of every line for the closing fields
 * (log_error, truncated, "}\n"); values must leave this alone. */
#define LOG_TAIL   160
#define LOG_BUDGET (CM_LOG_LINE_MAX - LOG_TAIL)
/* U+2026 HORIZONTAL ELLIPSIS, the mark of a cut string. */
#define LOG_ELLIPSIS     "\xE2\x80\xA6"
#define LOG_ELLIPSIS_LEN 3

static char log_prog[64] = "credito";
static atomic_int log_threshold = CM_LOG_INFO;
static atomic_int log_fd = 2;
/* Serialises writes: one line is one write(2), but a pipe only promises
 * atomicity up to PIPE_BUF and lines may be longer. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const log_level_names[] = {"debug", "info", "warn", "error"};

/* A line being built. */
struct log_line {
  char buf[CM_LOG_LINE_MAX];
  size_t len;        /* bytes used in buf */
  bool truncated;    /* a value was cut or a field dropped */
  const char *error; /* why the fields string was not fully used, or NULL */
};

/* Conversions allowed in the fields string. */
enum log_conv {
  LOG_CONV_S,
  LOG_CONV_D,
  LOG_CONV_LD,
  LOG_CONV_LLD,
  LOG_CONV_U,
  LOG_CONV_LU,
  LOG_CONV_LLU,
  LOG_CONV_ZU,
  LOG_CONV_F,
  LOG_CONV_G,
  LOG_CONV_B,
};

static const struct {
  const char *spec;
  enum log_conv conv;
} log_convs[] = {
    {"s", LOG_CONV_S}, {"d", LOG_CONV_D},   {"ld", LOG_CONV_LD},   {"lld", LOG_CONV_LLD},
    {"u", LOG_CONV_U}, {"lu", LOG_CONV_LU}, {"llu", LOG_CONV_LLU}, {"zu", LOG_CONV_ZU},
    {"f", LOG_CONV_F}, {"g", LOG_CONV_G},   {"b", LOG_CONV_B},
};

/* One parsed key=%conv token. */
struct log_token {
  const char *key;
  size_t keylen;
  enum log_conv conv;
};

void cm_log_init(const char *program, enum cm_log_level level)
{
  if (program)
    snprintf(log_prog, sizeof(log_prog), "%s", program);
  atomic_store(&log_threshold, (int)level);
}

int cm_log_level_parse(const char *s, enum cm_log_level *out)
{
  int rc = CM_E_INVALID;
  size_t i;

  if (!s)
    goto out;
  for (i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
    if (strcasecmp(s, log_level_names[i]) == 0) {
      *out = (enum cm_log_level)i;
      rc = 0;
    }
  }
  if (strcasecmp(s, "warning") == 0) {
    *out = CM_LOG_WARN;
    rc = 0;
  } else if (strcasecmp(s, "off") == 0) {
    *out = CM_LOG_OFF;
    rc = 0;
  }
out:
  return rc;
}

void cm_log_set_fd(int fd)
{
  atomic_store(&log_fd, fd);
}

bool cm_log_enabled(enum cm_log_level l)
{
  return (int)l >= atomic_load(&log_threshold) && (int)l >= CM_LOG_DEBUG && l < CM_LOG_OFF;
}

/* Bytes a value may still use. */
static size_t log_room(const struct log_line *l)
{
  return l->len < LOG_BUDGET ? LOG_BUDGET - l->len : 0;
}

/* Appends n bytes if they fit in the budget; false (nothing written) if not. */
static bool log_put(struct log_line *l, const char *s, size_t n)
{
  bool ok = n <= log_room(l);

  if (ok) {
    memcpy(l->buf + l->len, s, n);
    l->len += n;
  }
  return ok;
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing past U+10FFFF), or 0 if s does not start one. The
 * string's NUL stops any sequence, as it is never a continuation byte. */
static size_t log_utf8_len(const unsigned char *s)
{
  unsigned char c = s[0];
  unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */
  size_t n = 0;
  size_t i;

  if (c >= 0xC2 && c <= 0xDF)
    n = 2;
  else if (c >= 0xE0 && c <= 0xEF)
    n = 3;
  else if (c >= 0xF0 && c <= 0xF4)
    n = 4;
  if (c == 0xE0)
    lo = 0xA0;
  else if (c == 0xED)
    hi = 0x9F;
  else if (c == 0xF0)
    lo = 0x90;
  else if (c == 0xF4)
    hi = 0x8F;
  if (n && (s[1] < lo || s[1] > hi))
    n = 0;
  for (i = 2; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80)
      n = 0;
  }
  return n;
}

/* Writes the JSON form of the character at s into out (at most 6 bytes) and
 * returns its length; *used gets how many input bytes it stands for. */
static size_t log_escape_unit(const unsigned char *s, char *out, size_t *used)
{
  /* The two-character escapes of RFC 8259, byte and letter. */
  static const char short_from[] = "\"\\\n\r\t\b\f";
  static const char short_to[] = "\"\\nrtbf";
  static const char hex[] = "0123456789abcdef";
  const char *hit = memchr(short_from, s[0], sizeof(short_from) - 1);
  size_t seq = s[0] >= 0x80 ? log_utf8_len(s) : 0;
  size_t n = 1;

  *used = 1;
  if (hit) {
    out[0] = '\\';
    out[1] = short_to[hit - short_from];
    n = 2;
  } else if (s[0] < 0x20) {
    memcpy(out, "\\u00", 4);
    out[4] = hex[s[0] >> 4];
    out[5] = hex[s[0] & 0xF];
    n = 6;
  } else if (s[0] < 0x80) {
    out[0] = (char)s[0];
  } else if (seq > 0) {
    memcpy(out, s, seq);
    *used = n = seq;
  } else {
    /* Not UTF-8: one byte becomes one U+FFFD. */
    memcpy(out, "\\ufffd", 6);
    n = 6;
  }
  return n;
}

/* Appends s as a JSON string (null for NULL). A string that does not fit is
 * cut at a character boundary and ends with the ellipsis. False (nothing
 * written) only when not even "…" fits. */
static bool log_put_string(struct log_line *l, const char *s)
{
  const unsigned char *p = (const unsigned char *)s;
  char unit[6];
  size_t n, used;
  bool ok = false;

  if (!s) {
    ok = log_put(l, "null", 4);
    goto out;
  }
  if (log_room(l) < 2 + LOG_ELLIPSIS_LEN)
    goto out;
  l->buf[l->len++] = '"';
  /* Invariant: room for the ellipsis and the closing quote remains. */
  while (*p) {
    n = log_escape_unit(p, unit, &used);
    if (n + LOG_ELLIPSIS_LEN + 1 > log_room(l)) {
      log_put(l, LOG_ELLIPSIS, LOG_ELLIPSIS_LEN);
      l->truncated = true;
      break;
    }
    log_put(l, unit, n);
    p += used;
  }
  l->buf[l->len++] = '"';
  ok = true;
out:
  return ok;
}

/* Reads the next key=%conv token from *pp. Returns 0 with *t filled, 1 at
 * the end of the string, -1 on a malformed token. */
static int log_token_next(const char **pp, struct log_token *t)
{
  const char *p = *pp;
  size_t i, n;
  int rc = -1;

  while (*p == ' ')
    p++;
  if (*p == '\0') {
    rc = 1;
    goto out;
  }
  t->key = p;
  while (*p && (strchr("_.-", *p) || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
                (*p >= 'A' && *p <= 'Z')))
    p++;
  t->keylen = (size_t)(p - t->key);
  if (t->keylen == 0 || p[0] != '=' || p[1] != '%')
    goto out;
  p += 2;
  for (i = 0; i < sizeof(log_convs) / sizeof(log_convs[0]); i++) {
    n = strlen(log_convs[i].spec);
    if (strncmp(p, log_convs[i].spec, n) == 0 && (p[n] == ' ' || p[n] == '\0')) {
      t->conv = log_convs[i].conv;
      *pp = p + n;
      rc = 0;
      break;
    }
  }
out:
  return rc;
}

/* Formats a double as a JSON number: the shortest %.Ng that reads back
 * exactly for %g, printf's %f for %f; null when not finite. */
static void log_format_double(char *out, size_t size, double d, enum log_conv conv)
{
  int prec;

  if (!isfinite(d)) {
    snprintf(out, size, "null");
  } else if (conv == LOG_CONV_F) {
    snprintf(out, size, "%f", d);
  } else {
    for (prec = 15; prec <= 17; prec++) {
      snprintf(out, size, "%.*g", prec, d);
      if (strtod(out, NULL) == d)
        break;
    }
  }
}

/* Formats the next argument for a number or bool conversion into num. */
static void log_format_scalar(char *num, size_t size, enum log_conv conv, va_list *ap)
{
  switch (conv) {
  case LOG_CONV_D:
    snprintf(num, size, "%d", va_arg(*ap, int));
    break;
  case LOG_CONV_LD:
    snprintf(num, size, "%ld", va_arg(*ap, long));
    break;
  case LOG_CONV_LLD:
    snprintf(num, size, "%lld", va_arg(*ap, long long));
    break;
  case LOG_CONV_U:
    snprintf(num, size, "%u", va_arg(*ap, unsigned));
    break;
  case LOG_CONV_LU:
    snprintf(num, size, "%lu", va_arg(*ap, unsigned long));
    break;
  case LOG_CONV_LLU:
    snprintf(num, size, "%llu", va_arg(*ap, unsigned long long));
    break;
  case LOG_CONV_ZU:
    snprintf(num, size, "%zu", va_arg(*ap, size_t));
    break;
  case LOG_CONV_F:
  case LOG_CONV_G:
    log_format_double(num, size, va_arg(*ap, double), conv);
    break;
  case LOG_CONV_S: /* written by log_put_string, never formatted here */
    num[0] = '\0';
    break;
  case LOG_CONV_B:
    snprintf(num, size, "%s", va_arg(*ap, int) ? "true" : "false");
    break;
  }
}

/* Fetches the argument for conv and writes its JSON value. */
static bool log_put_value(struct log_line *l, enum log_conv conv, va_list *ap)
{
  char num[400]; /* fits %f of DBL_MAX (309 digits) */
  bool ok;

  if (conv == LOG_CONV_S) {
    ok = log_put_string(l, va_arg(*ap, const char *));
  } else {
    log_format_scalar(num, sizeof(num), conv, ap);
    ok = log_put(l, num, strlen(num));
  }
  return ok;
}

/* Appends one ,"key":value pair, or nothing if it does not fit. */
static bool log_put_field(struct log_line *l, const struct log_token *t, va_list *ap)
{
  size_t mark = l->len;
  bool ok;

  ok = log_put(l, ",\"", 2) && log_put(l, t->key, t->keylen) && log_put(l, "\":", 2) &&
       log_put_value(l, t->conv, ap);
  if (!ok)
    l->len = mark;
  return ok;
}

/* Appends the fields described by fields, stopping at the first malformed
 * token (flagged in l->error) or the first field that does not fit. */
static void log_put_fields(struct log_line *l, const char *fields, va_list *ap)
{
  const char *p = fields;
  struct log_token t;
  int rc;

  while (p) {
    rc = log_token_next(&p, &t);
    if (rc == 1)
      break;
    if (rc < 0) {
      l->error = "malformed fields string; later fields skipped";
      break;
    }
    if (!log_put_field(l, &t, ap)) {
      l->truncated = true;
      break;
    }
  }
}

/* Starts the line with ts, level, prog and msg. */
static void log_put_head(struct log_line *l, enum cm_log_level level, const char *msg)
{
  char head[96];
  struct timespec ts;
  struct tm tm;
  size_t n;

  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  n = strftime(head, sizeof(head), "{\"ts\":\"%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(head + n, sizeof(head) - n,
           ".%03ldZ\",\"level\":\"%s\",\"prog\":", ts.tv_nsec / 1000000L, log_level_names[level]);
  /* The head is far below the budget, so these cannot fail. */
  log_put(l, head, strlen(head));
  log_put_string(l, log_prog);
  log_put(l, ",\"msg\":", 7);
  log_put_string(l, msg);
}

/* Closes the line in the space kept free by LOG_TAIL. */
static void log_put_tail(struct log_line *l)
{
  size_t left = sizeof(l->buf) - l->len;
  int n;

  n = snprintf(l->buf + l->len, left, "%s%s%s%s}\n", l->error ? ",\"log_error\":\"" : "",
               l->error ? l->error : "", l->error ? "\"" : "",
               l->truncated ? ",\"truncated\":true" : "");
  if (n > 0 && (size_t)n < left)
    l->len += (size_t)n;
}

/* Writes the whole line, retrying on EINTR and short writes. Errors are
 * dropped: there is nowhere left to report them. */
static void log_write(const char *buf, size_t len)
{
  int fd = atomic_load(&log_fd);
  ssize_t w;

  pthread_mutex_lock(&log_lock);
  while (len > 0) {
    w = write(fd, buf, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break;
    buf += w;
    len -= (size_t)w;
  }
  pthread_mutex_unlock(&log_lock);
}

void cm_log(enum cm_log_level level, const char *msg, const char *fields, ...)
{
  struct log_line l;
  va_list ap;
  int saved_errno = errno; /* callers often log, then look at errno */

  if (!cm_log_enabled(level))
    goto out;
  l.len = 0;
  l.truncated = false;
  l.error = NULL;
  log_put_head(&l, level, msg);
  va_start(ap, fields);
  log_put_fields(&l, fields, &ap);
  va_end(ap);
  log_put_tail(&l);
  log_write(l.buf, l.len);
out:
  errno = saved_errno;
}
