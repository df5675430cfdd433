/* Experiments and runs: a run's params (immutable once logged), metric history, tags, inputs and
 * artifacts, all in the run's one document, rewritten under the write lock so concurrent
 * writers lose nothing. */
#include <math.h>
#include <string.h>

#include "reg_int.h"

#define DEFAULT_EXPERIMENT "default"

/* Param, metric and tag keys follow the names' rules (common.proto). */
static int key_check(const char *what, const char *key, struct cm_error *err)
{
  return registry_check_name(what, key, err);
}

/* ---- experiments ---- */

static json_t *experiment_by_name(registry *r, const char *name)
{
  const char *id;
  json_t *e;

  json_object_foreach(r->experiments, id, e)
    if (strcmp(reg_str(e, "name"), name) == 0)
      return e;
  return NULL;
}

/* Creates an experiment (write lock held); *out borrowed from the state. */
static int experiment_create(registry *r, const char *name, const char *id, const char *caller,
                             json_t **out, struct cm_error *err)
{
  char fresh[33];
  json_t *e;
  int rc = 0;

  if (!id) {
    rc = reg_new_id(fresh, err);
    id = fresh;
  }
  e = rc ? NULL : json_pack("{s:s, s:s, s:I}", "experiment_id", id, "name", name, "created_ms",
                            (json_int_t)reg_now_ms());
  if (!rc && !e)
    rc = cm_error_set(err, CM_E_NOMEM, "out of memory");
  if (!rc)
    rc = reg_put_doc(r, e, err, REG_KEY_EXPERIMENT, id);
  if (!rc) {
    json_object_set(r->experiments, id, e);
    char subject[64];

    snprintf(subject, sizeof(subject), "experiments/%s", id);
    rc = reg_audit(r, caller, "experiment.create", subject, e, err);
  }
  *out = e;
  json_decref(e);
  return rc;
}

int reg_op_create_experiment(registry *r, const json_t *req, const char *caller, json_t **resp,
                             struct cm_error *err)
{
  const char *name = reg_str(req, "name");
  json_t *e = NULL;
  int rc = registry_check_name("experiment name", name, err);

  if (rc)
    return rc;
  pthread_rwlock_wrlock(&r->lock);
  e = experiment_by_name(r, name);
  if (e && !json_is_true(json_object_get(req, "exist_ok")))
    rc = cm_error_set(err, CM_E_EXISTS, "experiment '%s' already exists", name);
  else if (!e)
    rc = experiment_create(r, name, NULL, caller, &e, err);
  if (!rc)
    *resp = json_incref(e);
  pthread_rwlock_unlock(&r->lock);
  return rc;
}

int reg_op_get_experiment(registry *r, const json_t *req, const char *caller, json_t **resp,
                          struct cm_error *err)
{
  const char *id = reg_str(req, "experiment_id"), *name = reg_str(req, "name");
  json_t *e;
  int rc = 0;

  (void)caller;
  pthread_rwlock_rdlock(&r->lock);
  e = id[0] ? json_object_get(r->experiments, id) : experiment_by_name(r, name);
  if (e)
    *resp = json_incref(e);
  else
    rc = cm_error_set(err, CM_E_NOTFOUND, "no experiment '%s'", id[0] ? id : name);
  pthread_rwlock_unlock(&r->lock);
  return rc;
}

/* By time, then id: the same order before and after a restart, ties included. */
static int cmp_created(const void *a, const void *b)
{
  long long x = reg_int(*(json_t *const *)a, "created_ms");
  long long y = reg_int(*(json_t *const *)b, "created_ms");

  return x != y ? (x > y) - (x < y)
                : strcmp(reg_str(*(json_t *const *)a, "experiment_id"),
                         reg_str(*(json_t *const *)b, "experiment_id"));
}

static int cmp_started(const void *a, const void *b)
{
  long long x = reg_int(*(json_t *const *)a, "start_ms");
  long long y = reg_int(*(json_t *const *)b, "start_ms");

  return x != y ? (x > y) - (x < y)
                : strcmp(reg_str(*(json_t *const *)a, "run_id"),
                         reg_str(*(json_t *const *)b, "run_id"));
}

