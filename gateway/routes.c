/* routes: what each gateway route does. /predict and /predict/batch: client-IP limit, API key,
 * key limit, content type, JSON, validation against the served model's schema, one predictor
 * call with a deadline, the answer as JSON; the rest describe the model and the gateway. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "answer.h"
#include "body.h"
#include "credito/v1/predictor.pb-c.h"
#include "gw.h"
#include "log.h"
#include "mem.h"
#include "pbjson.h"

/* How long a cached model description is trusted before it is fetched again. */
#define INFO_MAX_AGE_MS 5000

static int64_t now_ms(void)
{
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* An upstream failure as HTTP: the gRPC-gateway table, with 503 and 504 spelled out. */
static void upstream_error(struct gw *g, struct gw_resp *r, int rc, const struct cm_error *err)
{
  char msg[200];
  int status = cm_code_to_http(rc);
  gw_metrics_upstream_error(g->metrics, cm_code_to_grpc(rc));
  if (rc == CM_E_UNAVAILABLE)
    snprintf(msg, sizeof msg, "No predictor is available: %.150s", err->msg);
  else if (rc == CM_E_DEADLINE)
    snprintf(msg, sizeof msg, "The predictor did not answer in time");
  else
    snprintf(msg, sizeof msg, "%.190s", err->msg);
  gw_resp_detail(r, status >= 400 ? status : 502, json_string(msg));
}

struct gw_info {
  atomic_int refs;
  Credito__V1__GetModelInfoResponse *msg; /* unpacked with protobuf-c's allocator, owned */
};

void gw_info_release(struct gw_info *i)
{
  if (i && atomic_fetch_sub(&i->refs, 1) == 1) {
    credito__v1__get_model_info_response__free_unpacked(i->msg, NULL);
    cm_free(i);
  }
}

/* A standalone copy of m (its own allocation), with one reference; NULL when out of memory. */
static struct gw_info *info_copy(const Credito__V1__GetModelInfoResponse *m)
{
  size_t len = credito__v1__get_model_info_response__get_packed_size(m);
  uint8_t *packed = cm_malloc(len ? len : 1);
  struct gw_info *i = packed ? cm_calloc(1, sizeof *i) : NULL;
  if (i) {
    credito__v1__get_model_info_response__pack(m, packed);
    i->msg = credito__v1__get_model_info_response__unpack(NULL, len, packed);
    atomic_init(&i->refs, 1);
  }
  cm_free(packed);
  if (i && !i->msg) {
    cm_free(i);
    i = NULL;
  }
  return i;
}

/* The served model's description, from the cache (no copy: a reference) or the predictor.
 * The caller releases *out with gw_info_release. */
static int model_info(struct gw *g, bool fresh, struct gw_info **out, struct cm_error *err)
{
  Credito__V1__GetModelInfoRequest req = CREDITO__V1__GET_MODEL_INFO_REQUEST__INIT;
  Credito__V1__GetModelInfoResponse *m = NULL;
  cm_arena *a;
  int rc;

  pthread_mutex_lock(&g->mu);
  if (!fresh && g->info && now_ms() - g->info_at_ms < INFO_MAX_AGE_MS) {
    atomic_fetch_add(&g->info->refs, 1);
    *out = g->info;
    pthread_mutex_unlock(&g->mu);
    return 0;
  }
  pthread_mutex_unlock(&g->mu);
  a = cm_arena_new(0);
  rc = a ? rpc_unary(g->pred, "/credito.v1.Predictor/GetModelInfo", &req.base,
                     &credito__v1__get_model_info_response__descriptor,
                     g->cfg->upstream_timeout_ms, a, (ProtobufCMessage **)&m, err)
         : cm_error_set(err, CM_E_NOMEM, "out of memory");
  *out = rc ? NULL : info_copy(m);
  cm_arena_free(a);
  if (rc)
    return rc;
  if (!*out)
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  if ((*out)->msg->serving) {
    struct gw_info *old;
    atomic_fetch_add(&(*out)->refs, 1); /* the cache's */
    pthread_mutex_lock(&g->mu);
    old = g->info;
    g->info = *out;
    g->info_version = (*out)->msg->version;
    g->info_at_ms = now_ms();
    pthread_mutex_unlock(&g->mu);
    gw_info_release(old);
  }
  return 0;
}

/* After an answer from version v: a different version than the cached description means the
 * alias moved, so the next request fetches the new schema. */
static void note_version(struct gw *g, int64_t v)
{
  pthread_mutex_lock(&g->mu);
  if (g->info && g->info_version != v)
    g->info_at_ms = 0;
  pthread_mutex_unlock(&g->mu);
}

/* 429 with slowapi's body and headers. */
static void limited(struct gw_resp *r, const struct rl_result *res)
{
  char v[32], msg[96];
  snprintf(msg, sizeof msg, "Rate limit exceeded: %s", res->text);
  gw_resp_detail(r, 429, json_string(msg));
  snprintf(v, sizeof v, "%" PRId64, res->retry_after_s);
  gw_resp_header(r, "Retry-After", v);
}

static void limit_headers(struct gw_resp *r, const struct rl_result *res)
{
  char v[32];
  snprintf(v, sizeof v, "%" PRId64, res->limit.amount);
  gw_resp_header(r, "X-RateLimit-Limit", v);
  snprintf(v, sizeof v, "%" PRId64, res->remaining > 0 ? res->remaining : 0);
  gw_resp_header(r, "X-RateLimit-Remaining", v);
  snprintf(v, sizeof v, "%" PRId64, res->reset_epoch_s);
  gw_resp_header(r, "X-RateLimit-Reset", v);
}

/* One limit check; false when the request must stop (r is then the answer). A store that is
 * down lets the request through (fail open) and says so in the log. */
static bool limit_ok(struct gw *g, struct gw_resp *r, const char *scope,
                     const struct rl_limit *limits, size_t n, int which, struct rl_result *res)
{
  struct cm_error err;
  if (n == 0)
    return true;
  cm_error_clear(&err);
  if (rl_hit(g->rl, scope, limits, n, now_ms(), res, &err)) {
    cm_log(CM_LOG_WARN, "rate limit store failed; request allowed", "error=%s", err.msg);
    return true;
  }
  if (res->allowed)
    return true;
  gw_metrics_ratelimited(g->metrics, which);
  limited(r, res);
  limit_headers(r, res);
  return false;
}

/* IP limit, API key, key limit. False when r already holds the answer. */
static bool admit(struct gw *g, struct gw_req *req, struct gw_resp *r)
{
  struct rl_result ipres, keyres;
  char scope[RL_SCOPE_MAX];
  bool have_key_limit;

  memset(&ipres, 0, sizeof ipres);
  snprintf(scope, sizeof scope, "ip:%s", req->client_ip);
  if (!limit_ok(g, r, scope, g->cfg->ip_limits, g->cfg->n_ip_limits, 1, &ipres))
    return false;
  req->key_name = req->api_key ? apikey_check(g->keys, req->api_key, req->api_key_len) : NULL;
  if (!req->key_name) {
    gw_resp_detail(r, 401, json_string(req->api_key ? "Invalid API key"
                                                    : "Not authenticated: x-api-key missing"));
    gw_resp_header(r, "WWW-Authenticate", "APIKey");
    return false;
  }
  snprintf(scope, sizeof scope, "key:%s", req->key_name);
  have_key_limit = g->cfg->n_key_limits > 0;
  if (!limit_ok(g, r, scope, g->cfg->key_limits, g->cfg->n_key_limits, 0, &keyres))
    return false;
  if (have_key_limit)
    limit_headers(r, &keyres);
  else if (g->cfg->n_ip_limits)
    limit_headers(r, &ipres);
  return true;
}

/* application/json (parameters such as charset allowed), else 415. */
static bool json_body(const struct gw_req *req, struct gw_resp *r)
{
  const char *ct = req->content_type;
  size_t n = strlen("application/json");
  if (ct && strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';' ||
                                                            ct[n] == ' '))
    return true;
  gw_resp_detail(r, 415, json_string("Unsupported media type: send application/json"));
  return false;
}

