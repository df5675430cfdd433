/* train: the job's parameters, loading, preparation (split, fitted preparation, processed CSV)
 * and the artifact. Fitting and evaluation are in train_eval.c. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "train_int.h"

/* Largest processed CSV kept in memory (the raw data is capped at 256 MiB by ds_limits). */
#define TRN_MAX_PROCESSED ((size_t)2 << 30)

void trn_params_init(struct trn_params *p)
{
  memset(p, 0, sizeof *p);
  p->C = 1.0;
  p->max_iter = 100;
  p->tol = 1e-4;
  p->test_fraction = 0.2;
  p->cv_folds = 5;
  md_scorecard_init(&p->sc);
}

void trn_params_cleanup(struct trn_params *p)
{
  cm_free(p->target);
  cm_free(p->positive);
  p->target = p->positive = NULL;
}

static int parse_double(const char *key, const char *v, double *out, struct cm_error *err)
{
  char *end = NULL;
  double d;
  errno = 0;
  d = strtod(v, &end);
  if (!v[0] || *end || errno || !isfinite(d) || !(d > 0))
    return cm_error_set(err, CM_E_INVALID, "param %s: '%.40s' is not a finite number > 0", key,
                        v);
  *out = d;
  return 0;
}

int trn_params_set(struct trn_params *p, const char *key, const char *value,
                   struct cm_error *err)
{
  if (strcmp(key, "C") == 0)
    return parse_double(key, value, &p->C, err);
  if (strcmp(key, "tol") == 0)
    return parse_double(key, value, &p->tol, err);
  if (strcmp(key, "max_iter") == 0) {
    char *end = NULL;
    long v;
    errno = 0;
    v = strtol(value, &end, 10);
    if (!value[0] || *end || errno || v < 1 || v > 10000)
      return cm_error_set(err, CM_E_INVALID, "param max_iter: '%.40s' is not in 1..10000",
                          value);
    p->max_iter = (int)v;
    return 0;
  }
  if (strcmp(key, "unknown_category") == 0) {
    if (strcmp(value, "reject") != 0 && strcmp(value, "ignore") != 0)
      return cm_error_set(err, CM_E_INVALID, "param unknown_category: '%.40s' is not reject "
                          "or ignore", value);
    p->unknown_ignore = strcmp(value, "ignore") == 0;
    return 0;
  }
  return cm_error_set(err, CM_E_INVALID, "unknown param '%.40s' (known: C, max_iter, tol, "
                      "unknown_category)", key);
}

int trn_params_check(const struct trn_params *p, struct cm_error *err)
{
  const struct md_scorecard *sc = &p->sc;
  if (p->no_holdout ? p->test_fraction != 0
                    : !(p->test_fraction > 0 && p->test_fraction < 1))
    return cm_error_set(err, CM_E_INVALID, "test_fraction %g must be in (0, 1), or 0 with no "
                        "hold-out", p->test_fraction);
  if (p->cv_folds < 1 || p->cv_folds > 20)
    return cm_error_set(err, CM_E_INVALID, "cv_folds %d must be in 1..20", p->cv_folds);
  if (!(isfinite(sc->pdo) && sc->pdo > 0) || !(isfinite(sc->base_odds) && sc->base_odds > 0) ||
      !isfinite(sc->base_score) || !(sc->threshold > 0 && sc->threshold <= 1))
    return cm_error_set(err, CM_E_INVALID, "scorecard: pdo and base_odds must be > 0, "
                        "threshold in (0, 1]");
  return 0;
}

int trn_metric_add(trn_job *job, const char *key, double value, int64_t step)
{
  struct trn_metric *m;
  if (job->n_metrics == job->cap_metrics) {
    size_t cap = job->cap_metrics ? 2 * job->cap_metrics : 64;
    m = cm_realloc(job->metrics, cap * sizeof *m);
    if (!m)
      return CM_E_NOMEM;
    job->metrics = m;
    job->cap_metrics = cap;
  }
  m = &job->metrics[job->n_metrics++];
  snprintf(m->key, sizeof m->key, "%s", key);
  m->value = value;
  m->step = step;
  return 0;
}

trn_job *trn_job_new(const struct trn_params *params)
{
  trn_job *job = cm_calloc(1, sizeof *job);
  if (!job)
    return NULL;
  job->params = *params;
  job->params.target = params->target ? cm_strdup(params->target) : NULL;
  job->params.positive = params->positive ? cm_strdup(params->positive) : NULL;
  cm_buf_init(&job->processed, TRN_MAX_PROCESSED);
  if ((params->target && !job->params.target) || (params->positive && !job->params.positive)) {
    trn_job_free(job);
    return NULL;
  }
  return job;
}

void trn_job_free(trn_job *job)
{
  if (!job)
    return;
  trn_params_cleanup(&job->params);
  ds_table_free(job->table);
  md_prep_free(job->prep);
  cm_buf_cleanup(&job->processed);
  cm_free(job->y);
  cm_free(job->train);
  cm_free(job->test);
  cm_free(job->Xtrain);
  cm_free(job->Xtest);
  cm_free(job->ytrain);
  cm_free(job->ytest);
  cm_free(job->coef);
  cm_free(job->ptest);
  cm_free(job->metrics);
  cm_free(job);
}

