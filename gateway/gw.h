/* gw: the REST gateway's state and its request model, shared by the HTTP layer (http.c), the
 * route handlers (routes.c) and the API description (openapi.c). */
#ifndef CREDITO_GW_H
#define CREDITO_GW_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "apikey.h"
#include "buf.h"
#include "clientip.h"
#include "metrics.h"
#include "ratelimit.h"
#include "rpc.h"

/* Settings, from flags and environment (main.c). Strings borrowed for the gateway's life. */
struct gw_config {
  const char *listen_host;   /* address to bind */
  int port;                  /* 0: any free port */
  const char *predictors;    /* gRPC target: "host:port", a comma list (round_robin), dns:/// */
  int64_t upstream_timeout_ms; /* deadline of each predictor call */
  int64_t upstream_keepalive_ms; /* PING interval and timeout of predictor connections; 0 off */
  size_t max_body;           /* bytes of a request body */
  size_t max_batch;          /* rows of /predict/batch */
  unsigned threads;          /* HTTP worker threads */
  unsigned max_connections;  /* open connections in all */
  unsigned max_per_ip;       /* open connections per client address */
  unsigned idle_timeout_s;   /* a connection idle this long is closed (slowloris) */
  size_t max_header_bytes;   /* request line + headers, per connection */
  struct rl_limit key_limits[RL_LIMITS_MAX]; /* per API key */
  size_t n_key_limits;
  struct rl_limit ip_limits[RL_LIMITS_MAX];  /* per client IP */
  size_t n_ip_limits;
  struct clientip_cfg trusted; /* proxies whose X-Forwarded-For is believed */
};

/* The running gateway. */
struct gw {
  const struct gw_config *cfg;
  apikey_set *keys;          /* borrowed */
  rl_store *rl;              /* borrowed */
  rpc_channel *pred;         /* the predictors */
  gw_metrics *metrics;
  pthread_mutex_t mu;        /* guards the model cache below (pointer and times only) */
  struct gw_info *info;      /* the served model's description, NULL before the first */
  int64_t info_version;      /* the version it describes */
  int64_t info_at_ms;        /* when it was fetched */
  void *daemon;              /* struct MHD_Daemon */
  int bound_port;            /* the port actually bound */
  struct gw_track *tracked;  /* open connections, for the watchdog; guarded by track_mu */
  pthread_mutex_t track_mu;
  pthread_t watchdog;        /* closes connections too slow to send a request */
  bool watchdog_on;
  bool stopping;             /* guarded by track_mu */
  atomic_ullong next_request; /* counter in generated request ids */
};

/* One open connection as the watchdog sees it. */
struct gw_track {
  int fd;                    /* the socket */
  int64_t since_ms;          /* start of the request being read (accept, or the last answer) */
  bool reading;              /* true until the request (headers and body) is complete */
  struct gw_track *prev, *next;
};

/* A served model's description (GetModelInfo), shared read-only by the requests using it:
 * reference-counted, so a refresh never waits for them. gw_info_release drops a reference. */
struct gw_info;
void gw_info_release(struct gw_info *i);

/* One HTTP request as the handlers see it. */
struct gw_req {
  const char *method;        /* "GET", "POST" */
  const char *path;          /* "/predict" */
  const char *content_type;  /* NULL when absent */
  const char *api_key;       /* x-api-key as received, NULL when absent */
  size_t api_key_len;
  char client_ip[64];        /* after trusted proxies */
  char request_id[40];       /* X-Request-ID (sanitised) or a new one */
  const char *body;          /* the body, body_len bytes (not NUL-terminated) */
  size_t body_len;
  const char *key_name;      /* the authenticated key's name, or NULL */
};

/* A response: status, a JSON or text body, extra headers. */
struct gw_resp {
  int status;
  json_t *json;              /* owned; sent as application/json when set */
  struct cm_buf text;        /* otherwise this, with content_type */
  const char *content_type;
  char headers[6][2][64];    /* extra headers: name, value */
  size_t n_headers;
};

/* Sets a header on r (name and value copied, cut to 63 bytes). */
void gw_resp_header(struct gw_resp *r, const char *name, const char *value);

/* r becomes status with {"detail": detail} (detail taken; a string or a JSON value). */
void gw_resp_detail(struct gw_resp *r, int status, json_t *detail);

/* Dispatches one complete request to its route. Fills resp; returns the route for metrics. */
enum gw_route gw_route_request(struct gw *g, struct gw_req *req, struct gw_resp *resp);

/* GET /openapi.json and GET /docs. */
void gw_openapi(struct gw_resp *r);
void gw_docs(struct gw_resp *r);

/* Starts the HTTP server (threads inside libmicrohttpd). 0 or CM_E_* with err. */
int gw_http_start(struct gw *g, struct cm_error *err);

/* Stops accepting, finishes requests in flight, joins the threads. */
void gw_http_stop(struct gw *g);

#endif
