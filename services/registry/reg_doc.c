/* Checking one registry document as read back from the store, before the registry indexes it:
 * the kind its key names, that it is a JSON object whose identity matches its key, and that it
 * converts to the protobuf message it is served as, so that a document that loads can never
 * make a reply fail. Pure: no registry state, no store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credito/v1/registry.pb-c.h"
#include "pbjson.h"
#include "reg_int.h"

#define SHOWN 40 /* widest identity quoted in an error */

/* The message each kind is served as (registry.proto). */
static const ProtobufCMessageDescriptor *const types[] = {
    [REG_DOC_EXPERIMENT] = &credito__v1__experiment__descriptor,
    [REG_DOC_RUN] = &credito__v1__run__descriptor,
    [REG_DOC_DATASET] = &credito__v1__dataset_version__descriptor,
    [REG_DOC_MODEL] = &credito__v1__registered_model__descriptor,
    [REG_DOC_VERSION] = &credito__v1__model_version__descriptor,
    [REG_DOC_EVENT] = &credito__v1__event__descriptor,
};

/* Splits what follows prefix in key into at most 3 '/'-separated segments of fewer than 256
 * bytes each (a name is at most 255). Returns how many, or 0 if key does not fit. */
static int key_segments(const char *key, const char *prefix, char seg[3][256])
{
  size_t plen = strlen(prefix);
  const char *p = key + plen;
  int n = 0;

  if (strncmp(key, prefix, plen) != 0)
    return 0;
  for (;;) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);

    if (n == 3 || len >= 256)
      return 0;
    memcpy(seg[n], p, len);
    seg[n++][len] = '\0';
    if (!slash)
      return n;
    p = slash + 1;
  }
}

/* Strips ".json" from s in place; false if s does not end with it. */
static bool strip_json(char *s)
{
  size_t n = strlen(s);

  if (n < 5 || strcmp(s + n - 5, ".json") != 0)
    return false;
  s[n - 5] = '\0';
  return true;
}

/* True if s is exactly n decimal digits. */
static bool all_digits(const char *s, size_t n)
{
  return strlen(s) == n && strspn(s, "0123456789") == n;
}

static bool md5_text(const char *s)
{
  return strlen(s) == 32 && strspn(s, "0123456789abcdef") == 32;
}

/* The kind of key, with its segments after the kind's prefix in seg (".json" stripped), or -1. */
static int key_kind(const char *key, char seg[3][256])
{
  int n = key_segments(key, "registry/experiments/", seg);

  if (n == 1 && strip_json(seg[0]))
    return REG_DOC_EXPERIMENT;
  n = key_segments(key, "registry/runs/", seg);
  if (n == 1 && strip_json(seg[0]))
    return REG_DOC_RUN;
  n = key_segments(key, "registry/datasets/", seg);
  if (n == 2 && strip_json(seg[1]))
    return REG_DOC_DATASET;
  n = key_segments(key, "registry/models/", seg);
  if (n == 2 && strcmp(seg[1], "model.json") == 0)
    return REG_DOC_MODEL;
  if (n == 3 && strcmp(seg[1], "versions") == 0 && strip_json(seg[2]))
    return REG_DOC_VERSION;
  n = key_segments(key, "registry/events/", seg);
  if (n == 1 && strip_json(seg[0]))
    return REG_DOC_EVENT;
  return -1;
}

