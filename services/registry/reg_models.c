/* Dataset versions, registered models, numbered versions, aliases, resolution, lineage and the
 * audit log; and loading every document kind back at start. */
#include <ctype.h>
#include <string.h>

#include "reg_int.h"

#define LINEAGE_MAX_DEPTH 64

static int md5_check(const char *md5, struct cm_error *err)
{
  size_t n = strlen(md5);

  if (n != 32)
    return cm_error_set(err, CM_E_INVALID, "md5 '%s' is not 32 hex digits", md5);
  for (size_t i = 0; i < n; i++)
    if (!isxdigit((unsigned char)md5[i]) || isupper((unsigned char)md5[i]))
      return cm_error_set(err, CM_E_INVALID, "md5 '%s' is not 32 lower-case hex digits", md5);
  return 0;
}

/* The newest of a name's dataset versions, borrowed, or NULL. */
static json_t *dataset_latest(registry *r, const char *name)
{
  json_t *best = NULL, *v;
  const char *md5;

  /* the first that ListDatasetVersions shows: newest, ties by md5 */
  json_object_foreach(json_object_get(r->datasets, name), md5, v)
    if (!best || reg_int(v, "created_ms") > reg_int(best, "created_ms") ||
        (reg_int(v, "created_ms") == reg_int(best, "created_ms") &&
         strcmp(md5, reg_str(json_object_get(best, "blob"), "md5")) < 0))
      best = v;
  return best;
}

static json_t *dataset_find(registry *r, const json_t *ref)
{
  const char *md5 = reg_str(ref, "md5");

  if (!md5[0])
    return dataset_latest(r, reg_str(ref, "name"));
  return json_object_get(json_object_get(r->datasets, reg_str(ref, "name")), md5);
}

static int dataset_build(registry *r, const json_t *req, json_t **out, struct cm_error *err)
{
  const char *name = reg_str(req, "name"), *md5 = reg_str(req, "md5");
  const json_t *parent = json_object_get(req, "parent");
  char key[64];
  struct store_stat st;
  long long size = reg_int(req, "size");
  int rc = registry_check_name("dataset name", name, err);

  if (!rc)
    rc = md5_check(md5, err);
  if (!rc && parent && reg_str(parent, "name")[0] && !dataset_find(r, parent))
    rc = cm_error_set(err, CM_E_NOTFOUND, "parent dataset %s@%s does not exist",
                      reg_str(parent, "name"), reg_str(parent, "md5"));
  snprintf(key, sizeof(key), REG_KEY_BLOB, md5, md5 + 2);
  if (!rc) {
    rc = store_head(r->st, key, &st, err);
    if (rc == CM_E_NOTFOUND)
      rc = cm_error_set(err, CM_E_FAILED_PRECONDITION,
                        "the bytes of %s are not in the store (PutDatasetBytes first)", md5);
  }
  if (!rc && size && (uint64_t)size != st.size)
    rc = cm_error_set(err, CM_E_INVALID, "size %lld does not match the stored %llu bytes", size,
                      (unsigned long long)st.size);
  if (rc)
    return rc;
  *out = json_deep_copy(req);
  if (!*out)
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  json_object_del(*out, "md5");
  json_object_del(*out, "size");
  json_object_set_new(*out, "blob", json_pack("{s:s, s:I, s:s}", "key", key, "size",
                                              (json_int_t)st.size, "md5", md5));
  json_object_set_new(*out, "created_ms", json_integer(reg_now_ms()));
  return 0;
}

int reg_op_create_dataset_version(registry *r, const json_t *req, const char *caller,
                                  json_t **resp, struct cm_error *err)
{
  const char *name = reg_str(req, "name"), *md5 = reg_str(req, "md5");
  json_t *have, *ds = NULL, *byname;
  int rc = 0;

  pthread_rwlock_wrlock(&r->lock);
  have = json_object_get(json_object_get(r->datasets, name), md5);
  if (have) { /* the same bytes under the same name: already recorded */
    *resp = json_incref(have);
    goto out;
  }
  rc = dataset_build(r, req, &ds, err);
  if (!rc)
    rc = reg_put_doc(r, ds, err, REG_KEY_DATASET, name, md5);
  if (!rc) {
    byname = json_object_get(r->datasets, name);
    if (!byname)
      json_object_set_new(r->datasets, name, byname = json_object());
    json_object_set(byname, md5, ds);
    char subject[400];

    snprintf(subject, sizeof(subject), "datasets/%s/%s", name, md5);
    rc = reg_audit(r, caller, "dataset.create", subject, json_object_get(ds, "blob"), err);
  }
  if (!rc)
    *resp = json_incref(ds);
out:
  pthread_rwlock_unlock(&r->lock);
  json_decref(ds);
  return rc;
}

