/* The registry's core: creating and loading the state, writing documents and audit events,
 * paging, name checks, model watches, and the table of operations. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "mem.h"
#include "reg_int.h"

registry *registry_new(store *st, const struct registry_opts *opts, struct cm_error *err)
{
  registry *r = cm_calloc(1, sizeof(*r));

  if (!r) {
    cm_error_set(err, CM_E_NOMEM, "out of memory");
    return NULL;
  }
  r->st = st;
  r->opts = *opts;
  pthread_rwlock_init(&r->lock, NULL);
  pthread_mutex_init(&r->load_mu, NULL);
  atomic_init(&r->ready, false);
  r->experiments = json_object();
  r->runs = json_object();
  r->datasets = json_object();
  r->models = json_object();
  r->events = json_array();
  if (!r->experiments || !r->runs || !r->datasets || !r->models || !r->events) {
    registry_free(r);
    cm_error_set(err, CM_E_NOMEM, "out of memory");
    return NULL;
  }
  return r;
}

void registry_free(registry *r)
{
  if (!r)
    return;
  while (r->watches) {
    struct reg_watch *w = r->watches;

    r->watches = w->next;
    cm_free(w->name);
    cm_free(w->alias);
    cm_free(w);
  }
  json_decref(r->experiments);
  json_decref(r->runs);
  json_decref(r->datasets);
  json_decref(r->models);
  json_decref(r->events);
  pthread_rwlock_destroy(&r->lock);
  pthread_mutex_destroy(&r->load_mu);
  cm_free(r);
}

bool registry_ready(const registry *r)
{
  return atomic_load(&r->ready);
}

int registry_not_ready(registry *r, struct cm_error *err)
{
  struct cm_error last;

  pthread_mutex_lock(&r->load_mu);
  last = r->load_err;
  pthread_mutex_unlock(&r->load_mu);
  if (!last.code)
    return cm_error_set(err, CM_E_UNAVAILABLE, "the registry is loading from %s",
                        store_url(r->st));
  return cm_error_set(err, last.code == CM_E_PERMISSION ? CM_E_PERMISSION : CM_E_UNAVAILABLE,
                      "the registry cannot load from its store: %s", last.msg);
}

store *registry_store(registry *r)
{
  return r->st;
}

uint64_t registry_max_upload(const registry *r)
{
  return r->opts.max_artifact;
}

const char *registry_tmp_dir(const registry *r)
{
  return r->opts.tmp_dir && r->opts.tmp_dir[0] ? r->opts.tmp_dir : "/tmp";
}

/* ---- loading ---- */

#define SKIPPED_SHOWN 20 /* skipped keys the summary line names */

struct load_ctx {
  registry *r;
  size_t docs, skipped;
  json_t *skipped_keys;   /* the first SKIPPED_SHOWN skipped keys, for the summary */
  int rc;                 /* the store's error or out of memory, which aborts the load */
  struct cm_error *err;
};

/* Logs and counts a document that is not served. */
static void load_skip(struct load_ctx *lc, const char *key, const struct reg_doc_key *k,
                      const struct cm_error *why)
{
  cm_log(CM_LOG_ERROR, "skipping a registry document", "key=%s error=%s", key, why->msg);
  if (k)
    reg_load_skipped(lc->r, k);
  if (json_array_size(lc->skipped_keys) < SKIPPED_SHOWN)
    json_array_append_new(lc->skipped_keys, json_string(key));
  lc->skipped++;
}

