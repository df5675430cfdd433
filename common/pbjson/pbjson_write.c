/* pbjson writer: protobuf-c message -> jansson tree, walking the descriptor. Presence follows
 * protobuf_c_message_pack, so the JSON holds exactly what the wire form would carry. */
#include "pbjson_int.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "mem.h"

/* State of one conversion. */
struct pbjson_writer {
  unsigned flags;          /* PBJSON_EMIT_DEFAULTS or 0 */
  struct cm_error *err;    /* caller's, may be NULL */
  struct pbjson_path path; /* where we are, for errors */
};

static int write_message(struct pbjson_writer *w, const ProtobufCMessage *msg, json_t **out);

_Static_assert(PBJSON_MAX_DEPTH == 64, "the depth error below names 64");

/* Fails with code, the message naming the path of the first nseg segments. */
static int writer_fail_at(struct pbjson_writer *w, unsigned nseg, int code, const char *what)
{
  char path[PBJSON_PATH_MAX];

  pbjson_path_render(&w->path, nseg, path);
  return cm_error_set(w->err, code, "%s at %s", what, path);
}

/* Fails with code, the message naming the field being converted. */
static int writer_fail(struct pbjson_writer *w, int code, const char *what)
{
  return writer_fail_at(w, w->path.depth + 1, code, what);
}

/* Converts the message field at m one level down. */
static int write_submessage(struct pbjson_writer *w, const void *m, json_t **out)
{
  const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)m;
  int rc;

  if (!sub)
    return writer_fail(w, CM_E_INVALID, "NULL message");
  if (w->path.depth + 1 >= PBJSON_MAX_DEPTH)
    return writer_fail(w, CM_E_INVALID, "nesting deeper than 64");
  w->path.depth++;
  rc = write_message(w, sub, out);
  w->path.depth--;
  return rc;
}

/* True when the packed form of a proto3 singular field would omit this value. */
static bool value_is_zero(const ProtobufCFieldDescriptor *f, const void *m)
{
  switch (f->type) {
  case PROTOBUF_C_TYPE_BOOL:
    return *(const protobuf_c_boolean *)m == 0;
  case PROTOBUF_C_TYPE_FLOAT:
    return *(const float *)m == 0;
  case PROTOBUF_C_TYPE_DOUBLE:
    return *(const double *)m == 0;
  case PROTOBUF_C_TYPE_STRING:
    return *(const char *const *)m == NULL || **(const char *const *)m == '\0';
  case PROTOBUF_C_TYPE_BYTES:
    return ((const ProtobufCBinaryData *)m)->len == 0;
  case PROTOBUF_C_TYPE_MESSAGE:
    return *(const void *const *)m == NULL;
  default:
    return pbjson_type_size(f->type) == 8 ? *(const uint64_t *)m == 0 : *(const uint32_t *)m == 0;
  }
}

/* Whether field f of msg goes into the JSON, by the rules of protobuf_c_message_pack plus
 * PBJSON_EMIT_DEFAULTS. */
static bool field_emitted(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
                          unsigned flags)
{
  const void *m = pbjson_member(msg, f->offset);
  const void *q = pbjson_member(msg, f->quantifier_offset);
  bool pointer = f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE;
  bool defaults = (flags & PBJSON_EMIT_DEFAULTS) != 0;

  if (f->label == PROTOBUF_C_LABEL_REPEATED)
    return *(const size_t *)q > 0 || defaults;
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
    if (*(const uint32_t *)q != f->id)
      return false;
    return !pointer ||
           (*(const void *const *)m != NULL && *(const void *const *)m != f->default_value);
  }
  if (f->type == PROTOBUF_C_TYPE_MESSAGE)
    return *(const void *const *)m != NULL;
  if (f->label == PROTOBUF_C_LABEL_REQUIRED || defaults)
    return true;
  if (f->label == PROTOBUF_C_LABEL_OPTIONAL)
    return pointer ? *(const void *const *)m != NULL && *(const void *const *)m != f->default_value
                   : *(const protobuf_c_boolean *)q != 0;
  return !value_is_zero(f, m);
}