int reg_op_get_dataset_version(registry *r, const json_t *req, const char *caller, json_t **resp,
                               struct cm_error *err)
{
  const json_t *ref = json_object_get(req, "dataset");
  json_t *ds;
  int rc = 0;

  (void)caller;
  pthread_rwlock_rdlock(&r->lock);
  ds = dataset_find(r, ref);
  if (ds)
    *resp = json_incref(ds);
  else
    rc = cm_error_set(err, CM_E_NOTFOUND, "no dataset version %s@%s", reg_str(ref, "name"),
                      reg_str(ref, "md5")[0] ? reg_str(ref, "md5") : "latest");
  pthread_rwlock_unlock(&r->lock);
  return rc;
}

/* Newest first; ties by name, then md5, so the order survives a restart. */
static int cmp_newest(const void *a, const void *b)
{
  const json_t *p = *(json_t *const *)a, *q = *(json_t *const *)b;
  long long x = reg_int(p, "created_ms"), y = reg_int(q, "created_ms");
  int c = strcmp(reg_str(p, "name"), reg_str(q, "name"));

  if (x != y)
    return (x < y) - (x > y);
  return c ? c : strcmp(reg_str(json_object_get(p, "blob"), "md5"),
                        reg_str(json_object_get(q, "blob"), "md5"));
}

int reg_op_list_dataset_versions(registry *r, const json_t *req, const char *caller,
                                 json_t **resp, struct cm_error *err)
{
  const char *want = reg_str(req, "name"), *name, *md5;
  json_t *all = json_array(), *byname, *v;
  json_t **tmp;
  size_t n = 0;
  int rc;

  (void)caller;
  pthread_rwlock_rdlock(&r->lock);
  json_object_foreach(r->datasets, name, byname)
    if (!want[0] || strcmp(want, name) == 0)
      json_object_foreach(byname, md5, v)
        json_array_append(all, v);
  tmp = malloc((json_array_size(all) + 1) * sizeof(*tmp));
  for (size_t i = 0; tmp && i < json_array_size(all); i++)
    tmp[n++] = json_array_get(all, i);
  if (tmp) {
    qsort(tmp, n, sizeof(*tmp), cmp_newest);
    json_t *sorted = json_array();

    for (size_t i = 0; i < n; i++)
      json_array_append(sorted, tmp[i]);
    json_decref(all);
    all = sorted;
  }
  free(tmp);
  rc = reg_page(req, all, "versions", resp, err);
  pthread_rwlock_unlock(&r->lock);
  return rc;
}

/* ---- registered models ---- */

static json_t *model_new(const char *name, const char *description)
{
  json_int_t now = reg_now_ms();

  return json_pack("{s:s, s:s, s:I, s:I, s:I, s:[]}", "name", name, "description",
                   description ? description : "", "created_ms", now, "updated_ms", now,
                   "latest_version", (json_int_t)0, "aliases");
}

/* Creates the model's entry (write lock held); *entry borrowed from the state. */
static int model_create(registry *r, const char *name, const char *description,
                        const char *caller, json_t **entry, struct cm_error *err)
{
  json_t *m = model_new(name, description);
  int rc = m ? reg_put_doc(r, m, err, REG_KEY_MODEL, name)
             : cm_error_set(err, CM_E_NOMEM, "out of memory");

  if (!rc) {
    char subject[300];

    *entry = json_pack("{s:O, s:[]}", "model", m, "versions");
    json_object_set_new(r->models, name, *entry);
    snprintf(subject, sizeof(subject), "models/%s", name);
    rc = reg_audit(r, caller, "model.create", subject, NULL, err);
  }
  json_decref(m);
  return rc;
}

