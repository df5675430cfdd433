/* The shared server-program skeleton: flags, logging, run loop. */
#include <stdio.h>

#include "log.h"
#include "service.h"

int svc_config(const char *program, const char *summary, struct cm_opt *opts, size_t nopts,
               int argc, char **argv, struct rpc_server_opts *out, struct cm_error *err)
{
  enum cm_log_level level;
  long workers, max_message, grace_ms;
  int rc = cm_config_parse(opts, nopts, argc, argv, NULL, err);

  if (rc == 1) {
    cm_config_usage(stdout, program, summary, opts, nopts);
    return 1;
  }
  if (rc)
    return rc;
  if (cm_log_level_parse(cm_opt_get(opts, nopts, "log-level"), &level))
    return cm_error_set(err, CM_E_INVALID, "--log-level: want debug, info, warn, error or off");
  cm_log_init(program, level);
  rc = cm_opt_int(opts, nopts, "workers", 0, 256, &workers, err);
  if (!rc)
    rc = cm_opt_int(opts, nopts, "max-message", 1024, 1L << 30, &max_message, err);
  if (rc)
    return rc;
  if (cm_parse_duration_ms(cm_opt_get(opts, nopts, "grace"), &grace_ms) || grace_ms > 3600000)
    return cm_error_set(err, CM_E_INVALID, "--grace: want a duration such as 5s or 500ms");
  *out = (struct rpc_server_opts){
      .listen = cm_opt_get(opts, nopts, "listen"),
      .workers = (int)workers,
      .max_message = (size_t)max_message,
      .grace_ms = grace_ms > 0 ? (int)grace_ms : 1,
      .tls_cert = cm_opt_get(opts, nopts, "tls-cert"),
      .tls_key = cm_opt_get(opts, nopts, "tls-key"),
      .tls_client_ca = cm_opt_get(opts, nopts, "tls-client-ca"),
      .program = program,
  };
  return 0;
}

int svc_run_as(rpc_server *s, bool ready)
{
  struct cm_error err;

  cm_error_clear(&err);
  if (rpc_server_start(s, &err)) {
    cm_log(CM_LOG_ERROR, "cannot start", "error=%s", err.msg);
    return 1;
  }
  if (ready)
    rpc_server_ready(s);
  else
    rpc_server_listening(s);
  return rpc_server_wait(s);
}

int svc_run(rpc_server *s)
{
  return svc_run_as(s, true);
}
