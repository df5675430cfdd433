/* Fuzz target for common/pbjson. The first byte picks the message type (byte % 8, see types[])
 * and the flags ((byte / 8) & 3: 1 emit defaults, 2 ignore unknown), so '@'..'G' are the types
 * without flags, 'H'.. with EMIT_DEFAULTS, 'P'.. with IGNORE_UNKNOWN; the rest is JSON text.
 * Whatever parses must pass protobuf_c_message_check, pack, and survive the trip back:
 * message -> JSON -> message packs to the same bytes (abort otherwise). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "err.h"
#include "mem.h"
#include "pbjson.h"

#include "credito/test/v1/echo.pb-c.h"
#include "credito/v1/common.pb-c.h"
#include "credito/v1/model.pb-c.h"
#include "credito/v1/predictor.pb-c.h"
#include "credito/v1/registry.pb-c.h"
#include "credito/v1/trainer.pb-c.h"
#include "google/protobuf/descriptor.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every scalar type, oneofs, nesting, proto2 presence and a recursive type between them. */
static const ProtobufCMessageDescriptor *const types[] = {
    &credito__v1__predict_request__descriptor,
    &credito__v1__predict_batch_response__descriptor,
    &credito__v1__run__descriptor,
    &credito__v1__upload_artifact_request__descriptor,
    &credito__v1__train_request__descriptor,
    &credito__v1__model_artifact__descriptor,
    &credito__test__v1__echo_request__descriptor,
    &google__protobuf__descriptor_proto__descriptor,
};

#define N_TYPES (sizeof(types) / sizeof(types[0]))

/* Packs msg into the arena; *len gets the size. Aborts on what must not happen. */
static uint8_t *pack(cm_arena *a, const ProtobufCMessage *msg, size_t *len)
{
  uint8_t *buf;

  if (!protobuf_c_message_check(msg))
    abort();
  *len = protobuf_c_message_get_packed_size(msg);
  buf = cm_arena_alloc(a, *len);
  if (buf && protobuf_c_message_pack(msg, buf) != *len)
    abort();
  return buf;
}

/* JSON -> message -> JSON -> message: the two messages must pack alike. */
static void round_trip(cm_arena *a, const ProtobufCMessageDescriptor *d, unsigned flags,
                       const ProtobufCMessage *msg)
{
  ProtobufCMessage *again = NULL;
  struct cm_error err;
  uint8_t *first, *second;
  size_t len1 = 0, len2 = 0;
  char *text;

  first = pack(a, msg, &len1);
  text = pbjson_dump(msg, flags & PBJSON_EMIT_DEFAULTS, &err);
  if (!text && err.code != CM_E_NOMEM)
    abort(); /* what the reader made, the writer must take */
  if (!text)
    return;
  if (pbjson_parse(text, strlen(text), d, 0, a, &again, &err) != 0)
    abort();
  cm_free(text);
  second = pack(a, again, &len2);
  /* With defaults emitted, proto2 fields come back present: compare only for proto3. */
  if ((flags & PBJSON_EMIT_DEFAULTS) && d == &google__protobuf__descriptor_proto__descriptor)
    return;
  if (first && second && (len1 != len2 || memcmp(first, second, len1) != 0))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const ProtobufCMessageDescriptor *d;
  ProtobufCMessage *msg = NULL;
  struct cm_error err;
  unsigned flags;
  cm_arena *a;

  if (size < 1)
    return 0;
  d = types[data[0] % N_TYPES];
  flags = (data[0] / N_TYPES) & (PBJSON_IGNORE_UNKNOWN | PBJSON_EMIT_DEFAULTS);
  /* A cap like a server's, so giant inputs test the limit rather than the machine. */
  a = cm_arena_new(1 << 20);
  if (!a)
    return 0;
  if (pbjson_parse((const char *)data + 1, size - 1, d, flags & PBJSON_IGNORE_UNKNOWN, a, &msg,
                   &err) == 0)
    round_trip(a, d, flags, msg);
  else if (err.code != CM_E_INVALID && err.code != CM_E_NOMEM)
    abort();
  cm_arena_free(a);
  return 0;
}
