/* s3_xml: a small, bounded XML reader for the two documents the store reads from S3, the
 * ListObjectsV2 page and the Error answer. It reads untrusted bytes: every read is checked
 * against the end, depth, name and text lengths and the entry count are capped, DOCTYPEs are
 * refused (no entity expansion), and anything malformed is CM_E_CORRUPT. */
#include "store_int.h"

#include <string.h>

#include "mem.h"

/* Called at each element end with the element's own text (entities decoded). A handler
 * returns 0 or a negative code that stops the parse. */
struct xml_handler {
  int (*start)(void *ctx, int depth, const char *name);
  int (*end)(void *ctx, int depth, const char *name, const char *text, size_t len);
  void *ctx;
};

struct xml {
  const char *p, *end;
  int depth;
  bool root_seen;
  char stack[S3_XML_DEPTH_MAX][S3_XML_NAME_MAX];
  char text[S3_XML_TEXT_MAX + 1];
  size_t tlen;
  const struct xml_handler *h;
  const char *why; /* what was wrong, for the message */
};

static int xml_fail(struct xml *x, const char *why)
{
  x->why = why;
  return CM_E_CORRUPT;
}

static bool xml_starts(const struct xml *x, const char *s)
{
  size_t n = strlen(s);

  return (size_t)(x->end - x->p) >= n && memcmp(x->p, s, n) == 0;
}

/* Moves past the next occurrence of s; false if there is none. */
static bool xml_skip_past(struct xml *x, const char *s)
{
  size_t n = strlen(s);

  for (const char *q = x->p; (size_t)(x->end - q) >= n; q++) {
    if (memcmp(q, s, n) == 0) {
      x->p = q + n;
      return true;
    }
  }
  return false;
}

static bool xml_space(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void xml_skip_space(struct xml *x)
{
  while (x->p < x->end && xml_space(*x->p))
    x->p++;
}

static bool xml_name_char(char c, bool first)
{
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':')
    return true;
  return !first && ((c >= '0' && c <= '9') || c == '-' || c == '.');
}

/* Reads a name into out (S3_XML_NAME_MAX bytes). */
static int xml_name(struct xml *x, char *out)
{
  size_t n = 0;

  while (x->p < x->end && xml_name_char(*x->p, n == 0)) {
    if (n + 1 >= S3_XML_NAME_MAX)
      return xml_fail(x, "name too long");
    out[n++] = *x->p++;
  }
  out[n] = '\0';
  return n ? 0 : xml_fail(x, "bad name");
}

static int xml_text_add(struct xml *x, const char *s, size_t n)
{
  if (n > S3_XML_TEXT_MAX - x->tlen)
    return xml_fail(x, "text too long");
  memcpy(x->text + x->tlen, s, n);
  x->tlen += n;
  x->text[x->tlen] = '\0';
  return 0;
}

/* Appends code point cp as UTF-8. */
static int xml_text_cp(struct xml *x, unsigned long cp)
{
  char u[4];
  size_t n;

  if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return xml_fail(x, "bad character reference");
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xc0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3f));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xe0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[2] = (char)(0x80 | (cp & 0x3f));
    n = 3;
  } else {
    u[0] = (char)(0xf0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[3] = (char)(0x80 | (cp & 0x3f));
    n = 4;
  }
  return xml_text_add(x, u, n);
}

