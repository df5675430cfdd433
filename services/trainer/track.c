/* track: the tracked training, stage by stage, with everything logged to the registry run. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mem.h"
#include "regclient.h"
#include "track.h"
#include "train.h"

#define ARTIFACT_PATH "model/model.pb"
#define ARTIFACT_TYPE "application/x-protobuf; messageType=credito.v1.ModelArtifact"
/* Largest parent artifact read for a warm start. */
#define TRK_MAX_ARTIFACT ((size_t)64 << 20)

/* State of one tracked training. */
struct trk {
  const struct trk_opts *o;
  const Credito__V1__TrainRequest *req;
  const struct trk_sink *sink;
  cm_arena *a;                          /* caller's: the result */
  struct trn_params params;
  trn_job *job;
  Credito__V1__DatasetVersion *raw;     /* in a */
  Credito__V1__ModelVersion *parent;    /* in a; NULL without a warm start */
  char *experiment_id, *run_id;         /* in a */
  char *processed_name;                 /* in a */
  char processed_md5[33];
  double fraction;                      /* progress so far */
  int gone;                             /* nonzero once a progress event could not be sent */
  size_t logged;                        /* job metrics already sent to the run */
};

static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends one progress event; metrics (may be NULL) are points already logged to the run. */
static int progress(struct trk *t, Credito__V1__TrainStage stage, double fraction,
                    const char *msg, Credito__V1__Metric **metrics, size_t n)
{
  Credito__V1__TrainProgress p = CREDITO__V1__TRAIN_PROGRESS__INIT;
  if (fraction > t->fraction)
    t->fraction = fraction;
  p.stage = stage;
  p.fraction = t->fraction;
  p.message = (char *)msg;
  p.metrics = metrics;
  p.n_metrics = n;
  p.run_id = t->run_id ? t->run_id : (char *)"";
  if (!t->gone && t->sink->progress)
    t->gone = t->sink->progress(t->sink->ctx, &p);
  return t->gone;
}

/* Between stages: CM_E_CANCELLED once the client cancelled. */
static int checkpoint(struct trk *t, struct cm_error *err)
{
  if (t->gone || (t->sink->cancelled && t->sink->cancelled(t->sink->ctx)))
    return cm_error_set(err, CM_E_CANCELLED, "training cancelled by the client");
  return 0;
}

/* ---- Request ---- */

static bool alias_ok(const char *s)
{
  bool digits = true;
  if (!s[0] || strlen(s) > 255)
    return false;
  for (const char *c = s; *c; c++) {
    if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_')
      return false;
    digits = digits && isdigit((unsigned char)*c);
  }
  return !digits;
}

static int req_gates(const Credito__V1__TrainRequest *r, struct cm_error *err)
{
  for (size_t i = 0; i < r->n_gates; i++) {
    const Credito__V1__Gate *g = r->gates[i];
    if (!g->metric[0] || !isfinite(g->value) ||
        (g->comparison != CREDITO__V1__GATE_COMPARISON__GATE_COMPARISON_AT_LEAST &&
         g->comparison != CREDITO__V1__GATE_COMPARISON__GATE_COMPARISON_AT_MOST))
      return cm_error_set(err, CM_E_INVALID, "gates[%zu]: need a metric, a comparison and a "
                          "finite value", i);
  }
  if (r->alias[0] && !alias_ok(r->alias))
    return cm_error_set(err, CM_E_INVALID, "alias '%.60s': letters, digits, - and _ only, not "
                        "all digits", r->alias);
  return 0;
}

/* Fills t->params from the request (defaults for zero fields) and checks it all. */
static int req_params(struct trk *t, struct cm_error *err)
{
  const Credito__V1__TrainRequest *r = t->req;
  struct trn_params *p = &t->params;
  int rc = 0;

  if (!r->model_name[0] || !r->dataset || !r->dataset->name[0])
    return cm_error_set(err, CM_E_INVALID, "model_name and dataset.name are required");
  for (size_t i = 0; !rc && i < r->n_params; i++)
    rc = trn_params_set(p, r->params[i]->key, r->params[i]->value, err);
  if (rc)
    return rc;
  p->no_holdout = r->no_holdout;
  p->test_fraction = r->no_holdout ? r->test_fraction : r->test_fraction == 0 ? 0.2
                                                                               : r->test_fraction;
  if (r->cv_folds < 0)
    return cm_error_set(err, CM_E_INVALID, "cv_folds %d must be 0 (5), 1 (none) or 2..20",
                        r->cv_folds);
  p->cv_folds = r->cv_folds == 0 ? 5 : r->cv_folds;
  p->seed = r->seed;
  if (r->scorecard) {
    p->sc.pdo = r->scorecard->pdo != 0 ? r->scorecard->pdo : p->sc.pdo;
    p->sc.base_score = r->scorecard->base_score != 0 ? r->scorecard->base_score : p->sc.base_score;
    p->sc.base_odds = r->scorecard->base_odds != 0 ? r->scorecard->base_odds : p->sc.base_odds;
    p->sc.threshold = r->scorecard->threshold != 0 ? r->scorecard->threshold : p->sc.threshold;
  }
  rc = trn_params_check(p, err);
  return rc ? rc : req_gates(r, err);
}

