/* train_eval: fitting the job's model, the evaluation metrics on the training and hold-out
 * rows, and k-fold cross-validated AUC. */
#include <math.h>
#include <string.h>

#include "mem.h"
#include "train_int.h"

struct iter_ctx {
  trn_job *job;
  trn_iter_fn fn;
  void *ctx;
  int rc;
};

static void on_iteration(void *ctx, int iteration, double loss)
{
  struct iter_ctx *ic = ctx;
  if (!ic->rc)
    ic->rc = trn_metric_add(ic->job, "loss", loss, iteration);
  if (ic->fn)
    ic->fn(ic->ctx, iteration, loss);
}

int trn_job_fit(trn_job *job, const double *warm, trn_iter_fn on_iter, void *ctx,
                struct cm_error *err)
{
  size_t d = md_prep_width(job->prep);
  struct iter_ctx ic = {job, on_iter, ctx, 0};
  int rc;

  job->coef = cm_calloc(d + 1, sizeof *job->coef);
  if (!job->coef)
    return cm_error_set(err, CM_E_NOMEM, "out of memory for %zu coefficients", d + 1);
  job->fit.on_progress = on_iteration;
  job->fit.ctx = &ic;
  rc = md_logreg_fit(job->Xtrain, job->ytrain, job->ntrain, d, job->params.C,
                     job->params.max_iter, job->params.tol, warm, job->coef, &job->fit, err);
  job->fit.on_progress = NULL;
  job->fit.ctx = NULL;
  if (rc)
    return rc;
  rc = ic.rc;
  rc = rc ? rc : trn_metric_add(job, "iterations", job->fit.iterations, 0);
  rc = rc ? rc : trn_metric_add(job, "train_rows", (double)job->ntrain, 0);
  rc = rc ? rc : trn_metric_add(job, "test_rows", (double)job->ntest, 0);
  return rc ? cm_error_set(err, rc, "out of memory for metrics") : 0;
}

/* Adds name = value unless value is NaN (a metric undefined on this split is left out). */
static int add_defined(trn_job *job, const char *name, double value)
{
  return isnan(value) ? 0 : trn_metric_add(job, name, value, 0);
}

static int test_metrics(trn_job *job, const double *ptrain, struct cm_error *err)
{
  const double *p = job->ptest;
  const int *y = job->ytest;
  size_t n = job->ntest;
  struct md_confusion cf;
  double psi = NAN;
  int rc = 0;

  md_confusion_at(p, y, n, job->params.sc.threshold, &cf);
  rc = md_psi(ptrain, job->ntrain, p, n, &psi, err);
  if (rc)
    return rc;
  rc = rc ? rc : add_defined(job, "test_roc_auc", md_roc_auc(p, y, n));
  rc = rc ? rc : add_defined(job, "test_gini", md_gini(p, y, n));
  rc = rc ? rc : add_defined(job, "test_ks", md_ks(p, y, n));
  rc = rc ? rc : add_defined(job, "test_log_loss", md_log_loss(p, y, n));
  rc = rc ? rc : add_defined(job, "test_brier", md_brier(p, y, n));
  rc = rc ? rc : trn_metric_add(job, "test_accuracy", cf.accuracy, 0);
  rc = rc ? rc : trn_metric_add(job, "test_precision", cf.precision, 0);
  rc = rc ? rc : trn_metric_add(job, "test_recall", cf.recall, 0);
  rc = rc ? rc : trn_metric_add(job, "test_f1", cf.f1, 0);
  rc = rc ? rc : trn_metric_add(job, "test_tp", (double)cf.tp, 0);
  rc = rc ? rc : trn_metric_add(job, "test_fp", (double)cf.fp, 0);
  rc = rc ? rc : trn_metric_add(job, "test_tn", (double)cf.tn, 0);
  rc = rc ? rc : trn_metric_add(job, "test_fn", (double)cf.fn, 0);
  rc = rc ? rc : add_defined(job, "psi", psi);
  return rc ? cm_error_set(err, rc, "out of memory for metrics") : 0;
}

int trn_job_evaluate(trn_job *job, struct cm_error *err)
{
  size_t d = md_prep_width(job->prep);
  double *ptrain = cm_calloc(job->ntrain, sizeof *ptrain);
  int rc = 0;

  job->ptest = cm_calloc(job->ntest + 1, sizeof *job->ptest);
  if (!ptrain || !job->ptest) {
    rc = cm_error_set(err, CM_E_NOMEM, "out of memory for scores");
    goto out;
  }
  md_logreg_predict(job->Xtrain, job->ntrain, d, job->coef, ptrain);
  md_logreg_predict(job->Xtest, job->ntest, d, job->coef, job->ptest);
  rc = add_defined(job, "train_roc_auc", md_roc_auc(ptrain, job->ytrain, job->ntrain));
  rc = rc ? rc : add_defined(job, "train_log_loss", md_log_loss(ptrain, job->ytrain, job->ntrain));
  if (rc) {
    rc = cm_error_set(err, rc, "out of memory for metrics");
    goto out;
  }
  if (job->ntest > 0)
    rc = test_metrics(job, ptrain, err);
out:
  cm_free(ptrain);
  return rc;
}