int reg_op_create_registered_model(registry *r, const json_t *req, const char *caller,
                                   json_t **resp, struct cm_error *err)
{
  const char *name = reg_str(req, "name");
  json_t *entry;
  int rc = registry_check_name("model name", name, err);

  if (rc)
    return rc;
  pthread_rwlock_wrlock(&r->lock);
  entry = json_object_get(r->models, name);
  if (entry && !json_is_true(json_object_get(req, "exist_ok")))
    rc = cm_error_set(err, CM_E_EXISTS, "model '%s' already exists", name);
  else if (!entry)
    rc = model_create(r, name, reg_str(req, "description"), caller, &entry, err);
  if (!rc)
    *resp = json_incref(json_object_get(entry, "model"));
  pthread_rwlock_unlock(&r->lock);
  return rc;
}

static int model_entry(registry *r, const char *name, json_t **entry, struct cm_error *err)
{
  *entry = json_object_get(r->models, name);
  return *entry ? 0 : cm_error_set(err, CM_E_NOTFOUND, "no model '%s'", name);
}

int reg_op_get_registered_model(registry *r, const json_t *req, const char *caller,
                                json_t **resp, struct cm_error *err)
{
  json_t *entry;
  int rc;

  (void)caller;
  pthread_rwlock_rdlock(&r->lock);
  rc = model_entry(r, reg_str(req, "name"), &entry, err);
  if (!rc)
    *resp = json_incref(json_object_get(entry, "model"));
  pthread_rwlock_unlock(&r->lock);
  return rc;
}

static int cmp_name(const void *a, const void *b)
{
  return strcmp(reg_str(*(json_t *const *)a, "name"), reg_str(*(json_t *const *)b, "name"));
}

/* Sorts an array of objects by their "name" member, in place. */
static void sort_by_name(json_t *arr)
{
  size_t n = json_array_size(arr);
  json_t **v = malloc((n ? n : 1) * sizeof(*v));

  if (!v)
    return;
  for (size_t i = 0; i < n; i++)
    v[i] = json_incref(json_array_get(arr, i));
  qsort(v, n, sizeof(*v), cmp_name);
  json_array_clear(arr);
  for (size_t i = 0; i < n; i++)
    json_array_append_new(arr, v[i]);
  free(v);
}

int reg_op_list_registered_models(registry *r, const json_t *req, const char *caller,
                                  json_t **resp, struct cm_error *err)
{
  json_t *all = json_array(), *entry;
  const char *name;
  int rc;

  (void)caller;
  pthread_rwlock_rdlock(&r->lock);
  json_object_foreach(r->models, name, entry)
    json_array_append(all, json_object_get(entry, "model"));
  sort_by_name(all); /* registry.proto: "by name", whatever order they were made or loaded in */
  rc = reg_page(req, all, "models", resp, err);
  pthread_rwlock_unlock(&r->lock);
  return rc;
}