int trk_request_check(const Credito__V1__TrainRequest *req, struct cm_error *err)
{
  struct trk t = {0};
  int rc;
  t.req = req;
  trn_params_init(&t.params);
  rc = req_params(&t, err);
  trn_params_cleanup(&t.params);
  return rc;
}

/* ---- Registry steps ---- */

/* Resolves the dataset version (latest of the name when md5 is empty) and the parent. */
static int resolve_inputs(struct trk *t, struct cm_error *err)
{
  Credito__V1__GetDatasetVersionRequest dr = CREDITO__V1__GET_DATASET_VERSION_REQUEST__INIT;
  Credito__V1__ResolveModelRequest mr = CREDITO__V1__RESOLVE_MODEL_REQUEST__INIT;
  int rc;

  dr.dataset = t->req->dataset;
  rc = regc_call(&t->o->reg, "GetDatasetVersion", &dr.base, &credito__v1__dataset_version__descriptor,
                t->a, &t->raw, err);
  if (rc || !t->req->parent)
    return rc;
  mr.model = t->req->parent;
  return regc_call(&t->o->reg, "ResolveModel", &mr.base, &credito__v1__model_version__descriptor, t->a,
                  &t->parent, err);
}

static int open_run(struct trk *t, struct cm_error *err)
{
  Credito__V1__CreateExperimentRequest er = CREDITO__V1__CREATE_EXPERIMENT_REQUEST__INIT;
  Credito__V1__CreateRunRequest rr = CREDITO__V1__CREATE_RUN_REQUEST__INIT;
  Credito__V1__Experiment *ex = NULL;
  Credito__V1__Run *run = NULL;
  int rc;

  er.name = t->req->experiment_name[0] ? t->req->experiment_name : t->req->model_name;
  er.exist_ok = 1;
  rc = regc_call(&t->o->reg, "CreateExperiment", &er.base, &credito__v1__experiment__descriptor, t->a,
                &ex, err);
  if (rc)
    return rc;
  t->experiment_id = ex->experiment_id;
  rr.experiment_id = ex->experiment_id;
  rr.run_name = cm_arena_printf(t->a, "train-%s", t->req->model_name);
  rr.start_ms = now_ms();
  rc = rr.run_name ? regc_call(&t->o->reg, "CreateRun", &rr.base, &credito__v1__run__descriptor, t->a,
                              &run, err)
                   : cm_error_set(err, CM_E_NOMEM, "out of memory");
  if (!rc)
    t->run_id = run->run_id;
  return rc;
}

/* Sends the job's metrics recorded since the last call to the run; *out and *n (in a) are those
 * points for the progress event. */
static int log_new_metrics(struct trk *t, Credito__V1__Metric ***out, size_t *n,
                           struct cm_error *err)
{
  Credito__V1__LogMetricsRequest req = CREDITO__V1__LOG_METRICS_REQUEST__INIT;
  Credito__V1__LogMetricsResponse *resp = NULL;
  const struct trn_metric *all;
  size_t total, k;
  int64_t ts = now_ms();
  Credito__V1__Metric **ms, *m;

  all = trn_job_metrics(t->job, &total);
  k = total - t->logged;
  *out = NULL;
  *n = 0;
  if (k == 0)
    return 0;
  ms = cm_arena_calloc(t->a, k, sizeof *ms);
  m = cm_arena_calloc(t->a, k, sizeof *m);
  if (!ms || !m)
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  for (size_t i = 0; i < k; i++) {
    credito__v1__metric__init(&m[i]);
    m[i].key = (char *)all[t->logged + i].key;
    m[i].value = all[t->logged + i].value;
    m[i].step = all[t->logged + i].step;
    m[i].timestamp_ms = ts;
    ms[i] = &m[i];
  }
  req.run_id = t->run_id;
  req.metrics = ms;
  req.n_metrics = k;
  if (regc_call(&t->o->reg, "LogMetrics", &req.base, &credito__v1__log_metrics_response__descriptor,
               t->a, &resp, err))
    return err->code;
  t->logged = total;
  *out = ms;
  *n = k;
  return 0;
}