/* The objects of map as an array sorted by created_ms (newest first if desc). */
static json_t *sorted_values(const json_t *map, const char *time_key, bool desc)
{
  size_t n = json_object_size(map), i = 0;
  json_t **v = malloc((n ? n : 1) * sizeof(*v));
  json_t *arr = json_array();
  const char *k;
  json_t *x;

  if (!v || !arr) {
    free(v);
    json_decref(arr);
    return NULL;
  }
  json_object_foreach((json_t *)map, k, x)
    v[i++] = x;
  qsort(v, n, sizeof(*v), strcmp(time_key, "start_ms") == 0 ? cmp_started : cmp_created);
  for (i = 0; i < n; i++)
    json_array_append(arr, v[desc ? n - 1 - i : i]);
  free(v);
  return arr;
}

int reg_op_list_experiments(registry *r, const json_t *req, const char *caller, json_t **resp,
                            struct cm_error *err)
{
  int rc;

  (void)caller;
  pthread_rwlock_rdlock(&r->lock);
  rc = reg_page(req, sorted_values(r->experiments, "created_ms", false), "experiments", resp,
                err);
  pthread_rwlock_unlock(&r->lock);
  return rc;
}

/* ---- runs ---- */

int reg_op_create_run(registry *r, const json_t *req, const char *caller, json_t **resp,
                      struct cm_error *err)
{
  const char *exp = reg_str(req, "experiment_id");
  long long start = reg_int(req, "start_ms");
  json_t *run = NULL, *e, *tag;
  char id[33];
  size_t i;
  int rc = reg_new_id(id, err);

  json_array_foreach(json_object_get(req, "tags"), i, tag)
    if (!rc)
      rc = key_check("tag key", reg_str(tag, "key"), err);
  if (rc)
    return rc;
  pthread_rwlock_wrlock(&r->lock);
  if (!rc && !exp[0]) {
    e = json_object_get(r->experiments, DEFAULT_EXPERIMENT);
    if (!e)
      rc = experiment_create(r, DEFAULT_EXPERIMENT, DEFAULT_EXPERIMENT, caller, &e, err);
    exp = DEFAULT_EXPERIMENT;
  } else if (!rc && !json_object_get(r->experiments, exp)) {
    rc = cm_error_set(err, CM_E_NOTFOUND, "no experiment '%s'", exp);
  }
  if (!rc) {
    run = json_pack("{s:s, s:s, s:s, s:s, s:I, s:[], s:[], s:O, s:[], s:[]}", "run_id", id,
                    "experiment_id", exp, "run_name", reg_str(req, "run_name"), "status",
                    "RUN_STATUS_RUNNING", "start_ms", (json_int_t)(start ? start : reg_now_ms()),
                    "params", "metrics", "tags",
                    json_object_get(req, "tags") ? json_object_get(req, "tags") : json_null(),
                    "inputs", "artifacts");
    if (run && json_is_null(json_object_get(run, "tags")))
      json_object_set_new(run, "tags", json_array());
    rc = run ? reg_put_doc(r, run, err, REG_KEY_RUN, id)
             : cm_error_set(err, CM_E_NOMEM, "out of memory");
  }
  if (!rc) {
    json_object_set(r->runs, id, run);
    char subject[64];

    snprintf(subject, sizeof(subject), "runs/%s", id);
    rc = reg_audit(r, caller, "run.create", subject, NULL, err);
  }
  if (!rc)
    *resp = json_incref(run);
  pthread_rwlock_unlock(&r->lock);
  json_decref(run);
  return rc;
}

