/* credito-registry: the model registry. Experiments, runs (params, metric history, tags,
 * inputs, artifacts), dataset versions, registered models, numbered versions, aliases, lineage
 * and an audit log, all kept in the object store (--store). Health says NOT_SERVING, and the
 * "listening" line waits, until the state is loaded from the store; a store that is down is
 * retried with backoff. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "reg_service.h"
#include "service.h"

struct loader {
  registry *r;
  rpc_server *server;
  atomic_bool stop;     /* main is shutting down */
};

/* Loads the registry, retrying with backoff while the store is unavailable, then marks the
 * server ready. */
static void *loader_main(void *arg)
{
  struct loader *l = arg;
  long wait_ms = 250;

  while (!atomic_load(&l->stop)) {
    struct cm_error err;
    struct timespec tick = {0, 50 * 1000000L};

    cm_error_clear(&err);
    /* registry_load makes the bucket (or folder) first: the registry is the store's single
     * writer. It also records why a load failed, which calls answer meanwhile. */
    if (registry_load(l->r, &err) == 0) {
      rpc_server_ready(l->server);
      break;
    }
    cm_log(CM_LOG_ERROR, "cannot load the registry; retrying", "error=%s retry_ms=%ld", err.msg,
           wait_ms);
    for (long slept = 0; slept < wait_ms && !atomic_load(&l->stop); slept += 50)
      nanosleep(&tick, NULL);
    wait_ms = wait_ms * 2 > 30000 ? 30000 : wait_ms * 2;
  }
  return NULL;
}

int main(int argc, char **argv)
{
  struct cm_opt opts[] = {
      SVC_COMMON_OPTS("0.0.0.0:50051"),
      {"store", "CREDITO_STORE", NULL,
       "s3://bucket[/prefix] (endpoint and keys from AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, "
       "AWS_SECRET_ACCESS_KEY, AWS_REGION) or file:///dir; default file://$HOME/.credito/store",
       false, NULL, false},
      {"max-upload", "CREDITO_MAX_UPLOAD", "268435456", "largest artifact or dataset in bytes",
       false, NULL, false},
      {"tmp-dir", "TMPDIR", "/tmp", "where uploads spool until their digest is known", false,
       NULL, false},
  };
  size_t nopts = sizeof(opts) / sizeof(opts[0]);
  struct rpc_server_opts so;
  struct store_opts sto = {0};
  struct registry_opts ro = {0};
  struct cm_error err;
  struct rpc_service *svc = NULL;
  rpc_server *server = NULL;
  registry *r = NULL;
  store *st = NULL;
  pthread_t loader;
  struct loader l;
  long max_upload;
  int rc;

  cm_error_clear(&err);
  rc = svc_config("credito-registry", "the model registry, kept in an object store", opts, nopts,
                  argc, argv, &so, &err);
  if (rc == 0)
    rc = cm_opt_int(opts, nopts, "max-upload", 1, 1L << 40, &max_upload, &err);
  if (rc == 1)
    return 0;
  if (rc) {
    fprintf(stderr, "credito-registry: %s\n", err.msg);
    return 2;
  }
  rpc_init();
  sto.url = cm_opt_get(opts, nopts, "store");
  ro.max_artifact = (uint64_t)max_upload;
  ro.tmp_dir = cm_opt_get(opts, nopts, "tmp-dir");
  rc = 1;
  st = store_open(&sto, &err);
  r = st ? registry_new(st, &ro, &err) : NULL;
  svc = r ? reg_service_new(r) : NULL;
  server = svc ? rpc_server_new(&so, &err) : NULL;
  if (!server || rpc_server_add_service(server, svc, &err) || rpc_server_start(server, &err)) {
    cm_log(CM_LOG_ERROR, "cannot start", "error=%s", err.msg[0] ? err.msg : "out of memory");
    goto out;
  }
  l.r = r;
  l.server = server;
  atomic_init(&l.stop, false);
  if (pthread_create(&loader, NULL, loader_main, &l)) {
    cm_log(CM_LOG_ERROR, "cannot start the loader thread", NULL);
    goto out;
  }
  rc = rpc_server_wait(server);
  atomic_store(&l.stop, true);
  pthread_join(loader, NULL);
out:
  rpc_server_free(server);
  reg_service_free(svc);
  registry_free(r);
  store_free(st);
  rpc_cleanup();
  return rc;
}
