/* pbjson reader: jansson tree -> protobuf-c message in an arena, walking the descriptor. Strict by
 * default: every key must name a field and every value must have the field's JSON type. */
#include "pbjson_int.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* read_value's result for a value it dropped (an unknown enum name under PBJSON_IGNORE_UNKNOWN). */
#define READ_SKIP 1

/* Widest key an error message quotes. */
#define KEY_SHOWN 40

/* Above this magnitude a double no longer rounds to a finite float. */
#define FLOAT_LIMIT 0x1.ffffffp127

/* State of one conversion. */
struct pbjson_reader {
  cm_arena *arena;         /* where the message goes, borrowed */
  unsigned flags;          /* PBJSON_IGNORE_UNKNOWN or 0 */
  struct cm_error *err;    /* caller's, may be NULL */
  struct pbjson_path path; /* where we are, for errors */
};

static int read_message(struct pbjson_reader *r, const json_t *obj,
                        const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out);

/* Fails with code and a printf-style reason, naming the path of the first nseg segments. */
static int reader_fail_at(struct pbjson_reader *r, unsigned nseg, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int reader_fail_at(struct pbjson_reader *r, unsigned nseg, int code, const char *fmt, ...)
{
  char what[CM_ERROR_MSG_SIZE], path[PBJSON_PATH_MAX];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);
  pbjson_path_render(&r->path, nseg, path);
  return cm_error_set(r->err, code, "%s at %s", what, path);
}

/* The arena refused an allocation for the field being read. */
static int reader_nomem(struct pbjson_reader *r)
{
  return reader_fail_at(r, r->path.depth + 1, CM_E_NOMEM, "out of memory or arena limit");
}

/* The field being read has a JSON value of the wrong kind. */
static int reader_want(struct pbjson_reader *r, const char *want, const json_t *v)
{
  static const char *const kinds[] = {"object", "array",   "string",  "integer",
                                      "number", "boolean", "boolean", "null"};

  return reader_fail_at(r, r->path.depth + 1, CM_E_INVALID, "expected %s, got %s", want,
                        kinds[json_typeof(v)]);
}

/* Bytes of s (n long) to quote in a message: at most KEY_SHOWN, not cutting a UTF-8 sequence. */
static int shown_len(const char *s, size_t n)
{
  if (n <= KEY_SHOWN)
    return (int)n;
  n = KEY_SHOWN;
  while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
    n--;
  return (int)n;
}

/* Parses a decimal integer string: an optional '-' then digits, nothing else. Returns NULL or
 * why it failed. */
static const char *int_of_text(const char *s, size_t n, bool *neg, uint64_t *mag)
{
  uint64_t v = 0;
  size_t i = 0;
  unsigned d;

  *neg = n > 0 && s[0] == '-';
  i = *neg ? 1 : 0;
  if (i == n)
    return "expected integer";
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return "expected integer";
    d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return "integer out of range";
    v = v * 10 + d;
  }
  *mag = v;
  return NULL;
}

/* Reads an integer given as a JSON integer, an integral real or a decimal string, as a sign and
 * magnitude. Returns NULL or why it failed. */
static const char *int_of_json(const json_t *v, bool *neg, uint64_t *mag)
{
  json_int_t i;
  double d, a;

  if (json_is_integer(v)) {
    i = json_integer_value(v);
    *neg = i < 0;
    *mag = i < 0 ? (uint64_t)(-(i + 1)) + 1 : (uint64_t)i;
    return NULL;
  }
  if (json_is_string(v))
    return int_of_text(json_string_value(v), json_string_length(v), neg, mag);
  if (!json_is_real(v))
    return "expected integer";
  d = json_real_value(v);
  a = d < 0 ? -d : d;
  if (!isfinite(d) || a >= 18446744073709551616.0)
    return "integer out of range";
  *mag = (uint64_t)a;
  *neg = d < 0;
  return (double)*mag == a ? NULL : "expected integer";
}

/* True when the value fits the integer type t (enums are int32). */
static bool int_fits(ProtobufCType t, bool neg, uint64_t mag)
{
  switch (t) {
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    return neg ? mag == 0 : mag <= UINT32_MAX;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    return neg ? mag <= (uint64_t)INT64_MAX + 1 : mag <= (uint64_t)INT64_MAX;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    return !neg || mag == 0;
  default:
    return neg ? mag <= (uint64_t)INT32_MAX + 1 : mag <= (uint64_t)INT32_MAX;
  }
}