/* Logs the stage's new metrics and reports them with msg. */
static int stage_done(struct trk *t, Credito__V1__TrainStage stage, double fraction,
                      const char *msg, struct cm_error *err)
{
  Credito__V1__Metric **ms = NULL;
  size_t n = 0;
  int rc = log_new_metrics(t, &ms, &n, err);
  if (!rc)
    progress(t, stage, fraction, msg, ms, n);
  return rc ? rc : checkpoint(t, err);
}

/* Params: every setting with its default filled in (see trainer.proto). */
static int log_params(struct trk *t, struct cm_error *err)
{
  const struct trn_params *p = &t->params;
  Credito__V1__LogParamsRequest req = CREDITO__V1__LOG_PARAMS_REQUEST__INIT;
  Credito__V1__LogParamsResponse *resp = NULL;
  char v[15][96];
  const char *keys[15] = {"C", "max_iter", "tol", "solver", "unknown_category", "test_fraction",
                          "cv_folds", "seed", "target", "positive_label", "pdo", "base_score",
                          "base_odds", "threshold", "parent"};
  Credito__V1__Param ps[15], *pp[15];

  snprintf(v[0], 96, "%.17g", p->C);
  snprintf(v[1], 96, "%d", p->max_iter);
  snprintf(v[2], 96, "%.17g", p->tol);
  snprintf(v[3], 96, "%s", TRN_SOLVER);
  snprintf(v[4], 96, "%s", p->unknown_ignore ? "ignore" : "reject");
  snprintf(v[5], 96, "%.17g", p->no_holdout ? 0.0 : p->test_fraction);
  snprintf(v[6], 96, "%d", p->cv_folds);
  snprintf(v[7], 96, "%llu", (unsigned long long)p->seed);
  const char *positive, *target = trn_job_target(t->job, &positive);

  snprintf(v[8], 96, "%.95s", target);
  snprintf(v[9], 96, "%.95s", positive);
  snprintf(v[10], 96, "%.17g", p->sc.pdo);
  snprintf(v[11], 96, "%.17g", p->sc.base_score);
  snprintf(v[12], 96, "%.17g", p->sc.base_odds);
  snprintf(v[13], 96, "%.17g", p->sc.threshold);
  snprintf(v[14], 96, "%s", "");
  if (t->parent)
    snprintf(v[14], 96, "%.80s/%lld", t->parent->name, (long long)t->parent->version);
  for (size_t i = 0; i < 15; i++) {
    credito__v1__param__init(&ps[i]);
    ps[i].key = (char *)keys[i];
    ps[i].value = v[i];
    pp[i] = &ps[i];
  }
  req.run_id = t->run_id;
  req.params = pp;
  req.n_params = 15;
  return regc_call(&t->o->reg, "LogParams", &req.base, &credito__v1__log_params_response__descriptor,
                  t->a, &resp, err);
}

/* Tags: trainer version, data digests, model name, and the request's own. */
static int log_tags(struct trk *t, struct cm_error *err)
{
  Credito__V1__SetTagsRequest req = CREDITO__V1__SET_TAGS_REQUEST__INIT;
  Credito__V1__SetTagsResponse *resp = NULL;
  size_t n = t->req->n_tags + 4;
  Credito__V1__Tag *tags = cm_arena_calloc(t->a, n, sizeof *tags);
  Credito__V1__Tag **pp = cm_arena_calloc(t->a, n, sizeof *pp);
  const char *fixed[4][2] = {{"credito.trainer_version", t->o->trainer_version},
                             {"credito.dataset_md5", t->raw->blob ? t->raw->blob->md5 : ""},
                             {"credito.processed_md5", t->processed_md5},
                             {"credito.model_name", t->req->model_name}};

  if (!tags || !pp)
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    credito__v1__tag__init(&tags[i]);
    if (i < 4) {
      tags[i].key = (char *)fixed[i][0];
      tags[i].value = (char *)fixed[i][1];
    } else {
      tags[i].key = t->req->tags[i - 4]->key;
      tags[i].value = t->req->tags[i - 4]->value;
    }
    pp[i] = &tags[i];
  }
  req.run_id = t->run_id;
  req.tags = pp;
  req.n_tags = n;
  return regc_call(&t->o->reg, "SetTags", &req.base, &credito__v1__set_tags_response__descriptor, t->a,
                  &resp, err);
}