/* The stored record of a version (borrowed), or NULL if the number has none. */
static json_t *version_find(const json_t *entry, long long version)
{
  const json_t *versions = json_object_get(entry, "versions");
  size_t lo = 0, hi = json_array_size(versions);

  /* ordered by number, with gaps where a document was missing or corrupt */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    long long v = reg_int(json_array_get(versions, mid), "version");

    if (v == version)
      return json_array_get(versions, mid);
    if (v < version)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

/* A version record as served: a copy with the model's current aliases for it. */
static json_t *version_view(const json_t *entry, const json_t *v)
{
  long long version = reg_int(v, "version");
  json_t *view = json_copy((json_t *)v), *names = json_array(), *a;
  size_t i;

  json_array_foreach(json_object_get(json_object_get(entry, "model"), "aliases"), i, a)
    if (reg_int(a, "version") == version)
      json_array_append(names, json_object_get(a, "alias"));
  if (view && (!names || json_object_set(view, "aliases", names))) {
    json_decref(view);
    view = NULL;
  }
  json_decref(names);
  return view;
}

json_t *reg_version_view(const json_t *entry, long long version)
{
  const json_t *v = version_find(entry, version);

  return v ? version_view(entry, v) : NULL;
}

/* Resolves a ModelRef (name with version, alias, or neither for the latest) to a version
 * number. */
static int resolve(registry *r, const json_t *ref, json_t **entry, long long *version,
                   struct cm_error *err)
{
  const char *alias = reg_str(ref, "alias");
  long long v = reg_int(ref, "version");
  json_t *a;
  size_t i;
  int rc = model_entry(r, reg_str(ref, "name"), entry, err);

  if (rc)
    return rc;
  if (alias[0]) {
    v = 0;
    json_array_foreach(json_object_get(json_object_get(*entry, "model"), "aliases"), i, a)
      if (strcmp(reg_str(a, "alias"), alias) == 0)
        v = reg_int(a, "version");
    if (!v)
      return cm_error_set(err, CM_E_NOTFOUND, "model '%s' has no alias '%s'",
                          reg_str(ref, "name"), alias);
  } else if (!v) {
    v = reg_int(json_object_get(*entry, "model"), "latest_version");
  }
  if (v <= 0 || v > reg_int(json_object_get(*entry, "model"), "latest_version"))
    return cm_error_set(err, CM_E_NOTFOUND, "model '%s' has no version %lld",
                        reg_str(ref, "name"), v);
  if (!version_find(*entry, v)) /* skipped at load: the number stays taken */
    return cm_error_set(err, CM_E_CORRUPT, "version %lld of model '%s' is missing or corrupt in "
                        "the store (" REG_KEY_VERSION ")", v, reg_str(ref, "name"),
                        reg_str(ref, "name"), v);
  *version = v;
  return 0;
}

/* Fills the version record of a CreateModelVersion request (write lock held). */
static int version_build(registry *r, const json_t *req, json_t *entry, json_t **out,
                         struct cm_error *err)
{
  const char *run_id = reg_str(req, "run_id"), *key = reg_str(req, "artifact_key");
  const char *sha = reg_str(req, "artifact_sha256");
  json_t *run = json_object_get(r->runs, run_id), *a, *in, *pe;
  struct store_stat st;
  long long pv;
  size_t i;
  bool found = false;
  int rc = 0;

  if (!run)
    return cm_error_set(err, CM_E_NOTFOUND, "unknown run '%s'", run_id);
  json_array_foreach(json_object_get(run, "artifacts"), i, a) {
    const json_t *blob = json_object_get(a, "blob");

    if (strcmp(reg_str(blob, "key"), key) != 0)
      continue;
    if (sha[0] && strcmp(sha, reg_str(blob, "sha256")) != 0)
      return cm_error_set(err, CM_E_INVALID, "artifact_sha256 differs from the uploaded "
                                             "artifact's %s", reg_str(blob, "sha256"));
    sha = reg_str(blob, "sha256");
    found = true;
  }
  /* The digest a version carries is the one measured at upload, never only the caller's word. */
  if (!found)
    return cm_error_set(err, CM_E_NOTFOUND, "run %s has no artifact at %.60s", run_id, key);
  json_array_foreach(json_object_get(req, "datasets"), i, in)
    if (!dataset_find(r, json_object_get(in, "dataset")))
      return cm_error_set(err, CM_E_NOTFOUND, "no dataset version %s@%s",
                          reg_str(json_object_get(in, "dataset"), "name"),
                          reg_str(json_object_get(in, "dataset"), "md5"));
  if (json_object_get(req, "parent") && resolve(r, json_object_get(req, "parent"), &pe, &pv, err))
    return err->code;
  rc = store_head(r->st, key, &st, err); /* a visible version is complete: its bytes exist */
  if (rc)
    return rc == CM_E_NOTFOUND ? cm_error_set(err, CM_E_FAILED_PRECONDITION,
                                              "artifact %s is not in the store", key)
                               : rc;
  *out = json_deep_copy(req);
  json_object_set_new(*out, "version",
                      json_integer(reg_int(json_object_get(entry, "model"), "latest_version") + 1));
  json_object_set_new(*out, "artifact_sha256", json_string(sha));
  json_object_set_new(*out, "artifact_size", json_integer((json_int_t)st.size));
  json_object_set_new(*out, "created_ms", json_integer(reg_now_ms()));
  json_object_del(*out, "aliases");
  return 0;
}

/* Writes a changed model document and installs it (write lock held). */
static int model_commit(registry *r, json_t *entry, json_t *model, struct cm_error *err)
{
  int rc;

  json_object_set_new(model, "updated_ms", json_integer(reg_now_ms()));
  rc = reg_put_doc(r, model, err, REG_KEY_MODEL, reg_str(model, "name"));
  if (!rc)
    json_object_set(entry, "model", model);
  return rc;
}

/* Tells the watchers; the change's audit event is the last one written. */
static void notify(registry *r, const char *type, const char *name, const char *alias,
                   json_t *view, long long previous)
{
  char event_id[24];
  json_t *ev;

  reg_last_event_id(r, event_id);
  ev = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "type", type, "name", name, "alias",
                 alias ? alias : "", "previous_version", (json_int_t)previous, "time_ms",
                 (json_int_t)reg_now_ms(), "event_id", event_id);

  if (!ev)
    return;
  if (view)
    json_object_set(ev, "version", view);
  reg_watch_notify(r, ev);
  json_decref(ev);
}