/* A real, or the proto3 JSON string for NaN and the infinities (json_real refuses them). */
static json_t *write_real(double d)
{
  if (isnan(d))
    return json_string("NaN");
  if (isinf(d))
    return json_string(d > 0 ? "Infinity" : "-Infinity");
  return json_real(d);
}

/* A uint64 as an integer, or as a decimal string above what json_int_t holds. */
static json_t *write_u64(uint64_t v)
{
  char text[24];

  if (v <= (uint64_t)LLONG_MAX)
    return json_integer((json_int_t)v);
  snprintf(text, sizeof(text), "%llu", (unsigned long long)v);
  return json_string(text);
}

static json_t *write_enum(const ProtobufCFieldDescriptor *f, int v)
{
  const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);

  return ev ? json_string(ev->name) : json_integer(v);
}

static int write_string(struct pbjson_writer *w, const char *s, json_t **out)
{
  size_t n = s ? strlen(s) : 0;

  if (!pbjson_utf8_valid(s, n))
    return writer_fail(w, CM_E_INVALID, "string is not valid UTF-8");
  *out = json_stringn(n ? s : "", n);
  return 0;
}

static int write_bytes(struct pbjson_writer *w, const ProtobufCBinaryData *b, json_t **out)
{
  size_t n = pbjson_base64_len(b->len);
  char *text = NULL;

  if (b->len > (SIZE_MAX - 1) / 4 * 3 - 2)
    return writer_fail(w, CM_E_NOMEM, "bytes too long");
  text = cm_malloc(n + 1);
  if (!text)
    return 0; /* *out stays NULL: out of memory */
  pbjson_base64_encode(b->data, b->len, text);
  *out = json_stringn(text, n);
  cm_free(text);
  return 0;
}

/* Converts the one value at m, of f's type, into *out. Returns 0 with *out NULL when jansson ran
 * out of memory, so callers need one check. */
static int write_value(struct pbjson_writer *w, const ProtobufCFieldDescriptor *f, const void *m,
                       json_t **out)
{
  *out = NULL;
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    *out = json_integer(*(const int32_t *)m);
    return 0;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    *out = json_integer(*(const uint32_t *)m);
    return 0;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    *out = json_integer(*(const int64_t *)m);
    return 0;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    *out = write_u64(*(const uint64_t *)m);
    return 0;
  case PROTOBUF_C_TYPE_FLOAT:
    *out = write_real(*(const float *)m);
    return 0;
  case PROTOBUF_C_TYPE_DOUBLE:
    *out = write_real(*(const double *)m);
    return 0;
  case PROTOBUF_C_TYPE_BOOL:
    *out = json_boolean(*(const protobuf_c_boolean *)m);
    return 0;
  case PROTOBUF_C_TYPE_ENUM:
    *out = write_enum(f, *(const int *)m);
    return 0;
  case PROTOBUF_C_TYPE_STRING:
    return write_string(w, *(const char *const *)m, out);
  case PROTOBUF_C_TYPE_BYTES:
    return write_bytes(w, m, out);
  case PROTOBUF_C_TYPE_MESSAGE:
    return write_submessage(w, m, out);
  }
  return writer_fail(w, CM_E_INVALID, "unknown field type");
}

static int write_repeated(struct pbjson_writer *w, const ProtobufCMessage *msg,
                          const ProtobufCFieldDescriptor *f, json_t **out)
{
  size_t n = *(const size_t *)pbjson_member(msg, f->quantifier_offset);
  const char *arr = *(const char *const *)pbjson_member(msg, f->offset);
  size_t size = pbjson_type_size(f->type), i;
  json_t *list = NULL, *v = NULL;
  int rc = 0;

  list = json_array();
  if (!list) {
    rc = writer_fail(w, CM_E_NOMEM, "out of memory");
    goto out;
  }
  for (i = 0; i < n; i++) {
    w->path.seg[w->path.depth].index = (long)i;
    rc = write_value(w, f, arr + i * size, &v);
    if (rc)
      goto out;
    /* json_array_append_new takes v even when it fails. */
    if (!v || json_array_append_new(list, v)) {
      rc = writer_fail(w, CM_E_NOMEM, "out of memory");
      goto out;
    }
  }
out:
  if (rc) {
    json_decref(list);
    list = NULL;
  }
  *out = list;
  return rc;
}