/* LOAD: the raw bytes, parsed; target and label default to the dataset schema's. */
static int stage_load(struct trk *t, struct cm_error *err)
{
  struct cm_buf data;
  const Credito__V1__Schema *schema = t->raw->schema;
  int rc;

  if (!t->req->target[0] && schema && schema->target[0])
    t->params.target = cm_strdup(schema->target);
  else if (t->req->target[0])
    t->params.target = cm_strdup(t->req->target);
  if (!t->req->positive_label[0] && schema && schema->positive_label[0])
    t->params.positive = cm_strdup(schema->positive_label);
  else if (t->req->positive_label[0])
    t->params.positive = cm_strdup(t->req->positive_label);
  if (t->raw->blob && (uint64_t)t->raw->blob->size > t->o->max_dataset)
    return cm_error_set(err, CM_E_TOOLARGE, "dataset %s@%s is %lld bytes, over the trainer's "
                        "cap of %zu (--max-dataset)", t->raw->name, t->raw->blob->md5,
                        (long long)t->raw->blob->size, t->o->max_dataset);
  t->job = trn_job_new(&t->params);
  if (!t->job)
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  cm_buf_init(&data, t->o->max_dataset);
  rc = regc_dataset_get(&t->o->reg, t->raw->blob ? t->raw->blob->md5 : "", t->o->max_dataset, &data,
                       err);
  if (!rc)
    rc = trn_job_load(t->job, data.data ? data.data : "", data.len,
                      t->raw->format[0] ? t->raw->format : NULL, err);
  cm_buf_cleanup(&data);
  if (rc) {
    char msg[sizeof err->msg];
    snprintf(msg, sizeof(msg), "%s", err->msg);
    return cm_error_set(err, rc, "dataset %.40s: %s", t->raw->name, msg);
  }
  progress(t, CREDITO__V1__TRAIN_STAGE__TRAIN_STAGE_LOAD, 0.1, "dataset parsed", NULL, 0);
  return checkpoint(t, err);
}

/* The processed matrix's schema: every prepared column numeric, the 0/1 target. */
static Credito__V1__Schema *processed_schema(struct trk *t)
{
  const struct md_prep *p = trn_job_prep(t->job);
  size_t d = md_prep_width(p);
  Credito__V1__Schema *s = cm_arena_calloc(t->a, 1, sizeof *s);
  Credito__V1__FeatureSpec *f = cm_arena_calloc(t->a, d + 1, sizeof *f);
  Credito__V1__FeatureSpec **fp = cm_arena_calloc(t->a, d + 1, sizeof *fp);
  if (!s || !f || !fp)
    return NULL;
  credito__v1__schema__init(s);
  for (size_t j = 0; j < d; j++) {
    credito__v1__feature_spec__init(&f[j]);
    f[j].name = (char *)md_prep_name(p, j);
    f[j].kind = CREDITO__V1__FEATURE_KIND__FEATURE_KIND_NUMERIC;
    f[j].required = 1;
    fp[j] = &f[j];
  }
  s->features = fp;
  s->n_features = d;
  s->target = t->params.target ? t->params.target : (char *)"class";
  s->positive_label = (char *)"1";
  return s;
}

/* PREPARE: split, preparation, and the processed matrix stored as a child dataset version. */
static int stage_prepare(struct trk *t, struct cm_error *err)
{
  Credito__V1__CreateDatasetVersionRequest req = CREDITO__V1__CREATE_DATASET_VERSION_REQUEST__INIT;
  Credito__V1__DatasetRef parent = CREDITO__V1__DATASET_REF__INIT;
  Credito__V1__DatasetVersion *dv = NULL;
  size_t len;
  const char *csv;
  int rc = trn_job_prepare(t->job, true, err);

  if (rc)
    return rc;
  csv = trn_job_processed(t->job, &len);
  if (regc_md5_hex(csv, len, t->processed_md5))
    return cm_error_set(err, CM_E_INTERNAL, "MD5 failed");
  rc = regc_dataset_put(&t->o->reg, csv, len, t->processed_md5, err);
  if (rc)
    return rc;
  t->processed_name = cm_arena_printf(t->a, "%s-processed", t->raw->name);
  parent.name = t->raw->name;
  parent.md5 = t->raw->blob ? t->raw->blob->md5 : (char *)"";
  req.name = t->processed_name;
  req.md5 = t->processed_md5;
  req.size = (int64_t)len;
  req.format = (char *)"csv";
  req.rows = (int64_t)ds_rows(trn_job_table(t->job));
  req.schema = processed_schema(t);
  req.parent = &parent;
  req.source_path = cm_arena_printf(t->a, "trainer:%s", t->run_id);
  if (!req.name || !req.schema || !req.source_path)
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  rc = regc_call(&t->o->reg, "CreateDatasetVersion", &req.base,
                &credito__v1__dataset_version__descriptor, t->a, &dv, err);
  if (!rc)
    progress(t, CREDITO__V1__TRAIN_STAGE__TRAIN_STAGE_PREPARE, 0.2,
             "prepared and stored the processed matrix", NULL, 0);
  return rc ? rc : checkpoint(t, err);
}

