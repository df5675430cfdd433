/* Fuzz target for the registry's metadata documents as read back from the store
 * (services/registry/reg_doc.c), and for serving what they load. Input: one byte picking the key
 * kind (byte % 8: '0' experiment, '1' run, '2' dataset, '3' model, '4' model version, '5' event,
 * '6' and '7' a whole key), then the key's variable part up to a newline ("<id>", "<name>/<md5>",
 * "<name>", "<name>/<10 digits>", "<20 digits>", or the key itself), then the document's bytes.
 * Every document is accepted or refused with CM_E_CORRUPT (CM_E_NOMEM aside); an accepted one is
 * loaded into an in-memory registry, and every read that succeeds on it must convert to its
 * reply's protobuf type, as the gRPC service converts it (abort otherwise). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "credito/v1/registry.pb-c.h"
#include "err.h"
#include "pbjson.h"
#include "reg_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEY_MAX 1024

/* Builds the store key from the kind byte and the key line; false if it does not fit. */
static bool key_build(uint8_t kind, const char *part, size_t n, char key[KEY_MAX])
{
  static const char *const fmt[] = {"registry/experiments/%.*s.json",
                                    "registry/runs/%.*s.json",
                                    "registry/datasets/%.*s.json",
                                    "registry/models/%.*s/model.json",
                                    NULL, /* versions: name/number */
                                    "registry/events/%.*s.json",
                                    "%.*s",
                                    "%.*s"};
  const char *slash = memchr(part, '/', n);
  int w;

  if (memchr(part, '\0', n))
    return false;
  if (fmt[kind % 8])
    w = snprintf(key, KEY_MAX, fmt[kind % 8], (int)n, part);
  else if (slash)
    w = snprintf(key, KEY_MAX, "registry/models/%.*s/versions/%.*s.json", (int)(slash - part),
                 part, (int)(n - (size_t)(slash - part) - 1), slash + 1);
  else
    return false;
  return w >= 0 && w < KEY_MAX;
}

/* A successful read must convert to its reply type (the service's reply_json). */
static void reply_check(const char *method, const json_t *resp)
{
  const ProtobufCMethodDescriptor *md =
      protobuf_c_service_descriptor_get_method_by_name(&credito__v1__registry__descriptor, method);
  cm_arena *a = cm_arena_new(0);
  ProtobufCMessage *msg = NULL;
  struct cm_error err;

  if (!md || !a)
    abort();
  if (pbjson_to_message(resp, md->output, PBJSON_IGNORE_UNKNOWN, a, &msg, &err) != 0 &&
      err.code != CM_E_NOMEM) {
    fprintf(stderr, "%s: a loaded document makes a bad reply: %s\n", method, err.msg);
    abort();
  }
  cm_arena_free(a);
}

/* Runs the read method with req (taken) and checks its reply. */
static void read_check(registry *r, const char *method, json_t *req)
{
  registry_op_fn op = registry_op_find(method);
  json_t *resp = NULL;
  struct cm_error err;
  int rc;

  if (!op)
    abort();
  if (!req)
    return;
  rc = op(r, req, "fuzz", &resp, &err);
  if (rc == 0)
    reply_check(method, resp);
  else if (rc != CM_E_NOTFOUND && rc != CM_E_CORRUPT && rc != CM_E_NOMEM && rc != CM_E_INVALID)
    abort();
  json_decref(resp);
  json_decref(req);
}

static void watch_check(void *ctx, const json_t *event)
{
  (void)ctx;
  reply_check("WatchModel", event);
}

/* Loads doc into a fresh registry and reads it back every way a client can. */
static void serve_check(const struct reg_doc_key *k, json_t *doc)
{
  struct registry_opts opts = {0};
  struct cm_error err;
  registry *r = registry_new(NULL, &opts, &err); /* the reads below never touch the store */
  const char *name = k->name;
  json_t *a;
  size_t i;

  if (!r)
    return;
  if (reg_load_doc(r, k, doc, &err) || reg_load_finish(r, &err)) {
    registry_free(r);
    return;
  }
  read_check(r, "ListExperiments", json_object());
  read_check(r, "GetExperiment", json_pack("{s:s}", "experiment_id", name));
  read_check(r, "ListRuns", json_object());
  read_check(r, "GetRun", json_pack("{s:s}", "run_id", name));
  read_check(r, "GetRun", json_pack("{s:s, s:b}", "run_id", name, "metric_history", 1));
  read_check(r, "ListDatasetVersions", json_object());
  read_check(r, "GetDatasetVersion", json_pack("{s:{s:s}}", "dataset", "name", name));
  read_check(r, "ListRegisteredModels", json_object());
  read_check(r, "GetRegisteredModel", json_pack("{s:s}", "name", name));
  read_check(r, "ListModelVersions", json_pack("{s:s}", "name", name));
  read_check(r, "ResolveModel", json_pack("{s:{s:s}}", "model", "name", name));
  read_check(r, "GetLineage", json_pack("{s:{s:s}}", "model", "name", name));
  if (k->number > 0)
    read_check(r, "GetModelVersion", json_pack("{s:s, s:I}", "name", name, "version",
                                               (json_int_t)k->number));
  json_array_foreach(json_object_get(doc, "aliases"), i, a)
    read_check(r, "ResolveModel", json_pack("{s:{s:s, s:s}}", "model", "name", name, "alias",
                                            reg_str(a, "alias")));
  read_check(r, "ListEvents", json_object());
  registry_unwatch(r, registry_watch(r, name, NULL, watch_check, NULL, &err));
  registry_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *text, *nl;
  char key[KEY_MAX];
  struct reg_doc_key k;
  struct cm_error err;
  json_t *doc = NULL;
  int rc;

  if (size < 1)
    return 0;
  text = (const char *)data + 1;
  nl = memchr(text, '\n', size - 1);
  if (!nl || !key_build(data[0], text, (size_t)(nl - text), key))
    return 0;
  rc = reg_doc_parse(key, nl + 1, size - (size_t)(nl + 1 - (const char *)data), &k, &doc, &err);
  if (rc == 0) {
    if (!json_is_object(doc))
      abort();
    serve_check(&k, doc);
  } else if (doc || (rc != CM_E_CORRUPT && rc != CM_E_NOMEM) || !err.msg[0]) {
    abort();
  }
  json_decref(doc);
  return 0;
}
