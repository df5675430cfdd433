/* Unit tests for common/model: metrics on hand-computed vectors, splits, the Newton solver on
 * tiny problems with known answers, the preparation's missing/unseen policy, and German Credit
 * end to end (prep on all rows, fit C=1, plausible AUC). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dataset.h"
#include "harness.h"
#include "mem.h"
#include "model.h"

#define TOL 1e-12

static void test_auc_hand(void **state)
{
  const double perfect[] = {0.1, 0.2, 0.8, 0.9}, sk[] = {0.1, 0.4, 0.35, 0.8};
  const double tied[] = {0.5, 0.5, 0.5, 0.5}, part[] = {0.5, 0.5, 0.9, 0.1};
  const int y[] = {0, 0, 1, 1}, ypart[] = {1, 0, 1, 0}, rev[] = {1, 1, 0, 0};
  const int one_class[] = {1, 1, 1, 1};
  (void)state;
  assert_float_equal(md_roc_auc(perfect, y, 4), 1.0, TOL);
  assert_float_equal(md_roc_auc(perfect, rev, 4), 0.0, TOL);
  assert_float_equal(md_roc_auc(tied, y, 4), 0.5, TOL);
  assert_float_equal(md_roc_auc(sk, y, 4), 0.75, TOL); /* scikit-learn's docstring example */
  /* pairs: (0.5 vs 0.5) = 1/2, the other three = 1 -> 3.5 / 4 */
  assert_float_equal(md_roc_auc(part, ypart, 4), 0.875, TOL);
  assert_float_equal(md_gini(sk, y, 4), 0.5, TOL);
  assert_true(isnan(md_roc_auc(perfect, one_class, 4)));
}

static void test_ks_hand(void **state)
{
  const double perfect[] = {0.1, 0.2, 0.8, 0.9}, sk[] = {0.1, 0.4, 0.35, 0.8};
  const double tied[] = {0.5, 0.5, 0.5, 0.5};
  const int y[] = {0, 0, 1, 1};
  (void)state;
  assert_float_equal(md_ks(perfect, y, 4), 1.0, TOL);
  /* thresholds 0.8: TPR .5 FPR 0; 0.4: .5/.5; 0.35: 1/.5; 0.1: 1/1 -> 0.5 */
  assert_float_equal(md_ks(sk, y, 4), 0.5, TOL);
  assert_float_equal(md_ks(tied, y, 4), 0.0, TOL);
}

static void test_logloss_brier_hand(void **state)
{
  const double p[] = {0.8, 0.3}, extreme[] = {0.0, 1.0};
  const int y[] = {1, 0};
  (void)state;
  assert_float_equal(md_log_loss(p, y, 2), -(log(0.8) + log(0.7)) / 2.0, TOL);
  assert_float_equal(md_brier(p, y, 2), (0.04 + 0.09) / 2.0, TOL);
  /* Certain and wrong: p = 0 is clipped to 1e-15, -ln(1e-15) = 34.538776394910684. (p = 1 clips
   * to the double nearest 1 - 1e-15, so its loss is -ln(1.1102e-15), as in scikit-learn.) */
  assert_float_equal(md_log_loss(extreme, (const int[]){1}, 1), 34.538776394910684, 1e-9);
  assert_float_equal(md_log_loss(extreme + 1, (const int[]){0}, 1), -log(1.0 - (1.0 - 1e-15)),
                     1e-9);
  assert_float_equal(md_brier(extreme, y, 2), 1.0, TOL);
  assert_true(isnan(md_log_loss(p, y, 0)));
}

static void test_confusion_hand(void **state)
{
  const double p[] = {0.9, 0.6, 0.5, 0.4, 0.2};
  const int y[] = {1, 0, 1, 1, 0};
  struct md_confusion c;
  (void)state;
  md_confusion_at(p, y, 5, 0.5, &c); /* 0.5 >= 0.5 counts as positive */
  assert_int_equal(c.tp, 2);
  assert_int_equal(c.fp, 1);
  assert_int_equal(c.fn, 1);
  assert_int_equal(c.tn, 1);
  assert_float_equal(c.accuracy, 0.6, TOL);
  assert_float_equal(c.precision, 2.0 / 3.0, TOL);
  assert_float_equal(c.recall, 2.0 / 3.0, TOL);
  assert_float_equal(c.f1, 2.0 / 3.0, TOL);
  md_confusion_at(p, y, 5, 0.95, &c); /* nothing predicted positive: undefined ratios are 0 */
  assert_int_equal(c.tp + c.fp, 0);
  assert_float_equal(c.precision, 0.0, 0.0);
  assert_float_equal(c.f1, 0.0, 0.0);
}