/* Logs the two inputs, source and training, then the tags (which name both digests). */
static int log_inputs(struct trk *t, struct cm_error *err)
{
  Credito__V1__LogInputsRequest req = CREDITO__V1__LOG_INPUTS_REQUEST__INIT;
  Credito__V1__LogInputsResponse *resp = NULL;
  Credito__V1__DatasetRef refs[2] = {CREDITO__V1__DATASET_REF__INIT,
                                     CREDITO__V1__DATASET_REF__INIT};
  Credito__V1__DatasetInput in[2] = {CREDITO__V1__DATASET_INPUT__INIT,
                                     CREDITO__V1__DATASET_INPUT__INIT};
  Credito__V1__DatasetInput *pp[2] = {&in[0], &in[1]};
  int rc;

  refs[0].name = t->raw->name;
  refs[0].md5 = t->raw->blob ? t->raw->blob->md5 : (char *)"";
  refs[1].name = t->processed_name;
  refs[1].md5 = t->processed_md5;
  in[0].dataset = &refs[0];
  in[0].context = (char *)"source";
  in[1].dataset = &refs[1];
  in[1].context = (char *)"training";
  req.run_id = t->run_id;
  req.inputs = pp;
  req.n_inputs = 2;
  rc = regc_call(&t->o->reg, "LogInputs", &req.base, &credito__v1__log_inputs_response__descriptor,
                t->a, &resp, err);
  return rc ? rc : log_tags(t, err);
}

/* The parent's verified artifact, as warm-start coefficients (caller's storage, width + 1). */
static int warm_start(struct trk *t, double *coef, struct cm_error *err)
{
  struct cm_buf art;
  char sha[65];
  size_t matched = 0;
  int rc;

  cm_buf_init(&art, TRK_MAX_ARTIFACT);
  rc = regc_artifact_get(&t->o->reg, t->parent->artifact_key, TRK_MAX_ARTIFACT, &art, err);
  if (!rc && (md_artifact_sha256((const uint8_t *)(art.data ? art.data : ""), art.len, sha) ||
              strcmp(sha, t->parent->artifact_sha256) != 0))
    rc = cm_error_set(err, CM_E_CORRUPT, "parent %s/%lld: artifact SHA-256 %s does not match "
                      "the version record", t->parent->name, (long long)t->parent->version, sha);
  if (!rc)
    rc = md_artifact_warm_start((const uint8_t *)art.data, art.len, trn_job_prep(t->job),
                                trn_job_table(t->job), coef, &matched, err);
  cm_buf_cleanup(&art);
  if (rc)
    return cm_error_set(err, rc, "parent %s/%lld: %s", t->parent->name,
                        (long long)t->parent->version, err->msg);
  cm_log(CM_LOG_INFO, "warm start", "parent=%s/%lld matched=%zu width=%zu", t->parent->name,
         (long long)t->parent->version, matched, md_prep_width(trn_job_prep(t->job)));
  return 0;
}

struct fit_ctx {
  struct trk *t;
  int max_iter;
};

static void on_iter(void *ctx, int it, double loss)
{
  struct fit_ctx *fc = ctx;
  char msg[80];
  snprintf(msg, sizeof(msg), "iteration %d, loss %.6g", it, loss);
  progress(fc->t, CREDITO__V1__TRAIN_STAGE__TRAIN_STAGE_FIT,
           0.2 + 0.35 * (it < fc->max_iter ? (double)it / fc->max_iter : 1.0), msg, NULL, 0);
}

static void on_fold(void *ctx, int fold, int folds, double auc)
{
  struct trk *t = ctx;
  char msg[80];
  snprintf(msg, sizeof(msg), "fold %d/%d, AUC %.4f", fold, folds, auc);
  progress(t, CREDITO__V1__TRAIN_STAGE__TRAIN_STAGE_CROSS_VALIDATE,
           0.65 + 0.25 * fold / folds, msg, NULL, 0);
}

/* FIT, EVALUATE, CROSS_VALIDATE, each logging its metrics when it ends. */
static int stage_fit_eval(struct trk *t, struct cm_error *err)
{
  size_t d = md_prep_width(trn_job_prep(t->job));
  double *warm = NULL;
  struct fit_ctx fc = {t, t->params.max_iter};
  int rc = 0;

  if (t->parent) {
    warm = cm_calloc(d + 1, sizeof *warm);
    rc = warm ? warm_start(t, warm, err) : cm_error_set(err, CM_E_NOMEM, "out of memory");
  }
  if (!rc)
    rc = trn_job_fit(t->job, warm, on_iter, &fc, err);
  cm_free(warm);
  rc = rc ? rc : stage_done(t, CREDITO__V1__TRAIN_STAGE__TRAIN_STAGE_FIT, 0.55, "fitted", err);
  rc = rc ? rc : trn_job_evaluate(t->job, err);
  rc = rc ? rc : stage_done(t, CREDITO__V1__TRAIN_STAGE__TRAIN_STAGE_EVALUATE, 0.65, "evaluated",
                            err);
  rc = rc ? rc : trn_job_cross_validate(t->job, on_fold, t, err);
  rc = rc ? rc : stage_done(t, CREDITO__V1__TRAIN_STAGE__TRAIN_STAGE_CROSS_VALIDATE, 0.9,
                            "cross-validated", err);
  return rc;
}