/* A prediction as the REST answer's JSON. */
static json_t *prediction_json(const Credito__V1__Prediction *p)
{
  json_t *reasons = json_array();
  for (size_t i = 0; i < p->n_reasons; i++)
    json_array_append_new(reasons, json_pack("{s:s, s:f, s:s}", "feature", p->reasons[i]->feature,
                                             "impact", p->reasons[i]->impact, "text",
                                             p->reasons[i]->text));
  return json_pack("{s:f, s:f, s:s, s:o}", "probability", p->probability, "score", p->score,
                   "decision", p->decision == CREDITO__V1__DECISION__DECISION_DECLINE ? "decline"
                                                                                      : "approve",
                   "reasons", reasons);
}

static json_t *model_json(const char *name, int64_t version, const char *alias)
{
  return json_pack("{s:s, s:I, s:s}", "name", name, "version", (json_int_t)version, "alias",
                   alias);
}

/* The body parsed and each applicant validated; false when r holds the 422. rows: the JSON
 * applicants (one for /predict). */
static bool applicants(struct gw *g, const struct gw_req *req, struct gw_resp *r, bool batch,
                       cm_arena *a, const Credito__V1__Schema *schema, json_t **doc,
                       Credito__V1__Applicant ***out, size_t *n)
{
  json_t *detail = NULL, *rows;
  size_t count;
  int frc;

  *doc = NULL;
  if (!batch) {
    /* The common case read in place; anything unusual goes the full way, which says why. */
    Credito__V1__Applicant *ap = cm_arena_calloc(a, 1, sizeof *ap);
    *out = cm_arena_calloc(a, 1, sizeof **out);
    if (!ap || !*out) {
      gw_resp_detail(r, 500, json_string("out of memory"));
      return false;
    }
    credito__v1__applicant__init(ap);
    frc = body_applicant_fast(req->body ? req->body : "", req->body_len, schema, a,
                              &ap->features, &ap->n_features);
    if (frc == 0) {
      (*out)[0] = ap;
      *n = 1;
      return true;
    }
    if (frc == CM_E_NOMEM) {
      gw_resp_detail(r, 500, json_string("out of memory"));
      return false;
    }
  }
  *doc = body_parse(req->body ? req->body : "", req->body_len, &detail);
  if (!*doc) {
    gw_resp_detail(r, 422, detail);
    return false;
  }
  rows = batch ? (json_is_object(*doc) ? json_object_get(*doc, "rows") : *doc) : NULL;
  if (batch && !json_is_array(rows)) {
    gw_resp_detail(r, 422, json_pack("[{s:s, s:[s], s:s, s:O}]", "type", "list_type", "loc",
                                     "body", "msg", "Input should be a valid list", "input",
                                     *doc));
    return false;
  }
  count = batch ? json_array_size(rows) : 1;
  if (batch && (count == 0 || count > g->cfg->max_batch)) {
    char msg[96];
    snprintf(msg, sizeof msg, "A batch holds 1 to %zu rows; this one has %zu", g->cfg->max_batch,
             count);
    gw_resp_detail(r, 422, json_pack("[{s:s, s:[s], s:s, s:I}]", "type", "too_long", "loc",
                                     "body", "msg", msg, "input", (json_int_t)count));
    return false;
  }
  *out = cm_arena_calloc(a, count, sizeof **out);
  detail = json_array();
  for (size_t i = 0; *out && i < count; i++) {
    Credito__V1__Applicant *ap = cm_arena_calloc(a, 1, sizeof *ap);
    json_t *loc = batch ? json_pack("[s,I]", "body", (json_int_t)i) : json_pack("[s]", "body");
    int rc = ap ? 0 : CM_E_NOMEM;
    if (ap) {
      credito__v1__applicant__init(ap);
      rc = body_applicant(batch ? json_array_get(rows, i) : *doc, schema, loc, a, &ap->features,
                          &ap->n_features, detail);
    }
    (*out)[i] = ap;
    json_decref(loc);
    if (rc == CM_E_NOMEM) {
      json_decref(detail);
      gw_resp_detail(r, 500, json_string("out of memory"));
      return false;
    }
  }
  *n = count;
  if (json_array_size(detail) > 0) {
    gw_resp_detail(r, 422, detail);
    return false;
  }
  json_decref(detail);
  return true;
}

