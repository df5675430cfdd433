/* credito-gateway: the REST front door. POST /predict and /predict/batch with x-api-key and
 * per-key and per-IP rate limits, in FastAPI's shapes, to the predictors over gRPC. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "gw.h"
#include "log.h"
#include "mem.h"

enum {
  O_LISTEN, O_PREDICTORS, O_TIMEOUT, O_KEEPALIVE, O_CALLS, O_FORM, O_KEYS_FILE, O_KEYS,
  O_LIMIT_KEY, O_LIMIT_IP, O_RL_STORE, O_TRUSTED, O_MAX_BODY, O_MAX_BATCH, O_THREADS, O_MAX_CONN,
  O_MAX_PER_IP, O_IDLE, O_MAX_HEADER, O_LOG_LEVEL, O_N
};

static struct cm_opt opts[O_N] = {
    [O_LISTEN] = {"listen", "CREDITO_LISTEN", "0.0.0.0:8080", "HOST:PORT to serve HTTP on (port "
                  "0: any free)", false, NULL, false},
    [O_PREDICTORS] = {"predictors", "CREDITO_PREDICTORS", "127.0.0.1:50053", "predictor "
                      "address(es): HOST:PORT, a comma list of IPs (round_robin), dns:///NAME:PORT",
                      false, NULL, false},
    [O_TIMEOUT] = {"upstream-timeout", "CREDITO_UPSTREAM_TIMEOUT", "2s", "deadline of each "
                   "predictor call (504 after it)", false, NULL, false},
    [O_KEEPALIVE] = {"upstream-keepalive", "CREDITO_UPSTREAM_KEEPALIVE", "1s", "PING each "
                     "predictor connection this often; one that does not answer within it is "
                     "dropped from the round robin (0: off)", false, NULL, false},
    [O_CALLS] = {"upstream-calls", "CREDITO_UPSTREAM_CALLS", "0", "predictor calls in flight at "
                 "once; requests that arrive meanwhile go together in the next call (0: one per "
                 "core)", false, NULL, false},
    [O_FORM] = {"upstream-form", "CREDITO_UPSTREAM_FORM", "columns", "how calls carry rows to "
                "the predictors: columns (cheaper to encode and decode) or rows (for predictors "
                "older than the columns form)", false, NULL, false},
    [O_KEYS_FILE] = {"api-keys-file", "CREDITO_API_KEYS_FILE", NULL, "file of NAME:SHA256HEX "
                     "lines (creditoctl apikey new makes them)", false, NULL, false},
    [O_KEYS] = {"api-keys", "CREDITO_API_KEYS", NULL, "NAME:SHA256HEX,... (adds to the file)",
                false, NULL, false},
    [O_LIMIT_KEY] = {"rate-limit-key", "CREDITO_RATE_LIMIT_KEY", "100/minute", "per API key, "
                     "slowapi syntax (\"100/minute;10/second\"; empty: none)", false, NULL, false},
    [O_LIMIT_IP] = {"rate-limit-ip", "CREDITO_RATE_LIMIT_IP", "300/minute", "per client IP",
                    false, NULL, false},
    [O_RL_STORE] = {"ratelimit-store", "CREDITO_RATELIMIT_STORE", "memory://", "memory:// or "
                    "redis://HOST:PORT[/DB] to share limits between gateways", false, NULL, false},
    [O_TRUSTED] = {"trusted-proxies", "CREDITO_TRUSTED_PROXIES", "", "proxies (IPs, CIDRs) whose "
                   "X-Forwarded-For names the client", false, NULL, false},
    [O_MAX_BODY] = {"max-body", "CREDITO_MAX_BODY", "1048576", "bytes of a request body (413 "
                    "over it)", false, NULL, false},
    [O_MAX_BATCH] = {"max-batch", "CREDITO_MAX_BATCH", "1000", "rows of /predict/batch", false,
                     NULL, false},
    [O_THREADS] = {"threads", "CREDITO_THREADS", "0", "HTTP threads (0: 4 per core)", false, NULL,
                   false},
    [O_MAX_CONN] = {"max-connections", "CREDITO_MAX_CONNECTIONS", "1024", "open connections",
                    false, NULL, false},
    [O_MAX_PER_IP] = {"max-connections-per-ip", "CREDITO_MAX_CONNECTIONS_PER_IP", "64",
                      "open connections from one address", false, NULL, false},
    [O_IDLE] = {"idle-timeout", "CREDITO_IDLE_TIMEOUT", "15", "seconds before an idle or slow "
                "connection is closed", false, NULL, false},
    [O_MAX_HEADER] = {"max-header-bytes", "CREDITO_MAX_HEADER_BYTES", "16384", "request line "
                      "and headers, bytes (also each connection's buffer, zeroed per request)",
                      false, NULL, false},
    [O_LOG_LEVEL] = {"log-level", "CREDITO_LOG_LEVEL", "info", "debug, info, warn, error or off",
                     false, NULL, false},
};

/* Numbers and limits from the flags into cfg. */
static int config_fill(struct gw_config *cfg, char *host, size_t hostlen, struct cm_error *err)
{
  long v[8] = {0}, timeout = 0, keepalive = 0;
  const char *names[8] = {"max-body", "max-batch", "threads", "max-connections",
                          "max-connections-per-ip", "idle-timeout", "max-header-bytes",
                          "upstream-calls"};
  const long lo[8] = {16, 1, 0, 1, 1, 1, 1024, 0}, hi[8] = {1L << 30, 100000, 1024, 1000000,
                                                           100000, 3600, 1 << 20, 256};
  int rc = cm_parse_hostport(opts[O_LISTEN].value, host, hostlen, &cfg->port, err);

  for (size_t i = 0; !rc && i < 8; i++)
    rc = cm_opt_int(opts, O_N, names[i], lo[i], hi[i], &v[i], err);
  if (!rc && cm_parse_duration_ms(opts[O_TIMEOUT].value, &timeout))
    rc = cm_error_set(err, CM_E_INVALID, "--upstream-timeout: want a duration such as 2s");
  if (!rc && (cm_parse_duration_ms(opts[O_KEEPALIVE].value, &keepalive) ||
              (keepalive > 0 && keepalive < 100)))
    rc = cm_error_set(err, CM_E_INVALID, "--upstream-keepalive: want 0 or a duration of at "
                      "least 100ms, such as 1s");
  /* An empty limit string means no limit of that kind. */
  if (!rc && opts[O_LIMIT_KEY].value[strspn(opts[O_LIMIT_KEY].value, " \t")])
    rc = rl_parse(opts[O_LIMIT_KEY].value, cfg->key_limits, RL_LIMITS_MAX, &cfg->n_key_limits,
                  err);
  if (!rc && opts[O_LIMIT_IP].value[strspn(opts[O_LIMIT_IP].value, " \t")])
    rc = rl_parse(opts[O_LIMIT_IP].value, cfg->ip_limits, RL_LIMITS_MAX, &cfg->n_ip_limits,
                  err);
  if (!rc && strcmp(opts[O_FORM].value, "columns") != 0 && strcmp(opts[O_FORM].value, "rows"))
    rc = cm_error_set(err, CM_E_INVALID, "--upstream-form: want columns or rows");
  rc = rc ? rc : clientip_cfg_parse(&cfg->trusted, opts[O_TRUSTED].value, err);
  if (rc)
    return rc;
  cfg->listen_host = host;
  cfg->predictors = opts[O_PREDICTORS].value;
  cfg->upstream_timeout_ms = timeout > 0 ? timeout : 1;
  cfg->upstream_keepalive_ms = keepalive;
  cfg->upstream_columns = strcmp(opts[O_FORM].value, "columns") == 0;
  cfg->max_body = (size_t)v[0];
  cfg->max_batch = (size_t)v[1];
  cfg->threads = v[2] ? (unsigned)v[2] : 4 * (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
  cfg->max_connections = (unsigned)v[3];
  cfg->max_per_ip = (unsigned)v[4];
  cfg->idle_timeout_s = (unsigned)v[5];
  cfg->max_header_bytes = (size_t)v[6];
  cfg->upstream_calls = v[7] ? (unsigned)v[7] : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
  return 0;
}

static int keys_load(apikey_set *keys, struct cm_error *err)
{
  int rc = 0;
  if (opts[O_KEYS_FILE].value)
    rc = apikey_set_add_file(keys, opts[O_KEYS_FILE].value, err);
  if (!rc && opts[O_KEYS].value && opts[O_KEYS].value[0])
    rc = apikey_set_add_list(keys, opts[O_KEYS].value, "CREDITO_API_KEYS", err);
  if (!rc && apikey_set_count(keys) == 0)
    cm_log(CM_LOG_WARN, "no API keys: every /predict gets 401", "hint=%s",
           "creditoctl apikey new, then --api-keys-file or CREDITO_API_KEYS");
  return rc;
}

/* Blocks until SIGINT or SIGTERM. */
static void wait_signal(void)
{
  sigset_t set;
  int sig = 0;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigwait(&set, &sig);
  cm_log(CM_LOG_INFO, "stopping", "signal=%d", sig);
}

int main(int argc, char **argv)
{
  static struct gw_config cfg;
  struct gw g;
  struct rpc_channel_opts co = {0};
  struct cm_error err;
  enum cm_log_level level;
  char host[256];
  sigset_t set;
  int rc;

  memset(&g, 0, sizeof g);
  cm_error_clear(&err);
  rc = cm_config_parse(opts, O_N, argc, argv, NULL, &err);
  if (rc == 1) {
    cm_config_usage(stdout, "credito-gateway", "the REST gateway to the predictors", opts, O_N);
    return 0;
  }
  if (!rc && cm_log_level_parse(opts[O_LOG_LEVEL].value, &level))
    rc = cm_error_set(&err, CM_E_INVALID, "--log-level: want debug, info, warn, error or off");
  rc = rc ? rc : config_fill(&cfg, host, sizeof host, &err);
  if (rc) {
    fprintf(stderr, "credito-gateway: %s\n", err.msg);
    return 2;
  }
  cm_log_init("credito-gateway", level);
  /* Signals go to sigwait here, never to the HTTP or gRPC threads started below. */
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  rpc_init();
  g.cfg = &cfg;
  pthread_mutex_init(&g.mu, NULL);
  pthread_mutex_init(&g.track_mu, NULL);
  g.keys = apikey_set_new();
  g.metrics = gw_metrics_new();
  co.target = cfg.predictors;
  co.health_service = "credito.v1.Predictor";
  co.keepalive_ms = cfg.upstream_keepalive_ms;
  g.pred = g.keys && g.metrics ? rpc_channel_new(&co, &err) : NULL;
  g.rl = g.pred ? rl_store_new(opts[O_RL_STORE].value, &err) : NULL;
  rc = !g.rl ? (err.code ? err.code : CM_E_NOMEM) : keys_load(g.keys, &err);
  rc = rc ? rc : gw_http_start(&g, &err);
  if (rc) {
    cm_log(CM_LOG_ERROR, "cannot start", "error=%s", err.msg);
    rc = 1;
    goto out;
  }
  cm_log(CM_LOG_INFO, "listening", "addr=%s port=%d predictors=%s keys=%zu", host, g.bound_port,
         cfg.predictors, apikey_set_count(g.keys));
  wait_signal();
  gw_http_stop(&g);
out:
  rl_store_free(g.rl);
  rpc_channel_free(g.pred);
  apikey_set_free(g.keys);
  gw_metrics_free(g.metrics);
  gw_info_release(g.info);
  pthread_mutex_destroy(&g.mu);
  pthread_mutex_destroy(&g.track_mu);
  rpc_cleanup();
  return rc;
}
