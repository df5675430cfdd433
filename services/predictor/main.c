/* credito-predictor: serves the model chosen by --model over credito.v1.Predictor, verified
 * against the registry's version record, swapped with no failed request when the alias moves.
 * Health is NOT_SERVING until a verified model is loaded. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pred_service.h"
#include "service.h"
#include "source.h"

struct ready_ctx {
  rpc_server *server;
};

/* After each publish: the program is ready (a model is served). */
static void on_serving(void *ctx)
{
  struct ready_ctx *r = ctx;
  if (r->server) {
    rpc_server_set_serving(r->server, "", true);
    rpc_server_set_serving(r->server, "credito.v1.Predictor", true);
  }
}

int main(int argc, char **argv)
{
  struct cm_opt opts[] = {
      SVC_COMMON_OPTS("0.0.0.0:50053"),
      {"registry", "CREDITO_REGISTRY", "127.0.0.1:50051", "registry address (HOST:PORT, a comma "
       "list, or dns:///NAME:PORT)", false, NULL, false},
      {"model", "CREDITO_MODEL", "credit-default@champion", "model to serve: NAME@ALIAS "
       "(followed) or NAME/N (pinned)", false, NULL, false},
      {"cache-dir", "CREDITO_CACHE_DIR", NULL, "verified artifacts kept for restarts with the "
       "registry down (default $HOME/.credito/predictor-cache; 'off' for none)", false, NULL,
       false},
      {"max-batch", "CREDITO_MAX_BATCH", "5000", "rows per PredictBatch (German Credit rows are "
       "about 570 bytes: raise --max-message with it)", false, NULL, false},
      {"max-features", "CREDITO_MAX_FEATURES", "1000", "features per applicant", false, NULL,
       false},
      {"batch-threads", "CREDITO_BATCH_THREADS", "0", "threads that score one PredictBatch by "
       "columns (0: one per core)", false, NULL, false},
      {"registry-timeout", "CREDITO_REGISTRY_TIMEOUT", "10s", "deadline of each registry call "
       "(downloads get ten times this)", false, NULL, false},
      {"max-artifact", "CREDITO_MAX_ARTIFACT", "67108864", "largest artifact accepted, bytes",
       false, NULL, false},
  };
  size_t nopts = sizeof(opts) / sizeof(opts[0]);
  struct rpc_server_opts so;
  struct rpc_channel_opts co = {0};
  struct served_slot slot;
  struct source_opts src_o = {0};
  struct pred_opts po = {0};
  struct ready_ctx ready = {NULL};
  struct cm_error err;
  struct rpc_service *svc = NULL;
  rpc_server *server = NULL;
  source *src = NULL;
  char cache[4096];
  const char *cache_opt, *home = getenv("HOME");
  long timeout_ms = 0, max_batch = 0, max_features = 0, max_artifact = 0, batch_threads = 0;
  int rc;

#ifdef M_ARENA_MAX
  /* One malloc arena per core instead of glibc's eight: every thread that allocates otherwise
   * takes an arena of its own and keeps its freed memory resident (64 calls in flight left the
   * predictor 1 - 2 MB larger, at no gain in calls/s: bench/RESULTS.md). */
  mallopt(M_ARENA_MAX, sysconf(_SC_NPROCESSORS_ONLN) > 1 ? (int)sysconf(_SC_NPROCESSORS_ONLN) : 1);
#endif
  /* Field by field: clang rejects {0} for a struct whose first member is an atomic pointer. */
  atomic_init(&slot.cur, NULL);
  atomic_init(&slot.entering, 0);
  cm_error_clear(&err);
  rc = svc_config("credito-predictor", "serves a registered model's verified artifact", opts,
                  nopts, argc, argv, &so, &err);
  if (rc == 1)
    return 0;
  if (!rc && cm_parse_duration_ms(cm_opt_get(opts, nopts, "registry-timeout"), &timeout_ms))
    rc = cm_error_set(&err, CM_E_INVALID, "--registry-timeout: not a duration");
  rc = rc ? rc : cm_opt_int(opts, nopts, "max-batch", 1, 1000000, &max_batch, &err);
  rc = rc ? rc : cm_opt_int(opts, nopts, "max-features", 1, 100000, &max_features, &err);
  rc = rc ? rc : cm_opt_int(opts, nopts, "max-artifact", 1024, 1L << 32, &max_artifact, &err);
  rc = rc ? rc : cm_opt_int(opts, nopts, "batch-threads", 0, 64, &batch_threads, &err);
  if (!rc) {
    char name[256], alias[256];
    int64_t v;
    rc = source_parse_ref(cm_opt_get(opts, nopts, "model"), name, alias, &v, &err);
  }
  if (rc) {
    fprintf(stderr, "credito-predictor: %s\n", err.msg);
    return 2;
  }
  cache_opt = cm_opt_get(opts, nopts, "cache-dir");
  if (!cache_opt)
    snprintf(cache, sizeof(cache), "%s/.credito/predictor-cache", home ? home : ".");
  else
    snprintf(cache, sizeof(cache), "%s", cache_opt);
  rpc_init();
  co.target = cm_opt_get(opts, nopts, "registry");
  src_o.reg.ch = rpc_channel_new(&co, &err);
  src_o.reg.timeout_ms = timeout_ms;
  src_o.model_ref = cm_opt_get(opts, nopts, "model");
  src_o.cache_dir = strcmp(cache, "off") == 0 ? NULL : cache;
  src_o.max_artifact = (size_t)max_artifact;
  src_o.on_serving = on_serving;
  src_o.ctx = &ready;
  po.slot = &slot;
  po.model_ref = src_o.model_ref;
  po.max_batch = (size_t)max_batch;
  po.max_features = (size_t)max_features;
  if (batch_threads == 0)
    batch_threads = sysconf(_SC_NPROCESSORS_ONLN);
  po.batch_threads = batch_threads > 0 ? (unsigned)(batch_threads < 64 ? batch_threads : 64) : 1;
  svc = src_o.reg.ch ? pred_service_new(&po) : NULL;
  server = svc ? rpc_server_new(&so, &err) : NULL;
  if (!server || rpc_server_add_service(server, svc, &err)) {
    cm_log(CM_LOG_ERROR, "cannot create server", "error=%s",
           svc || !src_o.reg.ch ? err.msg : "out of memory");
    rc = 1;
    goto out;
  }
  ready.server = server;
  src = source_start(&src_o, &slot, &err);
  if (!src) {
    cm_log(CM_LOG_ERROR, "cannot start the model source", "error=%s", err.msg);
    rc = 1;
    goto out;
  }
  pred_service_set_source(svc, src);
  /* Health turns SERVING in on_serving, once a verified model is published (perhaps already,
   * from the cache). */
  rc = svc_run_as(server, false);
out:
  source_stop(src);
  rpc_server_free(server);
  pred_service_free(svc);
  served_swap(&slot, NULL);
  rpc_channel_free(src_o.reg.ch);
  rpc_cleanup();
  return rc;
}
