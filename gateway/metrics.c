/* metrics: fixed-size atomic counters rendered as Prometheus text. The label sets are closed
 * (known routes, a fixed list of statuses), so nothing an attacker sends can grow them. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "mem.h"
#include "metrics.h"

static const int statuses[] = {200, 400, 401, 404, 405, 413, 415, 422, 429, 500, 502, 503, 504};
#define N_STATUS (sizeof(statuses) / sizeof(statuses[0]) + 1) /* + "other" */

/* Latency bucket upper bounds in seconds (Prometheus "le"), then +Inf. */
static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                0.5,    1.0,   2.5,    5.0,   10.0};
#define N_BOUNDS (sizeof(bounds) / sizeof(bounds[0]))

struct gw_metrics {
  atomic_uint_fast64_t requests[GW_ROUTE_COUNT][N_STATUS];
  atomic_uint_fast64_t buckets[GW_ROUTE_COUNT][N_BOUNDS + 1];
  atomic_uint_fast64_t sum_us[GW_ROUTE_COUNT];
  atomic_uint_fast64_t ratelimited[2];
  atomic_uint_fast64_t upstream[17];
  atomic_uint_fast64_t calls, call_requests, call_rows; /* PredictBatch calls and their load */
  atomic_uint_fast64_t retries;                        /* calls sent again after UNAVAILABLE */
};

gw_metrics *gw_metrics_new(void)
{
  /* Zeroed memory is a valid initial state for these atomics on every platform we build on. */
  return cm_calloc(1, sizeof(gw_metrics));
}

void gw_metrics_free(gw_metrics *m)
{
  cm_free(m);
}

static const char *const route_names[GW_ROUTE_COUNT] = {
    "/predict", "/predict/batch", "/v1/model", "/healthz", "/readyz",
    "/metrics", "/openapi.json",  "/docs",     "other"};

const char *gw_route_name(enum gw_route r)
{
  return r < GW_ROUTE_COUNT ? route_names[r] : "other";
}

void gw_metrics_request(gw_metrics *m, enum gw_route r, int status, double seconds)
{
  size_t s = N_STATUS - 1, b = 0;
  if (r >= GW_ROUTE_COUNT)
    r = GW_ROUTE_OTHER;
  for (size_t i = 0; i + 1 < N_STATUS; i++)
    if (statuses[i] == status)
      s = i;
  while (b < N_BOUNDS && seconds > bounds[b])
    b++;
  atomic_fetch_add(&m->requests[r][s], 1);
  atomic_fetch_add(&m->buckets[r][b], 1);
  atomic_fetch_add(&m->sum_us[r], (uint_fast64_t)(seconds > 0 ? seconds * 1e6 : 0));
}

void gw_metrics_ratelimited(gw_metrics *m, int scope)
{
  atomic_fetch_add(&m->ratelimited[scope ? 1 : 0], 1);
}

void gw_metrics_upstream_error(gw_metrics *m, int grpc_code)
{
  atomic_fetch_add(&m->upstream[grpc_code >= 0 && grpc_code <= 16 ? grpc_code : 2], 1);
}

void gw_metrics_retry(gw_metrics *m)
{
  atomic_fetch_add(&m->retries, 1);
}

void gw_metrics_batch(gw_metrics *m, size_t requests, size_t rows)
{
  atomic_fetch_add(&m->calls, 1);
  atomic_fetch_add(&m->call_requests, requests);
  atomic_fetch_add(&m->call_rows, rows);
}

static int render_requests(gw_metrics *m, struct cm_buf *o)
{
  int rc = cm_buf_adds(o, "# HELP credito_gateway_requests_total HTTP requests by route and "
                          "status.\n# TYPE credito_gateway_requests_total counter\n");
  for (size_t r = 0; !rc && r < GW_ROUTE_COUNT; r++) {
    for (size_t s = 0; !rc && s < N_STATUS; s++) {
      uint_fast64_t n = atomic_load(&m->requests[r][s]);
      char code[8];
      if (!n)
        continue;
      if (s + 1 < N_STATUS)
        snprintf(code, sizeof(code), "%d", statuses[s]);
      else
        snprintf(code, sizeof(code), "other");
      rc = cm_buf_addf(o, "credito_gateway_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
                       route_names[r], code, (unsigned long long)n);
    }
  }
  return rc;
}