static int read_int(struct pbjson_reader *r, const ProtobufCFieldDescriptor *f, const json_t *v,
                    void *slot)
{
  const char *why;
  uint64_t mag = 0, u;
  bool neg = false;

  if (!json_is_number(v) && !json_is_string(v))
    return reader_want(r, pbjson_type_name(f->type), v);
  why = int_of_json(v, &neg, &mag);
  if (!why && !int_fits(f->type, neg, mag))
    why = "integer out of range";
  if (why)
    return reader_fail_at(r, r->path.depth + 1, CM_E_INVALID, "%s for %s", why,
                          pbjson_type_name(f->type));
  /* Two's complement by hand: the negative values come out right in either width. */
  u = neg ? (uint64_t)0 - mag : mag;
  if (pbjson_type_size(f->type) == 8)
    *(uint64_t *)slot = u;
  else
    *(uint32_t *)slot = (uint32_t)u;
  return 0;
}

/* A float given as a string: "NaN", "Infinity", "-Infinity" or a JSON number in quotes. */
static int real_of_text(struct pbjson_reader *r, const json_t *v, double *d)
{
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  json_error_t jerr;
  json_t *num = NULL;
  int rc = 0;

  if (n == 3 && memcmp(s, "NaN", 3) == 0)
    *d = NAN;
  else if (n == 8 && memcmp(s, "Infinity", 8) == 0)
    *d = INFINITY;
  else if (n == 9 && memcmp(s, "-Infinity", 9) == 0)
    *d = -INFINITY;
  else if (n == 0 || n > 64 || strspn(s, "0123456789+-.eE") != n)
    rc = reader_want(r, "number", v);
  else {
    /* jansson's own number grammar and locale-proof conversion. */
    num = json_loadb(s, n, JSON_DECODE_ANY, &jerr);
    if (!num && json_error_code(&jerr) == json_error_out_of_memory)
      rc = reader_fail_at(r, r->path.depth + 1, CM_E_NOMEM, "out of memory");
    else if (!json_is_number(num))
      rc = reader_want(r, "number", v);
    else
      *d = json_number_value(num);
  }
  json_decref(num);
  return rc;
}

static int read_real(struct pbjson_reader *r, const ProtobufCFieldDescriptor *f, const json_t *v,
                     void *slot)
{
  double d = 0;
  int rc;

  if (json_is_number(v))
    d = json_number_value(v);
  else if (!json_is_string(v))
    return reader_want(r, "number", v);
  else {
    rc = real_of_text(r, v, &d);
    if (rc)
      return rc;
  }
  if (f->type == PROTOBUF_C_TYPE_DOUBLE) {
    *(double *)slot = d;
    return 0;
  }
  if (isfinite(d) && (d >= FLOAT_LIMIT || d <= -FLOAT_LIMIT))
    return reader_fail_at(r, r->path.depth + 1, CM_E_INVALID, "number out of range for float");
  *(float *)slot = (float)d;
  return 0;
}

static int read_enum(struct pbjson_reader *r, const ProtobufCFieldDescriptor *f, const json_t *v,
                     void *slot)
{
  const ProtobufCEnumDescriptor *ed = f->descriptor;
  const ProtobufCEnumValue *ev = NULL;
  const char *s;
  size_t n;

  if (!json_is_string(v)) {
    if (!json_is_number(v))
      return reader_want(r, "enum name or number", v);
    return read_int(r, f, v, slot);
  }
  s = json_string_value(v);
  n = json_string_length(v);
  if (strlen(s) == n)
    ev = protobuf_c_enum_descriptor_get_value_by_name(ed, s);
  if (!ev && (r->flags & PBJSON_IGNORE_UNKNOWN))
    return READ_SKIP;
  if (!ev)
    return reader_fail_at(r, r->path.depth + 1, CM_E_INVALID, "unknown value '%.*s' of enum %s",
                          shown_len(s, n), s, ed->name);
  *(int *)slot = ev->value;
  return 0;
}

