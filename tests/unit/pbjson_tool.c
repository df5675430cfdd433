/* pbjson_tool: a line-oriented driver of common/pbjson for the interop test, which checks it
 * against Python's json_format. One request per input line, one answer per output line:
 *   to-pb <type> <flags> <json>    ->  ok <hex of the packed message>
 *   to-json <type> <flags> <hex>   ->  ok <compact JSON>
 * or "err <CM code name> <message>". <type> is a full proto name (credito.v1.Run), <flags> the
 * PBJSON_* bits in decimal. Exits 0 at end of input, 2 on a malformed request. */
#include <stdio.h>
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

/* The types the interop test converts. */
static const ProtobufCMessageDescriptor *const types[] = {
    &credito__v1__metric__descriptor,
    &credito__v1__feature_spec__descriptor,
    &credito__v1__schema__descriptor,
    &credito__v1__model_ref__descriptor,
    &credito__v1__error_status__descriptor,
    &credito__v1__bad_request__descriptor,
    &credito__v1__run__descriptor,
    &credito__v1__upload_artifact_request__descriptor,
    &credito__v1__download_artifact_response__descriptor,
    &credito__v1__dataset_version__descriptor,
    &credito__v1__model_version__descriptor,
    &credito__v1__model_event__descriptor,
    &credito__v1__get_lineage_response__descriptor,
    &credito__v1__list_events_response__descriptor,
    &credito__v1__predict_request__descriptor,
    &credito__v1__predict_response__descriptor,
    &credito__v1__predict_batch_request__descriptor,
    &credito__v1__predict_batch_response__descriptor,
    &credito__v1__get_model_info_response__descriptor,
    &credito__v1__train_request__descriptor,
    &credito__v1__train_event__descriptor,
    &credito__v1__model_artifact__descriptor,
    &credito__test__v1__echo_request__descriptor,
    &credito__test__v1__echo_response__descriptor,
    &credito__test__v1__sum_response__descriptor,
};

static const ProtobufCMessageDescriptor *type_find(const char *name)
{
  size_t i;

  for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
    if (strcmp(types[i]->name, name) == 0)
      return types[i];
  return NULL;
}

/* Prints the packed form of msg as hex. */
static int print_packed(cm_arena *a, const ProtobufCMessage *msg)
{
  size_t n = protobuf_c_message_get_packed_size(msg), i;
  uint8_t *buf = cm_arena_alloc(a, n);

  if (!buf)
    return CM_E_NOMEM;
  protobuf_c_message_pack(msg, buf);
  fputs("ok ", stdout);
  for (i = 0; i < n; i++)
    printf("%02x", buf[i]);
  putchar('\n');
  return 0;
}

/* The value of hex digit c (already checked to be one). */
static unsigned hex_digit(char c)
{
  return c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

/* Decodes the hex text into the arena; NULL when it is not hex. */
static uint8_t *hex_decode(cm_arena *a, const char *hex, size_t *len)
{
  size_t n = strlen(hex), i;
  uint8_t *out;

  if (n % 2 || strspn(hex, "0123456789abcdefABCDEF") != n)
    return NULL;
  out = cm_arena_alloc(a, n / 2 + 1);
  for (i = 0; out && i < n / 2; i++)
    out[i] = (uint8_t)(hex_digit(hex[2 * i]) << 4 | hex_digit(hex[2 * i + 1]));
  *len = n / 2;
  return out;
}

/* Answers one request: verb, type, flags and the rest of the line. */
static int serve(cm_arena *a, const char *verb, const ProtobufCMessageDescriptor *d, unsigned flags,
                 const char *arg, struct cm_error *err)
{
  ProtobufCMessage *msg = NULL;
  const uint8_t *wire;
  char *text;
  size_t len = 0;
  int rc;

  if (strcmp(verb, "to-pb") == 0) {
    rc = pbjson_parse(arg, strlen(arg), d, flags, a, &msg, err);
    return rc ? rc : print_packed(a, msg);
  }
  wire = hex_decode(a, arg, &len);
  if (wire)
    msg = protobuf_c_message_unpack(d, cm_arena_allocator(a), len, wire);
  if (!msg)
    return cm_error_set(err, CM_E_INVALID, "bad wire bytes");
  text = pbjson_dump(msg, flags, err);
  if (!text)
    return err->code;
  printf("ok %s\n", text);
  cm_free(text);
  return 0;
}

int main(void)
{
  const ProtobufCMessageDescriptor *d;
  char *line = NULL, *verb, *type, *flags, *arg, *save = NULL;
  size_t cap = 0;
  ssize_t n;
  struct cm_error err;
  cm_arena *a;
  int rc;

  for (;;) {
    n = getline(&line, &cap, stdin);
    if (n <= 0)
      break;
    if (line[n - 1] == '\n')
      line[n - 1] = '\0';
    verb = strtok_r(line, " ", &save);
    type = strtok_r(NULL, " ", &save);
    flags = strtok_r(NULL, " ", &save);
    arg = strtok_r(NULL, "", &save);
    d = type ? type_find(type) : NULL;
    if (!verb || !d || !flags || (strcmp(verb, "to-pb") && strcmp(verb, "to-json"))) {
      fprintf(stderr, "pbjson_tool: bad request (verb type flags arg)\n");
      free(line);
      return 2;
    }
    a = cm_arena_new(0);
    rc = a ? serve(a, verb, d, (unsigned)strtoul(flags, NULL, 10), arg ? arg : "", &err)
           : cm_error_set(&err, CM_E_NOMEM, NULL);
    if (rc)
      printf("err %s %s\n", cm_code_name(rc), err.msg);
    fflush(stdout);
    cm_arena_free(a);
  }
  free(line);
  return 0;
}