static int load_one(void *ctx, const char *key, const struct store_stat *st)
{
  struct load_ctx *lc = ctx;
  struct reg_doc_key k;
  struct cm_buf buf;
  struct cm_error e;
  json_t *doc = NULL;
  size_t n = strlen(key);
  int rc;

  (void)st;
  if (n < 5 || strcmp(key + n - 5, ".json") != 0)
    return 0;
  if (reg_doc_key_parse(key, &k, &e)) {
    load_skip(lc, key, NULL, &e);
    return 0;
  }
  cm_buf_init(&buf, REG_DOC_MAX);
  rc = store_get(lc->r->st, key, REG_DOC_MAX, &buf, &e);
  if (rc == CM_E_UNAVAILABLE || rc == CM_E_PERMISSION || rc == CM_E_IO || rc == CM_E_NOMEM) {
    cm_buf_cleanup(&buf);
    lc->rc = rc;
    *lc->err = e;
    return rc; /* the store itself is failing: stop and retry later */
  }
  if (!rc)
    rc = reg_doc_parse(key, (const char *)buf.data, buf.len, NULL, &doc, &e);
  cm_buf_cleanup(&buf);
  if (!rc)
    rc = reg_load_doc(lc->r, &k, doc, &e);
  json_decref(doc);
  if (rc == CM_E_NOMEM) {
    /* not the document's fault: fail the load, which is retried, rather than serve less */
    lc->rc = cm_error_set(lc->err, rc, "loading %s: %s", key, e.msg);
    return rc;
  }
  if (rc)
    load_skip(lc, key, &k, &e);
  else
    lc->docs++;
  return 0;
}

/* One line that names what was skipped, for an operator who reads only the summary. */
static void load_report(const struct load_ctx *lc)
{
  char keys[4096];
  size_t used = 0, i;
  json_t *key;

  keys[0] = '\0';
  json_array_foreach(lc->skipped_keys, i, key) {
    int w = snprintf(keys + used, sizeof(keys) - used, "%s%s", i ? " " : "",
                     json_string_value(key));

    if (w < 0 || (size_t)w >= sizeof(keys) - used)
      break;
    used += (size_t)w;
  }
  cm_log(CM_LOG_WARN, "registry documents skipped", "count=%zu keys=%s more=%zu", lc->skipped,
         keys, lc->skipped - i);
}

int registry_load(registry *r, struct cm_error *err)
{
  struct load_ctx lc = {r, 0, 0, json_array(), 0, err};
  int rc;

  if (!lc.skipped_keys)
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  pthread_rwlock_wrlock(&r->lock);
  json_object_clear(r->experiments);
  json_object_clear(r->runs);
  json_object_clear(r->datasets);
  json_object_clear(r->models);
  json_array_clear(r->events);
  r->event_seq = 0;
  /* A store that does not exist yet (the default file:// directory on a first run) is made. */
  rc = store_bucket_ensure(r->st, err);
  if (!rc)
    rc = store_list(r->st, "registry/", load_one, &lc, err);
  if (!rc && lc.rc)
    rc = lc.rc;
  if (!rc)
    rc = reg_load_finish(r, err);
  if (!rc)
    atomic_store(&r->ready, true);
  pthread_rwlock_unlock(&r->lock);
  pthread_mutex_lock(&r->load_mu);
  if (rc)
    r->load_err = *err;
  pthread_mutex_unlock(&r->load_mu);
  if (!rc && lc.skipped)
    load_report(&lc);
  if (!rc)
    cm_log(CM_LOG_INFO, "registry loaded", "store=%s documents=%zu skipped=%zu events=%llu",
           store_url(r->st), lc.docs, lc.skipped, (unsigned long long)r->event_seq);
  json_decref(lc.skipped_keys);
  return rc;
}

/* ---- small helpers ---- */

int64_t reg_now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int reg_new_id(char out[33], struct cm_error *err)
{
  unsigned char raw[16];
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, raw, sizeof(raw)) : -1;

  if (fd >= 0)
    close(fd);
  if (n != (ssize_t)sizeof(raw))
    return cm_error_set(err, CM_E_INTERNAL, "cannot read /dev/urandom");
  for (int i = 0; i < 16; i++)
    snprintf(out + 2 * i, 3, "%02x", raw[i]);
  return 0;
}

int reg_put_doc(registry *r, const json_t *doc, struct cm_error *err, const char *fmt, ...)
{
  char key[1024];
  va_list ap;
  char *text;
  int rc, n;

  va_start(ap, fmt);
  n = vsnprintf(key, sizeof(key), fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof(key))
    return cm_error_set(err, CM_E_INVALID, "key too long");
  text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  if (!text)
    return cm_error_set(err, CM_E_NOMEM, "cannot serialize %s", key);
  rc = store_put(r->st, key, text, strlen(text), "application/json", err);
  free(text);
  return rc;
}