/* Labels every row; CM_E_INVALID naming the first row without a target value. */
static int job_labels(trn_job *job, struct cm_error *err)
{
  size_t n = ds_rows(job->table), pos = 0;
  const int *codes = ds_column_codes(job->table, (size_t)job->target_col);
  job->y = cm_calloc(n, sizeof *job->y);
  if (!job->y)
    return cm_error_set(err, CM_E_NOMEM, "out of memory for %zu labels", n);
  for (size_t i = 0; i < n; i++) {
    if (codes[i] < 0)
      return cm_error_set(err, CM_E_INVALID, "data row %zu: the target '%s' is missing", i + 1,
                          ds_column_at(job->table, (size_t)job->target_col)->name);
    job->y[i] = codes[i] == job->positive;
    pos += (size_t)job->y[i];
  }
  if (pos == 0 || pos == n)
    return cm_error_set(err, CM_E_FAILED_PRECONDITION, "one class only: all %zu rows are %s'%s'",
                        n, pos ? "" : "not ", job->params.positive ? job->params.positive : "bad");
  return 0;
}

int trn_job_load(trn_job *job, const char *text, size_t len, const char *format,
                 struct cm_error *err)
{
  int rc;
  if (len == 0)
    return cm_error_set(err, CM_E_INVALID, "the dataset is empty (0 bytes)");
  rc = ds_parse(text, len, format, NULL, &job->table, err);
  if (rc)
    return rc;
  if (ds_columns(job->table) < 2)
    return cm_error_set(err, CM_E_INVALID, "the dataset has %zu column(s); need features and "
                        "a target", ds_columns(job->table));
  /* Rows first: with none, a CSV target has no categories to check. */
  if (ds_rows(job->table) == 0)
    return cm_error_set(err, CM_E_FAILED_PRECONDITION, "the dataset has a header but no rows");
  rc = ds_schema_infer_target(job->table, job->params.target, job->params.positive,
                              &job->target_col, &job->positive, err);
  return rc ? rc : job_labels(job, err);
}

const char *trn_job_target(const trn_job *job, const char **positive)
{
  const struct ds_column *c = ds_column_at(job->table, (size_t)job->target_col);
  *positive = c->categories[job->positive];
  return c->name;
}

/* Appends s as one CSV field, quoted when it holds a delimiter, quote or line break. */
static int csv_field(struct cm_buf *b, const char *s)
{
  int rc = 0;
  if (!strpbrk(s, ",\"\r\n"))
    return cm_buf_adds(b, s);
  rc = cm_buf_addc(b, '"');
  for (; !rc && *s; s++)
    rc = *s == '"' ? cm_buf_adds(b, "\"\"") : cm_buf_addc(b, *s);
  return rc ? rc : cm_buf_addc(b, '"');
}

/* One processed row: prepared values, the label, the split. */
static int csv_row(struct cm_buf *b, const double *x, size_t d, int y, bool test)
{
  int rc = 0;
  for (size_t j = 0; !rc && j < d; j++) {
    /* One-hot and imputed values are mostly exact small integers: print them short. */
    if (x[j] == 0.0 || x[j] == 1.0)
      rc = cm_buf_adds(b, x[j] == 0.0 ? "0," : "1,");
    else
      rc = cm_buf_addf(b, "%.17g,", x[j]);
  }
  return rc ? rc : cm_buf_adds(b, y ? (test ? "1,test\n" : "1,train\n")
                                    : (test ? "0,test\n" : "0,train\n"));
}

/* The processed matrix as CSV, rows in table order. */
static int job_processed(trn_job *job, struct cm_error *err)
{
  size_t d = md_prep_width(job->prep), n = ds_rows(job->table), it = 0, ie = 0;
  struct cm_buf *b = &job->processed;
  int rc = 0;
  for (size_t j = 0; !rc && j < d; j++) {
    rc = csv_field(b, md_prep_name(job->prep, j));
    rc = rc ? rc : cm_buf_addc(b, ',');
  }
  rc = rc ? rc : csv_field(b, ds_column_at(job->table, (size_t)job->target_col)->name);
  rc = rc ? rc : cm_buf_adds(b, ",split\n");
  for (size_t i = 0; !rc && i < n; i++) {
    if (it < job->ntrain && job->train[it] == i) {
      rc = csv_row(b, job->Xtrain + it * d, d, job->ytrain[it], false);
      it++;
    } else if (ie < job->ntest && job->test[ie] == i) {
      rc = csv_row(b, job->Xtest + ie * d, d, job->ytest[ie], true);
      ie++;
    }
  }
  return rc ? cm_error_set(err, rc, "processed matrix: %s", cm_code_text(rc)) : 0;
}