/* UPLOAD: the artifact, with lineage, as run artifact model/model.pb. */
static int stage_upload(struct trk *t, Credito__V1__Artifact **art, char sha[65],
                        struct cm_error *err)
{
  struct md_dataset_ref ds[2] = {
      {t->raw->name, t->raw->blob ? t->raw->blob->md5 : "", "source"},
      {t->processed_name, t->processed_md5, "training"}};
  struct md_artifact_meta meta = {0};
  uint8_t *bytes = NULL;
  size_t len = 0;
  int rc;

  meta.model_name = t->req->model_name;
  meta.created_ms = now_ms();
  meta.trainer_version = t->o->trainer_version;
  meta.run_id = t->run_id;
  meta.experiment_id = t->experiment_id;
  meta.datasets = ds;
  meta.n_datasets = 2;
  meta.parent_name = t->parent ? t->parent->name : NULL;
  meta.parent_version = t->parent ? t->parent->version : 0;
  rc = trn_job_pack(t->job, &meta, &bytes, &len, sha, err);
  if (!rc)
    rc = regc_artifact_put(&t->o->reg, t->run_id, ARTIFACT_PATH, ARTIFACT_TYPE, bytes, len, sha, t->a,
                          art, err);
  cm_free(bytes);
  if (!rc)
    progress(t, CREDITO__V1__TRAIN_STAGE__TRAIN_STAGE_UPLOAD, 0.95, "artifact uploaded", NULL,
             0);
  return rc ? rc : checkpoint(t, err);
}

/* Checks every gate; *reason (in a) gets one clause per failure, "" when all pass. */
static int check_gates(struct trk *t, char **reason)
{
  struct cm_buf b;
  int rc = 0;
  cm_buf_init(&b, 4096);
  for (size_t i = 0; !rc && i < t->req->n_gates; i++) {
    const Credito__V1__Gate *g = t->req->gates[i];
    bool at_least = g->comparison == CREDITO__V1__GATE_COMPARISON__GATE_COMPARISON_AT_LEAST;
    double v;
    if (!trn_job_metric(t->job, g->metric, &v))
      rc = cm_buf_addf(&b, "%s%s was not computed", b.len ? "; " : "", g->metric);
    else if (at_least ? !(v >= g->value) : !(v <= g->value))
      rc = cm_buf_addf(&b, "%s%s %.4f %s %.4f", b.len ? "; " : "", g->metric, v,
                       at_least ? "<" : ">", g->value);
  }
  *reason = rc ? NULL : cm_arena_strdup(t->a, b.data ? b.data : "");
  cm_buf_cleanup(&b);
  return *reason ? 0 : CM_E_NOMEM;
}

/* The version's metrics: the final value of each (in a). */
static int version_metrics(struct trk *t, Credito__V1__Metric ***out, size_t *n)
{
  struct md_metric *fm = NULL;
  size_t k = 0;
  Credito__V1__Metric *m, **pp;
  if (trn_job_final_metrics(t->job, &fm, &k))
    return CM_E_NOMEM;
  m = cm_arena_calloc(t->a, k + 1, sizeof *m);
  pp = cm_arena_calloc(t->a, k + 1, sizeof *pp);
  for (size_t i = 0; m && pp && i < k; i++) {
    credito__v1__metric__init(&m[i]);
    m[i].key = cm_arena_strdup(t->a, fm[i].key);
    m[i].value = fm[i].value;
    pp[i] = &m[i];
  }
  cm_free(fm);
  *out = pp;
  *n = k;
  return m && pp ? 0 : CM_E_NOMEM;
}