/* The latest point of each metric key (highest step, then latest time). */
json_t *reg_metrics_latest(const json_t *history)
{
  json_t *latest = json_object(), *out = json_array();
  size_t i;
  json_t *m;
  const char *k;

  json_array_foreach(history, i, m) {
    json_t *cur = json_object_get(latest, reg_str(m, "key"));

    if (!cur || reg_int(m, "step") > reg_int(cur, "step") ||
        (reg_int(m, "step") == reg_int(cur, "step") &&
         reg_int(m, "timestamp_ms") >= reg_int(cur, "timestamp_ms")))
      json_object_set(latest, reg_str(m, "key"), m);
  }
  json_object_foreach(latest, k, m)
    json_array_append(out, m);
  json_decref(latest);
  return out;
}

struct point {
  const json_t *m;
  size_t i; /* position in the history: equal points keep the order they were logged in */
};

static int cmp_point(const void *a, const void *b)
{
  const struct point *x = a, *y = b;
  int c = strcmp(reg_str(x->m, "key"), reg_str(y->m, "key"));
  long long s = reg_int(x->m, "step") - reg_int(y->m, "step");
  long long t = reg_int(x->m, "timestamp_ms") - reg_int(y->m, "timestamp_ms");

  if (c)
    return c;
  if (s)
    return (s > 0) - (s < 0);
  if (t)
    return (t > 0) - (t < 0);
  return (x->i > y->i) - (x->i < y->i);
}

/* Every point of a history, ordered by key, then step, then time (a new array). */
static json_t *metrics_sorted(const json_t *history)
{
  size_t n = json_array_size(history);
  struct point *v = malloc((n ? n : 1) * sizeof(*v));
  json_t *out = json_array();

  if (!v || !out) {
    free(v);
    json_decref(out);
    return NULL;
  }
  for (size_t i = 0; i < n; i++)
    v[i] = (struct point){json_array_get(history, i), i};
  qsort(v, n, sizeof(*v), cmp_point);
  for (size_t i = 0; i < n; i++)
    json_array_append(out, (json_t *)v[i].m);
  free(v);
  return out;
}

int reg_op_get_run(registry *r, const json_t *req, const char *caller, json_t **resp,
                   struct cm_error *err)
{
  const char *id = reg_str(req, "run_id");
  json_t *run, *out = NULL;
  int rc = 0;

  (void)caller;
  pthread_rwlock_rdlock(&r->lock);
  run = json_object_get(r->runs, id);
  if (!run) {
    rc = cm_error_set(err, CM_E_NOTFOUND, "unknown run '%s'", id);
  } else {
    out = json_copy(run);
    if (out && !json_is_true(json_object_get(req, "metric_history")))
      json_object_set_new(out, "metrics", reg_metrics_latest(json_object_get(run, "metrics")));
    else if (out)
      json_object_set_new(out, "metrics", metrics_sorted(json_object_get(run, "metrics")));
    if (!out)
      rc = cm_error_set(err, CM_E_NOMEM, "out of memory");
  }
  pthread_rwlock_unlock(&r->lock);
  *resp = out;
  return rc;
}

int reg_op_list_runs(registry *r, const json_t *req, const char *caller, json_t **resp,
                     struct cm_error *err)
{
  const char *exp = reg_str(req, "experiment_id"), *status = reg_str(req, "status");
  json_t *all, *picked = json_array(), *run;
  size_t i;
  int rc;

  (void)caller;
  pthread_rwlock_rdlock(&r->lock);
  all = sorted_values(r->runs, "start_ms", true);
  json_array_foreach(all, i, run) {
    if (exp[0] && strcmp(exp, reg_str(run, "experiment_id")) != 0)
      continue;
    if (status[0] && strcmp(status, "RUN_STATUS_UNSPECIFIED") != 0 &&
        strcmp(status, reg_str(run, "status")) != 0)
      continue;
    json_t *view = json_copy(run);

    json_object_set_new(view, "metrics", reg_metrics_latest(json_object_get(run, "metrics")));
    json_array_append_new(picked, view);
  }
  rc = reg_page(req, all ? picked : NULL, "runs", resp, err);
  if (!all)
    json_decref(picked);
  pthread_rwlock_unlock(&r->lock);
  json_decref(all);
  return rc;
}

