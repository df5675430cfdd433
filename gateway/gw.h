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
#include "arena.h"
#include "buf.h"
#include "clientip.h"
#include "credito/v1/predictor.pb-c.h"
#include "err.h"
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
  unsigned upstream_calls;   /* predictor calls in flight at once (the batcher's threads) */
  bool upstream_columns;     /* PredictBatch by columns (else by rows) */
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
  struct gw_batcher *batcher; /* the predictor calls (batcher.c) */
};

/* One PredictBatch answer, shared by the requests it carried: reference-counted, freed with
 * the last gw_batch_release. */
struct gw_batch {
  atomic_int refs;
  cm_arena *a;                                /* holds resp */
  Credito__V1__PredictBatchResponse *resp;
};
void gw_batch_release(struct gw_batch *b);

/* A request's rows waiting for the predictor (batcher.c). The submitter fills rows, n,
 * deadline_ms (CLOCK_MONOTONIC), request_id, done and ctx; done() is called once, on a batcher
 * thread, with rc and err set, and on success batch (one reference, the request's) and first
 * (its rows are batch->resp->results[first .. first + n)). After done() returns the batcher no
 * longer touches the struct. */
struct gw_pending {
  Credito__V1__Applicant **rows;  /* borrowed until done */
  size_t n;
  int64_t deadline_ms;
  const char *request_id;
  void (*done)(struct gw_pending *p);
  void *ctx;
  int rc;
  struct cm_error err;
  struct gw_batch *batch;
  size_t first;
  struct gw_pending *next;        /* the batcher's */
};

/* Starts calls threads taking waiting requests, at most max_rows rows a call (a larger request
 * goes alone). 0 or CM_E_* with err. */
int gw_batcher_start(struct gw *g, unsigned calls, size_t max_rows, struct cm_error *err);
/* Queues p; done() may run before this returns (on a stopping gateway, at once). */
void gw_batcher_submit(struct gw *g, struct gw_pending *p);
/* Answers what waits, then joins the threads; later submits are answered at once. */
void gw_batcher_stop(struct gw *g);
/* Stops (if not yet) and frees the batcher. */
void gw_batcher_free(struct gw *g);

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
  struct gw_call *call;      /* set when the answer waits for the predictor */
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

/* Dispatches one complete request to its route and returns the route for metrics. Fills resp;
 * or, for a request that needs the predictor, sets req->call and leaves the rest of resp for
 * later: the caller then suspends the connection and hands the call to gw_call_submit, whose
 * resume(ctx) runs (on another thread) once the predictor answered; gw_route_finish then
 * completes resp and frees the call. A call never finished is freed with gw_call_free. */
enum gw_route gw_route_request(struct gw *g, struct gw_req *req, struct gw_resp *resp);
struct gw_call;
void gw_call_submit(struct gw *g, struct gw_call *c, void (*resume)(void *ctx), void *ctx);
void gw_route_finish(struct gw *g, struct gw_req *req, struct gw_resp *resp);
void gw_call_free(struct gw_call *c);

/* GET /openapi.json and GET /docs. */
void gw_openapi(struct gw_resp *r);
void gw_docs(struct gw_resp *r);

/* CLOCK_MONOTONIC in milliseconds (deadlines, the watchdog). */
int64_t gw_mono_ms(void);

/* Starts the HTTP server (threads inside libmicrohttpd). 0 or CM_E_* with err. */
int gw_http_start(struct gw *g, struct cm_error *err);

/* Stops accepting, finishes requests in flight, joins the threads. */
void gw_http_stop(struct gw *g);

#endif
