/* model: the numerical core of the credit model. Feature preparation fitted on training rows,
 * L2 logistic regression with scikit-learn's objective (exact Newton solver), the evaluation
 * metrics (AUC, Gini, KS, log loss, Brier, confusion matrix, PSI) and seeded, stratified splits. */
#ifndef CREDITO_MODEL_H
#define CREDITO_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "err.h"

/* ---- Preparation ------------------------------------------------------------------------- */

/* Fitted preparation: for each feature (every column but the target, in table order) a numeric
 * column becomes one standardised value, a categorical column a block of one-hot values.
 * Opaque; create with md_prep_fit, free with md_prep_free. */
struct md_prep;

/* Fits the preparation on rows[0..n) of t (both borrowed), skipping column target_col.
 * Numeric feature: median of the non-missing training values (0 when all are missing) imputes
 * missing cells; then mean and population standard deviation (ddof 0, like StandardScaler) of
 * the imputed training values; a constant column gets std 1, so it encodes as 0.
 * Categorical feature: one output per category SEEN in the training rows, in declared order,
 * named "feature=category". Policy: a missing cell, and a category that was not seen in the
 * training rows, both encode as all zeros (the reference level's log-odds, no extra column).
 * n must be > 0 and every row < ds_rows(t). On success returns 0 and *out, which the caller
 * frees with md_prep_free. On failure returns CM_E_INVALID or CM_E_NOMEM, fills err (may be
 * NULL) and sets *out to NULL. */
int md_prep_fit(const ds_table *t, const size_t *rows, size_t n, int target_col,
                struct md_prep **out, struct cm_error *err);

/* Frees p. NULL does nothing. */
void md_prep_free(struct md_prep *p);

/* Number of prepared values per row (the model's d). */
size_t md_prep_width(const struct md_prep *p);

/* Name of prepared value j: "duration" or "checking_status=<0". Borrowed from p; NULL when j is
 * out of range. */
const char *md_prep_name(const struct md_prep *p, size_t j);

/* Column of the source table that prepared value j comes from (for grouping reason codes by
 * original feature); -1 when j is out of range. */
int md_prep_source_column(const struct md_prep *p, size_t j);

/* Writes the md_prep_width(p) prepared values of row of t into x (caller's storage). t must have
 * the same columns (count and kinds) as the table p was fitted on. Returns 0, or CM_E_INVALID
 * when row is out of range or the columns differ (x is then unspecified). */
int md_prep_apply(const struct md_prep *p, const ds_table *t, size_t row, double *x);

/* Prepares rows[0..n) of t into X (caller's storage, n * md_prep_width(p), row-major) and their
 * labels into y (caller's storage, n entries; 1 when the target is category positive_index,
 * else 0). A missing target is CM_E_INVALID naming the row. Returns 0 or CM_E_INVALID (err may
 * be NULL). */
int md_prep_apply_rows(const struct md_prep *p, const ds_table *t, const size_t *rows, size_t n,
                       int target_col, int positive_index, double *X, int *y,
                       struct cm_error *err);

/* ---- Fit --------------------------------------------------------------------------------- */

/* Called after every solver iteration (the initial point is iteration 0) with the objective. */
typedef void (*md_fit_progress_fn)(void *ctx, int iteration, double loss);

/* Fit report. on_progress and ctx are inputs (zero them for none); the rest are outputs. */
struct md_fit_info {
  md_fit_progress_fn on_progress; /* input: optional per-iteration callback */
  void *ctx;                      /* input: passed to on_progress */
  int iterations;                 /* Newton steps taken */
  double loss;                    /* final objective 0.5*||w||^2 + C*sum(logloss) */
  double grad_max;                /* final max |gradient| / (C*n), the scaled criterion */
  int converged;                  /* 1 when grad_max <= tol */
};

/* Objective 0.5*||w||^2 + C*sum_i logloss(y_i, w.x_i + b) at coef (d weights, then b; borrowed)
 * for X (n x d row-major) and y (0/1). When grad is not NULL it receives the d+1 gradient
 * components (the intercept's last). Pure: no allocation. */
double md_logreg_loss(const double *X, const int *y, size_t n, size_t d, double C,
                      const double *coef, double *grad);

