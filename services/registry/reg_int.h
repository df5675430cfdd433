/* Inside the registry: the state, the store layout, and helpers shared by the operation files
 * (reg_core.c: load, persist, audit, watch; reg_doc.c: checking a document read back from the
 * store; reg_runs.c: experiments and runs; reg_models.c: datasets, models, versions, aliases,
 * lineage, events). */
#ifndef CREDITO_REG_INT_H
#define CREDITO_REG_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "registry.h"

/* Store layout: metadata documents under registry/, bytes under files/md5/ (DVC 3's layout). */
#define REG_KEY_EXPERIMENT "registry/experiments/%s.json"
#define REG_KEY_RUN "registry/runs/%s.json"
#define REG_KEY_DATASET "registry/datasets/%s/%s.json"
#define REG_KEY_MODEL "registry/models/%s/model.json"
#define REG_KEY_VERSION "registry/models/%s/versions/%010lld.json"
#define REG_KEY_EVENT "registry/events/%020llu.json"
#define REG_KEY_BLOB "files/md5/%.2s/%s"

#define REG_PAGE_DEFAULT 100
#define REG_PAGE_MAX 1000
#define REG_DOC_MAX (64u * 1024 * 1024) /* a metadata document read at load */
#define REG_VERSION_MAX 9999999999LL    /* the highest version number REG_KEY_VERSION can name */

struct reg_watch {
  long id;                 /* from registry_watch */
  char *name;              /* model name */
  char *alias;             /* NULL: every alias */
  registry_watch_fn fn;
  void *ctx;
  struct reg_watch *next;
};

struct registry {
  store *st;                   /* borrowed */
  struct registry_opts opts;   /* copy */
  pthread_rwlock_t lock;       /* readers share, a writer holds it across its store writes */
  json_t *experiments;         /* experiment_id -> Experiment */
  json_t *runs;                /* run_id -> Run (params, metrics, tags, inputs, artifacts) */
  json_t *datasets;            /* name -> md5 -> DatasetVersion */
  json_t *models;              /* name -> {"model": RegisteredModel, "versions": [ModelVersion]},
                                * versions in order; a number up to the model's latest_version
                                * that has no entry was missing or corrupt in the store */
  json_t *events;              /* the audit log, oldest first */
  uint64_t event_seq;          /* the last audit event's number */
  atomic_bool ready;           /* a load succeeded */
  pthread_mutex_t load_mu;     /* guards load_err */
  struct cm_error load_err;    /* why the last load failed */
  struct reg_watch *watches;   /* guarded by lock (written with it held for writing) */
  long next_watch_id;
};

/* Milliseconds since the epoch. */
int64_t reg_now_ms(void);

/* A new random 32-hex-digit id into out[33]. */
int reg_new_id(char out[33], struct cm_error *err);