int reg_doc_key_parse(const char *key, struct reg_doc_key *k, struct cm_error *err)
{
  char seg[3][256];
  int kind = key_kind(key, seg);
  bool named = kind == REG_DOC_DATASET || kind == REG_DOC_MODEL || kind == REG_DOC_VERSION;

  memset(k, 0, sizeof(*k));
  if (kind < 0)
    return cm_error_set(err, CM_E_CORRUPT, "not a registry document of a known kind");
  k->kind = (enum reg_doc_kind)kind;
  /* seg[0] is the id, run id, dataset or model name, or the event number */
  memcpy(k->name, seg[0], sizeof(k->name));
  if (kind == REG_DOC_DATASET && !md5_text(seg[1]))
    return cm_error_set(err, CM_E_CORRUPT, "bad key: '%.*s' is not a lower-case md5", SHOWN,
                        seg[1]);
  if (kind == REG_DOC_DATASET)
    memcpy(k->md5, seg[1], sizeof(k->md5));
  /* the exact forms REG_KEY_VERSION and REG_KEY_EVENT write, so one number has one key */
  if (kind == REG_DOC_VERSION && all_digits(seg[2], 10))
    k->number = strtoll(seg[2], NULL, 10);
  if (kind == REG_DOC_VERSION && k->number < 1)
    return cm_error_set(err, CM_E_CORRUPT, "bad key: '%.*s' is not a 10-digit version number",
                        SHOWN, seg[2]);
  if (kind == REG_DOC_EVENT && all_digits(seg[0], 20))
    k->number = (long long)strtoull(seg[0], NULL, 10);
  if (kind == REG_DOC_EVENT && k->number < 1)
    return cm_error_set(err, CM_E_CORRUPT, "bad key: '%.*s' is not a 20-digit event number",
                        SHOWN, seg[0]);
  if (registry_check_name(named ? "name" : "id", k->name, err))
    return cm_error_set(err, CM_E_CORRUPT, "bad key: %s", err->msg);
  return 0;
}

/* obj's string member key must equal want. */
static int identity_check(const json_t *obj, const char *key, const char *want,
                          struct cm_error *err)
{
  const char *have = reg_str(obj, key);

  if (!have[0])
    return cm_error_set(err, CM_E_CORRUPT, "missing %s", key);
  if (strcmp(have, want) != 0)
    return cm_error_set(err, CM_E_CORRUPT, "%s '%.*s' does not match the key's '%.*s'", key,
                        SHOWN, have, SHOWN, want);
  return 0;
}

/* A version number member (absent, a JSON integer or a decimal string, as reg_int reads it)
 * within 0..REG_VERSION_MAX; what names it in the error. */
static int version_check(const json_t *obj, const char *key, const char *what,
                         struct cm_error *err)
{
  const json_t *v = json_object_get(obj, key);
  long long n = reg_int(obj, key);

  if (v && !json_is_null(v) && !json_is_integer(v) && !json_is_string(v))
    return cm_error_set(err, CM_E_CORRUPT, "%s is not an integer", what);
  if (n < 0 || n > REG_VERSION_MAX)
    return cm_error_set(err, CM_E_CORRUPT, "%s %lld is out of range", what, n);
  return 0;
}

/* True if key is a content address, files/md5/<2 hex>/<30 hex> (REG_KEY_BLOB). */
static bool blob_key(const char *key)
{
  char md5[33];

  if (strncmp(key, "files/md5/", 10) != 0 || strlen(key) != 43 || key[12] != '/')
    return false;
  snprintf(md5, sizeof(md5), "%.2s%s", key + 10, key + 13);
  return md5_text(md5);
}

/* A run's artifacts are downloaded by their blob's key, which must be a content address. */
static int artifacts_check(const json_t *run, struct cm_error *err)
{
  const json_t *a;
  size_t i;

  json_array_foreach(json_object_get(run, "artifacts"), i, a) {
    const char *key = reg_str(json_object_get(a, "blob"), "key");

    if (!blob_key(key))
      return cm_error_set(err, CM_E_CORRUPT,
                          "artifact %zu: blob key '%.*s' is not a files/md5/ key", i, SHOWN + 10,
                          key);
  }
  return 0;
}

