/* source: resolve, fetch, verify, cache, load and publish model versions; follow an alias. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mem.h"
#include "source.h"

#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000

struct source {
  const struct source_opts *o;
  struct served_slot *slot;
  char name[256], alias[256];
  int64_t pinned;            /* pinned version, 0 when following an alias */
  pthread_t thread;
  pthread_mutex_t mu;        /* guards everything below */
  pthread_cond_t wake;       /* stop asked */
  bool stop;
  rpc_stream *watch;         /* the WatchModel call in progress, cancelled by source_stop */
  struct source_error last;  /* the last failed load */
  bool load_failed;          /* the last load attempt failed (source thread only) */
};

static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int source_parse_ref(const char *ref, char *name, char *alias, int64_t *version,
                     struct cm_error *err)
{
  /* Aliases hold no '@' or '/', model names no '/': split at the last '@', else the last '/'. */
  const char *sep = ref ? strrchr(ref, '@') : NULL;
  char *end = NULL;
  size_t n;

  if (!sep && ref)
    sep = strrchr(ref, '/');
  n = sep ? (size_t)(sep - ref) : 0;

  if (!sep || n == 0 || n > 255 || !sep[1] || strlen(sep + 1) > 255)
    return cm_error_set(err, CM_E_INVALID, "--model '%.60s': want NAME@ALIAS or NAME/N",
                        ref ? ref : "");
  memcpy(name, ref, n);
  name[n] = '\0';
  alias[0] = '\0';
  *version = 0;
  if (*sep == '@') {
    snprintf(alias, 256, "%s", sep + 1);
    return 0;
  }
  errno = 0;
  *version = strtoll(sep + 1, &end, 10);
  if (*end || errno || *version < 1)
    return cm_error_set(err, CM_E_INVALID, "--model '%.60s': the version must be a number >= 1",
                        ref);
  return 0;
}

static void set_error(source *s, int64_t version, const char *msg)
{
  pthread_mutex_lock(&s->mu);
  s->last.version = version;
  snprintf(s->last.msg, sizeof s->last.msg, "%s", msg);
  s->last.time_ms = now_ms();
  pthread_mutex_unlock(&s->mu);
  if (version > 0)
    cm_log(CM_LOG_WARN, "model version not loaded; serving what was served before",
           "model=%s version=%lld error=%s", s->name, (long long)version, msg);
}

void source_last_error(source *s, struct source_error *out)
{
  pthread_mutex_lock(&s->mu);
  *out = s->last;
  pthread_mutex_unlock(&s->mu);
}

/* Sleeps up to ms or until stop; returns true when stopping. */
static bool nap(source *s, long ms)
{
  struct timespec until;
  bool stop;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&s->mu);
  while (!s->stop && pthread_cond_timedwait(&s->wake, &s->mu, &until) != ETIMEDOUT)
    ;
  stop = s->stop;
  pthread_mutex_unlock(&s->mu);
  return stop;
}

static bool stopping(source *s)
{
  bool stop;
  pthread_mutex_lock(&s->mu);
  stop = s->stop;
  pthread_mutex_unlock(&s->mu);
  return stop;
}

/* ---- The cache: <dir>/<sha256>.pb verified artifacts, <dir>/<md5 of ref>.ref the record of
 * the last version published for the ref. Written to a temporary name, then renamed. ---- */

static int cache_write(const char *dir, const char *file, const void *p, size_t n)
{
  char path[4096], tmp[4200];
  FILE *f;
  snprintf(path, sizeof(path), "%s/%s", dir, file);
  snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
  f = fopen(tmp, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fflush(f) || fsync(fileno(f))) {
    if (f)
      fclose(f);
    unlink(tmp);
    return CM_E_IO;
  }
  if (fclose(f) || rename(tmp, path)) {
    unlink(tmp);
    return CM_E_IO;
  }
  return 0;
}

