/* body: JSON request bodies to Predictor features, with FastAPI's 422 error shapes. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "err.h"

json_t *body_parse(const char *text, size_t len, json_t **detail)
{
  json_error_t e;
  json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
  char why[sizeof e.text];

  if (v)
    return v;
  /* jansson quotes the bytes near the error, which may be anything (a cut UTF-8 sequence, a
   * NUL): only printable ASCII goes into the answer (found by gateway_body_fuzzer). */
  for (size_t i = 0; i < sizeof why; i++) {
    unsigned char c = (unsigned char)e.text[i];
    why[i] = c == 0 ? '\0' : c < 0x20 || c >= 0x7F ? '?' : (char)c;
    if (!c)
      break;
  }
  why[sizeof why - 1] = '\0';
  *detail = json_pack("[{s:s, s:[s,i], s:s, s:{}, s:{s:s}}]", "type", "json_invalid", "loc",
                      "body", (json_int_t)e.position, "msg", "JSON decode error", "input", "ctx",
                      "error", why);
  return NULL;
}

/* n, lowered so that s[0..n) does not end inside a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n)
{
  size_t k = n;
  while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
    k--;
  return k;
}

/* The input as echoed in an error: the value itself, or its text cut to BODY_ECHO_MAX bytes (at
 * a character boundary: a cut inside a UTF-8 sequence would not be a JSON string). */
static json_t *echo(const json_t *v)
{
  json_free_t free_fn;
  const char *t;
  json_t *out;
  char *s;

  if (json_is_string(v)) {
    t = json_string_value(v);
    if (json_string_length(v) <= BODY_ECHO_MAX)
      return json_deep_copy(v);
    return json_stringn(t, utf8_cut(t, BODY_ECHO_MAX));
  }
  if (!json_is_object(v) && !json_is_array(v))
    return json_deep_copy(v);
  s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!s)
    return NULL;
  out = strlen(s) <= BODY_ECHO_MAX ? json_deep_copy(v)
                                   : json_stringn(s, utf8_cut(s, BODY_ECHO_MAX));
  json_get_alloc_funcs(NULL, &free_fn); /* json_dumps allocates with jansson's allocator */
  free_fn(s);
  return out;
}

/* Appends one error entry: loc = prefix + [field] (field may be NULL). Past BODY_MAX_ERRORS
 * entries nothing more is added (the answer stays small whatever the request). */
static int add_error(json_t *detail, const char *type, const json_t *prefix, const char *field,
                     const char *msg, const json_t *input, json_t *ctx)
{
  json_t *loc, *e;
  if (json_array_size(detail) >= BODY_MAX_ERRORS) {
    json_decref(ctx);
    return 0;
  }
  loc = json_copy((json_t *)prefix);
  if (field)
    json_array_append_new(loc, json_string(field));
  e = json_pack("{s:s, s:o, s:s, s:o}", "type", type, "loc", loc, "msg", msg, "input",
                input ? echo(input) : json_null());
  if (!e) {
    json_decref(ctx);
    return CM_E_NOMEM;
  }
  if (ctx)
    json_object_set_new(e, "ctx", ctx);
  json_array_append_new(detail, e);
  return 0;
}

/* pydantic's enum message: "Input should be 'a', 'b' or 'c'" (long lists cut with "..."). */
static void enum_text(const Credito__V1__FeatureSpec *f, char *out, size_t n)
{
  size_t used = 0;
  for (size_t k = 0; k < f->n_categories && used + 1 < n; k++) {
    const char *sep = k == 0 ? "" : k + 1 == f->n_categories ? " or " : ", ";
    if (k >= 12) {
      snprintf(out + used, n - used, ", ... (%zu categories)", f->n_categories);
      return;
    }
    used += (size_t)snprintf(out + used, n - used, "%s'%s'", sep, f->categories[k]);
  }
}

static const Credito__V1__FeatureSpec *spec_find(const Credito__V1__Schema *s, const char *name)
{
  for (size_t i = 0; i < s->n_features; i++)
    if (strcmp(s->features[i]->name, name) == 0)
      return s->features[i];
  return NULL;
}

