/* apikey: named SHA-256 hashes of API keys, loaded from a key file and/or an environment list,
 * checked in constant time. The set never holds a key, only its hash; messages quote names
 * and line numbers, never a hash or a key. */
#include "apikey.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "buf.h"
#include "mem.h"

#define HASH_LEN SHA256_DIGEST_LENGTH
#define RANDOM_LEN 32

struct apikey_entry {
  unsigned char hash[HASH_LEN];      /* SHA-256 of the key */
  char name[APIKEY_NAME_MAX + 1];    /* NUL-terminated; what logs and metrics may show */
};

struct apikey_set {
  EVP_MD *sha256;         /* fetched once: an implicit fetch per check costs 3x the hash */
  struct apikey_entry *e; /* entries[0..n) */
  size_t n;               /* entries in use */
  size_t cap;             /* entries allocated */
};

apikey_set *apikey_set_new(void)
{
  apikey_set *s = cm_calloc(1, sizeof(apikey_set));

  if (s)
    s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  if (s && !s->sha256) {
    cm_free(s);
    s = NULL;
  }
  return s;
}

void apikey_set_free(apikey_set *s)
{
  if (!s)
    return;
  EVP_MD_free(s->sha256);
  cm_free(s->e);
  cm_free(s);
}

size_t apikey_set_count(const apikey_set *s)
{
  return s ? s->n : 0;
}

bool apikey_name_valid(const char *name)
{
  size_t n = 0;

  if (!name)
    return false;
  for (; name[n]; n++) {
    unsigned char ch = (unsigned char)name[n];
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-';

    if (!ok || n >= APIKEY_NAME_MAX)
      return false;
  }
  return n > 0;
}

static int hex_value(unsigned char ch)
{
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

static bool is_blank(char ch)
{
  return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
}

/* Parses one trimmed entry p[0..len) as name:hex into *out. Returns NULL, or the reason it is
 * wrong (a static string that quotes nothing from the entry). */
static const char *entry_parse(const char *p, size_t len, struct apikey_entry *out)
{
  const char *colon = memchr(p, ':', len);
  size_t nlen, hlen;

  if (!colon)
    return "expected NAME:SHA256HEX";
  nlen = (size_t)(colon - p);
  hlen = len - nlen - 1;
  if (nlen == 0 || nlen > APIKEY_NAME_MAX)
    return "the name must be 1-64 characters of A-Z a-z 0-9 _ . -";
  memcpy(out->name, p, nlen);
  out->name[nlen] = '\0';
  if (!apikey_name_valid(out->name))
    return "the name must be 1-64 characters of A-Z a-z 0-9 _ . -";
  /* Names are logged: refuse one that looks like a key from apikey_new pasted in its place. */
  if (nlen == APIKEY_KEY_SIZE - 1 && memcmp(out->name, "cr_", 3) == 0)
    return "the name looks like an API key; keys never go in this file, only their hashes";
  if (hlen != 2 * HASH_LEN)
    return "the hash must be exactly 64 hex digits (the SHA-256 of the key)";
  for (size_t i = 0; i < HASH_LEN; i++) {
    int hi = hex_value((unsigned char)colon[1 + 2 * i]);
    int lo = hex_value((unsigned char)colon[2 + 2 * i]);

    if (hi < 0 || lo < 0)
      return "the hash must be exactly 64 hex digits (the SHA-256 of the key)";
    out->hash[i] = (unsigned char)(hi << 4 | lo);
  }
  return NULL;
}

/* Appends *e unless the same (name, hash) is already there. where names the entry ("keys.txt
 * line 3") for messages. Returns 0, CM_E_INVALID for a hash already held under another name,
 * or CM_E_NOMEM. */
static int entry_add(apikey_set *s, const struct apikey_entry *e, const char *where,
                     struct cm_error *err)
{
  for (size_t i = 0; i < s->n; i++) {
    if (memcmp(s->e[i].hash, e->hash, HASH_LEN) != 0)
      continue;
    if (strcmp(s->e[i].name, e->name) == 0)
      return 0;
    return cm_error_set(err, CM_E_INVALID, "%s: key '%s' has the same hash as key '%s'", where,
                        e->name, s->e[i].name);
  }
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 8;
    struct apikey_entry *grown = cm_realloc(s->e, cap * sizeof(*grown));

    if (!grown)
      return cm_error_set(err, CM_E_NOMEM, "%s: out of memory", where);
    s->e = grown;
    s->cap = cap;
  }
  s->e[s->n++] = *e;
  return 0;
}

