/* The skeleton every Credito server program shares: the common flags with their environment
 * twins (--listen, --log-level, TLS files, workers, message cap, grace), logging set up, the
 * gRPC server built, and the run-until-signal loop. A program's main adds its own flags and
 * services and nothing else. */
#ifndef CREDITO_SERVICE_H
#define CREDITO_SERVICE_H

#include "config.h"
#include "rpc.h"

/* Flags every server takes; a program appends its own after these in one array. */
#define SVC_COMMON_OPTS(default_listen)                                                         \
  {"listen", "CREDITO_LISTEN", default_listen, "HOST:PORT to serve gRPC on (port 0: any free)",  \
   false, NULL, false},                                                                          \
  {"log-level", "CREDITO_LOG_LEVEL", "info", "debug, info, warn, error or off", false, NULL,     \
   false},                                                                                       \
  {"workers", "CREDITO_WORKERS", "0", "completion queues, each with its own threads (0: one per " \
   "core)", false, NULL, false},                                                                 \
  {"max-message", "CREDITO_MAX_MESSAGE", "4194304", "largest gRPC message in bytes, either way", \
   false, NULL, false},                                                                          \
  {"grace", "CREDITO_GRACE", "5s", "on SIGTERM, how long in-flight calls may take", false, NULL, \
   false},                                                                                       \
  {"tls-cert", "CREDITO_TLS_CERT", NULL, "PEM certificate chain: serve TLS", false, NULL,        \
   false},                                                                                       \
  {"tls-key", "CREDITO_TLS_KEY", NULL, "PEM private key for --tls-cert", false, NULL, false},    \
  {"tls-client-ca", "CREDITO_TLS_CLIENT_CA", NULL, "PEM CA: require client certificates (mTLS)", \
   false, NULL, false}

#define SVC_N_COMMON_OPTS 8

/* Parses argv into opts (SVC_COMMON_OPTS first), sets up logging for program, and fills *out
 * (whose strings point into opts). Returns 0; 1 when --help was printed; or an error in err
 * (the caller prints it and exits 2). */
int svc_config(const char *program, const char *summary, struct cm_opt *opts, size_t nopts,
               int argc, char **argv, struct rpc_server_opts *out, struct cm_error *err);

/* Starts s, marks it ready (every service SERVING, the "listening" line), waits for SIGINT/SIGTERM and shuts down. Returns the
 * process exit code: 0 after a clean shutdown, 1 if the server could not start. */
int svc_run(rpc_server *s);

/* svc_run, but with ready false health stays NOT_SERVING (the "listening" line is still logged)
 * until the program calls rpc_server_set_serving(s, "", true) itself. */
int svc_run_as(rpc_server *s, bool ready);

#endif
