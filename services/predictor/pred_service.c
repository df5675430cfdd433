/* pred_service: Predict, PredictBatch and GetModelInfo. Requests become md_values, the model
 * validates and scores them, violations go back as one BadRequest detail. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "credito/v1/model.pb-c.h"
#include "credito/v1/predictor.pb-c.h"
#include "credito/v1/registry.pb-c.h"
#include "log.h"
#include "mem.h"
#include "pred_int.h"

/* Bytes of violations in one status detail (grpcio's default cap on metadata is 8 KiB). */
#define DETAIL_MAX_BYTES 4000
/* Longest request id echoed; a longer one is replaced by a new one. */
#define REQUEST_ID_MAX 128

struct pred_service {
  struct rpc_service svc; /* first: the server sees this */
  struct rpc_method methods[3];
  const struct pred_opts *o;
  _Atomic(source *) src;
  atomic_uint_fast64_t next_id; /* request ids when the caller sends none */
  uint64_t id_base;             /* per-process random-ish prefix */
};

/* "<16 hex>" unique within the process and unlikely across restarts. */
static char *request_id(struct pred_service *ps, cm_arena *a, const char *given)
{
  uint64_t n;
  if (given && given[0] && strlen(given) <= REQUEST_ID_MAX)
    return (char *)given;
  n = atomic_fetch_add(&ps->next_id, 1);
  return cm_arena_printf(a, "%08llx%08llx", (unsigned long long)(ps->id_base & 0xffffffffu),
                         (unsigned long long)(n & 0xffffffffu));
}

/* Features -> md_values in a. NULL when out of memory. */
static struct md_value *values_of(Credito__V1__Feature **f, size_t n, cm_arena *a)
{
  struct md_value *v = cm_arena_calloc(a, n ? n : 1, sizeof *v);
  for (size_t i = 0; v && i < n; i++) {
    const Credito__V1__FeatureValue *fv = f[i]->value;
    v[i].name = f[i]->name;
    v[i].name_len = strlen(f[i]->name);
    v[i].kind = MD_VALUE_MISSING;
    if (fv && fv->value_case == CREDITO__V1__FEATURE_VALUE__VALUE_NUMBER) {
      v[i].kind = MD_VALUE_NUMBER;
      v[i].number = fv->number;
    } else if (fv && fv->value_case == CREDITO__V1__FEATURE_VALUE__VALUE_TEXT) {
      v[i].kind = MD_VALUE_TEXT;
      v[i].text = fv->text;
      v[i].text_len = strlen(fv->text);
    }
  }
  return v;
}

/* The reason's words (md_reason_text) with the feature's value as the applicant gave it. */
static char *reason_text(const char *feature, const struct md_value *v, size_t n, cm_arena *a)
{
  size_t fl = strlen(feature), cap = fl + MD_REASON_TEXT_EXTRA;
  const struct md_value *given = NULL;
  char *t = cm_arena_alloc(a, cap);

  for (size_t i = 0; i < n && !given; i++)
    if (v[i].name_len == fl && memcmp(v[i].name, feature, fl) == 0)
      given = &v[i];
  if (t)
    md_reason_text(t, cap, feature, given);
  return t;
}

/* The prediction message with its reasons in words. */
static Credito__V1__Prediction *prediction_msg(const struct md_prediction *p,
                                               const struct md_value *v, size_t n, cm_arena *a)
{
  Credito__V1__Prediction *m = cm_arena_calloc(a, 1, sizeof *m);
  Credito__V1__Reason *r = cm_arena_calloc(a, MD_REASONS_MAX, sizeof *r);
  Credito__V1__Reason **rp = cm_arena_calloc(a, MD_REASONS_MAX, sizeof *rp);
  if (!m || !r || !rp)
    return NULL;
  credito__v1__prediction__init(m);
  m->probability = p->probability;
  m->score = p->score;
  m->decision = p->decline ? CREDITO__V1__DECISION__DECISION_DECLINE
                           : CREDITO__V1__DECISION__DECISION_APPROVE;
  for (size_t i = 0; i < p->n_reasons; i++) {
    credito__v1__reason__init(&r[i]);
    r[i].feature = cm_arena_strdup(a, p->reasons[i].feature);
    r[i].impact = p->reasons[i].impact;
    r[i].text = reason_text(p->reasons[i].feature, v, n, a);
    if (!r[i].feature || !r[i].text)
      return NULL;
    rp[i] = &r[i];
  }
  m->reasons = rp;
  m->n_reasons = p->n_reasons;
  return m;
}