/* Trims white space from both ends of p[0..*len); returns the new start. */
static const char *trim(const char *p, size_t *len)
{
  while (*len > 0 && is_blank(p[0])) {
    p++;
    (*len)--;
  }
  while (*len > 0 && is_blank(p[*len - 1]))
    (*len)--;
  return p;
}

/* Parses and adds one untrimmed item; blank items and, if comments, '#' lines are skipped. */
static int item_add(apikey_set *s, const char *p, size_t len, bool comments, const char *where,
                    struct cm_error *err)
{
  struct apikey_entry e;
  const char *why;

  p = trim(p, &len);
  if (len == 0 || (comments && p[0] == '#'))
    return 0;
  if (memchr(p, '\0', len))
    return cm_error_set(err, CM_E_INVALID, "%s: contains a NUL byte", where);
  why = entry_parse(p, len, &e);
  if (why)
    return cm_error_set(err, CM_E_INVALID, "%s: %s", where, why);
  return entry_add(s, &e, where, err);
}

/* Reads all of path into b (capped at APIKEY_FILE_MAX). */
static int file_read(const char *path, struct cm_buf *b, struct cm_error *err)
{
  FILE *f = fopen(path, "rb");
  char chunk[8192];
  size_t n;
  int rc = 0;

  if (!f)
    return cm_error_set(err, CM_E_IO, "cannot read key file %s: %s", path, strerror(errno));
  while (!rc && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    rc = cm_buf_add(b, chunk, n);
  if (rc == CM_E_TOOLARGE)
    cm_error_set(err, rc, "key file %s is larger than %d bytes", path, APIKEY_FILE_MAX);
  else if (rc)
    cm_error_set(err, rc, "reading key file %s: out of memory", path);
  else if (ferror(f))
    rc = cm_error_set(err, CM_E_IO, "cannot read key file %s", path);
  fclose(f);
  return rc;
}

int apikey_set_add_file(apikey_set *s, const char *path, struct cm_error *err)
{
  struct cm_buf b;
  size_t n0 = s->n, line = 0, off = 0;
  char where[256];
  int rc;

  cm_buf_init(&b, APIKEY_FILE_MAX);
  rc = file_read(path, &b, err);
  while (!rc && off < b.len) {
    const char *start = b.data + off;
    const char *nl = memchr(start, '\n', b.len - off);
    size_t len = nl ? (size_t)(nl - start) : b.len - off;

    line++;
    off += len + (nl ? 1 : 0);
    snprintf(where, sizeof(where), "key file %s line %zu", path, line);
    if (len > APIKEY_LINE_MAX)
      rc = cm_error_set(err, CM_E_TOOLARGE, "%s: longer than %d bytes", where, APIKEY_LINE_MAX);
    else
      rc = item_add(s, start, len, true, where, err);
  }
  if (rc)
    s->n = n0;
  cm_buf_cleanup(&b);
  return rc;
}

int apikey_set_add_list(apikey_set *s, const char *list, const char *origin,
                        struct cm_error *err)
{
  size_t n0 = s->n, item = 0;
  const char *p = list;
  char where[128];
  int rc = 0;

  if (!origin)
    origin = "key list";
  while (!rc && p && *p) {
    size_t len = strcspn(p, ",");

    item++;
    snprintf(where, sizeof(where), "%s entry %zu", origin, item);
    if (len > APIKEY_LINE_MAX)
      rc = cm_error_set(err, CM_E_TOOLARGE, "%s: longer than %d bytes", where, APIKEY_LINE_MAX);
    else
      rc = item_add(s, p, len, false, where, err);
    p += len + (p[len] == ',' ? 1 : 0);
  }
  if (rc)
    s->n = n0;
  return rc;
}

const char *apikey_check(const apikey_set *s, const char *presented, size_t len)
{
  unsigned char d[HASH_LEN];
  size_t match = SIZE_MAX;

  /* Only the length is public here, and an empty or over-long key can never match. */
  if (!s || !presented || len == 0 || len > APIKEY_PRESENTED_MAX)
    return NULL;
  if (!EVP_Digest(presented, len, d, NULL, s->sha256, NULL))
    return NULL;
  /* Every entry is compared, and the match is selected with a mask rather than a branch, so
   * the time does not depend on which entry matched. Hashes are unique in a set. */
  for (size_t i = 0; i < s->n; i++) {
    size_t eq = (size_t)(CRYPTO_memcmp(d, s->e[i].hash, HASH_LEN) == 0);
    size_t mask = (size_t)0 - eq;

    match = (match & ~mask) | (i & mask);
  }
  OPENSSL_cleanse(d, sizeof(d));
  return match == SIZE_MAX ? NULL : s->e[match].name;
}

static void hex_write(const unsigned char *d, size_t n, char *out)
{
  static const char digits[] = "0123456789abcdef";

  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[d[i] >> 4];
    out[2 * i + 1] = digits[d[i] & 15];
  }
  out[2 * n] = '\0';
}

