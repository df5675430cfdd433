/* credito-trainer: the trainer. Serves credito.v1.Trainer (a dataset version in, a registered,
 * tracked model version out), or with `fit FILE` trains once on a local file and exits. */
#include <stdio.h>
#include <string.h>

#include "fit_cli.h"
#include "log.h"
#include "service.h"
#include "train_service.h"
#include "track.h"

int main(int argc, char **argv)
{
  struct cm_opt opts[] = {
      SVC_COMMON_OPTS("0.0.0.0:50052"),
      {"registry", "CREDITO_REGISTRY", "127.0.0.1:50051", "registry address (HOST:PORT, a comma "
       "list, or dns:///NAME:PORT)", false, NULL, false},
      {"registry-timeout", "CREDITO_REGISTRY_TIMEOUT", "30s", "deadline of each registry call "
       "(transfers get ten times this)", false, NULL, false},
      {"max-dataset", "CREDITO_MAX_DATASET", "268435456", "largest dataset version trained on, "
       "in bytes", false, NULL, false},
  };
  size_t nopts = sizeof(opts) / sizeof(opts[0]);
  struct rpc_server_opts so;
  struct rpc_channel_opts co = {0};
  struct trk_opts to = {0};
  struct cm_error err;
  struct rpc_service *svc = NULL;
  rpc_server *server = NULL;
  long timeout_ms = 0, max_dataset = 0;
  int rc;

  if (argc > 1 && strcmp(argv[1], "fit") == 0)
    return fit_cli_main(argc - 1, argv + 1);
  cm_error_clear(&err);
  rc = svc_config("credito-trainer", "the trainer: a dataset version to a registered, tracked "
                  "model version (or `credito-trainer fit FILE --help`)", opts, nopts, argc,
                  argv, &so, &err);
  if (rc == 1)
    return 0;
  if (!rc && cm_parse_duration_ms(cm_opt_get(opts, nopts, "registry-timeout"), &timeout_ms))
    rc = cm_error_set(&err, CM_E_INVALID, "--registry-timeout: not a duration");
  if (!rc)
    rc = cm_opt_int(opts, nopts, "max-dataset", 1, 1L << 40, &max_dataset, &err);
  if (rc) {
    fprintf(stderr, "credito-trainer: %s\n", err.msg);
    return 2;
  }
  rpc_init();
  co.target = cm_opt_get(opts, nopts, "registry");
  to.reg.ch = rpc_channel_new(&co, &err);
  to.reg.timeout_ms = timeout_ms;
  to.max_dataset = (size_t)max_dataset;
  to.trainer_version = CREDITO_TRAINER_VERSION;
  svc = to.reg.ch ? trainer_service_new(&to) : NULL;
  server = svc ? rpc_server_new(&so, &err) : NULL;
  if (!server || rpc_server_add_service(server, svc, &err)) {
    cm_log(CM_LOG_ERROR, "cannot create server", "error=%s", svc ? err.msg : "out of memory");
    rc = 1;
    goto out;
  }
  rc = svc_run(server);
out:
  rpc_server_free(server);
  trainer_service_free(svc);
  rpc_channel_free(to.reg.ch);
  rpc_cleanup();
  return rc;
}