static int render_latency(gw_metrics *m, struct cm_buf *o)
{
  int rc = cm_buf_adds(o, "# HELP credito_gateway_request_duration_seconds Request latency.\n"
                          "# TYPE credito_gateway_request_duration_seconds histogram\n");
  for (size_t r = 0; !rc && r < GW_ROUTE_COUNT; r++) {
    uint_fast64_t cum = 0;
    for (size_t b = 0; !rc && b <= N_BOUNDS; b++) {
      cum += atomic_load(&m->buckets[r][b]);
      if (b < N_BOUNDS)
        rc = cm_buf_addf(o, "credito_gateway_request_duration_seconds_bucket{route=\"%s\","
                            "le=\"%g\"} %llu\n", route_names[r], bounds[b],
                         (unsigned long long)cum);
      else
        rc = cm_buf_addf(o, "credito_gateway_request_duration_seconds_bucket{route=\"%s\","
                            "le=\"+Inf\"} %llu\n", route_names[r], (unsigned long long)cum);
    }
    rc = rc ? rc : cm_buf_addf(o, "credito_gateway_request_duration_seconds_sum{route=\"%s\"} "
                                  "%.6f\n", route_names[r],
                               (double)atomic_load(&m->sum_us[r]) / 1e6);
    rc = rc ? rc : cm_buf_addf(o, "credito_gateway_request_duration_seconds_count{route=\"%s\"} "
                                  "%llu\n", route_names[r], (unsigned long long)cum);
  }
  return rc;
}

int gw_metrics_render(gw_metrics *m, struct cm_buf *o)
{
  static const char *const grpc_names[17] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
      "UNAUTHENTICATED"};
  int rc = render_requests(m, o);
  rc = rc ? rc : render_latency(m, o);
  rc = rc ? rc : cm_buf_addf(o, "# HELP credito_gateway_ratelimited_total Requests refused by a "
                                "rate limit, by scope.\n# TYPE credito_gateway_ratelimited_total "
                                "counter\ncredito_gateway_ratelimited_total{scope=\"key\"} %llu\n"
                                "credito_gateway_ratelimited_total{scope=\"ip\"} %llu\n",
                             (unsigned long long)atomic_load(&m->ratelimited[0]),
                             (unsigned long long)atomic_load(&m->ratelimited[1]));
  rc = rc ? rc : cm_buf_adds(o, "# HELP credito_gateway_upstream_errors_total Failed predictor "
                                "calls by gRPC status.\n# TYPE credito_gateway_upstream_errors_total"
                                " counter\n");
  for (int c = 1; !rc && c <= 16; c++) {
    uint_fast64_t n = atomic_load(&m->upstream[c]);
    if (n)
      rc = cm_buf_addf(o, "credito_gateway_upstream_errors_total{code=\"%s\"} %llu\n",
                       grpc_names[c], (unsigned long long)n);
  }
  rc = rc ? rc : cm_buf_addf(o, "# HELP credito_gateway_upstream_calls_total Successful "
                                "PredictBatch calls (each carries one or more requests).\n"
                                "# TYPE credito_gateway_upstream_calls_total counter\n"
                                "credito_gateway_upstream_calls_total %llu\n"
                                "# HELP credito_gateway_upstream_call_requests_total HTTP "
                                "requests those calls carried.\n"
                                "# TYPE credito_gateway_upstream_call_requests_total counter\n"
                                "credito_gateway_upstream_call_requests_total %llu\n"
                                "# HELP credito_gateway_upstream_call_rows_total Applicant rows "
                                "those calls carried.\n"
                                "# TYPE credito_gateway_upstream_call_rows_total counter\n"
                                "credito_gateway_upstream_call_rows_total %llu\n"
                                "# HELP credito_gateway_upstream_retries_total Predictor calls "
                                "sent again after UNAVAILABLE.\n"
                                "# TYPE credito_gateway_upstream_retries_total counter\n"
                                "credito_gateway_upstream_retries_total %llu\n",
                             (unsigned long long)atomic_load(&m->calls),
                             (unsigned long long)atomic_load(&m->call_requests),
                             (unsigned long long)atomic_load(&m->call_rows),
                             (unsigned long long)atomic_load(&m->retries));
  return rc;
}