/* REGISTER: the version, the gates, the alias. */
static int stage_register(struct trk *t, const Credito__V1__Artifact *art, const char *sha,
                          Credito__V1__TrainResult *res, struct cm_error *err)
{
  Credito__V1__CreateModelVersionRequest req = CREDITO__V1__CREATE_MODEL_VERSION_REQUEST__INIT;
  Credito__V1__SetAliasRequest ar = CREDITO__V1__SET_ALIAS_REQUEST__INIT;
  Credito__V1__SetAliasResponse *aresp = NULL;
  Credito__V1__ModelRef parent = CREDITO__V1__MODEL_REF__INIT;
  Credito__V1__DatasetRef refs[2] = {CREDITO__V1__DATASET_REF__INIT,
                                     CREDITO__V1__DATASET_REF__INIT};
  Credito__V1__DatasetInput in[2] = {CREDITO__V1__DATASET_INPUT__INIT,
                                     CREDITO__V1__DATASET_INPUT__INIT};
  Credito__V1__DatasetInput *pp[2] = {&in[0], &in[1]};
  int rc;

  refs[0].name = t->raw->name;
  refs[0].md5 = t->raw->blob ? t->raw->blob->md5 : (char *)"";
  refs[1].name = t->processed_name;
  refs[1].md5 = t->processed_md5;
  in[0] = (Credito__V1__DatasetInput)CREDITO__V1__DATASET_INPUT__INIT;
  in[0].dataset = &refs[0];
  in[0].context = (char *)"source";
  in[1].dataset = &refs[1];
  in[1].context = (char *)"training";
  req.name = t->req->model_name;
  req.run_id = t->run_id;
  req.artifact_key = art->blob ? art->blob->key : (char *)"";
  req.artifact_sha256 = (char *)sha;
  req.datasets = pp;
  req.n_datasets = 2;
  if (t->parent) {
    parent.name = t->parent->name;
    parent.selector_case = CREDITO__V1__MODEL_REF__SELECTOR_VERSION;
    parent.version = t->parent->version;
    req.parent = &parent;
  }
  if (version_metrics(t, &req.metrics, &req.n_metrics) ||
      check_gates(t, &res->gate_failure_reason))
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  res->metrics = req.metrics;
  res->n_metrics = req.n_metrics;
  rc = regc_call(&t->o->reg, "CreateModelVersion", &req.base, &credito__v1__model_version__descriptor,
                t->a, &res->model_version, err);
  if (rc || !t->req->alias[0] || res->gate_failure_reason[0])
    return rc;
  ar.name = t->req->model_name;
  ar.alias = t->req->alias;
  ar.version = res->model_version->version;
  rc = regc_call(&t->o->reg, "SetAlias", &ar.base, &credito__v1__set_alias_response__descriptor, t->a,
                &aresp, err);
  if (rc)
    return cm_error_set(err, rc, "version %lld is registered, but %s", 
                        (long long)res->model_version->version, err->msg);
  res->alias = t->req->alias;
  if (aresp->version)
    res->model_version = aresp->version;
  return 0;
}

/* The last progress event: what was registered. */
static int registered(struct trk *t, const Credito__V1__TrainResult *res)
{
  char msg[160];
  snprintf(msg, sizeof(msg), "registered %.60s/%lld%s%.40s%s", res->model_version->name,
           (long long)res->model_version->version, res->alias[0] ? " as " : "", res->alias,
           res->gate_failure_reason[0] ? " (a gate failed: alias not moved)" : "");
  return progress(t, CREDITO__V1__TRAIN_STAGE__TRAIN_STAGE_REGISTER, 1.0, msg, NULL, 0);
}

/* Records a run's end with UpdateRun. */
static int update_run(const struct trk_opts *o, const char *run_id, int status, int64_t end_ms,
                      const char *reason, cm_arena *a, struct cm_error *err)
{
  Credito__V1__UpdateRunRequest req = CREDITO__V1__UPDATE_RUN_REQUEST__INIT;
  Credito__V1__Run *run = NULL;

  req.run_id = (char *)run_id;
  req.status = (Credito__V1__RunStatus)status;
  req.end_ms = end_ms;
  req.failure_reason = (char *)reason;
  return regc_call(&o->reg, "UpdateRun", &req.base, &credito__v1__run__descriptor, a, &run, err);
}

/* Ends the run: FINISHED, or FAILED/KILLED with the reason. Best effort on failure paths; when
 * the registry is unavailable (it or its store down) the end goes to *pending for a retry, so
 * a run cut short by a store outage still ends FAILED once the store is back. */
static void close_run(struct trk *t, int rc, const struct cm_error *cause,
                      struct trk_close *pending)
{
  const char *reason = rc ? cause->msg : "";
  int status = rc == 0 ? CREDITO__V1__RUN_STATUS__RUN_STATUS_FINISHED
               : rc == CM_E_CANCELLED ? CREDITO__V1__RUN_STATUS__RUN_STATUS_KILLED
                                      : CREDITO__V1__RUN_STATUS__RUN_STATUS_FAILED;
  int64_t end = now_ms();
  struct cm_error e;