/* Fits L2 logistic regression with scikit-learn's objective (intercept not penalised) by
 * Newton's method: the (d+1)x(d+1) Hessian is solved by Cholesky (a small ridge is added only
 * if it is not positive definite), with step halving until the objective decreases (Armijo).
 * Stops when max|gradient| <= tol * C * n, i.e. tol on the objective scaled by 1/(C*n) as
 * scikit-learn's lbfgs scales it, or after max_iter steps. Deterministic. X (n x d, row-major),
 * y (n values, each 0 or 1) and warm_start (d+1 values or NULL for zeros) are borrowed; coef_out
 * (caller's storage, d+1: weights then intercept) receives the result even when not converged.
 * info (may be NULL) gets the report. Returns 0 (check info->converged), CM_E_INVALID for bad
 * arguments (n 0, C <= 0, a label not 0/1, a non-finite value) or CM_E_NOMEM; err may be NULL. */
int md_logreg_fit(const double *X, const int *y, size_t n, size_t d, double C, int max_iter,
                  double tol, const double *warm_start, double *coef_out,
                  struct md_fit_info *info, struct cm_error *err);

/* Probabilities of the positive class, p[i] = sigmoid(w.x_i + b), into p (caller's, n). */
void md_logreg_predict(const double *X, size_t n, size_t d, const double *coef, double *p);

/* ---- Evaluation -------------------------------------------------------------------------- */

/* ROC AUC of score against y (0/1) as scikit-learn's roc_auc_score: tied scores share their
 * average rank (each tie counts one half). NAN when either class is absent. */
double md_roc_auc(const double *score, const int *y, size_t n);

/* Gini coefficient, 2*AUC - 1. */
double md_gini(const double *score, const int *y, size_t n);

/* Kolmogorov-Smirnov statistic: max |TPR - FPR| over all thresholds (tied scores move together).
 * NAN when either class is absent. */
double md_ks(const double *score, const int *y, size_t n);

/* Mean log loss of probabilities p against y, p clipped to [1e-15, 1 - 1e-15] (scikit-learn's
 * historical eps). NAN when n is 0. */
double md_log_loss(const double *p, const int *y, size_t n);

/* Brier score: mean (p - y)^2. NAN when n is 0. */
double md_brier(const double *p, const int *y, size_t n);

/* Confusion matrix and the rates derived from it at a decision threshold. */
struct md_confusion {
  size_t tp, fp, tn, fn; /* counts; predicted positive when p >= threshold */
  double accuracy;       /* (tp + tn) / n */
  double precision;      /* tp / (tp + fp); 0 when nothing is predicted positive */
  double recall;         /* tp / (tp + fn); 0 when there are no positives */
  double f1;             /* 2 * precision * recall / (precision + recall); 0 when both are 0 */
};

/* Fills *out for p against y at threshold (positive when p >= threshold). Undefined ratios are
 * 0, as scikit-learn's zero_division default reports them. */
void md_confusion_at(const double *p, const int *y, size_t n, double threshold,
                     struct md_confusion *out);

/* Epsilon replacing an empty bin's fraction in md_psi, so ln stays finite. */
#define MD_PSI_EPSILON 1e-4

/* Population stability index of actual (m values) against expected (n values): 10 bins cut at
 * the 10%..90% quantiles of expected (linear interpolation, numpy's default); a value v falls in
 * bin k when exactly k cut points are < v. PSI = sum (a_k - e_k) * ln(a_k / e_k) over bin
 * fractions, where an empty bin's fraction is MD_PSI_EPSILON. Identical inputs give 0.
 * Returns 0 with *psi set, CM_E_INVALID when n or m is 0, CM_E_NOMEM (err may be NULL). */
int md_psi(const double *expected, size_t n, const double *actual, size_t m, double *psi,
           struct cm_error *err);

/* ---- Splits ------------------------------------------------------------------------------ */

/* The splits' PRNG: splitmix64 (Steele, Lea, Flood 2014) advancing *state; stable across
 * platforms, so a seed always gives the same split. */
uint64_t md_rand_next(uint64_t *state);