/* Decodes "#N" or "#xN" (n bytes, without '&' and ';'). */
static int xml_char_ref(struct xml *x, const char *s, size_t n)
{
  unsigned long cp = 0;
  bool hexa = n > 1 && s[1] == 'x';
  size_t i = hexa ? 2 : 1;

  if (i >= n || n - i > 8)
    return xml_fail(x, "bad character reference");
  for (; i < n; i++) {
    char c = s[i];
    int d;

    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (hexa && c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (hexa && c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return xml_fail(x, "bad character reference");
    cp = cp * (hexa ? 16 : 10) + (unsigned long)d;
  }
  return xml_text_cp(x, cp);
}

/* Decodes the entity at x->p (which points at '&'). */
static int xml_entity(struct xml *x)
{
  static const struct {
    const char *name;
    char c;
  } named[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
  const char *s = x->p + 1;
  const char *semi = memchr(s, ';', (size_t)(x->end - s) < 12 ? (size_t)(x->end - s) : 12);
  size_t n;

  if (!semi)
    return xml_fail(x, "unterminated entity");
  n = (size_t)(semi - s);
  x->p = semi + 1;
  if (n > 0 && s[0] == '#')
    return xml_char_ref(x, s, n);
  for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
    if (strlen(named[i].name) == n && memcmp(named[i].name, s, n) == 0)
      return xml_text_add(x, &named[i].c, 1);
  }
  return xml_fail(x, "unknown entity");
}

/* Character data up to the next '<' or the end. */
static int xml_chars(struct xml *x)
{
  int rc = 0;

  while (rc == 0 && x->p < x->end && *x->p != '<') {
    unsigned char c = (unsigned char)*x->p;

    if (x->depth == 0 && !xml_space((char)c))
      return xml_fail(x, "text outside the root element");
    if (c < 0x20 && !xml_space((char)c))
      return xml_fail(x, "control character");
    if (c == '&') {
      rc = xml_entity(x);
    } else {
      rc = x->depth ? xml_text_add(x, x->p, 1) : 0;
      x->p++;
    }
  }
  return rc;
}

/* Skips the attributes of a start tag, checking their shape. */
static int xml_attributes(struct xml *x)
{
  char name[S3_XML_NAME_MAX];
  int rc = 0;

  for (;;) {
    const char *q;
    char quote;

    xml_skip_space(x);
    if (x->p >= x->end || *x->p == '>' || *x->p == '/')
      return 0;
    rc = xml_name(x, name);
    if (rc)
      return rc;
    xml_skip_space(x);
    if (x->p >= x->end || *x->p != '=')
      return xml_fail(x, "attribute without value");
    x->p++;
    xml_skip_space(x);
    if (x->p >= x->end || (*x->p != '"' && *x->p != '\''))
      return xml_fail(x, "unquoted attribute");
    quote = *x->p++;
    q = memchr(x->p, quote, (size_t)(x->end - x->p));
    if (!q || memchr(x->p, '<', (size_t)(q - x->p)))
      return xml_fail(x, "bad attribute value");
    x->p = q + 1;
  }
}

static int xml_start_tag(struct xml *x)
{
  char *name;
  int rc;

  if (x->depth == 0 && x->root_seen)
    return xml_fail(x, "second root element");
  if (x->depth >= S3_XML_DEPTH_MAX)
    return xml_fail(x, "nested too deep");
  x->p++; /* '<' */
  name = x->stack[x->depth];
  rc = xml_name(x, name);
  if (rc == 0)
    rc = xml_attributes(x);
  if (rc)
    return rc;
  x->depth++;
  x->root_seen = true;
  x->tlen = 0;
  x->text[0] = '\0';
  rc = x->h->start ? x->h->start(x->h->ctx, x->depth, name) : 0;
  if (rc)
    return rc;
  if (xml_starts(x, "/>")) {
    x->p += 2;
    x->depth--;
    return x->h->end ? x->h->end(x->h->ctx, x->depth + 1, name, "", 0) : 0;
  }
  if (x->p >= x->end || *x->p != '>')
    return xml_fail(x, "unterminated start tag");
  x->p++;
  return 0;
}

static int xml_end_tag(struct xml *x)
{
  char name[S3_XML_NAME_MAX];
  int rc;

  x->p += 2; /* "</" */
  rc = xml_name(x, name);
  if (rc)
    return rc;
  xml_skip_space(x);
  if (x->p >= x->end || *x->p != '>')
    return xml_fail(x, "unterminated end tag");
  x->p++;
  if (x->depth == 0 || strcmp(name, x->stack[x->depth - 1]) != 0)
    return xml_fail(x, "mismatched end tag");
  rc = x->h->end ? x->h->end(x->h->ctx, x->depth, name, x->text, x->tlen) : 0;
  x->depth--;
  x->tlen = 0;
  x->text[0] = '\0';
  return rc;
}

/* One markup construct at x->p ('<'). */
static int xml_markup(struct xml *x)
{
  const char *cdata;

  if (xml_starts(x, "<?"))
    return xml_skip_past(x, "?>") ? 0 : xml_fail(x, "unterminated processing instruction");
  if (xml_starts(x, "<!--"))
    return xml_skip_past(x, "-->") ? 0 : xml_fail(x, "unterminated comment");
  if (xml_starts(x, "<![CDATA[")) {
    if (x->depth == 0)
      return xml_fail(x, "CDATA outside the root element");
    x->p += 9;
    cdata = x->p;
    if (!xml_skip_past(x, "]]>"))
      return xml_fail(x, "unterminated CDATA");
    return xml_text_add(x, cdata, (size_t)(x->p - 3 - cdata));
  }
  if (xml_starts(x, "<!"))
    return xml_fail(x, "DOCTYPE or declaration not allowed");
  if (xml_starts(x, "</"))
    return xml_end_tag(x);
  return xml_start_tag(x);
}

/* Parses the whole document, calling h. 0, CM_E_CORRUPT (x->why set) or the handler's code. */
static int xml_parse(struct xml *x, const char *doc, size_t len, const struct xml_handler *h)
{
  int rc = 0;

  memset(x, 0, sizeof(*x));
  x->p = doc;
  x->end = doc + len;
  x->h = h;
  if (xml_starts(x, "\xef\xbb\xbf"))
    x->p += 3;
  while (rc == 0 && x->p < x->end)
    rc = *x->p == '<' ? xml_markup(x) : xml_chars(x);
  if (rc == 0 && x->depth != 0)
    rc = xml_fail(x, "unexpected end of document");
  if (rc == 0 && !x->root_seen)
    rc = xml_fail(x, "no root element");
  return rc;
}

/* ---- ISO 8601 ---- */

/* Reads exactly n digits at s into *v. */
static bool time_digits(const char *s, size_t n, int *v)
{
  *v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    *v = *v * 10 + (s[i] - '0');
  }
  return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard Hinnant). */
static int64_t time_days(int y, int m, int d)
{
  int64_t yy = y - (m <= 2);
  int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
  int64_t yoe = yy - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

  return era * 146097 + doe - 719468;
}

static int time_month_days(int y, int m)
{
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

  return m == 2 && leap ? 29 : days[m - 1];
}

/* The zone at s (n bytes left): "Z", "+hh:mm" or "-hh:mm", into minutes east of UTC. */
static bool time_zone(const char *s, size_t n, int *minutes)
{
  int hh, mm;

  if (n == 1 && s[0] == 'Z') {
    *minutes = 0;
    return true;
  }
  if (n != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':' || !time_digits(s + 1, 2, &hh) ||
      !time_digits(s + 4, 2, &mm) || hh > 23 || mm > 59)
    return false;
  *minutes = (s[0] == '-' ? -1 : 1) * (hh * 60 + mm);
  return true;
}

int store_time_parse(const char *s, size_t len, int64_t *ms)
{
  int y, mo, d, h, mi, sec, zone;
  int frac = 0;
  size_t i = 19;

  if (len < 20 || !time_digits(s, 4, &y) || s[4] != '-' || !time_digits(s + 5, 2, &mo) ||
      s[7] != '-' || !time_digits(s + 8, 2, &d) || s[10] != 'T' || !time_digits(s + 11, 2, &h) ||
      s[13] != ':' || !time_digits(s + 14, 2, &mi) || s[16] != ':' || !time_digits(s + 17, 2, &sec))
    return CM_E_CORRUPT;
  if (mo < 1 || mo > 12 || d < 1 || d > time_month_days(y, mo) || h > 23 || mi > 59 || sec > 60)
    return CM_E_CORRUPT;
  if (s[i] == '.') {
    size_t digits = 0;

    for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
      if (digits < 3)
        frac = frac * 10 + (s[i] - '0');
    }
    if (digits == 0)
      return CM_E_CORRUPT;
    for (; digits < 3; digits++)
      frac *= 10;
  }
  if (!time_zone(s + i, len - i, &zone))
    return CM_E_CORRUPT;
  *ms =
      ((time_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) - (int64_t)zone * 60) * 1000 + frac;
  return 0;
}