/* A change to one run: fn edits a copy, which is written, then installed and audited. */
typedef int (*run_edit_fn)(registry *r, json_t *run, const json_t *req, struct cm_error *err);

static int run_change(registry *r, const json_t *req, const char *caller, const char *action,
                      run_edit_fn fn, json_t **resp, struct cm_error *err)
{
  const char *id = reg_str(req, "run_id");
  json_t *run, *copy = NULL;
  char subject[400];
  int rc = 0;

  if (strcmp(action, "artifact.upload") == 0)
    snprintf(subject, sizeof(subject), "runs/%s/artifacts/%s", id, reg_str(req, "path"));
  else
    snprintf(subject, sizeof(subject), "runs/%s", id);
  pthread_rwlock_wrlock(&r->lock);
  run = json_object_get(r->runs, id);
  if (!run)
    rc = cm_error_set(err, CM_E_NOTFOUND, "unknown run '%s'", id);
  if (!rc && !(copy = json_deep_copy(run)))
    rc = cm_error_set(err, CM_E_NOMEM, "out of memory");
  if (!rc)
    rc = fn(r, copy, req, err);
  if (!rc && json_equal(copy, run)) {
    /* nothing changed (a param or tag logged again with its value): no write, no event */
  } else if (!rc) {
    rc = reg_put_doc(r, copy, err, REG_KEY_RUN, id);
    if (!rc) {
      json_object_set(r->runs, id, copy);
      rc = reg_audit(r, caller, action, subject, json_object_get(req, "blob"), err);
    }
  }
  if (!rc)
    *resp = strcmp(action, "run.update") == 0 ? json_incref(copy) : json_object();
  pthread_rwlock_unlock(&r->lock);
  json_decref(copy);
  return rc;
}

static bool status_terminal(const char *s)
{
  return strcmp(s, "RUN_STATUS_FINISHED") == 0 || strcmp(s, "RUN_STATUS_FAILED") == 0 ||
         strcmp(s, "RUN_STATUS_KILLED") == 0;
}

static int edit_update(registry *r, json_t *run, const json_t *req, struct cm_error *err)
{
  (void)r;
  const char *status = reg_str(req, "status");
  long long end = reg_int(req, "end_ms");

  if (status[0] && strcmp(status, "RUN_STATUS_RUNNING") != 0 && !status_terminal(status))
    return cm_error_set(err, CM_E_INVALID, "status '%s' is not a run status", status);
  if (status_terminal(reg_str(run, "status")) && status[0] &&
      strcmp(status, reg_str(run, "status")) != 0)
    return cm_error_set(err, CM_E_FAILED_PRECONDITION, "run already ended as %s",
                        reg_str(run, "status"));
  if (status[0])
    json_object_set_new(run, "status", json_string(status));
  if (status_terminal(status))
    json_object_set_new(run, "end_ms", json_integer(end ? end : reg_now_ms()));
  if (reg_str(req, "failure_reason")[0])
    json_object_set(run, "failure_reason", json_object_get(req, "failure_reason"));
  return 0;
}

int reg_op_update_run(registry *r, const json_t *req, const char *caller, json_t **resp,
                      struct cm_error *err)
{
  return run_change(r, req, caller, "run.update", edit_update, resp, err);
}

static int edit_params(registry *r, json_t *run, const json_t *req, struct cm_error *err)
{
  (void)r;
  json_t *have = json_object_get(run, "params"), *p, *q;
  size_t i, k;

  json_array_foreach(json_object_get(req, "params"), i, p) {
    const char *key = reg_str(p, "key");
    bool dup = false;
    int rc = key_check("param key", key, err);

    if (rc)
      return rc;
    json_array_foreach(have, k, q) {
      if (strcmp(reg_str(q, "key"), key) != 0)
        continue;
      if (strcmp(reg_str(q, "value"), reg_str(p, "value")) != 0)
        return cm_error_set(err, CM_E_INVALID,
                            "param '%s' already logged as '%s'; params are immutable", key,
                            reg_str(q, "value"));
      dup = true;
    }
    if (!dup)
      json_array_append_new(have, json_pack("{s:s, s:s}", "key", key, "value",
                                            reg_str(p, "value")));
  }
  return 0;
}