/* Stratified hold-out split of rows 0..n-1 by y (0/1) from seed: each class is shuffled
 * (Fisher-Yates driven by md_rand_next, unbiased by rejection) and its first
 * round(test_fraction * n_class) rows (half away from zero) go to test. test_fraction must be in
 * [0, 1); 0 puts every row in train. train and test (caller's, n entries each) receive the
 * indices in ascending order, *ntrain and *ntest their counts. Returns 0, CM_E_INVALID (bad
 * fraction, a label not 0/1, n 0) or CM_E_NOMEM; err may be NULL. */
int md_split_stratified(const int *y, size_t n, double test_fraction, uint64_t seed,
                        size_t *train, size_t *ntrain, size_t *test, size_t *ntest,
                        struct cm_error *err);

/* Stratified k-fold assignment: fold (caller's, n entries) receives each row's fold in [0, k).
 * Each class is shuffled from seed and dealt round-robin, so every fold holds floor or ceil of
 * n_class / k rows of each class. k must be in [2, n]. Returns 0, CM_E_INVALID or CM_E_NOMEM. */
int md_kfold_stratified(const int *y, size_t n, size_t k, uint64_t seed, size_t *fold,
                        struct cm_error *err);

#include <stdbool.h> /* md_score_declines, md_artifact_meta */

/* ---- Scorecard and reason codes ---------------------------------------------------------- */

/* Scorecard settings: points = offset + factor * ln(odds), odds = (1 - p) / p (good:bad),
 * factor = pdo / ln 2, offset = base_score - factor * ln(base_odds). Higher means less risk. */
struct md_scorecard {
  double pdo;        /* points to double the odds; default 20 */
  double base_score; /* points at base_odds; default 600 */
  double base_odds;  /* good:bad odds scoring base_score; default 50 (50:1) */
  double threshold;  /* decline when the probability of default >= threshold; default 0.5 */
};

#define MD_SCORECARD_PDO 20.0
#define MD_SCORECARD_BASE_SCORE 600.0
#define MD_SCORECARD_BASE_ODDS 50.0
#define MD_SCORECARD_THRESHOLD 0.5

/* Fills *sc with the defaults (PDO 20, 600 points at 50:1, threshold 0.5). */
void md_scorecard_init(struct md_scorecard *sc);

/* Points for probability of default p, clamped into [1e-15, 1 - 1e-15] first. */
double md_score_points(const struct md_scorecard *sc, double p);

/* Decision: true (decline) when p >= sc->threshold. */
bool md_score_declines(const struct md_scorecard *sc, double p);

/* Most reason codes per applicant. */
#define MD_REASONS_MAX 4

/* One reason code: an original feature and how much it pushed toward default. */
struct md_reason {
  int column;          /* source column (md_prep_source_column) */
  char feature[128];   /* original feature name, NUL-terminated, truncated if longer */
  double impact;       /* sum of coef_j * x_j over its prepared columns; > 0 */
};

/* Reason codes for one prepared row x (md_prep_width(p) values) under coef (weights; the
 * intercept after them is not read); all borrowed. Each prepared column contributes
 * coef_j * x_j to the log-odds of default; contributions are summed per original feature (the
 * one-hot columns of a categorical feature grouped back). out (caller's, max entries) receives
 * the features with a strictly positive total, largest first, at most max of them (max is
 * capped at MD_REASONS_MAX); equal totals keep feature order (table column order). *n gets the count.
 * A categorical feature's name is its prepared name up to the first '=', so a feature name
 * containing '=' is cut there. Returns 0, or CM_E_INVALID for a NULL argument. */
int md_reasons(const struct md_prep *p, const double *coef, const double *x, size_t max,
               struct md_reason *out, size_t *n);

/* ---- Artifact ---------------------------------------------------------------------------- */

/* Artifact layout version written and accepted (ModelArtifact.format_version). */
#define MD_ARTIFACT_FORMAT 1

/* One evaluation metric as the artifact records it. */
struct md_metric {
  const char *key; /* e.g. "test_roc_auc" */
  double value;    /* finite */
  int64_t step;    /* 0 for a final value; the fold or iteration for a series */
};

/* One dataset version the model was trained from. */
struct md_dataset_ref {
  const char *name;    /* dataset name */
  const char *md5;     /* content MD5, the version */
  const char *context; /* "source" (raw) or "training" (processed) */
};

/* What the artifact records beside the preparation, coefficients and scorecard. All borrowed;
 * a NULL string is written as empty, a NULL array with count 0 as none. */