/* A /predict or /predict/batch waiting for the predictor: the pending rows (first: the batcher
 * hands back this pointer) and what the answer is built from. */
struct gw_call {
  struct gw_pending p;
  cm_arena *a;                /* the rows */
  json_t *doc;                /* the parsed body */
  struct gw_info *gi;         /* the schema the rows were checked against (a reference) */
  bool batch;
  void (*resume)(void *ctx);  /* how the HTTP layer is told the answer is in */
  void *resume_ctx;
};

void gw_call_free(struct gw_call *c)
{
  if (!c)
    return;
  gw_batch_release(c->p.batch);
  json_decref(c->doc);
  cm_arena_free(c->a);
  gw_info_release(c->gi);
  cm_free(c);
}

static void call_done(struct gw_pending *p)
{
  struct gw_call *c = (struct gw_call *)p;
  void (*resume)(void *ctx) = c->resume;
  void *ctx = c->resume_ctx;

  resume(ctx); /* c may be answered and freed from here on */
}

void gw_call_submit(struct gw *g, struct gw_call *c, void (*resume)(void *ctx), void *ctx)
{
  c->resume = resume;
  c->resume_ctx = ctx;
  gw_batcher_submit(g, &c->p);
}

/* A row's BadRequest as FastAPI's detail entries; loc is body[, i], field. */
static json_t *violations_json(const Credito__V1__BadRequest *br, bool batch, size_t i)
{
  json_t *d = json_array();
  for (size_t k = 0; br && k < br->n_violations; k++) {
    const Credito__V1__FieldViolation *v = br->violations[k];
    json_t *loc = batch ? json_pack("[s,I,s]", "body", (json_int_t)i, v->field)
                        : json_pack("[s,s]", "body", v->field);
    json_array_append_new(d, json_pack("{s:s, s:o, s:s, s:{}}", "type", v->type, "loc", loc,
                                       "msg", v->message, "input"));
  }
  return d;
}