int reg_audit(registry *r, const char *caller, const char *action, const char *subject,
              const json_t *detail, struct cm_error *err)
{
  char id[32];
  char *dj = detail ? json_dumps(detail, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_t *ev;
  int rc;

  snprintf(id, sizeof(id), "%020llu", (unsigned long long)(r->event_seq + 1));
  ev = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s}", "event_id", id, "time_ms",
                 (json_int_t)reg_now_ms(), "caller", caller ? caller : "", "action", action,
                 "subject", subject, "detail_json", dj ? dj : "");
  free(dj);
  if (!ev)
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  rc = reg_put_doc(r, ev, err, REG_KEY_EVENT, (unsigned long long)(r->event_seq + 1));
  if (!rc) {
    r->event_seq++;
    json_array_append(r->events, ev);
  }
  json_decref(ev);
  return rc;
}

void reg_last_event_id(const registry *r, char out[24])
{
  snprintf(out, 24, "%020llu", (unsigned long long)r->event_seq);
}

const char *reg_str(const json_t *obj, const char *key)
{
  const char *s = json_string_value(json_object_get(obj, key));

  return s ? s : "";
}

long long reg_int(const json_t *obj, const char *key)
{
  const json_t *v = json_object_get(obj, key);

  if (json_is_integer(v))
    return json_integer_value(v);
  if (json_is_string(v))
    return strtoll(json_string_value(v), NULL, 10);
  return 0;
}

int reg_page(const json_t *req, json_t *items, const char *list_key, json_t **resp,
             struct cm_error *err)
{
  long long size = reg_int(req, "page_size");
  const char *token = reg_str(req, "page_token");
  size_t start = 0, n = json_array_size(items);
  json_t *page = json_array(), *out = json_object();
  char *end = NULL;
  int rc = 0;

  if (!items || !page || !out) {
    rc = cm_error_set(err, CM_E_NOMEM, "out of memory");
    goto out;
  }
  if (size <= 0)
    size = REG_PAGE_DEFAULT;
  if (size > REG_PAGE_MAX)
    size = REG_PAGE_MAX;
  if (token[0]) {
    unsigned long long v = strtoull(token, &end, 10);

    if (*end || v > n) {
      rc = cm_error_set(err, CM_E_INVALID, "bad page_token '%s'", token);
      goto out;
    }
    start = (size_t)v;
  }
  for (size_t i = start; i < n && i < start + (size_t)size; i++)
    json_array_append(page, json_array_get(items, i));
  json_object_set(out, list_key, page);
  if (start + (size_t)size < n) {
    char next[32];

    snprintf(next, sizeof(next), "%zu", start + (size_t)size);
    json_object_set_new(out, "next_page_token", json_string(next));
  }
  *resp = json_incref(out);
out:
  json_decref(page);
  json_decref(out);
  json_decref(items);
  return rc;
}

int registry_check_name(const char *what, const char *name, struct cm_error *err)
{
  size_t n = name ? strlen(name) : 0;

  if (n == 0)
    return cm_error_set(err, CM_E_INVALID, "%s is empty", what);
  if (n > 255)
    return cm_error_set(err, CM_E_INVALID, "%s is longer than 255 bytes", what);
  if (strcmp(name, ".") == 0 || strstr(name, "..") || strchr(name, '/'))
    return cm_error_set(err, CM_E_INVALID, "%s '%s' must not be '.' or contain '..' or '/'",
                        what, name);
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
      return cm_error_set(err, CM_E_INVALID, "%s contains a control character", what);
  return 0;
}

/* ---- watches ---- */