/* The identity the key gives, and the registry's own rules beyond the protobuf type. */
static int doc_check(const struct reg_doc_key *k, const json_t *doc, struct cm_error *err)
{
  const json_t *a;
  size_t i;
  int rc = 0;

  switch (k->kind) {
  case REG_DOC_EXPERIMENT:
    return identity_check(doc, "experiment_id", k->name, err);
  case REG_DOC_RUN:
    rc = identity_check(doc, "run_id", k->name, err);
    return rc ? rc : artifacts_check(doc, err);
  case REG_DOC_DATASET:
    rc = identity_check(doc, "name", k->name, err);
    if (!rc && !json_is_object(json_object_get(doc, "blob")))
      rc = cm_error_set(err, CM_E_CORRUPT, "missing blob");
    return rc ? rc : identity_check(json_object_get(doc, "blob"), "md5", k->md5, err);
  case REG_DOC_MODEL:
    rc = identity_check(doc, "name", k->name, err);
    if (!rc)
      rc = version_check(doc, "latest_version", "latest_version", err);
    json_array_foreach(json_object_get(doc, "aliases"), i, a)
      if (!rc)
        rc = version_check(a, "version", "an alias's version", err);
    return rc;
  case REG_DOC_VERSION:
    rc = identity_check(doc, "name", k->name, err);
    if (!rc && !json_object_get(doc, "version"))
      rc = cm_error_set(err, CM_E_CORRUPT, "missing version");
    if (!rc)
      rc = version_check(doc, "version", "version", err);
    if (!rc && reg_int(doc, "version") != k->number)
      rc = cm_error_set(err, CM_E_CORRUPT, "version %lld does not match the key's %lld",
                        reg_int(doc, "version"), k->number);
    return rc;
  case REG_DOC_EVENT:
    return identity_check(doc, "event_id", k->name, err);
  }
  return cm_error_set(err, CM_E_INTERNAL, "unknown document kind %d", (int)k->kind);
}

/* Members the registry appends to in place: absent or null becomes [] (proto3 JSON reads both
 * as an empty list, and jansson cannot append to a member that is not there). */
static int lists_fill(const struct reg_doc_key *k, json_t *doc, struct cm_error *err)
{
  static const char *const run_lists[] = {"params", "metrics", "tags", "inputs", "artifacts"};
  static const char *const model_lists[] = {"aliases"};
  const char *const *names = run_lists;
  size_t n = 0;

  if (k->kind == REG_DOC_RUN)
    n = sizeof(run_lists) / sizeof(run_lists[0]);
  if (k->kind == REG_DOC_MODEL) {
    names = model_lists;
    n = 1;
  }
  for (size_t i = 0; i < n; i++) {
    if (json_is_array(json_object_get(doc, names[i])))
      continue;
    if (json_object_set_new(doc, names[i], json_array()))
      return cm_error_set(err, CM_E_NOMEM, "out of memory");
  }
  return 0;
}

/* Converts doc to its message in a scratch arena: the same conversion every reply makes. */
static int doc_convert(const struct reg_doc_key *k, const json_t *doc, struct cm_error *err)
{
  const ProtobufCMessageDescriptor *type = types[k->kind];
  cm_arena *a = cm_arena_new(0); /* the caller caps the document's size */
  ProtobufCMessage *msg = NULL;
  int rc;

  if (!a)
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  rc = pbjson_to_message(doc, type, PBJSON_IGNORE_UNKNOWN, a, &msg, err);
  cm_arena_free(a);
  if (rc == CM_E_NOMEM)
    return rc;
  if (rc)
    return cm_error_set(err, CM_E_CORRUPT, "not a %s: %s", type->name, err->msg);
  return 0;
}

int reg_doc_parse(const char *key, const char *text, size_t len, struct reg_doc_key *k,
                  json_t **doc, struct cm_error *err)
{
  struct reg_doc_key mine;
  json_error_t jerr;
  json_t *d = NULL;
  int rc;

  if (!k)
    k = &mine;
  *doc = NULL;
  rc = reg_doc_key_parse(key, k, err);
  if (rc)
    return rc;
  d = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!d && json_error_code(&jerr) == json_error_out_of_memory)
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  if (!d)
    return cm_error_set(err, CM_E_CORRUPT, "not JSON: line %d column %d: %s", jerr.line,
                        jerr.column, jerr.text);
  if (!json_is_object(d))
    rc = cm_error_set(err, CM_E_CORRUPT, "not a JSON object");
  if (!rc)
    rc = doc_convert(k, d, err);
  if (!rc)
    rc = doc_check(k, d, err);
  if (!rc)
    rc = lists_fill(k, d, err);
  if (rc) {
    json_decref(d);
    return rc;
  }
  *doc = d;
  return 0;
}