static int read_string(struct pbjson_reader *r, const json_t *v, void *slot)
{
  const char *s;
  char *copy;
  size_t n;

  if (!json_is_string(v))
    return reader_want(r, "string", v);
  s = json_string_value(v);
  n = json_string_length(v);
  /* Trees built with json_stringn_nocheck or JSON_ALLOW_NUL can hold what a proto string cannot. */
  if (memchr(s, '\0', n) || !pbjson_utf8_valid(s, n))
    return reader_fail_at(r, r->path.depth + 1, CM_E_INVALID,
                          "string has a NUL or is not valid UTF-8");
  copy = cm_arena_alloc(r->arena, n + 1);
  if (!copy)
    return reader_nomem(r);
  memcpy(copy, s, n);
  copy[n] = '\0';
  *(char **)slot = copy;
  return 0;
}

static int read_bytes(struct pbjson_reader *r, const json_t *v, void *slot)
{
  ProtobufCBinaryData *bd = slot;
  uint8_t *data;
  size_t n, len = 0;

  if (!json_is_string(v))
    return reader_want(r, "base64 string", v);
  n = json_string_length(v);
  data = cm_arena_alloc(r->arena, n / 4 * 3 + 2);
  if (!data)
    return reader_nomem(r);
  if (!pbjson_base64_decode(json_string_value(v), n, data, &len))
    return reader_fail_at(r, r->path.depth + 1, CM_E_INVALID, "invalid base64");
  bd->data = data;
  bd->len = len;
  return 0;
}

/* Reads the message-typed value v one level down into *slot. */
static int read_submessage(struct pbjson_reader *r, const ProtobufCFieldDescriptor *f,
                           const json_t *v, void *slot)
{
  int rc;

  if (!json_is_object(v))
    return reader_want(r, "object", v);
  if (r->path.depth + 1 >= PBJSON_MAX_DEPTH)
    return reader_fail_at(r, r->path.depth + 1, CM_E_INVALID, "nesting deeper than %d",
                          PBJSON_MAX_DEPTH);
  r->path.depth++;
  rc = read_message(r, v, f->descriptor, slot);
  r->path.depth--;
  return rc;
}

/* Reads one value of f's type (not null) into slot. Returns 0, READ_SKIP or an error. */
static int read_value(struct pbjson_reader *r, const ProtobufCFieldDescriptor *f, const json_t *v,
                      void *slot)
{
  switch (f->type) {
  case PROTOBUF_C_TYPE_FLOAT:
  case PROTOBUF_C_TYPE_DOUBLE:
    return read_real(r, f, v, slot);
  case PROTOBUF_C_TYPE_BOOL:
    if (!json_is_boolean(v))
      return reader_want(r, "boolean", v);
    *(protobuf_c_boolean *)slot = json_is_true(v);
    return 0;
  case PROTOBUF_C_TYPE_ENUM:
    return read_enum(r, f, v, slot);
  case PROTOBUF_C_TYPE_STRING:
    return read_string(r, v, slot);
  case PROTOBUF_C_TYPE_BYTES:
    return read_bytes(r, v, slot);
  case PROTOBUF_C_TYPE_MESSAGE:
    return read_submessage(r, f, v, slot);
  default:
    return read_int(r, f, v, slot);
  }
}

static int read_repeated(struct pbjson_reader *r, ProtobufCMessage *msg,
                         const ProtobufCFieldDescriptor *f, const json_t *v)
{
  size_t n, i, kept = 0, size = pbjson_type_size(f->type);
  unsigned depth = r->path.depth;
  char *arr;
  int rc = 0;

  if (!json_is_array(v))
    return reader_want(r, "array", v);
  n = json_array_size(v);
  if (n == 0)
    return 0;
  arr = cm_arena_calloc(r->arena, n, size);
  if (!arr)
    return reader_nomem(r);
  for (i = 0; i < n && rc == 0; i++) {
    r->path.seg[depth].index = (long)i;
    if (json_is_null(json_array_get(v, i)))
      rc = reader_fail_at(r, depth + 1, CM_E_INVALID, "null in a repeated field");
    else
      rc = read_value(r, f, json_array_get(v, i), arr + kept * size);
    if (rc == READ_SKIP)
      rc = 0;
    else if (rc == 0)
      kept++;
  }
  r->path.seg[depth].index = -1;
  *(size_t *)pbjson_member(msg, f->quantifier_offset) = kept;
  *(void **)pbjson_member(msg, f->offset) = arr;
  return rc;
}