Credito__V1__BadRequest *pred_bad_request(const struct md_violation *v, size_t shown,
                                          size_t total, size_t max_bytes, cm_arena *a,
                                          char **summary)
{
  size_t bytes = 0, fit = 0;
  while (fit < shown) {
    bytes += strlen(v[fit].field) + strlen(v[fit].msg) + strlen(v[fit].type) + 8;
    if (fit > 0 && bytes > max_bytes)
      break;
    fit++;
  }
  shown = fit;
  Credito__V1__BadRequest *b = cm_arena_calloc(a, 1, sizeof *b);
  Credito__V1__FieldViolation *f = cm_arena_calloc(a, shown ? shown : 1, sizeof *f);
  Credito__V1__FieldViolation **fp = cm_arena_calloc(a, shown ? shown : 1, sizeof *fp);
  if (!b || !f || !fp)
    return NULL;
  credito__v1__bad_request__init(b);
  for (size_t i = 0; i < shown; i++) {
    credito__v1__field_violation__init(&f[i]);
    /* Copies: the violation buffer is reused for the next row of a batch. */
    f[i].field = cm_arena_strdup(a, v[i].field);
    f[i].message = cm_arena_strdup(a, v[i].msg);
    f[i].type = (char *)v[i].type;
    fp[i] = &f[i];
    if (!f[i].field || !f[i].message)
      return NULL;
  }
  b->violations = fp;
  b->n_violations = shown;
  *summary = cm_arena_printf(a, "%zu invalid field%s%s: %s: %s%s", total, total == 1 ? "" : "s",
                             total > shown ? cm_arena_printf(a, " (the first %zu in the details)",
                                                             shown)
                                           : "",
                             shown ? v[0].field : "", shown ? v[0].msg : "",
                             total > 1 ? "; ..." : "");
  return *summary ? b : NULL;
}

int pred_score(const md_model *m, const struct md_value *v, size_t n, double *scratch,
               struct md_prediction *out, struct md_violation **viol, cm_arena *a, size_t *nv)
{
  int rc = md_model_score(m, v, n, scratch, out, NULL, 0, nv);

  if (rc != CM_E_INVALID)
    return rc;
  if (!*viol)
    *viol = cm_arena_alloc(a, MAX_VIOLATIONS * sizeof **viol);
  if (!*viol)
    return CM_E_NOMEM;
  return md_model_score(m, v, n, scratch, out, *viol, MAX_VIOLATIONS, nv);
}

/* Per-call scratch, reused for every row of a batch: the prepared row, and the violations once
 * a row is invalid (42 KB: allocating and zeroing them per row dominated batch scoring, and
 * holding them in every call in flight was most of the memory under load). */
struct scratch {
  double *row;
  struct md_violation *viol;
};

static int scratch_init(struct scratch *sc, const struct served *sv, cm_arena *a)
{
  sc->row = cm_arena_alloc(a, (md_model_width(sv->model) + 1) * sizeof *sc->row);
  sc->viol = NULL;
  return sc->row ? 0 : CM_E_NOMEM;
}

/* Scores one applicant with sv; on invalid input *bad is set (in a). */
static int score_one(const struct served *sv, struct scratch *sc, Credito__V1__Feature **f,
                     size_t n, size_t detail_bytes, cm_arena *a, Credito__V1__Prediction **pred,
                     Credito__V1__BadRequest **bad, char **summary)
{
  struct md_value *vals = values_of(f, n, a);
  struct md_prediction p;
  size_t nv = 0;
  int rc;

  *pred = NULL;
  *bad = NULL;
  if (!vals)
    return CM_E_NOMEM;
  rc = pred_score(sv->model, vals, n, sc->row, &p, &sc->viol, a, &nv);
  if (rc == CM_E_INVALID) {
    *bad = pred_bad_request(sc->viol, nv < MAX_VIOLATIONS ? nv : MAX_VIOLATIONS, nv,
                            detail_bytes, a, summary);
    return *bad ? CM_E_INVALID : CM_E_NOMEM;
  }
  if (rc)
    return rc;
  *pred = prediction_msg(&p, vals, n, a);
  return *pred ? 0 : CM_E_NOMEM;
}

/* The served version (a reference: served_release), or NULL after answering the call
 * UNAVAILABLE when none is loaded yet. */
static struct served *serving(rpc_call *call, struct pred_service *ps)
{
  struct served *sv = served_acquire(ps->o->slot);
  if (!sv)
    rpc_call_finish(call, CM_E_UNAVAILABLE, "no verified model is loaded yet (GetModelInfo says "
                    "why)");
  return sv;
}

