/* The registry's state and operations, apart from gRPC. Every record is a JSON document with the
 * proto field names (the same JSON that lives in the store, readable with awscli), indexed in
 * memory and written to the store before it becomes visible. At start the state is rebuilt from
 * the store, so a restart loses nothing. */
#ifndef CREDITO_REGISTRY_H
#define CREDITO_REGISTRY_H

#include <stdbool.h>

#include <jansson.h>

#include "err.h"
#include "store.h"

typedef struct registry registry;

struct registry_opts {
  uint64_t max_artifact;     /* bytes per uploaded artifact or dataset */
  const char *tmp_dir;       /* where uploads wait until their digest is known */
};

/* Creates an empty registry over st (borrowed; must outlive it). NULL with err on OOM. */
registry *registry_new(store *st, const struct registry_opts *opts, struct cm_error *err);

/* Frees r. NULL is fine. */
void registry_free(registry *r);

/* Rebuilds the state from the store: every document under registry/. A document that cannot be
 * read, or fails reg_doc_parse's checks (its key's kind, JSON, its identity, its conversion to
 * the message it is served as), is logged by key and skipped, and the load's summary names the
 * skipped keys; everything else is served, versions after a skipped one included. Returns 0, or
 * the store's error or CM_E_NOMEM (then the caller retries: nothing is served until a load
 * succeeds). */
int registry_load(registry *r, struct cm_error *err);

/* True once a load succeeded. */
bool registry_ready(const registry *r);

/* The error to answer while not ready: UNAVAILABLE (or PERMISSION_DENIED when the store refused
 * the credentials) with the last load failure, which names the store. Returns the code. */
int registry_not_ready(registry *r, struct cm_error *err);

/* The store (borrowed), for the streaming handlers. */
store *registry_store(registry *r);

/* The upload cap in bytes, and the folder uploads spool in. */
uint64_t registry_max_upload(const registry *r);
const char *registry_tmp_dir(const registry *r);

/* One unary operation. req is the request message as JSON (borrowed); on success *resp is a new
 * JSON object of the response message (caller decrefs). caller names who asked, for the audit
 * log. Returns 0 or a CM_E_* code with err set. */
typedef int (*registry_op_fn)(registry *r, const json_t *req, const char *caller, json_t **resp,
                              struct cm_error *err);

/* The operation for an RPC's short name ("GetRun"), or NULL for the streaming ones. */
registry_op_fn registry_op_find(const char *method);

/* Records a finished upload: for an artifact (run_id and path set) adds it to the run; for
 * dataset bytes (run_id NULL) only audits. blob is {"key","size","md5","sha256"} (borrowed).
 * *resp gets the Artifact or the Blob as JSON. */
int registry_blob_recorded(registry *r, const char *run_id, const char *path,
                           const char *content_type, const json_t *blob, const char *caller,
                           json_t **resp, struct cm_error *err);

/* Checks that run_id names a run (for an upload's header). */
int registry_run_exists(registry *r, const char *run_id, struct cm_error *err);

/* The blob of an artifact of a run (new reference), or CM_E_NOTFOUND. */
int registry_artifact_blob(registry *r, const char *run_id, const char *path, json_t **blob,
                           struct cm_error *err);

/* The size the registry recorded for the blob at key (borrowed): an artifact of any run, or a
 * dataset version's bytes. True with *size set, false if no record names that key. */
bool registry_blob_size(registry *r, const char *key, uint64_t *size);

/* Model events for WatchModel: fn(ctx, event) gets each ModelEvent as JSON (borrowed) of model
 * name (and alias, if not NULL/empty) from now on; the first call, made before this returns,
 * is a SNAPSHOT of the current state. Returns a watch id for registry_unwatch, or a negative
 * CM_E_* code. fn runs with a registry lock held: it must only queue. */
typedef void (*registry_watch_fn)(void *ctx, const json_t *event);
long registry_watch(registry *r, const char *name, const char *alias, registry_watch_fn fn,
                    void *ctx, struct cm_error *err);
void registry_unwatch(registry *r, long id);

/* Checks a user-given name: non-empty, at most 256 bytes, no "..", '/', or control characters. */
int registry_check_name(const char *what, const char *name, struct cm_error *err);

#endif