/* /predict's answer from its row of the batch. */
static void finish_one(struct gw *g, struct gw_req *req, struct gw_resp *r,
                       const Credito__V1__PredictBatchResponse *resp, size_t first)
{
  const Credito__V1__RowResult *rr = resp->results[first];

  if (rr->outcome_case != CREDITO__V1__ROW_RESULT__OUTCOME_PREDICTION || !rr->prediction) {
    /* The model changed under the cached schema: say what the predictor said, and fetch the
     * new schema for the next request. */
    gw_resp_detail(r, 422, violations_json(rr->error, false, 0));
    note_version(g, -1);
    return;
  }
  note_version(g, resp->model_version);
  cm_buf_reset(&r->text);
  if (gw_answer_predict(&r->text, rr->prediction, req->request_id, resp->model_name,
                        resp->model_version, resp->model_alias)) {
    cm_buf_reset(&r->text);
    gw_resp_detail(r, 502, json_string("The predictor's answer cannot be written as JSON"));
    return;
  }
  r->status = 200;
  r->content_type = "application/json";
}

/* /predict/batch's answer from its rows of the batch, in order. */
static void finish_batch(struct gw *g, struct gw_req *req, struct gw_resp *r,
                         const Credito__V1__PredictBatchResponse *resp, size_t first, size_t n)
{
  json_t *results = json_array();

  note_version(g, resp->model_version);
  for (size_t i = 0; i < n; i++) {
    const Credito__V1__RowResult *rr = resp->results[first + i];
    if (rr->outcome_case == CREDITO__V1__ROW_RESULT__OUTCOME_PREDICTION && rr->prediction)
      json_array_append_new(results, prediction_json(rr->prediction));
    else
      json_array_append_new(results, json_pack("{s:o}", "detail",
                                               violations_json(rr->error, true, i)));
  }
  r->status = 200;
  r->json = json_pack("{s:s, s:o, s:o}", "request_id", req->request_id, "model",
                      model_json(resp->model_name, resp->model_version, resp->model_alias),
                      "results", results);
}

void gw_route_finish(struct gw *g, struct gw_req *req, struct gw_resp *r)
{
  struct gw_call *c = req->call;

  if (c->p.rc)
    upstream_error(g, r, c->p.rc, &c->p.err);
  else if (c->batch)
    finish_batch(g, req, r, c->p.batch->resp, c->p.first, c->p.n);
  else
    finish_one(g, req, r, c->p.batch->resp, c->p.first);
  if (!r->json && !r->text.len && r->status == 200)
    gw_resp_detail(r, 500, json_string("out of memory"));
  gw_call_free(c);
  req->call = NULL;
}

static void route_predict(struct gw *g, struct gw_req *req, struct gw_resp *r, bool batch)
{
  struct gw_info *gi = NULL;
  Credito__V1__GetModelInfoResponse *info = NULL;
  Credito__V1__Applicant **rows = NULL;
  struct gw_call *c;
  cm_arena *a = NULL;
  json_t *doc = NULL;
  struct cm_error err;
  size_t n = 0;
  int rc;

  if (!admit(g, req, r) || !json_body(req, r))
    return;
  cm_error_clear(&err);
  a = cm_arena_new(0);
  rc = a ? model_info(g, false, &gi, &err) : cm_error_set(&err, CM_E_NOMEM, "no memory");
  info = gi ? gi->msg : NULL;
  if (rc) {
    upstream_error(g, r, rc, &err);
  } else if (!info->serving || !info->schema) {
    gw_resp_detail(r, 503, json_string("The predictor serves no model yet"));
  } else if (applicants(g, req, r, batch, a, info->schema, &doc, &rows, &n)) {
    /* The answer comes later: the HTTP layer suspends the connection and submits the call. */
    c = cm_calloc(1, sizeof *c);
    if (c) {
      c->p.rows = rows;
      c->p.n = n;
      c->p.deadline_ms = gw_mono_ms() + g->cfg->upstream_timeout_ms;
      c->p.request_id = req->request_id;
      c->p.done = call_done;
      c->a = a;
      c->doc = doc;
      c->gi = gi;
      c->batch = batch;
      req->call = c;
      return;
    }
    gw_resp_detail(r, 500, json_string("out of memory"));
  }
  json_decref(doc);
  cm_arena_free(a);
  gw_info_release(gi);
}