/* Adds field f of msg to obj if it is emitted. */
static int write_field(struct pbjson_writer *w, const ProtobufCMessage *msg,
                       const ProtobufCFieldDescriptor *f, json_t *obj)
{
  json_t *v = NULL;
  int rc;

  if (!field_emitted(msg, f, w->flags))
    return 0;
  w->path.seg[w->path.depth].name = f->name;
  w->path.seg[w->path.depth].index = -1;
  if (f->label == PROTOBUF_C_LABEL_REPEATED)
    rc = write_repeated(w, msg, f, &v);
  else
    rc = write_value(w, f, pbjson_member(msg, f->offset), &v);
  if (rc)
    return rc;
  /* json_object_set_new takes v even when it fails. */
  if (!v || json_object_set_new_nocheck(obj, f->name, v))
    return writer_fail(w, CM_E_NOMEM, "out of memory");
  return 0;
}

static int write_message(struct pbjson_writer *w, const ProtobufCMessage *msg, json_t **out)
{
  const ProtobufCMessageDescriptor *desc = msg->descriptor;
  json_t *obj = NULL;
  unsigned i;
  int rc = 0;

  *out = NULL;
  if (!desc || desc->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC) {
    rc = writer_fail_at(w, w->path.depth, CM_E_INVALID, "not a protobuf-c message");
    goto out;
  }
  obj = json_object();
  if (!obj) {
    rc = writer_fail_at(w, w->path.depth, CM_E_NOMEM, "out of memory");
    goto out;
  }
  for (i = 0; i < desc->n_fields && rc == 0; i++)
    rc = write_field(w, msg, desc->fields + i, obj);
out:
  if (rc)
    json_decref(obj);
  else
    *out = obj;
  return rc;
}

json_t *pbjson_from_message(const ProtobufCMessage *msg, unsigned flags, struct cm_error *err)
{
  struct pbjson_writer w;
  json_t *obj = NULL;

  w.flags = flags;
  w.err = err;
  w.path.depth = 0;
  if (!msg) {
    cm_error_set(err, CM_E_INVALID, "NULL message");
    return NULL;
  }
  if (write_message(&w, msg, &obj) == 0)
    cm_error_clear(err);
  return obj;
}

/* Collects json_dump_callback's output; records why it stopped. */
struct dump_sink {
  struct cm_buf buf; /* the text so far */
  int rc;            /* first cm_buf_add failure */
};

static int dump_add(const char *text, size_t n, void *data)
{
  struct dump_sink *sink = data;

  sink->rc = cm_buf_add(&sink->buf, text, n);
  return sink->rc ? -1 : 0;
}

char *pbjson_dump(const ProtobufCMessage *msg, unsigned flags, struct cm_error *err)
{
  struct dump_sink sink;
  json_t *obj = NULL;
  char *text = NULL;

  cm_buf_init(&sink.buf, SIZE_MAX - 1);
  sink.rc = 0;
  obj = pbjson_from_message(msg, flags, err);
  if (!obj)
    goto out;
  if (json_dump_callback(obj, dump_add, &sink, JSON_COMPACT) != 0) {
    cm_error_set(err, sink.rc ? sink.rc : CM_E_NOMEM, "rendering JSON: %s",
                 cm_code_text(sink.rc ? sink.rc : CM_E_NOMEM));
    goto out;
  }
  text = cm_buf_take(&sink.buf, NULL);
  if (!text)
    cm_error_set(err, CM_E_NOMEM, "rendering JSON: out of memory");
out:
  cm_buf_cleanup(&sink.buf);
  json_decref(obj);
  return text;
}