int reg_op_log_params(registry *r, const json_t *req, const char *caller, json_t **resp,
                      struct cm_error *err)
{
  return run_change(r, req, caller, "params.log", edit_params, resp, err);
}

static int edit_metrics(registry *r, json_t *run, const json_t *req, struct cm_error *err)
{
  (void)r;
  json_t *have = json_object_get(run, "metrics"), *m;
  size_t i;

  json_array_foreach(json_object_get(req, "metrics"), i, m) {
    json_t *point = json_copy(m);
    int rc = key_check("metric key", reg_str(m, "key"), err);

    if (rc) {
      json_decref(point);
      return rc;
    }
    if (!reg_int(m, "timestamp_ms"))
      json_object_set_new(point, "timestamp_ms", json_integer(reg_now_ms()));
    if (!json_object_get(point, "value"))
      json_object_set_new(point, "value", json_real(0));
    json_array_append_new(have, point);
  }
  return 0;
}

int reg_op_log_metrics(registry *r, const json_t *req, const char *caller, json_t **resp,
                       struct cm_error *err)
{
  return run_change(r, req, caller, "metrics.log", edit_metrics, resp, err);
}

/* Sets or replaces members of arr keyed by key_field from the request's list. */
static int upsert(json_t *arr, const json_t *items, const char *what, struct cm_error *err)
{
  json_t *it, *q;
  size_t i, k;

  json_array_foreach(items, i, it) {
    const char *key = reg_str(it, "key");
    bool done = false;
    int rc = key_check(what, key, err);

    if (rc)
      return rc;
    json_array_foreach(arr, k, q) {
      if (strcmp(reg_str(q, "key"), key) == 0) {
        json_array_set(arr, k, it);
        done = true;
      }
    }
    if (!done)
      json_array_append(arr, it);
  }
  return 0;
}

static int edit_tags(registry *r, json_t *run, const json_t *req, struct cm_error *err)
{
  (void)r;
  return upsert(json_object_get(run, "tags"), json_object_get(req, "tags"), "tag key", err);
}

int reg_op_set_tags(registry *r, const json_t *req, const char *caller, json_t **resp,
                    struct cm_error *err)
{
  return run_change(r, req, caller, "tags.set", edit_tags, resp, err);
}

/* Inputs name dataset versions, which must exist. */
static int edit_inputs(registry *r, json_t *run, const json_t *req, struct cm_error *err)
{
  json_t *have = json_object_get(run, "inputs"), *in;
  size_t i;

  json_array_foreach(json_object_get(req, "inputs"), i, in) {
    const json_t *ds = json_object_get(in, "dataset");
    const char *name = reg_str(ds, "name"), *md5 = reg_str(ds, "md5");

    if (!json_object_get(json_object_get(r->datasets, name), md5))
      return cm_error_set(err, CM_E_NOTFOUND, "no dataset version %s@%s", name, md5);
    json_array_append(have, in);
  }
  return 0;
}

int reg_op_log_inputs(registry *r, const json_t *req, const char *caller, json_t **resp,
                      struct cm_error *err)
{
  return run_change(r, req, caller, "inputs.log", edit_inputs, resp, err);
}

int registry_run_exists(registry *r, const char *run_id, struct cm_error *err)
{
  int rc = 0;

  pthread_rwlock_rdlock(&r->lock);
  if (!json_object_get(r->runs, run_id))
    rc = cm_error_set(err, CM_E_NOTFOUND, "unknown run '%s'", run_id);
  pthread_rwlock_unlock(&r->lock);
  return rc;
}

int registry_artifact_blob(registry *r, const char *run_id, const char *path, json_t **blob,
                           struct cm_error *err)
{
  json_t *run, *a;
  size_t i;
  int rc;