static void test_psi(void **state)
{
  double a[200], b[200], psi = -1.0;
  struct cm_error err;
  (void)state;
  for (int i = 0; i < 200; i++) {
    a[i] = (double)((i * 37) % 200) / 200.0;
    b[i] = a[i] + 0.3;
  }
  assert_int_equal(md_psi(a, 200, a, 200, &psi, &err), 0);
  assert_float_equal(psi, 0.0, 0.0);
  assert_int_equal(md_psi(a, 200, b, 200, &psi, &err), 0);
  assert_true(psi > 0.25); /* a big shift */
  assert_int_equal(md_psi(a, 0, b, 200, &psi, &err), CM_E_INVALID);
}

/* 300 positives then 700 negatives. */
static void labels_make(int *y, size_t n)
{
  for (size_t i = 0; i < n; i++)
    y[i] = i < 300;
}

static void test_split_stratified(void **state)
{
  int y[1000];
  size_t tr[1000], te[1000], tr2[1000], te2[1000], ntr, nte, ntr2, nte2, pos = 0;
  char seen[1000] = {0};
  struct cm_error err;
  (void)state;
  labels_make(y, 1000);
  assert_int_equal(md_split_stratified(y, 1000, 0.3, 42, tr, &ntr, te, &nte, &err), 0);
  assert_int_equal(ntr, 700);
  assert_int_equal(nte, 300);
  for (size_t i = 0; i < nte; i++)
    pos += (size_t)y[te[i]];
  assert_int_equal(pos, 90); /* 30% of each class */
  for (size_t i = 0; i < ntr; i++)
    seen[tr[i]]++;
  for (size_t i = 0; i < nte; i++)
    seen[te[i]]++;
  for (size_t i = 0; i < 1000; i++)
    assert_int_equal(seen[i], 1); /* a partition */
  assert_int_equal(md_split_stratified(y, 1000, 0.3, 42, tr2, &ntr2, te2, &nte2, &err), 0);
  assert_memory_equal(te, te2, nte * sizeof *te); /* same seed, same split */
  assert_int_equal(md_split_stratified(y, 1000, 0.3, 43, tr2, &ntr2, te2, &nte2, &err), 0);
  assert_memory_not_equal(te, te2, nte * sizeof *te);
  assert_int_equal(md_split_stratified(y, 1000, 0.0, 1, tr, &ntr, te, &nte, &err), 0);
  assert_int_equal(ntr, 1000);
  assert_int_equal(nte, 0);
  assert_int_equal(md_split_stratified(y, 1000, 1.0, 1, tr, &ntr, te, &nte, &err),
                   CM_E_INVALID);
}

static void test_kfold(void **state)
{
  int y[1000];
  size_t fold[1000], fold2[1000], npos[5] = {0}, nneg[5] = {0};
  struct cm_error err;
  (void)state;
  labels_make(y, 1000);
  assert_int_equal(md_kfold_stratified(y, 1000, 5, 7, fold, &err), 0);
  for (size_t i = 0; i < 1000; i++) {
    assert_true(fold[i] < 5);
    if (y[i])
      npos[fold[i]]++;
    else
      nneg[fold[i]]++;
  }
  for (int k = 0; k < 5; k++) {
    assert_int_equal(npos[k], 60);
    assert_int_equal(nneg[k], 140);
  }
  assert_int_equal(md_kfold_stratified(y, 1000, 5, 7, fold2, &err), 0);
  assert_memory_equal(fold, fold2, sizeof fold);
  assert_int_equal(md_kfold_stratified(y, 1000, 1, 7, fold, &err), CM_E_INVALID);
}

static void test_rand_reference(void **state)
{
  uint64_t s = 1234567;
  (void)state;
  /* splitmix64's published reference outputs for seed 1234567 */
  assert_true(md_rand_next(&s) == 6457827717110365317ULL);
  assert_true(md_rand_next(&s) == 3203168211198807973ULL);
}