  cm_error_clear(&e);
  if (!t->run_id)
    return;
  if (rc == CM_E_CANCELLED && !cause->msg[0])
    reason = "training cancelled by the client";
  if (!update_run(t->o, t->run_id, status, end, reason, t->a, &e))
    return;
  cm_log(CM_LOG_WARN, "cannot close the run", "run=%s error=%s", t->run_id, e.msg);
  if (e.code == CM_E_UNAVAILABLE && pending) {
    pending->pending = true;
    snprintf(pending->run_id, sizeof pending->run_id, "%s", t->run_id);
    pending->status = status;
    pending->end_ms = end;
    snprintf(pending->reason, sizeof pending->reason, "%s", reason);
  }
}

void trk_close_retry(const struct trk_opts *o, struct trk_close *c, int64_t wait_ms,
                     const atomic_bool *stop)
{
  int64_t deadline = now_ms() + wait_ms, backoff = 100;
  struct cm_error e;
  int rc = CM_E_UNAVAILABLE;

  cm_error_clear(&e);
  while (c->pending && !atomic_load(stop) && now_ms() < deadline) {
    cm_arena *a = cm_arena_new(0);
    struct timespec slice = {0, 50 * 1000000L};
    int64_t slept = 0;

    rc = a ? update_run(o, c->run_id, c->status, c->end_ms, c->reason, a, &e)
           : cm_error_set(&e, CM_E_NOMEM, "out of memory");
    cm_arena_free(a);
    if (rc != CM_E_UNAVAILABLE && rc != CM_E_NOMEM)
      break;
    /* sleep in slices so a stopping trainer is not held */
    for (; slept < backoff && !atomic_load(stop); slept += 50)
      nanosleep(&slice, NULL);
    backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
  }
  if (rc == 0)
    cm_log(CM_LOG_INFO, "closed the run", "run=%s status=%d", c->run_id, c->status);
  else
    cm_log(CM_LOG_ERROR, "gave up closing the run", "run=%s error=%s", c->run_id,
           e.msg[0] ? e.msg : "the trainer is stopping");
  c->pending = false;
}

/* Every stage after the run exists; *res filled on success. */
static int run_stages(struct trk *t, Credito__V1__TrainResult *res, struct cm_error *err)
{
  Credito__V1__Artifact *art = NULL;
  char sha[65] = "";
  int rc;

  progress(t, CREDITO__V1__TRAIN_STAGE__TRAIN_STAGE_LOAD, 0.02, "run created", NULL, 0);
  rc = checkpoint(t, err);
  rc = rc ? rc : stage_load(t, err);
  /* After loading, so target and positive_label are the ones actually used. */
  rc = rc ? rc : log_params(t, err);
  rc = rc ? rc : stage_prepare(t, err);
  rc = rc ? rc : log_inputs(t, err);
  rc = rc ? rc : checkpoint(t, err);
  rc = rc ? rc : stage_fit_eval(t, err);
  rc = rc ? rc : stage_upload(t, &art, sha, err);
  rc = rc ? rc : stage_register(t, art, sha, res, err);
  /* The version exists now: a client gone at this point changes nothing. */
  if (!rc)
    registered(t, res);
  if (!rc) {
    res->run_id = t->run_id;
    res->processed_dataset = cm_arena_calloc(t->a, 1, sizeof *res->processed_dataset);
    if (!res->processed_dataset)
      return cm_error_set(err, CM_E_NOMEM, "out of memory");
    credito__v1__dataset_ref__init(res->processed_dataset);
    res->processed_dataset->name = t->processed_name;
    res->processed_dataset->md5 = cm_arena_strdup(t->a, t->processed_md5);
  }
  return rc;
}

int trk_train(const struct trk_opts *o, const Credito__V1__TrainRequest *req,
              const struct trk_sink *sink, cm_arena *a, Credito__V1__TrainResult **out,
              struct trk_close *pending, struct cm_error *err)
{
  struct trk t = {0};
  Credito__V1__TrainResult *res = cm_arena_calloc(a, 1, sizeof *res);
  int rc;

  *out = NULL;
  t.o = o;
  t.req = req;
  t.sink = sink;
  t.a = a;
  trn_params_init(&t.params);
  if (!res)
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  credito__v1__train_result__init(res);
  rc = req_params(&t, err);
  rc = rc ? rc : resolve_inputs(&t, err);
  rc = rc ? rc : open_run(&t, err);
  rc = rc ? rc : run_stages(&t, res, err);
  if (rc && rc != CM_E_CANCELLED && err->code == rc)
    cm_log(CM_LOG_WARN, "training failed", "run=%s error=%s", t.run_id ? t.run_id : "",
           err->msg);
  /* A failure after the version exists leaves the run FINISHED: the model is complete. */
  close_run(&t, rc && !res->model_version ? rc : 0, err, pending);
  if (!rc)
    *out = res;
  trn_job_free(t.job);
  trn_params_cleanup(&t.params);
  return rc;
}