  pthread_rwlock_rdlock(&r->lock);
  run = json_object_get(r->runs, run_id);
  rc = run ? cm_error_set(err, CM_E_NOTFOUND, "run '%s' has no artifact '%s'", run_id, path)
           : cm_error_set(err, CM_E_NOTFOUND, "unknown run '%s'", run_id);
  json_array_foreach(json_object_get(run, "artifacts"), i, a) {
    if (strcmp(reg_str(a, "path"), path) == 0) {
      *blob = json_incref(json_object_get(a, "blob"));
      rc = 0;
    }
  }
  pthread_rwlock_unlock(&r->lock);
  if (!rc)
    cm_error_clear(err);
  return rc;
}

/* The recorded size of blob if it is the one at key. */
static bool blob_match(const json_t *blob, const char *key, uint64_t *size)
{
  const json_t *n = json_object_get(blob, "size");

  if (strcmp(reg_str(blob, "key"), key) != 0 || !(json_is_integer(n) || json_is_string(n)) ||
      reg_int(blob, "size") < 0)
    return false;
  *size = (uint64_t)reg_int(blob, "size");
  return true;
}

bool registry_blob_size(registry *r, const char *key, uint64_t *size)
{
  const char *id, *name, *md5;
  json_t *run, *a, *byname, *ds;
  bool found = false;
  size_t i;

  pthread_rwlock_rdlock(&r->lock);
  json_object_foreach(r->runs, id, run)
    json_array_foreach(json_object_get(run, "artifacts"), i, a)
      if (!found)
        found = blob_match(json_object_get(a, "blob"), key, size);
  json_object_foreach(r->datasets, name, byname)
    json_object_foreach(byname, md5, ds)
      if (!found)
        found = blob_match(json_object_get(ds, "blob"), key, size);
  pthread_rwlock_unlock(&r->lock);
  return found;
}

static int edit_artifact(registry *r, json_t *run, const json_t *req, struct cm_error *err)
{
  json_t *arts = json_object_get(run, "artifacts"), *a;
  const char *path = reg_str(req, "path");
  json_t *art = json_pack("{s:s, s:s, s:O, s:s, s:I}", "run_id", reg_str(run, "run_id"), "path",
                          path, "blob", json_object_get(req, "blob"), "content_type",
                          reg_str(req, "content_type"), "created_ms", (json_int_t)reg_now_ms());
  size_t i;

  (void)r;
  if (!art)
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  json_array_foreach(arts, i, a) {
    if (strcmp(reg_str(a, "path"), path) == 0) {
      json_decref(art);
      return cm_error_set(err, CM_E_EXISTS, "run '%s' already has artifact '%s'",
                          reg_str(run, "run_id"), path);
    }
  }
  json_array_append_new(arts, art);
  return 0;
}

int registry_blob_recorded(registry *r, const char *run_id, const char *path,
                           const char *content_type, const json_t *blob, const char *caller,
                           json_t **resp, struct cm_error *err)
{
  json_t *req, *ignored = NULL;
  int rc;

  if (!run_id) {
    pthread_rwlock_wrlock(&r->lock);
    rc = reg_audit(r, caller, "blob.put", reg_str(blob, "key"), blob, err);
    pthread_rwlock_unlock(&r->lock);
    if (!rc)
      *resp = json_incref((json_t *)blob);
    return rc;
  }
  req = json_pack("{s:s, s:s, s:s, s:O}", "run_id", run_id, "path", path, "content_type",
                  content_type ? content_type : "", "blob", blob);
  if (!req)
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  rc = run_change(r, req, caller, "artifact.upload", edit_artifact, &ignored, err);
  json_decref(ignored);
  if (!rc) {
    *resp = json_pack("{s:s, s:s, s:O, s:s, s:I}", "run_id", run_id, "path", path, "blob", blob,
                      "content_type", content_type ? content_type : "", "created_ms",
                      (json_int_t)reg_now_ms());
    if (!*resp)
      rc = cm_error_set(err, CM_E_NOMEM, "out of memory");
  }
  json_decref(req);
  return rc;
}