/* No features: the intercept is unpenalised, so it is exactly logit(mean y) = ln(1/3). */
static void test_fit_intercept_only(void **state)
{
  const int y[] = {1, 0, 0, 0};
  double X[1] = {0}, coef[1];
  struct md_fit_info info = {0};
  struct cm_error err;
  (void)state;
  assert_int_equal(md_logreg_fit(X, y, 4, 0, 1.0, 100, 1e-12, NULL, coef, &info, &err), 0);
  assert_true(info.converged);
  assert_float_equal(coef[0], log(1.0 / 3.0), 1e-10);
}

static int progress_calls;
static void progress_count(void *ctx, int iteration, double loss)
{
  (void)ctx;
  (void)loss;
  progress_calls = iteration + 1;
}

static void test_fit_tiny(void **state)
{
  /* Nearly separable in x0, noisy in x1. */
  const double X[] = {-2, 1, -1.5, -1, -1, 0.5, -0.5, 2, 0.3, -1, 0.5, 1, 1, -2, 1.5, 0, 2, 1};
  const int y[] = {0, 0, 0, 1, 0, 1, 1, 1, 1};
  double coef[3], warm[3], grad[3];
  struct md_fit_info info = {.on_progress = progress_count};
  struct cm_error err;
  (void)state;
  assert_int_equal(md_logreg_fit(X, y, 9, 2, 10.0, 100, 1e-12, NULL, coef, &info, &err), 0);
  assert_true(info.converged);
  assert_true(info.iterations > 0 && info.iterations < 30);
  assert_int_equal(progress_calls, info.iterations + 1);
  assert_true(coef[0] > 0.0); /* x0 drives y */
  md_logreg_loss(X, y, 9, 2, 10.0, coef, grad);
  for (int j = 0; j < 3; j++)
    assert_true(fabs(grad[j]) < 1e-9);
  assert_float_equal(info.loss, md_logreg_loss(X, y, 9, 2, 10.0, coef, NULL), 1e-12);
  /* Warm start from the solution: already converged, no step. */
  memcpy(warm, coef, sizeof warm);
  assert_int_equal(md_logreg_fit(X, y, 9, 2, 10.0, 100, 1e-12, warm, coef, &info, &err), 0);
  assert_int_equal(info.iterations, 0);
  assert_true(info.converged);
}

static void test_fit_bad_args(void **state)
{
  const double X[] = {0, 1};
  const int y[] = {0, 2};
  double coef[2];
  struct cm_error err;
  (void)state;
  assert_int_equal(md_logreg_fit(X, y, 2, 1, 1.0, 10, 1e-10, NULL, coef, NULL, &err),
                   CM_E_INVALID);
  assert_int_equal(md_logreg_fit(X, y, 2, 1, 0.0, 10, 1e-10, NULL, coef, NULL, &err),
                   CM_E_INVALID);
}

static const char small_arff[] = "@relation t\n"
                                 "@attribute a numeric\n"
                                 "@attribute c {x, y, z}\n"
                                 "@attribute k numeric\n"
                                 "@attribute class {good, bad}\n"
                                 "@data\n"
                                 "1, x, 5, good\n"
                                 "3, y, 5, bad\n"
                                 "2, x, 5, good\n"
                                 "?, z, 5, bad\n"
                                 "4, ?, 5, good\n";

