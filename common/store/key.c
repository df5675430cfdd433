/* key: the rules every store key obeys (so both backends lay out the same keys and none can
 * escape a directory), and their percent-encoding for SigV4 paths and queries. */
#include "store_int.h"

#include <string.h>

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 if there is none. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
  unsigned int c = p[0];
  size_t len;
  unsigned int cp;

  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf)
    len = 2;
  else if (c >= 0xe0 && c <= 0xef)
    len = 3;
  else if (c >= 0xf0 && c <= 0xf4)
    len = 4;
  else
    return 0;
  cp = c & (0x7fu >> len);
  if (len > n)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF. */
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

/* What is wrong with the characters of s, or NULL. */
static const char *key_chars_problem(const char *s, size_t len)
{
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;

  while (i < len) {
    size_t n;

    if (p[i] < 0x20 || p[i] == 0x7f)
      return "control character";
    n = utf8_seq(p + i, len - i);
    if (n == 0)
      return "not valid UTF-8";
    i += n;
  }
  return NULL;
}

/* What is wrong with the '/'-separated segments of s, or NULL. A prefix may end with '/' or
 * with a partial last segment (even "." or ".."), since it only selects keys. */
static const char *key_segments_problem(const char *s, size_t len, bool is_prefix)
{
  size_t start = 0;

  for (size_t i = 0; i <= len; i++) {
    size_t n;
    const char *seg = s + start;

    if (i < len && s[i] != '/')
      continue;
    n = i - start;
    if (i == len && is_prefix)
      break;
    if (n == 0)
      return i == len ? "ends with '/'" : "empty segment ('//')";
    if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
      return "'.' or '..' segment";
    start = i + 1;
  }
  return NULL;
}

static int key_check(const char *key, size_t max_len, bool is_prefix, struct cm_error *err)
{
  char quoted[72];
  const char *why = NULL;
  size_t len;

  if (!key)
    return cm_error_set(err, CM_E_INVALID, "invalid key: NULL");
  len = strnlen(key, max_len + 1);
  if (len == 0 && !is_prefix)
    why = "empty";
  else if (len > max_len)
    why = "too long";
  else if (key[0] == '/')
    why = "starts with '/'";
  if (!why)
    why = key_chars_problem(key, len);
  if (!why)
    why = key_segments_problem(key, len, is_prefix);
  if (!why)
    return 0;
  store_key_quote(key, quoted, sizeof(quoted));
  if (len > max_len)
    return cm_error_set(err, CM_E_INVALID, "invalid %s \"%s\": longer than %zu bytes",
                        is_prefix ? "prefix" : "key", quoted, max_len);
  return cm_error_set(err, CM_E_INVALID, "invalid %s \"%s\": %s", is_prefix ? "prefix" : "key",
                      quoted, why);
}

int store_key_check(const char *key, size_t max_len, struct cm_error *err)
{
  return key_check(key, max_len, false, err);
}

int store_prefix_check(const char *prefix, size_t max_len, struct cm_error *err)
{
  return key_check(prefix, max_len, true, err);
}

int store_uri_encode(struct cm_buf *out, const char *s, size_t len, bool keep_slash)
{
  static const char hex[] = "0123456789ABCDEF";
  int rc = 0;

  for (size_t i = 0; i < len && rc == 0; i++) {
    unsigned char c = (unsigned char)s[i];
    bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '.' || c == '_' || c == '~' || (c == '/' && keep_slash);
    char esc[3] = {'%', hex[c >> 4], hex[c & 15]};

    rc = keep ? cm_buf_addc(out, (char)c) : cm_buf_add(out, esc, 3);
  }
  return rc;
}

void store_key_quote(const char *key, char *out, size_t cap)
{
  size_t i = 0;
  size_t room = cap - 1;
  size_t len = strnlen(key, room + 1);

  if (len > room)
    room -= 3;
  for (; i < room && key[i]; i++) {
    unsigned char c = (unsigned char)key[i];

    out[i] = (c < 0x20 || c == 0x7f || c == '"') ? '?' : (char)c;
  }
  /* Never end inside a UTF-8 sequence: drop a dangling lead and its continuation bytes. */
  if (len > room) {
    size_t j = i;

    while (j > 0 && ((unsigned char)out[j - 1] & 0xc0) == 0x80)
      j--;
    if (j > 0 && ((unsigned char)out[j - 1] & 0xc0) == 0xc0 &&
        utf8_seq((const unsigned char *)out + j - 1, i - j + 1) != i - j + 1)
      i = j - 1;
    memcpy(out + i, "...", 3);
    i += 3;
  }
  out[i] = '\0';
}