/* Writes doc as readable JSON at the key printed from fmt. */
int reg_put_doc(registry *r, const json_t *doc, struct cm_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Appends an audit event (caller holds the write lock). detail may be NULL (borrowed). */
int reg_audit(registry *r, const char *caller, const char *action, const char *subject,
              const json_t *detail, struct cm_error *err);

/* String member of obj, or "" when absent or not a string. */
const char *reg_str(const json_t *obj, const char *key);

/* Integer member (JSON integer or decimal string), or 0. */
long long reg_int(const json_t *obj, const char *key);

/* Pages through items (an array of objects in order, taken: freed here, and NULL stands for a
 * failed allocation): from req's page_size and page_token (the index to start at, as decimal
 * text) makes *resp = {list_key: the page, "next_page_token" when more remain}. */
int reg_page(const json_t *req, json_t *items, const char *list_key, json_t **resp,
             struct cm_error *err);

/* Sends ev (borrowed) to the watchers of its model and alias. Caller holds the lock. */
void reg_watch_notify(registry *r, const json_t *ev);

/* The latest point of each metric key of a run's history (a new array). */
json_t *reg_metrics_latest(const json_t *history);

/* The id of the last audit event, as "%020llu" text, into out[24]. */
void reg_last_event_id(const registry *r, char out[24]);

/* A model version as served: the stored version with its current aliases (new reference). */
json_t *reg_version_view(const json_t *model_entry, long long version);

/* Operations (registry_op_fn) by file. */
int reg_op_create_experiment(registry *, const json_t *, const char *, json_t **, struct cm_error *);
int reg_op_get_experiment(registry *, const json_t *, const char *, json_t **, struct cm_error *);
int reg_op_list_experiments(registry *, const json_t *, const char *, json_t **, struct cm_error *);
int reg_op_create_run(registry *, const json_t *, const char *, json_t **, struct cm_error *);
int reg_op_get_run(registry *, const json_t *, const char *, json_t **, struct cm_error *);
int reg_op_list_runs(registry *, const json_t *, const char *, json_t **, struct cm_error *);
int reg_op_update_run(registry *, const json_t *, const char *, json_t **, struct cm_error *);
int reg_op_log_params(registry *, const json_t *, const char *, json_t **, struct cm_error *);
int reg_op_log_metrics(registry *, const json_t *, const char *, json_t **, struct cm_error *);
int reg_op_set_tags(registry *, const json_t *, const char *, json_t **, struct cm_error *);
int reg_op_log_inputs(registry *, const json_t *, const char *, json_t **, struct cm_error *);
int reg_op_create_dataset_version(registry *, const json_t *, const char *, json_t **,
                                  struct cm_error *);
int reg_op_get_dataset_version(registry *, const json_t *, const char *, json_t **,
                               struct cm_error *);
int reg_op_list_dataset_versions(registry *, const json_t *, const char *, json_t **,
                                 struct cm_error *);
int reg_op_create_registered_model(registry *, const json_t *, const char *, json_t **,
                                   struct cm_error *);
int reg_op_get_registered_model(registry *, const json_t *, const char *, json_t **,
                                struct cm_error *);
int reg_op_list_registered_models(registry *, const json_t *, const char *, json_t **,
                                  struct cm_error *);
int reg_op_create_model_version(registry *, const json_t *, const char *, json_t **,
                                struct cm_error *);
int reg_op_get_model_version(registry *, const json_t *, const char *, json_t **,
                             struct cm_error *);
int reg_op_list_model_versions(registry *, const json_t *, const char *, json_t **,
                               struct cm_error *);
int reg_op_resolve_model(registry *, const json_t *, const char *, json_t **, struct cm_error *);
int reg_op_set_alias(registry *, const json_t *, const char *, json_t **, struct cm_error *);
int reg_op_delete_alias(registry *, const json_t *, const char *, json_t **, struct cm_error *);
int reg_op_get_lineage(registry *, const json_t *, const char *, json_t **, struct cm_error *);
int reg_op_list_events(registry *, const json_t *, const char *, json_t **, struct cm_error *);

/* The kind of a registry document, from its key. */
enum reg_doc_kind {
  REG_DOC_EXPERIMENT, /* registry/experiments/<id>.json: an Experiment */
  REG_DOC_RUN,        /* registry/runs/<run_id>.json: a Run */
  REG_DOC_DATASET,    /* registry/datasets/<name>/<md5>.json: a DatasetVersion */
  REG_DOC_MODEL,      /* registry/models/<name>/model.json: a RegisteredModel */
  REG_DOC_VERSION,    /* registry/models/<name>/versions/<10 digits>.json: a ModelVersion */
  REG_DOC_EVENT,      /* registry/events/<20 digits>.json: an audit Event */
};

/* What a document's key says about it. */
struct reg_doc_key {
  enum reg_doc_kind kind;
  char name[256];   /* experiment or run id, dataset or model name, or the event number's text */
  char md5[33];     /* a dataset version's md5 */
  long long number; /* a model version's or an event's number (from 1) */
};

/* Takes a registry document's key (borrowed) apart into *k. Returns 0, or CM_E_CORRUPT with err
 * saying why: not a key of a known kind ("registry/notes/x.json", a key without ".json"), or a
 * kind whose name, md5 or number segment breaks the rules the registry writes by (names as
 * registry_check_name, versions as exactly 10 digits from 1, events as 20). */
int reg_doc_key_parse(const char *key, struct reg_doc_key *k, struct cm_error *err);

/*
 * Checks the document found at key (borrowed), whose bytes are text[0..len) (borrowed, need not
 * be NUL-terminated; the caller caps len, REG_DOC_MAX at load). On success returns 0 and sets
 * *doc to a new JSON object that the caller decrefs: the document as the registry keeps it, with
 * the lists it appends to (a run's params, metrics, tags, inputs and artifacts, a model's
 * aliases) made [] when absent or null. k (may be NULL) gets the key's parts whenever the key
 * parsed, even if the document then fails.
 *
 * Fails with *doc NULL and err set: CM_E_CORRUPT naming what is wrong (the key, as
 * reg_doc_key_parse; "not JSON: line L column C: ..."; "not a JSON object"; "not a
 * credito.v1.Run: expected array at $.metrics": the document does not convert to the message it
 * is served as, the same conversion every reply makes, unknown members ignored; "missing run_id"
 * or "run_id 'x' does not match the key's 'y'"; a version number that is not an integer or out
 * of 0..REG_VERSION_MAX; a run artifact whose blob key is not a files/md5/ key), or CM_E_NOMEM.
 * Touches no registry and no store.
 */
int reg_doc_parse(const char *key, const char *text, size_t len, struct reg_doc_key *k,
                  json_t **doc, struct cm_error *err);

/* Files one document that reg_doc_parse accepted (doc borrowed; the state takes a reference).
 * Caller holds the write lock. Returns 0 or CM_E_NOMEM. */
int reg_load_doc(registry *r, const struct reg_doc_key *k, json_t *doc, struct cm_error *err);

/* Remembers a skipped document's number, so that nothing new is ever written over it: an event
 * number is never handed out again, and a version number stays taken (answering DATA_LOSS)
 * even if it was the model's highest. Caller holds the write lock. */
void reg_load_skipped(registry *r, const struct reg_doc_key *k);

/* After every document is in: orders each model's versions and sets its latest_version to the
 * highest number any of its documents names. Returns 0 or CM_E_NOMEM. */
int reg_load_finish(registry *r, struct cm_error *err);

#endif