int reg_op_create_model_version(registry *r, const json_t *req, const char *caller,
                                json_t **resp, struct cm_error *err)
{
  const char *name = reg_str(req, "name");
  json_t *entry, *ver = NULL, *model = NULL, *view;
  int rc = registry_check_name("model name", name, err);

  if (rc)
    return rc;
  pthread_rwlock_wrlock(&r->lock);
  entry = json_object_get(r->models, name);
  rc = version_build(r, req, entry, &ver, err); /* checked before anything is written */
  if (!rc && !entry) /* the first version creates its model */
    rc = model_create(r, name, NULL, caller, &entry, err);
  if (!rc)
    rc = reg_put_doc(r, ver, err, REG_KEY_VERSION, name, reg_int(ver, "version"));
  if (!rc) {
    model = json_deep_copy(json_object_get(entry, "model"));
    json_object_set(model, "latest_version", json_object_get(ver, "version"));
    rc = model_commit(r, entry, model, err);
  }
  if (!rc) {
    char subject[300];
    json_t *detail = json_pack("{s:O, s:s, s:s, s:s}", "version", json_object_get(ver, "version"),
                               "run_id", reg_str(ver, "run_id"), "artifact_key",
                               reg_str(ver, "artifact_key"), "artifact_sha256",
                               reg_str(ver, "artifact_sha256"));

    json_array_append(json_object_get(entry, "versions"), ver);
    snprintf(subject, sizeof(subject), "models/%s/%lld", name, reg_int(ver, "version"));
    rc = reg_audit(r, caller, "version.create", subject, detail, err);
    json_decref(detail);
    view = reg_version_view(entry, reg_int(ver, "version"));
    if (!rc)
      notify(r, "MODEL_EVENT_TYPE_VERSION_CREATED", name, NULL, view, 0);
    if (!rc)
      *resp = view;
    else
      json_decref(view);
  }
  pthread_rwlock_unlock(&r->lock);
  json_decref(ver);
  json_decref(model);
  return rc;
}

int reg_op_get_model_version(registry *r, const json_t *req, const char *caller, json_t **resp,
                             struct cm_error *err)
{
  json_t *ref = json_pack("{s:s, s:I}", "name", reg_str(req, "name"), "version",
                          (json_int_t)reg_int(req, "version"));
  json_t *entry;
  long long v;
  int rc;

  (void)caller;
  if (!reg_int(req, "version")) {
    json_decref(ref);
    return cm_error_set(err, CM_E_INVALID, "version must be 1 or more");
  }
  pthread_rwlock_rdlock(&r->lock);
  rc = resolve(r, ref, &entry, &v, err);
  if (!rc)
    *resp = reg_version_view(entry, v);
  pthread_rwlock_unlock(&r->lock);
  json_decref(ref);
  return rc;
}

int reg_op_list_model_versions(registry *r, const json_t *req, const char *caller,
                               json_t **resp, struct cm_error *err)
{
  json_t *entry, *versions, *all = json_array();
  int rc;

  (void)caller;
  pthread_rwlock_rdlock(&r->lock);
  rc = model_entry(r, reg_str(req, "name"), &entry, err);
  versions = json_object_get(entry, "versions");
  /* newest first; a version skipped at load is not listed */
  for (size_t i = json_array_size(versions); !rc && i > 0; i--)
    json_array_append_new(all, version_view(entry, json_array_get(versions, i - 1)));
  if (!rc)
    rc = reg_page(req, all, "versions", resp, err);
  else
    json_decref(all);
  pthread_rwlock_unlock(&r->lock);
  return rc;
}