static void predict_start(rpc_call *call, const ProtobufCMessage *msg)
{
  struct pred_service *ps = rpc_call_service(call);
  const Credito__V1__PredictRequest *req = (const void *)msg;
  Credito__V1__PredictResponse resp = CREDITO__V1__PREDICT_RESPONSE__INIT;
  Credito__V1__BadRequest *bad = NULL;
  cm_arena *a = rpc_call_arena(call);
  struct served *sv = serving(call, ps);
  char *summary = NULL, cap[120];
  int rc;

  if (!sv)
    return;
  if (req->n_features > ps->o->max_features) {
    served_release(sv);
    snprintf(cap, sizeof(cap), "%zu features; at most %zu per applicant", req->n_features,
             ps->o->max_features);
    rpc_call_finish(call, CM_E_INVALID, cap);
    return;
  }
  {
    struct scratch sc;
    rc = scratch_init(&sc, sv, a);
    rc = rc ? rc : score_one(sv, &sc, req->features, req->n_features, DETAIL_MAX_BYTES, a,
                             &resp.prediction, &bad, &summary);
  }
  resp.model_name = sv->name;
  resp.model_version = sv->version;
  resp.model_alias = sv->alias;
  resp.request_id = request_id(ps, a, req->request_id);
  if (rc == CM_E_INVALID)
    rpc_call_finish_detail(call, rc, summary, &bad->base);
  else if (rc || !resp.request_id)
    rpc_call_finish(call, rc ? rc : CM_E_NOMEM, "out of memory");
  else
    rpc_call_reply(call, &resp.base);
  served_release(sv);
}

/* PredictBatch by columns (pred_columns.c). */
static void batch_columns(rpc_call *call, struct pred_service *ps,
                          const Credito__V1__PredictBatchRequest *req)
{
  Credito__V1__PredictBatchResponse resp = CREDITO__V1__PREDICT_BATCH_RESPONSE__INIT;
  cm_arena *a = rpc_call_arena(call);
  struct served *sv;
  char msg[200];
  int rc;

  if (req->n_rows) {
    rpc_call_finish(call, CM_E_INVALID, "rows and columns are both set; send one of them");
    return;
  }
  sv = serving(call, ps);
  if (!sv)
    return;
  rc = pred_columns_score(ps->o, sv, req->columns, a, &resp.columns, msg, sizeof msg);
  resp.model_name = sv->name;
  resp.model_version = sv->version;
  resp.model_alias = sv->alias;
  resp.request_id = rc ? NULL : request_id(ps, a, req->request_id);
  if (rc == CM_E_INVALID)
    rpc_call_finish(call, rc, msg);
  else if (rc || !resp.request_id)
    rpc_call_finish(call, CM_E_NOMEM, "out of memory");
  else
    rpc_call_reply(call, &resp.base);
  served_release(sv);
}

static void batch_start(rpc_call *call, const ProtobufCMessage *msg)
{
  struct pred_service *ps = rpc_call_service(call);
  const Credito__V1__PredictBatchRequest *req = (const void *)msg;
  Credito__V1__PredictBatchResponse resp = CREDITO__V1__PREDICT_BATCH_RESPONSE__INIT;
  cm_arena *a = rpc_call_arena(call);
  struct served *sv;
  Credito__V1__RowResult *rows, **rp;
  struct scratch sc;
  char cap[120];
  int rc = 0;

  if (req->columns) {
    batch_columns(call, ps, req);
    return;
  }
  if (req->n_rows > ps->o->max_batch) {
    snprintf(cap, sizeof(cap), "%zu rows; at most %zu per batch", req->n_rows, ps->o->max_batch);
    rpc_call_finish(call, CM_E_INVALID, cap);
    return;
  }
  sv = serving(call, ps);
  if (!sv)
    return;
  rows = cm_arena_calloc(a, req->n_rows + 1, sizeof *rows);
  rp = cm_arena_calloc(a, req->n_rows + 1, sizeof *rp);
  rc = rows && rp ? scratch_init(&sc, sv, a) : CM_E_NOMEM;
  for (size_t i = 0; !rc && i < req->n_rows; i++) {
    const Credito__V1__Applicant *ap = req->rows[i];
    Credito__V1__BadRequest *bad = NULL;
    char *summary = NULL;
    credito__v1__row_result__init(&rows[i]);
    rp[i] = &rows[i];
    if (ap->n_features > ps->o->max_features) {
      rc = CM_E_INVALID;
      snprintf(cap, sizeof(cap), "rows[%zu]: %zu features; at most %zu per applicant", i,
               ap->n_features, ps->o->max_features);
      break;
    }
    rc = score_one(sv, &sc, ap->features, ap->n_features, ROW_DETAIL_MAX_BYTES, a,
                   &rows[i].prediction, &bad, &summary);
    if (rc == CM_E_INVALID) {
      rows[i].outcome_case = CREDITO__V1__ROW_RESULT__OUTCOME_ERROR;
      rows[i].error = bad;
      rc = 0;
    } else if (!rc) {
      rows[i].outcome_case = CREDITO__V1__ROW_RESULT__OUTCOME_PREDICTION;
    }
  }
  resp.results = rp;
  resp.n_results = req->n_rows;
  resp.model_name = sv->name;
  resp.model_version = sv->version;
  resp.model_alias = sv->alias;
  resp.request_id = request_id(ps, a, req->request_id);
  if (rc == CM_E_INVALID)
    rpc_call_finish(call, rc, cap);
  else if (rc || !resp.request_id)
    rpc_call_finish(call, CM_E_NOMEM, "out of memory");
  else
    rpc_call_reply(call, &resp.base);
  served_release(sv);
}