static void test_prep_policy(void **state)
{
  ds_table *t = NULL;
  struct md_prep *p = NULL;
  const size_t fit_rows[] = {0, 1, 2}; /* z never seen */
  double x[4];
  struct cm_error err;
  (void)state;
  assert_int_equal(ds_parse_arff(small_arff, sizeof small_arff - 1, NULL, &t, &err), 0);
  assert_int_equal(md_prep_fit(t, fit_rows, 3, 3, &p, &err), 0);
  assert_int_equal(md_prep_width(p), 4); /* a, c=x, c=y, k */
  assert_string_equal(md_prep_name(p, 0), "a");
  assert_string_equal(md_prep_name(p, 1), "c=x");
  assert_string_equal(md_prep_name(p, 2), "c=y");
  assert_string_equal(md_prep_name(p, 3), "k");
  assert_null(md_prep_name(p, 4));
  assert_int_equal(md_prep_source_column(p, 2), 1);
  /* a: median 2, mean 2, std sqrt(2/3) */
  assert_int_equal(md_prep_apply(p, t, 1, x), 0);
  assert_float_equal(x[0], 1.0 / sqrt(2.0 / 3.0), TOL);
  assert_float_equal(x[1], 0.0, 0.0);
  assert_float_equal(x[2], 1.0, 0.0);
  assert_float_equal(x[3], 0.0, 0.0); /* constant column: std 1, value 0 */
  /* row 3: a missing -> median 2 -> 0; c = z unseen -> all zeros */
  assert_int_equal(md_prep_apply(p, t, 3, x), 0);
  assert_float_equal(x[0], 0.0, TOL);
  assert_float_equal(x[1] + x[2], 0.0, 0.0);
  /* row 4: c missing -> all zeros */
  assert_int_equal(md_prep_apply(p, t, 4, x), 0);
  assert_float_equal(x[1] + x[2], 0.0, 0.0);
  assert_int_equal(md_prep_apply(p, t, 5, x), CM_E_INVALID);
  md_prep_free(p);
  ds_table_free(t);
}

static void test_german_credit(void **state)
{
  size_t len = 0, n, d, *rows;
  char *text = harness_file_read(CREDIT_G_PATH, &len);
  ds_table *t = NULL;
  struct md_prep *p = NULL;
  struct md_fit_info info = {0};
  struct cm_error err;
  int target, positive, *y;
  double *X, *coef, *prob;
  (void)state;
  assert_non_null(text);
  assert_int_equal(ds_parse(text, len, NULL, NULL, &t, &err), 0);
  assert_int_equal(ds_schema_infer_target(t, NULL, NULL, &target, &positive, &err), 0);
  n = ds_rows(t);
  assert_int_equal(n, 1000);
  rows = malloc(n * sizeof *rows);
  for (size_t i = 0; i < n; i++)
    rows[i] = i;
  assert_int_equal(md_prep_fit(t, rows, n, target, &p, &err), 0);
  d = md_prep_width(p);
  assert_string_equal(md_prep_name(p, 0), "checking_status=<0");
  assert_string_equal(md_prep_name(p, 4), "duration");
  X = malloc(n * d * sizeof *X);
  y = malloc(n * sizeof *y);
  coef = malloc((d + 1) * sizeof *coef);
  prob = malloc(n * sizeof *prob);
  assert_int_equal(md_prep_apply_rows(p, t, rows, n, target, positive, X, y, &err), 0);
  assert_int_equal(md_logreg_fit(X, y, n, d, 1.0, 100, 1e-10, NULL, coef, &info, &err), 0);
  assert_true(info.converged);
  md_logreg_predict(X, n, d, coef, prob);
  assert_true(md_roc_auc(prob, y, n) > 0.75);
  assert_true(md_log_loss(prob, y, n) < log(2.0));
  free(prob);
  free(coef);
  free(y);
  free(X);
  free(rows);
  md_prep_free(p);
  ds_table_free(t);
  free(text);
}

static void test_score_points(void **state)
{
  struct md_scorecard sc;
  (void)state;
  md_scorecard_init(&sc);
  /* p = 1/51 is odds 50:1, the base: 600 points; 100:1 doubles the odds: one PDO more. */
  assert_float_equal(md_score_points(&sc, 1.0 / 51.0), 600.0, 1e-9);
  assert_float_equal(md_score_points(&sc, 1.0 / 101.0), 620.0, 1e-9);
  assert_float_equal(md_score_points(&sc, 1.0 / 26.0), 580.0, 1e-9);
  assert_float_equal(md_score_points(&sc, 0.5), 600.0 - 20.0 * log2(50.0), 1e-9);
  /* p clamps into [1e-15, 1 - 1e-15]: finite at both ends. */
  assert_true(isfinite(md_score_points(&sc, 0.0)));
  assert_true(isfinite(md_score_points(&sc, 1.0)));
  assert_true(md_score_points(&sc, 0.0) > md_score_points(&sc, 1.0));
  sc.pdo = 40.0;
  sc.base_score = 500.0;
  sc.base_odds = 10.0;
  assert_float_equal(md_score_points(&sc, 1.0 / 21.0), 540.0, 1e-9);
  md_scorecard_init(&sc);
  assert_true(md_score_declines(&sc, 0.5));
  assert_false(md_score_declines(&sc, 0.4999));
}