/* Reads <dir>/<file> (at most max bytes) into out; CM_E_NOTFOUND when absent. */
static int cache_read(const char *dir, const char *file, size_t max, struct cm_buf *out)
{
  char path[4096], chunk[65536];
  FILE *f;
  size_t n;
  int rc = 0;
  snprintf(path, sizeof(path), "%s/%s", dir, file);
  f = fopen(path, "rb");
  if (!f)
    return CM_E_NOTFOUND;
  out->max = max;
  while (!rc && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    rc = cm_buf_add(out, chunk, n);
  if (!rc && ferror(f))
    rc = CM_E_IO;
  fclose(f);
  return rc;
}

static void ref_file(const source *s, char out[40])
{
  char md5[33];
  regc_md5_hex(s->o->model_ref, strlen(s->o->model_ref), md5);
  snprintf(out, 40, "%s.ref", md5);
}

/* ---- Loading one version ---- */

/* True when the slot already serves v. */
static bool serving_already(source *s, const Credito__V1__ModelVersion *v)
{
  struct served *cur = served_acquire(s->slot);
  bool same = cur && cur->version == v->version && strcmp(cur->name, v->name) == 0 &&
              strcmp(cur->sha256, v->artifact_sha256) == 0;
  served_release(cur);
  return same;
}

/* The artifact bytes of v whose SHA-256 matches the record: from the cache, else the registry
 * (then cached). CM_E_CORRUPT with the two digests when the registry's bytes differ. */
static int artifact_bytes(source *s, const Credito__V1__ModelVersion *v, struct cm_buf *out,
                          struct cm_error *err)
{
  char file[80], got[65] = "";
  int rc;
  snprintf(file, sizeof(file), "%.64s.pb", v->artifact_sha256);
  if (s->o->cache_dir && cache_read(s->o->cache_dir, file, s->o->max_artifact, out) == 0 &&
      md_artifact_sha256((const uint8_t *)(out->data ? out->data : ""), out->len, got) == 0 &&
      strcmp(got, v->artifact_sha256) == 0)
    return 0;
  cm_buf_reset(out);
  rc = regc_artifact_get(&s->o->reg, v->artifact_key, s->o->max_artifact, out, err);
  if (rc)
    return rc;
  md_artifact_sha256((const uint8_t *)(out->data ? out->data : ""), out->len, got);
  if (strcmp(got, v->artifact_sha256) != 0)
    return cm_error_set(err, CM_E_CORRUPT, "artifact sha256 mismatch: want %.16s..., got "
                        "%.16s...", v->artifact_sha256, got);
  if (s->o->cache_dir && cache_write(s->o->cache_dir, file, out->data, out->len))
    cm_log(CM_LOG_WARN, "cannot cache the artifact", "dir=%s", s->o->cache_dir);
  return 0;
}

/* Loads v's verified artifact and publishes it. On failure the slot is untouched. */
static int load_version(source *s, const Credito__V1__ModelVersion *v, struct cm_error *err)
{
  struct cm_buf bytes;
  md_model *m = NULL;
  struct served *sv;
  uint8_t *record = NULL;
  size_t rlen = credito__v1__model_version__get_packed_size(v);
  char ref[40];
  int rc;

  if (serving_already(s, v)) {
    /* The alias came back to the version served: an older failure is no longer news. */
    pthread_mutex_lock(&s->mu);
    memset(&s->last, 0, sizeof s->last);
    pthread_mutex_unlock(&s->mu);
    s->load_failed = false;
    return 0;
  }
  s->load_failed = true;
  cm_buf_init(&bytes, s->o->max_artifact);
  rc = artifact_bytes(s, v, &bytes, err);
  rc = rc ? rc : md_model_load((const uint8_t *)bytes.data, bytes.len, &m, err);
  cm_buf_cleanup(&bytes);
  record = rc ? NULL : cm_malloc(rlen ? rlen : 1);
  if (!rc && !record)
    rc = cm_error_set(err, CM_E_NOMEM, "out of memory");
  if (rc) {
    md_model_free(m);
    return rc;
  }
  credito__v1__model_version__pack(v, record);
  sv = served_new(m, v->name, v->version, s->alias, v->artifact_sha256, v->run_id, record, rlen);
  if (!sv) {
    cm_free(record);
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  }
  sv->loaded_at_ms = now_ms();
  served_swap(s->slot, sv);
  ref_file(s, ref);
  if (s->o->cache_dir && cache_write(s->o->cache_dir, ref, record, rlen))
    cm_log(CM_LOG_WARN, "cannot write the cache's record", "dir=%s", s->o->cache_dir);
  cm_free(record);
  pthread_mutex_lock(&s->mu);
  memset(&s->last, 0, sizeof s->last);
  pthread_mutex_unlock(&s->mu);
  s->load_failed = false;
  cm_log(CM_LOG_INFO, "serving model", "model=%s version=%lld alias=%s sha256=%s", v->name,
         (long long)v->version, s->alias, v->artifact_sha256);
  if (s->o->on_serving)
    s->o->on_serving(s->o->ctx);
  return 0;
}

/* True when the cache holds v's artifact and it still matches the record. */
static bool cached_ok(source *s, const Credito__V1__ModelVersion *v)
{
  char file[80], got[65] = "";
  struct cm_buf bytes;
  bool ok;
  cm_buf_init(&bytes, s->o->max_artifact);
  snprintf(file, sizeof(file), "%.64s.pb", v->artifact_sha256);
  ok = cache_read(s->o->cache_dir, file, s->o->max_artifact, &bytes) == 0 &&
       md_artifact_sha256((const uint8_t *)(bytes.data ? bytes.data : ""), bytes.len, got) == 0 &&
       strcmp(got, v->artifact_sha256) == 0;
  cm_buf_cleanup(&bytes);
  return ok;
}

/* At start: the last version published for this ref, if the cache still verifies it, so a
 * restart with the registry or the store down serves at once. */
static void load_cached(source *s)
{
  struct cm_buf rec;
  Credito__V1__ModelVersion *v = NULL;
  struct cm_error err;
  char ref[40];

  if (!s->o->cache_dir)
    return;
  cm_buf_init(&rec, 1 << 20);
  ref_file(s, ref);
  if (cache_read(s->o->cache_dir, ref, 1 << 20, &rec) == 0)
    v = credito__v1__model_version__unpack(NULL, rec.len, (const uint8_t *)rec.data);
  cm_buf_cleanup(&rec);
  if (!v)
    return;
  cm_error_clear(&err);
  if (!cached_ok(s, v))
    cm_log(CM_LOG_WARN, "cached model does not verify; waiting for the registry",
           "model=%s version=%lld", v->name, (long long)v->version);
  else if (load_version(s, v, &err) == 0)
    cm_log(CM_LOG_INFO, "serving the cached model until the registry answers",
           "model=%s version=%lld", v->name, (long long)v->version);
  else
    cm_log(CM_LOG_WARN, "cached model not loaded", "error=%s", err.msg);
  credito__v1__model_version__free_unpacked(v, NULL);
}

/* ---- Following the registry ---- */

/* A pinned version: resolve and load it; true once loaded. */
static bool follow_pinned(source *s, struct cm_error *err)
{
  Credito__V1__GetModelVersionRequest req = CREDITO__V1__GET_MODEL_VERSION_REQUEST__INIT;
  Credito__V1__ModelVersion *v = NULL;
  cm_arena *a = cm_arena_new(0);
  int rc;
  req.name = s->name;
  req.version = s->pinned;
  rc = a ? regc_call(&s->o->reg, "GetModelVersion", &req.base,
                     &credito__v1__model_version__descriptor, a, &v, err)
         : cm_error_set(err, CM_E_NOMEM, "out of memory");
  rc = rc ? rc : load_version(s, v, err);
  cm_arena_free(a);
  return rc == 0;
}

/* One event of the watch: a version for our alias is loaded; a failure is remembered and
 * returned (the caller then subscribes again after a backoff, and the new snapshot retries the
 * load: a transient download error, or bytes repaired in the store, are picked up). */
static int on_event(source *s, const Credito__V1__ModelEvent *ev, struct cm_error *err)
{
  switch (ev->type) {
  case CREDITO__V1__MODEL_EVENT_TYPE__MODEL_EVENT_TYPE_SNAPSHOT:
  case CREDITO__V1__MODEL_EVENT_TYPE__MODEL_EVENT_TYPE_ALIAS_SET:
    if (ev->version && ev->version->version > 0) {
      if (load_version(s, ev->version, err)) {
        set_error(s, ev->version->version, err->msg);
        return err->code;
      }
    } else {
      cm_log(CM_LOG_WARN, "the alias points at no version yet", "model=%s alias=%s", s->name,
             s->alias);
    }
    break;
  case CREDITO__V1__MODEL_EVENT_TYPE__MODEL_EVENT_TYPE_ALIAS_REMOVED:
    cm_log(CM_LOG_WARN, "the alias was removed; serving the last version", "model=%s alias=%s",
           s->name, s->alias);
    break;
  default:
    break;
  }
  return 0;
}

/* One WatchModel subscription until the stream ends or breaks. Returns true when at least one
 * event arrived (the backoff then starts over). */
static bool follow_alias(source *s, struct cm_error *err)
{
  s->load_failed = false; /* this subscription's own loads decide */
  Credito__V1__WatchModelRequest req = CREDITO__V1__WATCH_MODEL_REQUEST__INIT;
  rpc_stream *st = rpc_stream_open(s->o->reg.ch, "/credito.v1.Registry/WatchModel", 0, err);
  bool got = false;
  int rc = st ? 0 : err->code;

  req.name = s->name;
  req.alias = s->alias;
  pthread_mutex_lock(&s->mu);
  s->watch = st;
  if (s->stop && st)
    rpc_stream_cancel(st);
  pthread_mutex_unlock(&s->mu);
  rc = rc ? rc : rpc_stream_send(st, &req.base, err);
  rc = rc ? rc : rpc_stream_close_send(st, err);
  while (!rc) {
    cm_arena *a = cm_arena_new(0);
    Credito__V1__ModelEvent *ev = NULL;
    rc = a ? rpc_stream_recv(st, &credito__v1__model_event__descriptor, a,
                             (ProtobufCMessage **)&ev, err)
           : cm_error_set(err, CM_E_NOMEM, "out of memory");
    if (!rc && ev) {
      got = true;
      rc = on_event(s, ev, err);
    }
    cm_arena_free(a);
    if (!rc && !ev)
      rc = rpc_stream_finish(st, err) ? err->code : cm_error_set(err, CM_E_UNAVAILABLE,
                                                                  "the watch ended");
  }
  pthread_mutex_lock(&s->mu);
  s->watch = NULL;
  pthread_mutex_unlock(&s->mu);
  rpc_stream_free(st);
  /* A stream that delivered events and broke later resets the backoff; one that ended on a
   * failed load does not, so a bad version is retried at most every BACKOFF_MAX_MS. */
  return got && !s->load_failed;
}

static void *source_main(void *arg)
{
  source *s = arg;
  long backoff = BACKOFF_MIN_MS;

  while (!stopping(s)) {
    struct cm_error err;
    bool progress;
    cm_error_clear(&err);
    if (s->pinned) {
      if (follow_pinned(s, &err))
        break; /* a pinned version never changes */
      set_error(s, s->pinned, err.msg);
      progress = false;
    } else {
      progress = follow_alias(s, &err);
      if (!stopping(s) && !s->load_failed) {
        cm_log(CM_LOG_WARN, "the model watch broke; subscribing again", "error=%s retry_ms=%ld",
               err.msg, progress ? BACKOFF_MIN_MS : backoff);
        if (!progress) /* for GetModelInfo: why nothing new can arrive */
          set_error(s, 0, err.msg);
      }
    }
    backoff = progress ? BACKOFF_MIN_MS : backoff;
    if (nap(s, backoff))
      break;
    backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
  }
  return NULL;
}

source *source_start(const struct source_opts *o, struct served_slot *slot, struct cm_error *err)
{
  source *s = cm_calloc(1, sizeof *s);
  if (!s) {
    cm_error_set(err, CM_E_NOMEM, "out of memory");
    return NULL;
  }
  s->o = o;
  s->slot = slot;
  if (source_parse_ref(o->model_ref, s->name, s->alias, &s->pinned, err)) {
    cm_free(s);
    return NULL;
  }
  if (o->cache_dir && mkdir(o->cache_dir, 0700) && errno != EEXIST)
    cm_log(CM_LOG_WARN, "cannot create the cache folder; caching off", "dir=%s error=%s",
           o->cache_dir, strerror(errno));
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->wake, NULL);
  load_cached(s);
  if (pthread_create(&s->thread, NULL, source_main, s)) {
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->wake);
    cm_free(s);
    cm_error_set(err, CM_E_INTERNAL, "cannot start the model source thread");
    return NULL;
  }
  return s;
}

void source_stop(source *s)
{
  if (!s)
    return;
  pthread_mutex_lock(&s->mu);
  s->stop = true;
  if (s->watch)
    rpc_stream_cancel(s->watch);
  pthread_cond_signal(&s->wake);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->wake);
  cm_free(s);
}