/* ---- ListBucketResult ---- */

struct list_state {
  struct s3_page *page;
  struct s3_entry cur; /* the Contents being read */
  bool in_contents;
  bool has_key, has_size;
  bool is_list;
  const char *why;
};

static int list_start(void *ctx, int depth, const char *name)
{
  struct list_state *ls = ctx;

  if (depth == 1) {
    ls->is_list = strcmp(name, "ListBucketResult") == 0;
    if (!ls->is_list) {
      ls->why = "not a ListBucketResult";
      return CM_E_CORRUPT;
    }
  }
  if (depth == 2 && strcmp(name, "Contents") == 0) {
    memset(&ls->cur, 0, sizeof(ls->cur));
    ls->in_contents = true;
    ls->has_key = ls->has_size = false;
  }
  return 0;
}

static int list_fail(struct list_state *ls, const char *why)
{
  ls->why = why;
  return CM_E_CORRUPT;
}

/* Reads a decimal size of at most 20 digits without overflow. */
static bool size_parse(const char *s, size_t len, uint64_t *out)
{
  uint64_t v = 0;

  if (len == 0 || len > 20)
    return false;
  for (size_t i = 0; i < len; i++) {
    uint64_t d = (uint64_t)(s[i] - '0');

    if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - d) / 10)
      return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