/* Checks one value against its spec and fills v; returns 0, or 1 after recording an error. */
static int value_of(const Credito__V1__FeatureSpec *f, const json_t *val, const json_t *prefix,
                    json_t *detail, cm_arena *a, Credito__V1__FeatureValue *v)
{
  credito__v1__feature_value__init(v);
  if (json_is_null(val)) {
    if (f->required)
      return add_error(detail, "missing", prefix, f->name, "Field required", val, NULL) ? -1 : 1;
    v->value_case = CREDITO__V1__FEATURE_VALUE__VALUE_MISSING;
    v->missing = 1;
    return 0;
  }
  if (f->kind == CREDITO__V1__FEATURE_KIND__FEATURE_KIND_NUMERIC) {
    if (json_is_string(val))
      return add_error(detail, "float_parsing", prefix, f->name,
                       "Input should be a valid number, unable to parse string as a number", val,
                       NULL) ? -1 : 1;
    if (!json_is_number(val))
      return add_error(detail, "float_type", prefix, f->name, "Input should be a valid number",
                       val, NULL) ? -1 : 1;
    v->value_case = CREDITO__V1__FEATURE_VALUE__VALUE_NUMBER;
    v->number = json_number_value(val);
    if (!isfinite(v->number))
      return add_error(detail, "finite_number", prefix, f->name, "Input should be a finite number",
                       val, NULL) ? -1 : 1;
    return 0;
  }
  if (!json_is_string(val))
    return add_error(detail, "string_type", prefix, f->name, "Input should be a valid string",
                     val, NULL) ? -1 : 1;
  v->value_case = CREDITO__V1__FEATURE_VALUE__VALUE_TEXT;
  v->text = cm_arena_strndup(a, json_string_value(val), json_string_length(val));
  if (!v->text)
    return -1;
  if (f->unknown_category != CREDITO__V1__UNKNOWN_CATEGORY__UNKNOWN_CATEGORY_IGNORE) {
    for (size_t k = 0; k < f->n_categories; k++)
      if (strcmp(f->categories[k], v->text) == 0)
        return 0;
    char expected[900], msg[1000];
    enum_text(f, expected, sizeof(expected));
    snprintf(msg, sizeof(msg), "Input should be %s", expected);
    return add_error(detail, "enum", prefix, f->name, msg, val,
                     json_pack("{s:s}", "expected", expected)) ? -1 : 1;
  }
  return 0;
}

int body_applicant(const json_t *obj, const Credito__V1__Schema *schema, const json_t *loc_prefix,
                   cm_arena *a, Credito__V1__Feature ***out, size_t *n, json_t *detail)
{
  size_t cap = schema->n_features, used = 0, bad = 0;
  Credito__V1__Feature *f = cm_arena_calloc(a, cap + 1, sizeof *f);
  Credito__V1__Feature **fp = cm_arena_calloc(a, cap + 1, sizeof *fp);
  Credito__V1__FeatureValue *v = cm_arena_calloc(a, cap + 1, sizeof *v);
  const char *key;
  json_t *val;

  if (!f || !fp || !v)
    return CM_E_NOMEM;
  if (!json_is_object(obj))
    return add_error(detail, "model_attributes_type", loc_prefix, NULL,
                     "Input should be a valid dictionary or object to extract fields from", obj,
                     NULL) ? CM_E_NOMEM : CM_E_INVALID;
  json_object_foreach((json_t *)obj, key, val) {
    const Credito__V1__FeatureSpec *spec = spec_find(schema, key);
    int r;
    if (!spec) {
      if (add_error(detail, "extra_forbidden", loc_prefix, key, "Extra inputs are not permitted",
                    val, NULL))
        return CM_E_NOMEM;
      bad++;
      continue;
    }
    r = value_of(spec, val, loc_prefix, detail, a, &v[used]);
    if (r < 0)
      return CM_E_NOMEM;
    bad += (size_t)r;
    credito__v1__feature__init(&f[used]);
    f[used].name = spec->name;
    f[used].value = &v[used];
    fp[used] = &f[used];
    used += r == 0;
  }
  for (size_t i = 0; i < schema->n_features; i++) {
    const Credito__V1__FeatureSpec *spec = schema->features[i];
    if (spec->required && !json_object_get(obj, spec->name)) {
      if (add_error(detail, "missing", loc_prefix, spec->name, "Field required", obj, NULL))
        return CM_E_NOMEM;
      bad++;
    }
  }
  *out = fp;
  *n = used;
  return bad ? CM_E_INVALID : 0;
}

/* ---- the fast path: a flat object read in place ---- */

struct scan {
  const char *p, *end;
};

static void skip_ws(struct scan *s)
{
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

/* A plain string: printable ASCII without quotes or escapes. *str, *len point into the text. */
static bool plain_string(struct scan *s, const char **str, size_t *len)
{
  const char *q;

  if (s->p >= s->end || *s->p != '"')
    return false;
  for (q = s->p + 1; q < s->end && *q != '"'; q++)
    if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7F || *q == '\\')
      return false;
  if (q >= s->end)
    return false;
  *str = s->p + 1;
  *len = (size_t)(q - s->p - 1);
  s->p = q + 1;
  return true;
}

static bool digit(char c)
{
  return c >= '0' && c <= '9';
}

/* A JSON number read as jansson reads it: an integer (no fraction, no exponent) through
 * strtoll, refused on overflow as jansson refuses it; a real through strtod, refused when it
 * overflows to an infinity. */