struct md_artifact_meta {
  const char *model_name;      /* registered model name, e.g. "credit-default" */
  const char *positive_label;  /* target value meaning default, e.g. "bad" */
  double C;                    /* hyperparameter C */
  double tol;                  /* hyperparameter tol */
  int max_iter;                /* hyperparameter max_iter */
  const char *solver;          /* informational solver name */
  int iterations;              /* solver iterations used */
  bool converged;              /* solver reached tol */
  int64_t created_ms;          /* fit time; pass a fixed value for reproducible bytes */
  const char *trainer_version; /* trainer code version */
  bool unknown_ignore;         /* schema policy for unknown categories: ignore (else reject) */
  const struct md_metric *metrics;        /* evaluation metrics, n_metrics of them */
  size_t n_metrics;
  const char *run_id;                     /* lineage: registry run, may be NULL */
  const char *experiment_id;              /* lineage: its experiment, may be NULL */
  const struct md_dataset_ref *datasets;  /* lineage: n_datasets inputs */
  size_t n_datasets;
  const char *parent_name;                /* lineage: warm-start parent model, NULL for none */
  int64_t parent_version;                 /* its version */
};

/* Serialises a credito.v1.ModelArtifact: schema (names, kinds, declared categories of t's
 * feature columns, target name, meta->positive_label; each feature's default_value is its
 * training median or most frequent training category, required is true when the training rows
 * had no missing value in it, and categorical features carry meta's unknown-category policy),
 * metrics and lineage from meta, the preparation, the coefficients
 * (coef: ncoef = md_prep_width(p) + 1 values, weights then intercept) with names, the
 * scorecard and meta's hyperparameters. p, t (the table p was fitted on, or one with the same
 * columns), coef, sc and meta are borrowed. Same inputs give the same bytes. On success returns
 * 0, *bytes (caller frees with cm_free), *len, and sha256_hex the lowercase SHA-256 of the bytes.
 * On failure returns CM_E_INVALID (ncoef or t not matching p, a NULL argument) or CM_E_NOMEM,
 * fills err (may be NULL), and sets *bytes to NULL. */
int md_artifact_pack(const struct md_prep *p, const ds_table *t, const double *coef,
                     size_t ncoef, const struct md_scorecard *sc,
                     const struct md_artifact_meta *meta, uint8_t **bytes, size_t *len,
                     char sha256_hex[65], struct cm_error *err);

/* Lowercase hex SHA-256 of bytes[0..len) into hex. Returns 0 or CM_E_INTERNAL. */
int md_artifact_sha256(const uint8_t *bytes, size_t len, char hex[65]);

/* Reads and checks an artifact (bytes borrowed): format version, one preparation per schema
 * feature with matching name and kind, categories among the schema's, the coefficient count and
 * names matching the prepared layout, finite values, a usable scorecard (zero fields take the
 * defaults; then pdo > 0, base_odds > 0, threshold in (0, 1]). On success returns 0, *coef
 * (caller frees with cm_free; *ncoef = width + 1 values, weights then intercept) and *sc.
 * Malformed or inconsistent bytes return CM_E_CORRUPT; CM_E_NOMEM; err may be NULL; on failure
 * *coef is NULL. Rebuilding the md_prep from the artifact is not done here yet. */
int md_artifact_unpack(const uint8_t *bytes, size_t len, double **coef, size_t *ncoef,
                       struct md_scorecard *sc, struct cm_error *err);

/* Warm start from a parent artifact (bytes borrowed): for each prepared column of p, the
 * parent's coefficient of the same name, 0 when the parent has none (a new category); the
 * intercept is the parent's. coef (caller's, md_prep_width(p) + 1) receives them; *matched (may
 * be NULL) the number of columns found in the parent. The parent must be a valid artifact whose
 * schema has the same feature names and kinds as t's features (the table p was fitted on):
 * CM_E_CORRUPT for bytes that do not unpack, CM_E_FAILED_PRECONDITION naming the first feature that
 * differs. err may be NULL. */
int md_artifact_warm_start(const uint8_t *bytes, size_t len, const struct md_prep *p,
                           const ds_table *t, double *coef, size_t *matched,
                           struct cm_error *err);

/* ---- Loaded model: scoring one applicant from named feature values ---------------------- */