int apikey_hash_hex(const char *key, size_t len, char hash_hex[APIKEY_HASH_HEX_SIZE],
                    struct cm_error *err)
{
  unsigned char d[HASH_LEN];

  hash_hex[0] = '\0';
  if (!key || len == 0)
    return cm_error_set(err, CM_E_INVALID, "the key is empty");
  if (len > APIKEY_PRESENTED_MAX)
    return cm_error_set(err, CM_E_INVALID, "the key is longer than %d bytes",
                        APIKEY_PRESENTED_MAX);
  if (!SHA256((const unsigned char *)key, len, d))
    return cm_error_set(err, CM_E_INTERNAL, "SHA-256 failed");
  hex_write(d, HASH_LEN, hash_hex);
  return 0;
}

int apikey_new(char key_out[APIKEY_KEY_SIZE], char hash_hex[APIKEY_HASH_HEX_SIZE],
               struct cm_error *err)
{
  unsigned char raw[RANDOM_LEN];
  /* EVP_EncodeBlock writes 4 characters per 3 bytes, padded, plus a NUL: 45 for 32 bytes. */
  unsigned char b64[4 * ((RANDOM_LEN + 2) / 3) + 1];
  size_t n = 0;
  int rc = 0;

  key_out[0] = '\0';
  hash_hex[0] = '\0';
  if (RAND_bytes(raw, sizeof(raw)) != 1) {
    rc = cm_error_set(err, CM_E_INTERNAL, "the random generator failed");
    goto out;
  }
  EVP_EncodeBlock(b64, raw, sizeof(raw));
  memcpy(key_out, "cr_", 3);
  /* Standard base64 to base64url (RFC 4648 section 5), dropping the '=' padding. */
  for (const unsigned char *p = b64; *p && *p != '='; p++)
    key_out[3 + n++] = *p == '+' ? '-' : *p == '/' ? '_' : (char)*p;
  key_out[3 + n] = '\0';
  rc = apikey_hash_hex(key_out, 3 + n, hash_hex, err);
out:
  OPENSSL_cleanse(raw, sizeof(raw));
  OPENSSL_cleanse(b64, sizeof(b64));
  if (rc)
    OPENSSL_cleanse(key_out, APIKEY_KEY_SIZE);
  return rc;
}
