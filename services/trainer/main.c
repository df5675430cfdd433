/* credito-trainer: the trainer: a dataset version to a registered, tracked model version.
 * Until the change that builds it lands, the credito.v1.Trainer API is served as UNIMPLEMENTED
 * beside health and reflection, so clients and grpcurl already see its shape. */
#include <stdio.h>

#include "credito/v1/trainer.pb-c.h"
#include "log.h"
#include "service.h"

int main(int argc, char **argv)
{
  struct cm_opt opts[] = {SVC_COMMON_OPTS("0.0.0.0:50052")};
  size_t nopts = sizeof(opts) / sizeof(opts[0]);
  struct rpc_server_opts so;
  struct cm_error err;
  struct rpc_service *svc = NULL;
  rpc_server *server = NULL;
  int rc;

  cm_error_clear(&err);
  rc = svc_config("credito-trainer", "the trainer: a dataset version to a registered, tracked model version", opts, nopts, argc, argv, &so, &err);
  if (rc == 1)
    return 0;
  if (rc) {
    fprintf(stderr, "credito-trainer: %s\n", err.msg);
    return 2;
  }
  rpc_init();
  svc = rpc_service_unimplemented_new(&credito__v1__trainer__descriptor,
                                      "credito.v1.Trainer is not built yet (issue #4)");
  server = svc ? rpc_server_new(&so, &err) : NULL;
  if (!server || rpc_server_add_service(server, svc, &err)) {
    cm_log(CM_LOG_ERROR, "cannot create server", "error=%s", svc ? err.msg : "out of memory");
    rc = 1;
    goto out;
  }
  rc = svc_run(server);
out:
  rpc_server_free(server);
  rpc_service_unimplemented_free(svc);
  rpc_cleanup();
  return rc;
}