/* Scratch of one fold: its own preparation and model, fitted on the other folds. */
struct fold_work {
  size_t *fit_rows, *held_rows; /* table rows */
  double *X, *coef, *p;
  int *y;
};

/* AUC of one fold: fit a preparation and model on the rows of the other folds. */
static int fold_auc(trn_job *job, const size_t *fold, size_t k, struct fold_work *w,
                    double *auc, struct cm_error *err)
{
  struct md_prep *prep = NULL;
  size_t nfit = 0, nheld = 0, d;
  double *Xheld;
  int *yheld, rc;

  for (size_t i = 0; i < job->ntrain; i++) {
    if (fold[i] == k)
      w->held_rows[nheld++] = job->train[i];
    else
      w->fit_rows[nfit++] = job->train[i];
  }
  rc = md_prep_fit(job->table, w->fit_rows, nfit, job->target_col, &prep, err);
  if (rc)
    return rc;
  d = md_prep_width(prep);
  Xheld = w->X + nfit * d;
  yheld = w->y + nfit;
  rc = md_prep_apply_rows(prep, job->table, w->fit_rows, nfit, job->target_col, job->positive,
                          w->X, w->y, err);
  if (!rc)
    rc = md_prep_apply_rows(prep, job->table, w->held_rows, nheld, job->target_col,
                            job->positive, Xheld, yheld, err);
  if (!rc)
    rc = md_logreg_fit(w->X, w->y, nfit, d, job->params.C, job->params.max_iter,
                       job->params.tol, NULL, w->coef, NULL, err);
  if (!rc) {
    md_logreg_predict(Xheld, nheld, d, w->coef, w->p);
    *auc = md_roc_auc(w->p, yheld, nheld);
  }
  md_prep_free(prep);
  return rc;
}

static int cv_alloc(struct fold_work *w, size_t n, size_t d)
{
  /* A fold's preparation sees at most the categories of the whole training set: width <= d. */
  w->fit_rows = cm_calloc(n, sizeof *w->fit_rows);
  w->held_rows = cm_calloc(n, sizeof *w->held_rows);
  w->X = cm_calloc(n * d + 1, sizeof *w->X);
  w->coef = cm_calloc(d + 1, sizeof *w->coef);
  w->p = cm_calloc(n, sizeof *w->p);
  w->y = cm_calloc(n, sizeof *w->y);
  return w->fit_rows && w->held_rows && w->X && w->coef && w->p && w->y ? 0 : CM_E_NOMEM;
}

static void cv_free(struct fold_work *w)
{
  cm_free(w->fit_rows);
  cm_free(w->held_rows);
  cm_free(w->X);
  cm_free(w->coef);
  cm_free(w->p);
  cm_free(w->y);
}

int trn_job_cross_validate(trn_job *job, trn_fold_fn on_fold, void *ctx, struct cm_error *err)
{
  size_t k = (size_t)job->params.cv_folds, *fold = NULL;
  struct fold_work w = {0};
  double sum = 0.0, ss = 0.0;
  int rc = 0;

  if (k < 2)
    return 0;
  if (job->ntrain < 2 * k)
    return cm_error_set(err, CM_E_FAILED_PRECONDITION, "%zu training rows are too few for %zu "
                        "folds", job->ntrain, k);
  fold = cm_calloc(job->ntrain, sizeof *fold);
  if (!fold || cv_alloc(&w, job->ntrain, md_prep_width(job->prep))) {
    rc = cm_error_set(err, CM_E_NOMEM, "out of memory for cross-validation");
    goto out;
  }
  rc = md_kfold_stratified(job->ytrain, job->ntrain, k, job->params.seed, fold, err);
  for (size_t f = 0; !rc && f < k; f++) {
    double auc = NAN;
    rc = fold_auc(job, fold, f, &w, &auc, err);
    if (!rc && trn_metric_add(job, "cv_roc_auc", auc, (int64_t)f + 1))
      rc = cm_error_set(err, CM_E_NOMEM, "out of memory for metrics");
    sum += auc;
    ss += auc * auc;
    if (!rc && on_fold)
      on_fold(ctx, (int)f + 1, (int)k, auc);
  }
  if (!rc) {
    double mean = sum / (double)k, var = ss / (double)k - mean * mean;
    rc = trn_metric_add(job, "cv_roc_auc_mean", mean, 0);
    rc = rc ? rc : trn_metric_add(job, "cv_roc_auc_std", var > 0 ? sqrt(var) : 0.0, 0);
    if (rc)
      rc = cm_error_set(err, rc, "out of memory for metrics");
  }
out:
  cm_free(fold);
  cv_free(&w);
  return rc;
}
