/* metrics: the gateway's Prometheus counters, lock-free (atomics): requests by route and status,
 * a latency histogram per route, rate-limit rejections by scope, upstream errors by gRPC code.
 * Keys never appear here; only route names, status codes and scopes. */
#ifndef CREDITO_METRICS_H
#define CREDITO_METRICS_H

#include <stddef.h>

#include "buf.h"

/* Routes the gateway knows; GW_ROUTE_OTHER counts everything else (404s). */
enum gw_route {
  GW_ROUTE_PREDICT,
  GW_ROUTE_PREDICT_BATCH,
  GW_ROUTE_MODEL,
  GW_ROUTE_HEALTHZ,
  GW_ROUTE_READYZ,
  GW_ROUTE_METRICS,
  GW_ROUTE_OPENAPI,
  GW_ROUTE_DOCS,
  GW_ROUTE_OTHER,
  GW_ROUTE_COUNT
};

/* The counters; one per gateway, shared by its threads. */
typedef struct gw_metrics gw_metrics;

/* A zeroed set of counters (gw_metrics_free), or NULL when out of memory. */
gw_metrics *gw_metrics_new(void);
void gw_metrics_free(gw_metrics *m);

/* The route's label, "/predict". */
const char *gw_route_name(enum gw_route r);

/* Counts one request: route, HTTP status, latency in seconds. Thread safe. */
void gw_metrics_request(gw_metrics *m, enum gw_route r, int status, double seconds);

/* Counts one rate-limit rejection; scope is 0 for the API key, 1 for the client IP. */
void gw_metrics_ratelimited(gw_metrics *m, int scope);

/* Counts one failed upstream call by its gRPC status code (0..16; others count as 2). */
void gw_metrics_upstream_error(gw_metrics *m, int grpc_code);

/* Counts one predictor call sent again after UNAVAILABLE. */
void gw_metrics_retry(gw_metrics *m);

/* Counts one PredictBatch call carrying requests HTTP requests and rows rows. */
void gw_metrics_batch(gw_metrics *m, size_t requests, size_t rows);

/* Appends the Prometheus text exposition (version 0.0.4) to out. 0 or CM_E_TOOLARGE/NOMEM. */
int gw_metrics_render(gw_metrics *m, struct cm_buf *out);

#endif