/* An ETag without its quotes (S3 writes "\"<md5>\""). */
static bool etag_copy(const char *s, size_t len, char *out, size_t cap)
{
  if (len >= 2 && s[0] == '"' && s[len - 1] == '"') {
    s++;
    len -= 2;
  }
  if (len >= cap || memchr(s, '"', len))
    return false;
  memcpy(out, s, len);
  out[len] = '\0';
  return true;
}

static int list_field(struct list_state *ls, const char *name, const char *text, size_t len)
{
  struct s3_entry *e = &ls->cur;

  if (strcmp(name, "Key") == 0) {
    if (len == 0 || memchr(text, '\0', len))
      return list_fail(ls, "bad Key");
    cm_free(e->key);
    e->key = cm_strndup(text, len);
    ls->has_key = true;
    return e->key ? 0 : CM_E_NOMEM;
  }
  if (strcmp(name, "Size") == 0) {
    ls->has_size = true;
    return size_parse(text, len, &e->st.size) ? 0 : list_fail(ls, "bad Size");
  }
  if (strcmp(name, "ETag") == 0)
    return etag_copy(text, len, e->st.etag, sizeof(e->st.etag)) ? 0 : list_fail(ls, "bad ETag");
  if (strcmp(name, "LastModified") == 0)
    return store_time_parse(text, len, &e->st.mtime_ms) ? list_fail(ls, "bad LastModified") : 0;
  return 0;
}

static int list_push(struct list_state *ls)
{
  struct s3_page *pg = ls->page;
  struct s3_entry *v;

  ls->in_contents = false;
  if (!ls->has_key || !ls->has_size)
    return list_fail(ls, "Contents without Key or Size");
  if (pg->n >= S3_XML_ENTRIES_MAX)
    return list_fail(ls, "too many Contents");
  /* Grow by doubling; n < S3_XML_ENTRIES_MAX keeps the size far from overflow. */
  if ((pg->n & (pg->n - 1)) == 0) {
    v = cm_realloc(pg->v, (pg->n ? pg->n * 2 : 1) * sizeof(*v));
    if (!v)
      return CM_E_NOMEM;
    pg->v = v;
  }
  pg->v[pg->n++] = ls->cur;
  memset(&ls->cur, 0, sizeof(ls->cur));
  return 0;
}