/* A model loaded from a verified artifact: the schema, the rebuilt preparation, coefficients and
 * scorecard. Immutable after md_model_load, so any number of threads may score with it at once.
 * Opaque; md_model_load / md_model_free. */
typedef struct md_model md_model;

/* What a feature value holds. */
enum md_value_kind {
  MD_VALUE_MISSING = 0, /* explicitly missing (or nothing set) */
  MD_VALUE_NUMBER = 1,  /* number */
  MD_VALUE_TEXT = 2,    /* text */
};

/* One named feature value of a request. All borrowed; strings need not be NUL-terminated. */
struct md_value {
  const char *name;  /* feature name, name_len bytes */
  size_t name_len;
  enum md_value_kind kind;
  double number;     /* MD_VALUE_NUMBER */
  const char *text;  /* MD_VALUE_TEXT, text_len bytes */
  size_t text_len;
};

/* One problem with a request, named by feature. type is one of (static strings):
 * "missing" (a required feature absent or missing), "extra_forbidden" (a name the schema does
 * not have, or given twice), "float_type" (text or missing value kind for a numeric feature where
 * a number is needed), "finite_number" (NaN or infinity), "string_type" (a number for a
 * categorical feature), "enum" (a text outside the categories under the reject policy). */
struct md_violation {
  char field[256];  /* feature name as given (truncated to 255 bytes), NUL-terminated */
  const char *type; /* static */
  char msg[160];    /* pydantic's wording, e.g. "Input should be 'A11', 'A12', 'A13' or 'A14'" */
};

/* A scored applicant. */
struct md_prediction {
  double probability;  /* of default, as md_logreg_predict computes it on the prepared row */
  double score;        /* md_score_points */
  bool decline;        /* md_score_declines */
  size_t n_reasons;    /* entries in reasons */
  struct md_reason reasons[MD_REASONS_MAX];
};

/* Longest text of a value quoted in a reason's words (longer ones are cut at a UTF-8 character
 * boundary), and the room md_reason_text needs beyond the feature name's length. */
#define MD_REASON_VALUE_MAX 200
#define MD_REASON_TEXT_EXTRA (MD_REASON_VALUE_MAX + 64)

/* A reason in words for the applicant, with the value as given: "credit_amount = 15000 raised
 * the risk of default" (a number as printf's %.15g), "purpose = radio/tv raised ...", or
 * "age (missing) raised ..." when v is NULL (absent) or missing. Writes into dst (cap bytes,
 * at least strlen(feature) + MD_REASON_TEXT_EXTRA) and returns the length written. The
 * predictor and the gateway (which builds answers from scores by column) word them alike. */
size_t md_reason_text(char *dst, size_t cap, const char *feature, const struct md_value *v);

/* Decodes and checks artifact bytes (borrowed) as md_artifact_unpack does and builds the
 * scoring model. On success returns 0 and *out (md_model_free). Malformed or inconsistent bytes
 * return CM_E_CORRUPT naming what is wrong; CM_E_NOMEM; err may be NULL; *out NULL on failure. */
int md_model_load(const uint8_t *bytes, size_t len, md_model **out, struct cm_error *err);

/* Frees m. NULL does nothing. */
void md_model_free(md_model *m);

/* Prepared values per row (the scratch md_model_score needs). */
size_t md_model_width(const md_model *m);

/* The decoded credito.v1.ModelArtifact message (borrowed from m, as a ProtobufCMessage
 * pointer): schema, metrics, lineage, scorecard, created_ms for a model description. */
const void *md_model_artifact(const md_model *m);

/* Validates and scores one applicant: values[0..n) in any order (borrowed). An absent feature
 * that is not required counts as missing (imputed: numeric median, categorical all zeros).
 * scratch is the caller's, md_model_width(m) doubles. On success returns 0 and fills *out; the
 * probability is bit-identical to the trainer's evaluation of the same row (same preparation
 * order and md_logreg_predict). When the request is invalid returns CM_E_INVALID, writes up to
 * max_viol violations (every problem, in the order: values as given, then missing features in
 * schema order) and sets *n_viol to the total number of problems (may exceed max_viol). */
int md_model_score(const md_model *m, const struct md_value *values, size_t n, double *scratch,
                   struct md_prediction *out, struct md_violation *viol, size_t max_viol,
                   size_t *n_viol);

#endif