/* Reads v (any JSON value) into field f of msg, setting its oneof case or has_ flag. */
static int read_field(struct pbjson_reader *r, ProtobufCMessage *msg,
                      const ProtobufCFieldDescriptor *f, const json_t *v)
{
  int rc;

  if (json_is_null(v) && f->label == PROTOBUF_C_LABEL_REQUIRED)
    return reader_fail_at(r, r->path.depth + 1, CM_E_INVALID, "required field is null");
  if (json_is_null(v))
    return 0;
  if (f->label == PROTOBUF_C_LABEL_REPEATED)
    return read_repeated(r, msg, f, v);
  rc = read_value(r, f, v, pbjson_member(msg, f->offset));
  if (rc == READ_SKIP)
    return 0;
  if (rc)
    return rc;
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
    *(uint32_t *)pbjson_member(msg, f->quantifier_offset) = f->id;
  else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
           f->type != PROTOBUF_C_TYPE_MESSAGE)
    *(protobuf_c_boolean *)pbjson_member(msg, f->quantifier_offset) = 1;
  return 0;
}

/* True when key is name in lowerCamelCase, as protoc derives json_name: each '_' is dropped and
 * the letter after it upper-cased. */
static bool json_name_is(const char *name, const char *key)
{
  bool up = false;
  char c;

  for (; *name; name++) {
    if (*name == '_') {
      up = true;
      continue;
    }
    c = up && *name >= 'a' && *name <= 'z' ? (char)(*name - 'a' + 'A') : *name;
    up = false;
    if (*key++ != c)
      return false;
  }
  return *key == '\0';
}

/* The field that key (keylen bytes) names, by proto name or JSON name, or NULL. */
static const ProtobufCFieldDescriptor *field_find(const ProtobufCMessageDescriptor *desc,
                                                  const char *key, size_t keylen)
{
  const ProtobufCFieldDescriptor *f;
  unsigned i;

  if (strlen(key) != keylen)
    return NULL;
  f = protobuf_c_message_descriptor_get_field_by_name(desc, key);
  for (i = 0; !f && i < desc->n_fields; i++)
    if (json_name_is(desc->fields[i].name, key))
      f = desc->fields + i;
  return f;
}

/* The other member of f's oneof that is already set in msg, or NULL. */
static const ProtobufCFieldDescriptor *oneof_rival(const ProtobufCMessage *msg,
                                                   const ProtobufCFieldDescriptor *f)
{
  uint32_t set;

  if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
    return NULL;
  set = *(const uint32_t *)pbjson_member(msg, f->quantifier_offset);
  return set ? protobuf_c_message_descriptor_get_field(msg->descriptor, set) : NULL;
}

/* Reads the member key: value of a message object into msg; seen marks the fields given so far,
 * to catch one given under both its names. */
static int read_member(struct pbjson_reader *r, ProtobufCMessage *msg, const char *key,
                       size_t keylen, const json_t *v, uint64_t *seen)
{
  const ProtobufCMessageDescriptor *desc = msg->descriptor;
  const ProtobufCFieldDescriptor *f = field_find(desc, key, keylen), *rival;
  unsigned depth = r->path.depth, i;

  if (!f && (r->flags & PBJSON_IGNORE_UNKNOWN))
    return 0;
  if (!f)
    return reader_fail_at(r, depth, CM_E_INVALID, "unknown field '%.*s'", shown_len(key, keylen),
                          key);
  i = (unsigned)(f - desc->fields);
  r->path.seg[depth].name = key;
  r->path.seg[depth].index = -1;
  if (seen[i / 64] >> (i % 64) & 1)
    return reader_fail_at(r, depth, CM_E_INVALID, "field '%s' given twice", f->name);
  /* Like json_format, a null member does not count: it only means "not this one". */
  rival = json_is_null(v) ? NULL : oneof_rival(msg, f);
  if (rival)
    return reader_fail_at(r, depth, CM_E_INVALID, "'%s' and '%s' are members of one oneof",
                          rival->name, f->name);
  seen[i / 64] |= (uint64_t)1 << (i % 64);
  return read_field(r, msg, f, v);
}