/* GET /v1/model: the served model's schema, metrics and identity, for forms and people. */
static void route_model(struct gw *g, struct gw_req *req, struct gw_resp *r)
{
  Credito__V1__GetModelInfoResponse *info = NULL;
  struct gw_info *gi = NULL;
  struct cm_error err;
  json_t *j;
  int rc;

  if (!admit(g, req, r))
    return;
  cm_error_clear(&err);
  rc = model_info(g, false, &gi, &err);
  info = gi ? gi->msg : NULL;
  if (rc) {
    upstream_error(g, r, rc, &err);
  } else if (!info->serving) {
    gw_resp_detail(r, 503, json_string("The predictor serves no model yet"));
  } else {
    j = pbjson_from_message(&info->base, PBJSON_EMIT_DEFAULTS, &err);
    r->status = j ? 200 : 500;
    r->json = j ? j : json_pack("{s:s}", "detail", err.msg);
  }
  gw_info_release(gi);
}

/* GET /readyz: a predictor answers and serves a model. */
static void route_readyz(struct gw *g, struct gw_resp *r)
{
  Credito__V1__GetModelInfoResponse *info = NULL;
  struct gw_info *gi = NULL;
  struct cm_error err;
  int rc;

  cm_error_clear(&err);
  rc = model_info(g, true, &gi, &err);
  info = gi ? gi->msg : NULL;
  if (!rc && info->serving) {
    r->status = 200;
    r->json = json_pack("{s:s, s:s, s:I}", "status", "ready", "model", info->name, "version",
                        (json_int_t)info->version);
  } else {
    r->status = 503;
    r->json = json_pack("{s:s, s:s}", "status", "not ready", "detail",
                        rc ? err.msg : "the predictor serves no model yet");
  }
  gw_info_release(gi);
}

enum gw_route gw_route_request(struct gw *g, struct gw_req *req, struct gw_resp *r)
{
  static const struct {
    const char *path;
    const char *method;
    enum gw_route route;
  } table[] = {
      {"/predict", "POST", GW_ROUTE_PREDICT},   {"/predict/batch", "POST", GW_ROUTE_PREDICT_BATCH},
      {"/v1/model", "GET", GW_ROUTE_MODEL},     {"/healthz", "GET", GW_ROUTE_HEALTHZ},
      {"/readyz", "GET", GW_ROUTE_READYZ},      {"/metrics", "GET", GW_ROUTE_METRICS},
      {"/openapi.json", "GET", GW_ROUTE_OPENAPI}, {"/docs", "GET", GW_ROUTE_DOCS},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    if (strcmp(req->path, table[i].path) != 0)
      continue;
    if (strcmp(req->method, table[i].method) != 0 &&
        !(strcmp(req->method, "HEAD") == 0 && strcmp(table[i].method, "GET") == 0)) {
      gw_resp_detail(r, 405, json_string("Method Not Allowed"));
      gw_resp_header(r, "Allow", table[i].method);
      return table[i].route;
    }
    switch (table[i].route) {
    case GW_ROUTE_PREDICT:
    case GW_ROUTE_PREDICT_BATCH:
      route_predict(g, req, r, table[i].route == GW_ROUTE_PREDICT_BATCH);
      break;
    case GW_ROUTE_MODEL:
      route_model(g, req, r);
      break;
    case GW_ROUTE_HEALTHZ:
      r->status = 200;
      r->json = json_pack("{s:s}", "status", "ok");
      break;
    case GW_ROUTE_READYZ:
      route_readyz(g, r);
      break;
    case GW_ROUTE_METRICS:
      r->status = gw_metrics_render(g->metrics, &r->text) ? 500 : 200;
      r->content_type = "text/plain; version=0.0.4; charset=utf-8";
      break;
    case GW_ROUTE_OPENAPI:
      gw_openapi(r);
      break;
    default:
      gw_docs(r);
      break;
    }
    return table[i].route;
  }
  gw_resp_detail(r, 404, json_string("Not Found"));
  return GW_ROUTE_OTHER;
}