long registry_watch(registry *r, const char *name, const char *alias, registry_watch_fn fn,
                    void *ctx, struct cm_error *err)
{
  struct reg_watch *w = cm_calloc(1, sizeof(*w));
  json_t *entry, *snap;
  long id;

  if (!w || !(w->name = cm_strdup(name)) ||
      (alias && alias[0] && !(w->alias = cm_strdup(alias)))) {
    if (w)
      cm_free(w->name);
    cm_free(w);
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  }
  w->fn = fn;
  w->ctx = ctx;
  pthread_rwlock_wrlock(&r->lock);
  id = w->id = ++r->next_watch_id;
  w->next = r->watches;
  r->watches = w;
  entry = json_object_get(r->models, name);
  snap = json_pack("{s:s, s:s, s:s, s:I}", "type", "MODEL_EVENT_TYPE_SNAPSHOT", "name", name,
                   "alias", w->alias ? w->alias : "", "time_ms", (json_int_t)reg_now_ms());
  if (snap && entry) {
    json_t *aliases = json_object_get(json_object_get(entry, "model"), "aliases");
    long long v = w->alias ? 0 : reg_int(json_object_get(entry, "model"), "latest_version");
    size_t i;
    json_t *a;

    json_array_foreach(aliases, i, a)
      if (w->alias && strcmp(reg_str(a, "alias"), w->alias) == 0)
        v = reg_int(a, "version");
    json_t *view = v > 0 ? reg_version_view(entry, v) : NULL; /* none for a skipped version */

    if (view)
      json_object_set_new(snap, "version", view);
  }
  if (snap)
    fn(ctx, snap);
  json_decref(snap);
  pthread_rwlock_unlock(&r->lock);
  return id;
}

void registry_unwatch(registry *r, long id)
{
  struct reg_watch **pp, *w = NULL;

  pthread_rwlock_wrlock(&r->lock);
  for (pp = &r->watches; *pp; pp = &(*pp)->next) {
    if ((*pp)->id == id) {
      w = *pp;
      *pp = w->next;
      break;
    }
  }
  pthread_rwlock_unlock(&r->lock);
  if (w) {
    cm_free(w->name);
    cm_free(w->alias);
    cm_free(w);
  }
}

void reg_watch_notify(registry *r, const json_t *ev)
{
  const char *name = reg_str(ev, "name"), *alias = reg_str(ev, "alias");

  for (struct reg_watch *w = r->watches; w; w = w->next) {
    if (strcmp(w->name, name) != 0)
      continue;
    /* An alias watcher hears its alias; a model watcher hears everything of the model. */
    if (w->alias && strcmp(w->alias, alias) != 0)
      continue;
    w->fn(w->ctx, ev);
  }
}

/* ---- the operation table ---- */

static const struct {
  const char *name;
  registry_op_fn fn;
} ops[] = {
    {"CreateExperiment", reg_op_create_experiment},
    {"GetExperiment", reg_op_get_experiment},
    {"ListExperiments", reg_op_list_experiments},
    {"CreateRun", reg_op_create_run},
    {"GetRun", reg_op_get_run},
    {"ListRuns", reg_op_list_runs},
    {"UpdateRun", reg_op_update_run},
    {"LogParams", reg_op_log_params},
    {"LogMetrics", reg_op_log_metrics},
    {"SetTags", reg_op_set_tags},
    {"LogInputs", reg_op_log_inputs},
    {"CreateDatasetVersion", reg_op_create_dataset_version},
    {"GetDatasetVersion", reg_op_get_dataset_version},
    {"ListDatasetVersions", reg_op_list_dataset_versions},
    {"CreateRegisteredModel", reg_op_create_registered_model},
    {"GetRegisteredModel", reg_op_get_registered_model},
    {"ListRegisteredModels", reg_op_list_registered_models},
    {"CreateModelVersion", reg_op_create_model_version},
    {"GetModelVersion", reg_op_get_model_version},
    {"ListModelVersions", reg_op_list_model_versions},
    {"ResolveModel", reg_op_resolve_model},
    {"SetAlias", reg_op_set_alias},
    {"DeleteAlias", reg_op_delete_alias},
    {"GetLineage", reg_op_get_lineage},
    {"ListEvents", reg_op_list_events},
};

registry_op_fn registry_op_find(const char *method)
{
  for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
    if (strcmp(ops[i].name, method) == 0)
      return ops[i].fn;
  return NULL;
}