static bool plain_number(struct scan *s, double *out)
{
  const char *q = s->p;
  char buf[64], *endp;
  bool real = false;
  size_t n;

  if (q < s->end && *q == '-')
    q++;
  if (q >= s->end || !digit(*q))
    return false;
  if (*q == '0')
    q++;
  else
    while (q < s->end && digit(*q))
      q++;
  if (q < s->end && *q == '.') {
    real = true;
    if (++q >= s->end || !digit(*q))
      return false;
    while (q < s->end && digit(*q))
      q++;
  }
  if (q < s->end && (*q == 'e' || *q == 'E')) {
    real = true;
    if (++q < s->end && (*q == '+' || *q == '-'))
      q++;
    if (q >= s->end || !digit(*q))
      return false;
    while (q < s->end && digit(*q))
      q++;
  }
  n = (size_t)(q - s->p);
  if (n >= sizeof buf)
    return false; /* long numbers: the full path */
  memcpy(buf, s->p, n);
  buf[n] = '\0';
  errno = 0;
  if (real) {
    *out = strtod(buf, &endp);
    if (errno == ERANGE && isinf(*out))
      return false;
  } else {
    long long v = strtoll(buf, &endp, 10);
    if (errno == ERANGE)
      return false;
    *out = (double)v;
  }
  if (endp != buf + n)
    return false;
  s->p = q;
  return true;
}

int body_applicant_fast(const char *text, size_t len, const Credito__V1__Schema *schema,
                        cm_arena *a, Credito__V1__Feature ***out, size_t *n)
{
  size_t cap = schema->n_features, used = 0, next = 0;
  struct scan s = {text, text + len};
  Credito__V1__Feature *f;
  Credito__V1__Feature **fp;
  Credito__V1__FeatureValue *v;
  unsigned char seen[256];

  if (cap > sizeof seen)
    return CM_E_INVALID;
  memset(seen, 0, cap);
  skip_ws(&s);
  if (s.p >= s.end || *s.p++ != '{')
    return CM_E_INVALID;
  f = cm_arena_calloc(a, cap + 1, sizeof *f);
  fp = cm_arena_calloc(a, cap + 1, sizeof *fp);
  v = cm_arena_calloc(a, cap + 1, sizeof *v);
  if (!f || !fp || !v)
    return CM_E_NOMEM;
  skip_ws(&s);
  if (s.p < s.end && *s.p == '}') {
    s.p++;
  } else {
    for (;;) {
      const Credito__V1__FeatureSpec *spec = NULL;
      const char *key, *str;
      size_t klen, slen, k = 0;

      skip_ws(&s);
      if (!plain_string(&s, &key, &klen))
        return CM_E_INVALID;
      /* Clients mostly send the features in the schema's order: look after the last one
       * first, then round from the start. */
      for (k = 0; k < cap; k++) {
        size_t at = (next + k) % cap;
        const char *name = schema->features[at]->name;
        if (name[0] == key[0] && strncmp(name, key, klen) == 0 && name[klen] == '\0') {
          k = at;
          break;
        }
      }
      if (k == cap || seen[k]) /* unknown, or given twice: the full path */
        return CM_E_INVALID;
      next = k + 1;
      seen[k] = 1;
      spec = schema->features[k];
      skip_ws(&s);
      if (s.p >= s.end || *s.p++ != ':')
        return CM_E_INVALID;
      skip_ws(&s);
      credito__v1__feature_value__init(&v[used]);
      if (s.p < s.end && *s.p == 'n') {
        if (s.end - s.p < 4 || memcmp(s.p, "null", 4) != 0 || spec->required)
          return CM_E_INVALID;
        s.p += 4;
        v[used].value_case = CREDITO__V1__FEATURE_VALUE__VALUE_MISSING;
        v[used].missing = 1;
      } else if (spec->kind == CREDITO__V1__FEATURE_KIND__FEATURE_KIND_NUMERIC) {
        if (!plain_number(&s, &v[used].number))
          return CM_E_INVALID;
        v[used].value_case = CREDITO__V1__FEATURE_VALUE__VALUE_NUMBER;
      } else {
        if (!plain_string(&s, &str, &slen))
          return CM_E_INVALID;
        if (spec->unknown_category != CREDITO__V1__UNKNOWN_CATEGORY__UNKNOWN_CATEGORY_IGNORE) {
          size_t c;
          for (c = 0; c < spec->n_categories; c++)
            if (strncmp(spec->categories[c], str, slen) == 0 && spec->categories[c][slen] == 0)
              break;
          if (c == spec->n_categories)
            return CM_E_INVALID;
        }
        v[used].value_case = CREDITO__V1__FEATURE_VALUE__VALUE_TEXT;
        v[used].text = cm_arena_strndup(a, str, slen);
        if (!v[used].text)
          return CM_E_NOMEM;
      }
      credito__v1__feature__init(&f[used]);
      f[used].name = spec->name;
      f[used].value = &v[used];
      fp[used] = &f[used];
      used++;
      skip_ws(&s);
      if (s.p < s.end && *s.p == ',') {
        s.p++;
        continue;
      }
      if (s.p < s.end && *s.p == '}') {
        s.p++;
        break;
      }
      return CM_E_INVALID;
    }
  }
  skip_ws(&s);
  if (s.p != s.end)
    return CM_E_INVALID;
  for (size_t k = 0; k < cap; k++)
    if (schema->features[k]->required && !seen[k])
      return CM_E_INVALID;
  *out = fp;
  *n = used;
  return 0;
}