static int list_end(void *ctx, int depth, const char *name, const char *text, size_t len)
{
  struct list_state *ls = ctx;

  if (depth == 3 && ls->in_contents)
    return list_field(ls, name, text, len);
  if (depth != 2)
    return 0;
  if (strcmp(name, "Contents") == 0)
    return list_push(ls);
  if (strcmp(name, "IsTruncated") == 0) {
    if (len == 4 && memcmp(text, "true", 4) == 0)
      ls->page->truncated = true;
    else if (len == 5 && memcmp(text, "false", 5) == 0)
      ls->page->truncated = false;
    else
      return list_fail(ls, "bad IsTruncated");
  }
  if (strcmp(name, "NextContinuationToken") == 0) {
    if (len == 0 || memchr(text, '\0', len))
      return list_fail(ls, "bad NextContinuationToken");
    cm_free(ls->page->next_token);
    ls->page->next_token = cm_strndup(text, len);
    return ls->page->next_token ? 0 : CM_E_NOMEM;
  }
  return 0;
}

void s3_page_cleanup(struct s3_page *page)
{
  for (size_t i = 0; i < page->n; i++)
    cm_free(page->v[i].key);
  cm_free(page->v);
  cm_free(page->next_token);
  memset(page, 0, sizeof(*page));
}

int s3_page_parse(const char *xml, size_t len, struct s3_page *page, struct cm_error *err)
{
  struct list_state ls = {.page = page};
  struct xml_handler h = {list_start, list_end, &ls};
  struct xml *x = NULL;
  int rc;

  memset(page, 0, sizeof(*page));
  x = cm_malloc(sizeof(*x));
  if (!x) {
    rc = cm_error_set(err, CM_E_NOMEM, "parsing a listing: out of memory");
    goto out;
  }
  rc = xml_parse(x, xml, len, &h);
  if (rc == CM_E_NOMEM)
    cm_error_set(err, rc, "parsing a listing: out of memory");
  else if (rc)
    cm_error_set(err, CM_E_CORRUPT, "S3 listing does not parse: %s at byte %zu",
                 ls.why   ? ls.why
                 : x->why ? x->why
                          : "bad document",
                 (size_t)(x->p - xml));
  else if (page->truncated && !page->next_token)
    rc = cm_error_set(err, CM_E_CORRUPT, "S3 listing is truncated without a continuation token");
out:
  cm_free(ls.cur.key);
  if (rc)
    s3_page_cleanup(page);
  cm_free(x);
  return rc;
}

/* ---- Error ---- */

struct error_state {
  struct s3_error_doc *doc;
  bool is_error;
};

static int error_start(void *ctx, int depth, const char *name)
{
  struct error_state *es = ctx;

  if (depth == 1)
    es->is_error = strcmp(name, "Error") == 0;
  return es->is_error ? 0 : CM_E_CORRUPT;
}

/* Copies text, cut to fit cap at a UTF-8 boundary. */
static void error_copy(char *out, size_t cap, const char *text, size_t len)
{
  if (len >= cap) {
    len = cap - 1;
    while (len > 0 && ((unsigned char)text[len] & 0xc0) == 0x80)
      len--;
  }
  memcpy(out, text, len);
  out[len] = '\0';
}

static int error_end(void *ctx, int depth, const char *name, const char *text, size_t len)
{
  struct error_state *es = ctx;

  if (depth == 2 && strcmp(name, "Code") == 0)
    error_copy(es->doc->code, sizeof(es->doc->code), text, len);
  else if (depth == 2 && strcmp(name, "Message") == 0)
    error_copy(es->doc->message, sizeof(es->doc->message), text, len);
  return 0;
}

int s3_error_parse(const char *xml, size_t len, struct s3_error_doc *out)
{
  struct error_state es = {.doc = out};
  struct xml_handler h = {error_start, error_end, &es};
  struct xml *x = cm_malloc(sizeof(*x));
  int rc = CM_E_NOMEM;

  memset(out, 0, sizeof(*out));
  if (x)
    rc = xml_parse(x, xml, len, &h);
  cm_free(x);
  if (rc)
    memset(out, 0, sizeof(*out));
  return rc ? CM_E_CORRUPT : 0;
}