/* Prep of small_arff on rows 0..2: a, c=x, c=y, k (source columns 0, 1, 1, 2). */
static struct md_prep *small_prep(ds_table **t)
{
  struct md_prep *p = NULL;
  const size_t fit_rows[] = {0, 1, 2};
  struct cm_error err;
  assert_int_equal(ds_parse_arff(small_arff, sizeof small_arff - 1, NULL, t, &err), 0);
  assert_int_equal(md_prep_fit(*t, fit_rows, 3, 3, &p, &err), 0);
  assert_int_equal(md_prep_width(p), 4);
  return p;
}

static void test_reasons(void **state)
{
  ds_table *t = NULL;
  struct md_prep *p = small_prep(&t);
  const double coef[] = {2.0, 1.0, 0.5, -1.0, 0.3}, x[] = {0.5, 1.0, 1.0, 1.0};
  const double tie_coef[] = {1.0, 1.0, 0.0, 3.0, 0.0}, tie_x[] = {1.0, 1.0, 0.0, 0.0};
  const double neg_x[] = {-1.0, 0.0, 0.0, 1.0};
  struct md_reason r[MD_REASONS_MAX];
  size_t n = 99;
  (void)state;
  /* a: 1.0; c: 1.0 + 0.5 = 1.5 (one-hot columns grouped); k: -1 (not a reason). */
  assert_int_equal(md_reasons(p, coef, x, MD_REASONS_MAX, r, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(r[0].feature, "c");
  assert_int_equal(r[0].column, 1);
  assert_float_equal(r[0].impact, 1.5, TOL);
  assert_string_equal(r[1].feature, "a");
  assert_float_equal(r[1].impact, 1.0, TOL);
  /* max caps the list, keeping the largest. */
  assert_int_equal(md_reasons(p, coef, x, 1, r, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(r[0].feature, "c");
  /* Ties keep feature order; a zero contribution is not a reason. */
  assert_int_equal(md_reasons(p, tie_coef, tie_x, MD_REASONS_MAX, r, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(r[0].feature, "a");
  assert_string_equal(r[1].feature, "c");
  /* Nothing pushes toward default: no reasons. */
  assert_int_equal(md_reasons(p, coef, neg_x, MD_REASONS_MAX, r, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(md_reasons(p, NULL, x, MD_REASONS_MAX, r, &n), CM_E_INVALID);
  md_prep_free(p);
  ds_table_free(t);
}

static void small_pack(const struct md_prep *p, const ds_table *t, uint8_t **b, size_t *len,
                       char hex[65])
{
  const double coef[] = {0.25, -1.5, 2.0, 0.0, -0.75};
  struct md_scorecard sc;
  struct md_artifact_meta meta = {.model_name = "credit-default", .positive_label = "bad",
                                  .C = 1.0, .tol = 1e-4, .max_iter = 100, .solver = "newton",
                                  .iterations = 7, .converged = true, .created_ms = 1700000000000,
                                  .trainer_version = "0.1.0"};
  struct cm_error err;
  md_scorecard_init(&sc);
  sc.threshold = 0.4;
  assert_int_equal(md_artifact_pack(p, t, coef, 5, &sc, &meta, b, len, hex, &err), 0);
}

static void test_artifact_roundtrip(void **state)
{
  ds_table *t = NULL;
  struct md_prep *p = small_prep(&t);
  uint8_t *b1 = NULL, *b2 = NULL;
  size_t l1 = 0, l2 = 0, ncoef = 0;
  char h1[65], h2[65], h[65];
  double *coef = NULL;
  struct md_scorecard sc;
  struct cm_error err;
  (void)state;
  /* Known SHA-256 of the empty input checks the EVP path. */
  assert_int_equal(md_artifact_sha256((const uint8_t *)"", 0, h), 0);
  assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  small_pack(p, t, &b1, &l1, h1);
  small_pack(p, t, &b2, &l2, h2);
  assert_int_equal(l1, l2);
  assert_memory_equal(b1, b2, l1);
  assert_string_equal(h1, h2);
  assert_int_equal(strlen(h1), 64);
  assert_int_equal(md_artifact_sha256(b1, l1, h), 0);
  assert_string_equal(h, h1);
  /* Round trip: coefficients (weights then intercept) and scorecard come back. */
  assert_int_equal(md_artifact_unpack(b1, l1, &coef, &ncoef, &sc, &err), 0);
  assert_int_equal(ncoef, 5);
  assert_float_equal(coef[0], 0.25, 0.0);
  assert_float_equal(coef[1], -1.5, 0.0);
  assert_float_equal(coef[2], 2.0, 0.0);
  assert_float_equal(coef[3], 0.0, 0.0);
  assert_float_equal(coef[4], -0.75, 0.0);
  assert_float_equal(sc.pdo, 20.0, 0.0);
  assert_float_equal(sc.base_score, 600.0, 0.0);
  assert_float_equal(sc.base_odds, 50.0, 0.0);
  assert_float_equal(sc.threshold, 0.4, 0.0);
  cm_free(coef);
  cm_free(b2);
  /* A wrong coefficient count is refused when packing. */
  assert_int_equal(md_artifact_pack(p, t, (const double[]){1, 2, 3, 4}, 4, &sc,
                                    &(struct md_artifact_meta){0}, &b2, &l2, h2,
                                    &err),
                   CM_E_INVALID);
  assert_null(b2);
  cm_free(b1);
  md_prep_free(p);
  ds_table_free(t);
}

static void test_artifact_corrupt(void **state)
{
  ds_table *t = NULL;
  struct md_prep *p = small_prep(&t);
  uint8_t *b = NULL, *copy;
  size_t len = 0, ncoef = 0;
  char hex[65], h[65];
  double *coef = NULL;
  struct md_scorecard sc;
  struct cm_error err;
  (void)state;
  small_pack(p, t, &b, &len, hex);
  copy = malloc(len);
  /* A flipped byte changes the digest. */
  memcpy(copy, b, len);
  copy[len / 2] ^= 0x01;
  assert_int_equal(md_artifact_sha256(copy, len, h), 0);
  assert_string_not_equal(h, hex);
  /* Every truncation either fails cleanly or (cut at a field boundary) still validates. */
  for (size_t n = 0; n < len; n++) {
    int rc = md_artifact_unpack(b, n, &coef, &ncoef, &sc, &err);
    assert_true(rc == 0 || rc == CM_E_CORRUPT);
    if (rc == 0)
      cm_free(coef);
    else
      assert_null(coef);
  }
  /* Cut inside the last string, and the empty message (format_version 0), are refused. */
  assert_int_equal(md_artifact_unpack(b, len - 1, &coef, &ncoef, &sc, &err), CM_E_CORRUPT);
  assert_int_equal(md_artifact_unpack(b, 0, &coef, &ncoef, &sc, &err), CM_E_CORRUPT);
  /* A coefficient renamed away from the preparation's layout is inconsistent. */
  memcpy(copy, b, len);
  {
    size_t at = 0;
    while (at + 3 <= len && memcmp(copy + at, "c=y", 3) != 0)
      at++;
    assert_true(at + 3 <= len);
    copy[at + 2] = 'q';
  }
  assert_int_equal(md_artifact_unpack(copy, len, &coef, &ncoef, &sc, &err), CM_E_CORRUPT);
  assert_null(coef);
  free(copy);
  cm_free(b);
  md_prep_free(p);
  ds_table_free(t);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_auc_hand),           cmocka_unit_test(test_ks_hand),
      cmocka_unit_test(test_logloss_brier_hand), cmocka_unit_test(test_confusion_hand),
      cmocka_unit_test(test_psi),                cmocka_unit_test(test_split_stratified),
      cmocka_unit_test(test_kfold),              cmocka_unit_test(test_rand_reference),
      cmocka_unit_test(test_fit_intercept_only), cmocka_unit_test(test_fit_tiny),
      cmocka_unit_test(test_fit_bad_args),       cmocka_unit_test(test_prep_policy),
      cmocka_unit_test(test_german_credit),     cmocka_unit_test(test_score_points),
      cmocka_unit_test(test_reasons),           cmocka_unit_test(test_artifact_roundtrip),
      cmocka_unit_test(test_artifact_corrupt),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