/* GetModelInfo's model part from the served version (strings borrowed from sv or a). */
static void info_model(const struct served *sv, cm_arena *a, Credito__V1__GetModelInfoResponse *r)
{
  const Credito__V1__ModelArtifact *art = md_model_artifact(sv->model);
  Credito__V1__ModelVersion *rec = credito__v1__model_version__unpack(
      cm_arena_allocator(a), sv->record_len, sv->record);
  r->serving = 1;
  r->name = sv->name;
  r->version = sv->version;
  r->alias = sv->alias;
  r->schema = art->schema;
  r->trained_at_ms = art->created_ms;
  r->sha256 = (char *)sv->sha256;
  r->scorecard = art->scorecard;
  r->run_id = sv->run_id;
  r->loaded_at_ms = sv->loaded_at_ms;
  /* The version record's snapshot; the artifact's copy when the record has none. */
  r->metrics = rec && rec->n_metrics ? rec->metrics : art->metrics;
  r->n_metrics = rec && rec->n_metrics ? rec->n_metrics : art->n_metrics;
}

static void info_start(rpc_call *call, const ProtobufCMessage *msg)
{
  struct pred_service *ps = rpc_call_service(call);
  Credito__V1__GetModelInfoResponse resp = CREDITO__V1__GET_MODEL_INFO_RESPONSE__INIT;
  Credito__V1__LoadError le = CREDITO__V1__LOAD_ERROR__INIT;
  struct served *sv = served_acquire(ps->o->slot);
  source *src = atomic_load(&ps->src);
  struct source_error e = {0};
  (void)msg;

  resp.model_ref = (char *)ps->o->model_ref;
  if (sv)
    info_model(sv, rpc_call_arena(call), &resp);
  if (src)
    source_last_error(src, &e);
  if (e.msg[0]) {
    le.version = e.version;
    le.message = e.msg;
    le.time_ms = e.time_ms;
    resp.last_load_error = &le;
  }
  rpc_call_reply(call, &resp.base);
  served_release(sv);
}

struct rpc_service *pred_service_new(const struct pred_opts *o)
{
  const ProtobufCServiceDescriptor *d = &credito__v1__predictor__descriptor;
  struct pred_service *ps = cm_calloc(1, sizeof *ps);
  struct timespec ts;

  if (!ps)
    return NULL;
  ps->o = o;
  clock_gettime(CLOCK_REALTIME, &ts);
  ps->id_base = (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec;
  for (unsigned i = 0; i < d->n_methods; i++) {
    const char *name = d->methods[i].name;
    rpc_start_fn fn = strcmp(name, "Predict") == 0        ? predict_start
                      : strcmp(name, "PredictBatch") == 0 ? batch_start
                                                          : info_start;
    ps->methods[i] = (struct rpc_method){name, RPC_UNARY, d->methods[i].input,
                                         d->methods[i].output, fn, NULL, NULL, NULL};
  }
  ps->svc = (struct rpc_service){d->name, ps->methods, d->n_methods, ps, NULL};
  return &ps->svc;
}

void pred_service_set_source(struct rpc_service *svc, source *src)
{
  atomic_store(&((struct pred_service *)svc)->src, src);
}

void pred_service_free(struct rpc_service *svc)
{
  cm_free(svc);
}
