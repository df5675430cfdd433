/* train: one training as a sequence of stages over a parsed dataset: load (parse, pick the
 * target), prepare (split, fit the preparation on the training rows, the processed matrix),
 * fit, evaluate, cross-validate, pack the artifact. No network here: the service and the
 * command-line form drive the stages and log what they produce. */
#ifndef CREDITO_TRAIN_H
#define CREDITO_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "model.h"

/* Settings of one training; trn_params_init fills the defaults. Strings are owned (cm_strdup)
 * and freed by trn_params_cleanup. */
struct trn_params {
  double C;            /* "C": inverse regularisation, > 0; 1.0 */
  int max_iter;        /* "max_iter": Newton iterations cap, 1..10000; 100 */
  double tol;          /* "tol": gradient tolerance, > 0; 1e-4 */
  bool unknown_ignore; /* "unknown_category": "ignore" (true) or "reject" (false, default) */
  double test_fraction;/* hold-out share in (0, 1); 0.2. 0 with no_holdout */
  bool no_holdout;     /* fit on every row (no test metrics) */
  int cv_folds;        /* k-fold AUC folds: 1 = none, 2..20; 5 */
  uint64_t seed;       /* split and folds; 0 */
  char *target;        /* target column; NULL = the dataset's, else "class" */
  char *positive;      /* positive label; NULL = "bad" */
  struct md_scorecard sc; /* scorecard and threshold */
};

/* Fills p with the defaults (no allocation). */
void trn_params_init(struct trn_params *p);

/* Frees p's strings; p can be reused after trn_params_init. */
void trn_params_cleanup(struct trn_params *p);

/* Sets one estimator param from text: "C", "max_iter", "tol", "unknown_category". An unknown
 * key or a value that does not parse or is out of range is CM_E_INVALID naming it. */
int trn_params_set(struct trn_params *p, const char *key, const char *value,
                   struct cm_error *err);

/* Checks the settings together (fraction range, folds, scorecard). 0 or CM_E_INVALID. */
int trn_params_check(const struct trn_params *p, struct cm_error *err);

/* Solver name recorded in params and the artifact. */
#define TRN_SOLVER "newton-cholesky"

/* A metric the job computed; keys as listed in proto/credito/v1/trainer.proto. */
struct trn_metric {
  char key[40];
  double value;
  int64_t step;
};

/* One training. Opaque; trn_job_new / trn_job_free. */
typedef struct trn_job trn_job;

/* Called after each Newton iteration (iteration 0 is the start) with the objective. */
typedef void (*trn_iter_fn)(void *ctx, int iteration, double loss);
/* Called after each cross-validation fold (1-based) with its AUC. */
typedef void (*trn_fold_fn)(void *ctx, int fold, int folds, double auc);

/* Creates a job with a copy of params (strings duplicated). NULL when out of memory. */
trn_job *trn_job_new(const struct trn_params *params);

/* Frees the job and everything it holds. NULL does nothing. */
void trn_job_free(trn_job *job);

/* Parses text (borrowed, len bytes) as format "arff", "csv" or NULL (sniff) and picks the
 * target and positive label. CM_E_INVALID for bad data (line and column named), a missing target
 * column or label; CM_E_FAILED_PRECONDITION for no rows or one class only; CM_E_TOOLARGE. */
int trn_job_load(trn_job *job, const char *text, size_t len, const char *format,
                 struct cm_error *err);

/* Splits (stratified, seeded), fits the preparation on the training rows and prepares every
 * row. With processed true it also builds the processed matrix as CSV: one column per prepared
 * value (header = prepared names), the target as 0/1 under its own name, and "split" (train or
 * test); numbers printed with 17 significant digits so they read back exactly. */
int trn_job_prepare(trn_job *job, bool processed, struct cm_error *err);

/* Fits the logistic regression on the training rows, from warm (width + 1 values, NULL for
 * zeros). on_iter (may be NULL) sees every iteration. Records "loss" per iteration,
 * "iterations", "train_rows", "test_rows". */
int trn_job_fit(trn_job *job, const double *warm, trn_iter_fn on_iter, void *ctx,
                struct cm_error *err);

/* Scores the training and test rows and records the evaluation metrics (test_* and psi only
 * with a hold-out). */
int trn_job_evaluate(trn_job *job, struct cm_error *err);

/* Stratified k-fold AUC over the training rows: each fold fits its own preparation and model
 * on the other folds. Records "cv_roc_auc" per fold, "cv_roc_auc_mean" and "cv_roc_auc_std".
 * Does nothing when cv_folds is 1. on_fold may be NULL. */
int trn_job_cross_validate(trn_job *job, trn_fold_fn on_fold, void *ctx, struct cm_error *err);

/* Serialises the artifact with the job's metrics (the final value of each key; the per-fold
 * and per-iteration series stay in the run) and meta's names and lineage (meta's estimator
 * fields are filled from the job). *bytes (cm_free) and the SHA-256. */
int trn_job_pack(trn_job *job, const struct md_artifact_meta *meta, uint8_t **bytes,
                 size_t *len, char sha256[65], struct cm_error *err);

/* The processed CSV after trn_job_prepare(job, true): borrowed, NULL before. */
const char *trn_job_processed(const trn_job *job, size_t *len);

/* After trn_job_load: the target column's name, and its positive label in *positive (both
 * borrowed from the job). */
const char *trn_job_target(const trn_job *job, const char **positive);

/* Every metric recorded so far, in order (borrowed). */
const struct trn_metric *trn_job_metrics(const trn_job *job, size_t *n);

/* The final value of each metric key, in first-recorded order (a series collapses to its last
 * point, step 0; the per-fold "cv_roc_auc" is left out): *out (caller frees with cm_free) holds *n entries whose keys point into job.
 * 0 or CM_E_NOMEM. */
int trn_job_final_metrics(const trn_job *job, struct md_metric **out, size_t *n);

/* The last value of metric key; false when not recorded. */
bool trn_job_metric(const trn_job *job, const char *key, double *value);

/* Fitted state for warm starts and reports (borrowed; NULL before the stage that makes it). */
const struct md_prep *trn_job_prep(const trn_job *job);
const ds_table *trn_job_table(const trn_job *job);
const double *trn_job_coef(const trn_job *job);

/* Test-split probabilities and their row indices in the parsed table, after evaluate. */
const double *trn_job_test_scores(const trn_job *job, const size_t **rows, size_t *n);

#endif