int reg_op_resolve_model(registry *r, const json_t *req, const char *caller, json_t **resp,
                         struct cm_error *err)
{
  json_t *entry;
  long long v;
  int rc;

  (void)caller;
  pthread_rwlock_rdlock(&r->lock);
  rc = resolve(r, json_object_get(req, "model"), &entry, &v, err);
  if (!rc)
    *resp = reg_version_view(entry, v);
  pthread_rwlock_unlock(&r->lock);
  return rc;
}

/* Sets (version > 0) or removes (version 0) an alias; *previous gets the old version or 0. */
static int alias_change(registry *r, const char *name, const char *alias, long long version,
                        const char *caller, long long *previous, json_t **view,
                        struct cm_error *err)
{
  json_t *entry, *model, *aliases, *a, *ref;
  long long v = 0;
  size_t i;
  int rc = registry_check_name("alias", alias, err);

  *previous = 0;
  if (rc)
    return rc;
  if (version && (strspn(alias, "0123456789") == strlen(alias) ||
                  strspn(alias, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789-_") != strlen(alias)))
    return cm_error_set(err, CM_E_INVALID, "alias '%s' must be letters, digits, '-' and '_', "
                        "not all digits", alias);
  rc = model_entry(r, name, &entry, err);
  ref = json_pack("{s:s, s:I}", "name", name, "version", (json_int_t)version);
  if (!rc && version && resolve(r, ref, &entry, &v, err))
    rc = err->code;
  json_decref(ref);
  if (rc)
    return rc;
  model = json_deep_copy(json_object_get(entry, "model"));
  aliases = json_object_get(model, "aliases");
  for (i = 0; i < json_array_size(aliases); i++) {
    a = json_array_get(aliases, i);
    if (strcmp(reg_str(a, "alias"), alias) == 0) {
      *previous = reg_int(a, "version");
      json_array_remove(aliases, i);
      break;
    }
  }
  if (!version && !*previous)
    rc = cm_error_set(err, CM_E_NOTFOUND, "model '%s' has no alias '%s'", name, alias);
  if (!rc && version)
    json_array_append_new(aliases, json_pack("{s:s, s:I}", "alias", alias, "version",
                                             (json_int_t)version));
  if (!rc)
    rc = model_commit(r, entry, model, err);
  if (!rc) {
    json_t *detail = json_pack("{s:s, s:I, s:I}", "alias", alias, "version", (json_int_t)version,
                               "previous_version", (json_int_t)*previous);

    char subject[600];

    snprintf(subject, sizeof(subject), "models/%s/aliases/%s", name, alias);
    rc = reg_audit(r, caller, version ? "alias.set" : "alias.delete", subject, detail, err);
    json_decref(detail);
    /* ALIAS_SET carries the new version, ALIAS_REMOVED the one the alias pointed at */
    *view = reg_version_view(entry, version ? version : *previous);
    if (!rc)
      notify(r, version ? "MODEL_EVENT_TYPE_ALIAS_SET" : "MODEL_EVENT_TYPE_ALIAS_REMOVED", name,
             alias, *view, *previous);
  }
  json_decref(model);
  return rc;
}

int reg_op_set_alias(registry *r, const json_t *req, const char *caller, json_t **resp,
                     struct cm_error *err)
{
  json_t *view = NULL;
  long long prev;
  int rc;

  if (reg_int(req, "version") <= 0)
    return cm_error_set(err, CM_E_INVALID, "version must be 1 or more");
  pthread_rwlock_wrlock(&r->lock);
  rc = alias_change(r, reg_str(req, "name"), reg_str(req, "alias"), reg_int(req, "version"),
                    caller, &prev, &view, err);
  pthread_rwlock_unlock(&r->lock);
  if (!rc)
    *resp = json_pack("{s:o, s:I}", "version", view, "previous_version", (json_int_t)prev);
  else
    json_decref(view);
  return rc;
}

int reg_op_delete_alias(registry *r, const json_t *req, const char *caller, json_t **resp,
                        struct cm_error *err)
{
  json_t *view = NULL;
  long long prev;
  int rc;

  pthread_rwlock_wrlock(&r->lock);
  rc = alias_change(r, reg_str(req, "name"), reg_str(req, "alias"), 0, caller, &prev, &view,
                    err);
  pthread_rwlock_unlock(&r->lock);
  json_decref(view);
  if (!rc)
    *resp = json_pack("{s:I}", "previous_version", (json_int_t)prev);
  return rc;
}

/* ---- lineage ---- */

static json_t *dataset_chain(registry *r, const json_t *ref)
{
  json_t *chain = json_array(), *ds = dataset_find(r, ref);

  for (int depth = 0; ds && depth < LINEAGE_MAX_DEPTH; depth++) {
    json_array_append(chain, ds);
    ds = json_object_get(ds, "parent") ? dataset_find(r, json_object_get(ds, "parent")) : NULL;
  }
  return chain;
}

int reg_op_get_lineage(registry *r, const json_t *req, const char *caller, json_t **resp,
                       struct cm_error *err)
{
  json_t *entry, *view, *out = NULL, *sets, *parents, *in, *p;
  long long v;
  size_t i;
  int rc;

  (void)caller;
  pthread_rwlock_rdlock(&r->lock);
  rc = resolve(r, json_object_get(req, "model"), &entry, &v, err);
  if (rc)
    goto out;
  view = reg_version_view(entry, v);
  sets = json_array();
  parents = json_array();
  json_array_foreach(json_object_get(view, "datasets"), i, in)
    json_array_append_new(sets, json_pack("{s:s, s:o}", "context", reg_str(in, "context"),
                                          "chain", dataset_chain(r, json_object_get(in, "dataset"))));
  p = json_object_get(view, "parent");
  for (int depth = 0; p && depth < LINEAGE_MAX_DEPTH; depth++) {
    json_t *pe;
    long long pv;
    struct cm_error ignore;
    json_t *pview;

    if (resolve(r, p, &pe, &pv, &ignore))
      break;
    pview = reg_version_view(pe, pv);
    json_array_append_new(parents, pview);
    p = json_object_get(pview, "parent");
  }
  out = json_pack("{s:o, s:o, s:o}", "version", view, "datasets", sets, "parent_chain", parents);
  if (json_object_get(r->runs, reg_str(view, "run_id"))) {
    /* the run with its params and latest metrics, not the whole history */
    json_t *run = json_copy(json_object_get(r->runs, reg_str(view, "run_id")));

    json_object_set_new(run, "metrics", reg_metrics_latest(json_object_get(run, "metrics")));
    json_object_set_new(out, "run", run);
  }
  *resp = out;
out:
  pthread_rwlock_unlock(&r->lock);
  return rc;
}

int reg_op_list_events(registry *r, const json_t *req, const char *caller, json_t **resp,
                       struct cm_error *err)
{
  const char *prefix = reg_str(req, "subject_prefix");
  json_t *picked = json_array(), *ev;
  size_t i;
  int rc;

  (void)caller;
  pthread_rwlock_rdlock(&r->lock);
  json_array_foreach(r->events, i, ev)
    if (strncmp(reg_str(ev, "subject"), prefix, strlen(prefix)) == 0)
      json_array_append(picked, ev);
  rc = reg_page(req, picked, "events", resp, err);
  pthread_rwlock_unlock(&r->lock);
  return rc;
}

/* ---- loading ---- */

/* The entry of model name, made if absent ("model" null until its document is filed). */
static json_t *model_slot(registry *r, const char *name)
{
  json_t *entry = json_object_get(r->models, name);

  if (!entry && !json_object_set_new(r->models, name, json_pack("{s:n, s:[]}", "model",
                                                                "versions")))
    entry = json_object_get(r->models, name);
  return entry;
}

/* Raises the highest version number seen under a model's keys (until reg_load_finish). */
static void model_seen(json_t *entry, long long version)
{
  if (version > reg_int(entry, "seen"))
    json_object_set_new(entry, "seen", json_integer(version));
}

int reg_load_doc(registry *r, const struct reg_doc_key *k, json_t *doc, struct cm_error *err)
{
  json_t *slot = NULL;
  int rc = -1;

  switch (k->kind) {
  case REG_DOC_EXPERIMENT:
    rc = json_object_set(r->experiments, k->name, doc);
    break;
  case REG_DOC_RUN:
    rc = json_object_set(r->runs, k->name, doc);
    break;
  case REG_DOC_DATASET:
    slot = json_object_get(r->datasets, k->name);
    if (!slot && !json_object_set_new(r->datasets, k->name, json_object()))
      slot = json_object_get(r->datasets, k->name);
    rc = slot ? json_object_set(slot, k->md5, doc) : -1;
    break;
  case REG_DOC_MODEL:
    slot = model_slot(r, k->name);
    rc = slot ? json_object_set(slot, "model", doc) : -1;
    break;
  case REG_DOC_VERSION:
    slot = model_slot(r, k->name);
    rc = slot ? json_array_append(json_object_get(slot, "versions"), doc) : -1;
    if (!rc)
      model_seen(slot, k->number);
    break;
  case REG_DOC_EVENT:
    if ((unsigned long long)k->number > r->event_seq)
      r->event_seq = (unsigned long long)k->number;
    rc = json_array_append(r->events, doc);
    break;
  }
  return rc ? cm_error_set(err, CM_E_NOMEM, "out of memory") : 0;
}

void reg_load_skipped(registry *r, const struct reg_doc_key *k)
{
  json_t *slot;

  if (k->kind == REG_DOC_EVENT && (unsigned long long)k->number > r->event_seq)
    r->event_seq = (unsigned long long)k->number;
  /* A model whose only documents are corrupt is still listed, so its numbers stay taken and a
   * resolve names the bad key; its model document is rebuilt (without aliases) at finish. */
  if (k->kind != REG_DOC_VERSION)
    return;
  slot = model_slot(r, k->name);
  if (slot)
    model_seen(slot, k->number);
}

static int cmp_version(const void *a, const void *b)
{
  long long x = reg_int(*(json_t *const *)a, "version");
  long long y = reg_int(*(json_t *const *)b, "version");

  return (x > y) - (x < y);
}

/* The highest version number a model's documents name: its versions' keys (loaded or skipped),
 * its stored latest_version (a version document is written before the model document counts
 * it), and its aliases. */
static long long model_top(const json_t *entry)
{
  const json_t *model = json_object_get(entry, "model"), *a;
  long long top = reg_int(entry, "seen");
  size_t i;

  if (reg_int(model, "latest_version") > top)
    top = reg_int(model, "latest_version");
  json_array_foreach(json_object_get(model, "aliases"), i, a)
    if (reg_int(a, "version") > top)
      top = reg_int(a, "version");
  return top;
}

int reg_load_finish(registry *r, struct cm_error *err)
{
  const char *name;
  void *tmp;
  json_t *entry;

  json_object_foreach_safe(r->models, tmp, name, entry) {
    json_t *versions = json_object_get(entry, "versions"), *model = json_object_get(entry, "model");
    size_t n = json_array_size(versions);
    json_t **v = malloc((n + 1) * sizeof(*v)), *sorted = json_array();
    long long top;
    int rc = v && sorted ? 0 : -1;

    /* versions without their model document: keep them visible under a rebuilt model */
    if (!rc && json_is_null(model)) {
      model = model_new(name, NULL);
      rc = json_object_set_new(entry, "model", model);
    }
    for (size_t i = 0; !rc && i < n; i++)
      v[i] = json_array_get(versions, i);
    if (!rc)
      qsort(v, n, sizeof(*v), cmp_version);
    for (size_t i = 0; !rc && i < n; i++)
      rc = json_array_append(sorted, v[i]);
    if (!rc)
      rc = json_object_set(entry, "versions", sorted);
    free(v);
    json_decref(sorted);
    /* A missing or corrupt version leaves a gap, not an end: the versions after it (and the
     * aliases on them) are served, and no number is handed out twice. */
    top = model_top(entry);
    json_object_del(entry, "seen");
    if (!rc && reg_int(model, "latest_version") != top)
      rc = json_object_set_new(model, "latest_version", json_integer((json_int_t)top));
    if (rc)
      return cm_error_set(err, CM_E_NOMEM, "out of memory");
  }
  return 0;
}