int trn_job_prepare(trn_job *job, bool processed, struct cm_error *err)
{
  size_t n = ds_rows(job->table), d;
  double frac = job->params.no_holdout ? 0.0 : job->params.test_fraction;
  int rc;

  job->train = cm_calloc(n, sizeof *job->train);
  job->test = cm_calloc(n, sizeof *job->test);
  if (!job->train || !job->test)
    return cm_error_set(err, CM_E_NOMEM, "out of memory for the split");
  rc = md_split_stratified(job->y, n, frac, job->params.seed, job->train, &job->ntrain,
                           job->test, &job->ntest, err);
  if (rc)
    return rc;
  if (job->ntrain == 0 || (!job->params.no_holdout && job->ntest == 0))
    return cm_error_set(err, CM_E_FAILED_PRECONDITION, "%zu rows are too few to hold out %g",
                        n, frac);
  rc = md_prep_fit(job->table, job->train, job->ntrain, job->target_col, &job->prep, err);
  if (rc)
    return rc;
  d = md_prep_width(job->prep);
  job->Xtrain = cm_calloc(job->ntrain * d + 1, sizeof *job->Xtrain);
  job->Xtest = cm_calloc(job->ntest * d + 1, sizeof *job->Xtest);
  job->ytrain = cm_calloc(job->ntrain + 1, sizeof *job->ytrain);
  job->ytest = cm_calloc(job->ntest + 1, sizeof *job->ytest);
  if (!job->Xtrain || !job->Xtest || !job->ytrain || !job->ytest)
    return cm_error_set(err, CM_E_NOMEM, "out of memory for %zu x %zu prepared values", n, d);
  rc = md_prep_apply_rows(job->prep, job->table, job->train, job->ntrain, job->target_col,
                          job->positive, job->Xtrain, job->ytrain, err);
  if (!rc)
    rc = md_prep_apply_rows(job->prep, job->table, job->test, job->ntest, job->target_col,
                            job->positive, job->Xtest, job->ytest, err);
  if (!rc && processed)
    rc = job_processed(job, err);
  return rc;
}

const char *trn_job_processed(const trn_job *job, size_t *len)
{
  *len = job->processed.len;
  return job->processed.data;
}

const struct trn_metric *trn_job_metrics(const trn_job *job, size_t *n)
{
  *n = job->n_metrics;
  return job->metrics;
}

bool trn_job_metric(const trn_job *job, const char *key, double *value)
{
  for (size_t i = job->n_metrics; i-- > 0;) {
    if (strcmp(job->metrics[i].key, key) == 0) {
      *value = job->metrics[i].value;
      return true;
    }
  }
  return false;
}

const struct md_prep *trn_job_prep(const trn_job *job) { return job->prep; }
const ds_table *trn_job_table(const trn_job *job) { return job->table; }
const double *trn_job_coef(const trn_job *job) { return job->coef; }

const double *trn_job_test_scores(const trn_job *job, const size_t **rows, size_t *n)
{
  *rows = job->test;
  *n = job->ptest ? job->ntest : 0;
  return job->ptest;
}

int trn_job_final_metrics(const trn_job *job, struct md_metric **out, size_t *n)
{
  struct md_metric *m = cm_calloc(job->n_metrics + 1, sizeof *m);
  size_t k = 0;
  if (!m)
    return CM_E_NOMEM;
  for (size_t i = 0; i < job->n_metrics; i++) {
    size_t j = 0;
    /* Per-fold AUCs are a series with no final value; their mean and spread stand for them. */
    if (strcmp(job->metrics[i].key, "cv_roc_auc") == 0)
      continue;
    while (j < k && strcmp(m[j].key, job->metrics[i].key) != 0)
      j++;
    m[j].key = job->metrics[i].key;
    m[j].value = job->metrics[i].value;
    m[j].step = 0;
    k += j == k;
  }
  *out = m;
  *n = k;
  return 0;
}

int trn_job_pack(trn_job *job, const struct md_artifact_meta *meta, uint8_t **bytes,
                 size_t *len, char sha256[65], struct cm_error *err)
{
  struct md_artifact_meta m = *meta;
  struct md_metric *metrics = NULL;
  int rc;

  if (!job->coef)
    return cm_error_set(err, CM_E_INTERNAL, "pack before fit");
  if (trn_job_final_metrics(job, &metrics, &m.n_metrics))
    return cm_error_set(err, CM_E_NOMEM, "out of memory for the metrics");
  m.metrics = metrics;
  m.positive_label = ds_column_at(job->table, (size_t)job->target_col)->categories[job->positive];
  m.C = job->params.C;
  m.tol = job->params.tol;
  m.max_iter = job->params.max_iter;
  m.solver = TRN_SOLVER;
  m.iterations = job->fit.iterations;
  m.converged = job->fit.converged;
  m.unknown_ignore = job->params.unknown_ignore;
  rc = md_artifact_pack(job->prep, job->table, job->coef, md_prep_width(job->prep) + 1,
                        &job->params.sc, &m, bytes, len, sha256, err);
  cm_free(metrics);
  return rc;
}