/* Fails unless every proto2 required field of desc is among the fields given (bits in seen):
 * protobuf-c cannot pack a message without them. */
static int check_required(struct pbjson_reader *r, const ProtobufCMessageDescriptor *desc,
                          const uint64_t *seen)
{
  unsigned i;

  for (i = 0; i < desc->n_fields; i++)
    if (desc->fields[i].label == PROTOBUF_C_LABEL_REQUIRED && !(seen[i / 64] >> (i % 64) & 1))
      return reader_fail_at(r, r->path.depth, CM_E_INVALID, "missing required field '%s'",
                            desc->fields[i].name);
  return 0;
}

static int read_message(struct pbjson_reader *r, const json_t *obj,
                        const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
  uint64_t seen_small[4] = {0}, *seen = seen_small;
  ProtobufCMessage *msg = NULL;
  const char *key;
  size_t keylen;
  json_t *v;
  int rc = 0;

  msg = cm_arena_alloc(r->arena, desc->sizeof_message);
  if (desc->n_fields > 256 && msg)
    seen = cm_arena_calloc(r->arena, (desc->n_fields + 63) / 64, sizeof(uint64_t));
  if (!msg || !seen)
    return reader_fail_at(r, r->path.depth, CM_E_NOMEM, "out of memory or arena limit");
  if (desc->message_init) {
    desc->message_init(msg);
  } else {
    memset(msg, 0, desc->sizeof_message);
    msg->descriptor = desc;
  }
  /* jansson's iteration API takes a non-const object; it does not change it. */
  json_object_keylen_foreach((json_t *)obj, key, keylen, v)
  {
    rc = read_member(r, msg, key, keylen, v, seen);
    if (rc)
      break;
  }
  if (rc == 0)
    rc = check_required(r, desc, seen);
  if (rc == 0)
    *out = msg;
  return rc;
}

int pbjson_to_message(const json_t *json, const ProtobufCMessageDescriptor *desc, unsigned flags,
                      cm_arena *arena, ProtobufCMessage **out, struct cm_error *err)
{
  struct pbjson_reader r;
  ProtobufCMessage *msg = NULL;
  int rc;

  if (out)
    *out = NULL;
  if (!json || !desc || !arena || !out || desc->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
    return cm_error_set(err, CM_E_INVALID, "pbjson_to_message: bad argument");
  r.arena = arena;
  r.flags = flags;
  r.err = err;
  r.path.depth = 0;
  if (!json_is_object(json))
    return reader_fail_at(&r, 0, CM_E_INVALID, "expected object, got %s",
                          json_is_array(json) ? "array" : "a scalar");
  rc = read_message(&r, json, desc, &msg);
  if (rc)
    return rc;
  *out = msg;
  cm_error_clear(err);
  return 0;
}

int pbjson_parse(const char *text, size_t len, const ProtobufCMessageDescriptor *desc,
                 unsigned flags, cm_arena *arena, ProtobufCMessage **out, struct cm_error *err)
{
  json_error_t jerr;
  json_t *root = NULL;
  int rc;

  if (out)
    *out = NULL;
  if (!text && len > 0)
    return cm_error_set(err, CM_E_INVALID, "pbjson_parse: NULL text");
  /* Duplicate keys would otherwise silently keep the last one. */
  root = json_loadb(text ? text : "", len, JSON_REJECT_DUPLICATES, &jerr);
  /* jansson 2.14 leaves the error empty when its lexer cannot get its first buffer. */
  if (!root && (json_error_code(&jerr) == json_error_out_of_memory || jerr.text[0] == '\0'))
    return cm_error_set(err, CM_E_NOMEM, "parsing JSON: out of memory");
  if (!root)
    return cm_error_set(err, CM_E_INVALID, "JSON syntax error at line %d column %d: %s", jerr.line,
                        jerr.column, jerr.text);
  rc = pbjson_to_message(root, desc, flags, arena, out, err);
  json_decref(root);
  return rc;
}
