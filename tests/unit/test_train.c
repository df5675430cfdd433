/* Unit tests for services/trainer's training core (credito_train): params, every bad-input
 * path of loading with its error code and message, the split and processed matrix, fit and
 * evaluation on German Credit (deterministic from the seed), cross-validation, the artifact's
 * metrics and lineage, and warm starts from a parent artifact. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "credito/v1/model.pb-c.h"
#include "harness.h"
#include "mem.h"
#include "train.h"

static char *credit_g;
static size_t credit_g_len;

static int group_setup(void **state)
{
  (void)state;
  credit_g = harness_file_read(CREDIT_G_PATH, &credit_g_len);
  return credit_g ? 0 : -1;
}

static int group_teardown(void **state)
{
  (void)state;
  free(credit_g);
  return 0;
}

static void test_params(void **state)
{
  struct trn_params p;
  struct cm_error err;
  (void)state;
  trn_params_init(&p);
  assert_int_equal(trn_params_set(&p, "C", "0.5", &err), 0);
  assert_true(p.C == 0.5);
  assert_int_equal(trn_params_set(&p, "max_iter", "7", &err), 0);
  assert_int_equal(p.max_iter, 7);
  assert_int_equal(trn_params_set(&p, "unknown_category", "ignore", &err), 0);
  assert_true(p.unknown_ignore);
  assert_int_equal(trn_params_set(&p, "C", "-1", &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "param C"));
  assert_int_equal(trn_params_set(&p, "C", "nan", &err), CM_E_INVALID);
  assert_int_equal(trn_params_set(&p, "C", "1e999", &err), CM_E_INVALID);
  assert_int_equal(trn_params_set(&p, "tol", "", &err), CM_E_INVALID);
  assert_int_equal(trn_params_set(&p, "max_iter", "0", &err), CM_E_INVALID);
  assert_int_equal(trn_params_set(&p, "max_iter", "12x", &err), CM_E_INVALID);
  assert_int_equal(trn_params_set(&p, "unknown_category", "guess", &err), CM_E_INVALID);
  assert_int_equal(trn_params_set(&p, "penalty", "l1", &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "unknown param 'penalty'"));
  assert_int_equal(trn_params_check(&p, &err), 0);
  p.test_fraction = 1.5;
  assert_int_equal(trn_params_check(&p, &err), CM_E_INVALID);
  p.test_fraction = 0;
  p.no_holdout = true;
  assert_int_equal(trn_params_check(&p, &err), 0);
  p.cv_folds = 21;
  assert_int_equal(trn_params_check(&p, &err), CM_E_INVALID);
  p.cv_folds = 5;
  p.sc.threshold = 0;
  assert_int_equal(trn_params_check(&p, &err), CM_E_INVALID);
  trn_params_cleanup(&p);
}

/* Loads text with default params; returns the code, err filled. */
static int load(const char *text, const char *format, const char *target, struct cm_error *err)
{
  struct trn_params p;
  trn_job *job;
  int rc;
  trn_params_init(&p);
  p.target = target ? cm_strdup(target) : NULL;
  job = trn_job_new(&p);
  assert_non_null(job);
  rc = trn_job_load(job, text, strlen(text), format, err);
  trn_job_free(job);
  trn_params_cleanup(&p);
  return rc;
}

#define ARFF_HEAD "@relation t\n@attribute x numeric\n@attribute class {good,bad}\n@data\n"

static void test_load_bad_input(void **state)
{
  struct cm_error err;
  (void)state;
  assert_int_equal(load("", NULL, NULL, &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "empty"));
  assert_int_equal(load(ARFF_HEAD, NULL, NULL, &err), CM_E_FAILED_PRECONDITION);
  assert_non_null(strstr(err.msg, "no rows"));
  assert_int_equal(load(ARFF_HEAD "1,good\n2,good\n", NULL, NULL, &err),
                   CM_E_FAILED_PRECONDITION);
  assert_non_null(strstr(err.msg, "one class"));
  assert_int_equal(load(ARFF_HEAD "1,good\n2,bad\n", NULL, "nope", &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "nope"));
  assert_int_equal(load(ARFF_HEAD "1,good\nabc,bad\n", NULL, NULL, &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "line 6"));
  assert_int_equal(load("x,class\n1,good\n2\n", "csv", NULL, &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "line 3"));
  assert_int_equal(load(ARFF_HEAD "1,good\n2,?\n", NULL, NULL, &err), CM_E_INVALID);
  assert_non_null(strstr(err.msg, "target"));
  assert_int_equal(load("x\n1\n2\n", "csv", NULL, &err), CM_E_INVALID);
  assert_int_equal(load(ARFF_HEAD "1,good\n2,bad\n", NULL, NULL, &err), 0);
}

/* A German Credit job through every stage. */
static trn_job *credit_job(uint64_t seed, bool processed, int folds)
{
  struct trn_params p;
  struct cm_error err;
  trn_job *job;
  trn_params_init(&p);
  p.seed = seed;
  p.cv_folds = folds;
  job = trn_job_new(&p);
  assert_non_null(job);
  assert_int_equal(trn_job_load(job, credit_g, credit_g_len, NULL, &err), 0);
  assert_int_equal(trn_job_prepare(job, processed, &err), 0);
  assert_int_equal(trn_job_fit(job, NULL, NULL, NULL, &err), 0);
  assert_int_equal(trn_job_evaluate(job, &err), 0);
  assert_int_equal(trn_job_cross_validate(job, NULL, NULL, &err), 0);
  trn_params_cleanup(&p);
  return job;
}

static void test_credit_g_deterministic(void **state)
{
  trn_job *a = credit_job(7, true, 5), *b = credit_job(7, false, 5), *c = credit_job(8, false, 1);
  size_t d = md_prep_width(trn_job_prep(a)), len = 0;
  const char *csv = trn_job_processed(a, &len);
  double auc = 0, rows = 0, v;
  (void)state;
  assert_memory_equal(trn_job_coef(a), trn_job_coef(b), (d + 1) * sizeof(double));
  assert_true(memcmp(trn_job_coef(a), trn_job_coef(c), (d + 1) * sizeof(double)) != 0);
  assert_true(trn_job_metric(a, "test_roc_auc", &auc) && auc > 0.7 && auc < 0.9);
  assert_true(trn_job_metric(a, "test_rows", &rows) && rows == 200);
  assert_true(trn_job_metric(a, "cv_roc_auc_mean", &v) && v > 0.65);
  assert_false(trn_job_metric(c, "cv_roc_auc_mean", &v));
  assert_true(trn_job_metric(a, "psi", &v) && v >= 0 && v < 0.25);
  /* Processed CSV: a header with the prepared names, the target and split; 1000 rows. */
  assert_non_null(csv);
  assert_true(strncmp(csv, "checking_status=<0,", 19) == 0);
  assert_non_null(strstr(csv, ",class,split\n"));
  {
    size_t lines = 0, tests = 0;
    for (const char *s = csv; *s; s++)
      lines += *s == '\n';
    for (const char *s = csv; (s = strstr(s, ",test\n")) != NULL; s++)
      tests++;
    assert_int_equal(lines, 1001);
    assert_int_equal(tests, 200);
  }
  assert_null(trn_job_processed(b, &len));
  trn_job_free(a);
  trn_job_free(b);
  trn_job_free(c);
}

static void test_final_metrics(void **state)
{
  trn_job *job = credit_job(1, false, 3);
  struct md_metric *m = NULL;
  size_t n = 0, nall = 0, loss_points = 0;
  const struct trn_metric *all = trn_job_metrics(job, &nall);
  (void)state;
  for (size_t i = 0; i < nall; i++)
    loss_points += strcmp(all[i].key, "loss") == 0;
  assert_true(loss_points >= 2);
  assert_int_equal(trn_job_final_metrics(job, &m, &n), 0);
  for (size_t i = 0; i < n; i++) {
    assert_string_not_equal(m[i].key, "cv_roc_auc");
    for (size_t j = 0; j < i; j++)
      assert_string_not_equal(m[i].key, m[j].key);
  }
  assert_true(n > 20);
  cm_free(m);
  trn_job_free(job);
}

static void test_artifact_lineage_and_warm_start(void **state)
{
  trn_job *job = credit_job(3, false, 1);
  struct md_dataset_ref ds[2] = {{"credit-g", "abc", "source"}, {"credit-g-processed", "def",
                                                                   "training"}};
  struct md_artifact_meta meta = {0};
  Credito__V1__ModelArtifact *a;
  uint8_t *bytes = NULL;
  size_t len = 0, d = md_prep_width(trn_job_prep(job)), matched = 0;
  char sha[65];
  double *warm = calloc(d + 1, sizeof *warm);
  struct cm_error err;
  (void)state;
  meta.model_name = "credit-default";
  meta.run_id = "run1";
  meta.experiment_id = "exp1";
  meta.datasets = ds;
  meta.n_datasets = 2;
  meta.parent_name = "credit-default";
  meta.parent_version = 3;
  assert_int_equal(trn_job_pack(job, &meta, &bytes, &len, sha, &err), 0);
  a = credito__v1__model_artifact__unpack(NULL, len, bytes);
  assert_non_null(a);
  assert_string_equal(a->lineage->run_id, "run1");
  assert_int_equal(a->lineage->n_datasets, 2);
  assert_string_equal(a->lineage->datasets[1]->dataset->md5, "def");
  assert_int_equal(a->lineage->parent->version, 3);
  assert_true(a->n_metrics > 10);
  assert_string_equal(a->schema->positive_label, "bad");
  /* German Credit has no missing values: every feature required, defaults filled. */
  for (size_t i = 0; i < a->schema->n_features; i++) {
    assert_true(a->schema->features[i]->required);
    assert_non_null(a->schema->features[i]->default_value);
  }
  credito__v1__model_artifact__free_unpacked(a, NULL);
  /* Warm start from itself: every column matched, the same coefficients back. */
  assert_int_equal(md_artifact_warm_start(bytes, len, trn_job_prep(job), trn_job_table(job),
                                          warm, &matched, &err), 0);
  assert_int_equal(matched, d);
  assert_memory_equal(warm, trn_job_coef(job), (d + 1) * sizeof(double));
  /* Tampered bytes are refused. */
  bytes[len / 2] ^= 0xff;
  assert_int_not_equal(md_artifact_warm_start(bytes, len, trn_job_prep(job), trn_job_table(job),
                                              warm, &matched, &err), 0);
  cm_free(bytes);
  free(warm);
  trn_job_free(job);
}

static void test_warm_start_other_schema(void **state)
{
  trn_job *job = credit_job(3, false, 1), *other;
  struct trn_params p;
  struct md_artifact_meta meta = {0};
  const char *text = ARFF_HEAD "1,good\n2,bad\n3,good\n4,bad\n5,good\n6,bad\n7,good\n8,bad\n"
                               "9,good\n10,bad\n";
  uint8_t *bytes = NULL;
  size_t len = 0;
  char sha[65];
  double warm[2];
  struct cm_error err;
  (void)state;
  assert_int_equal(trn_job_pack(job, &meta, &bytes, &len, sha, &err), 0);
  trn_params_init(&p);
  p.cv_folds = 1;
  other = trn_job_new(&p);
  assert_int_equal(trn_job_load(other, text, strlen(text), NULL, &err), 0);
  assert_int_equal(trn_job_prepare(other, false, &err), 0);
  assert_int_equal(md_artifact_warm_start(bytes, len, trn_job_prep(other), trn_job_table(other),
                                          warm, NULL, &err),
                   CM_E_FAILED_PRECONDITION);
  assert_non_null(strstr(err.msg, "features"));
  cm_free(bytes);
  trn_job_free(other);
  trn_job_free(job);
}

static void test_too_few_rows(void **state)
{
  struct trn_params p;
  struct cm_error err;
  const char *text = ARFF_HEAD "1,good\n2,bad\n";
  trn_job *job;
  (void)state;
  trn_params_init(&p);
  job = trn_job_new(&p);
  assert_int_equal(trn_job_load(job, text, strlen(text), NULL, &err), 0);
  /* 20% of one row per class rounds to none: no test rows to evaluate on. */
  assert_int_equal(trn_job_prepare(job, false, &err), CM_E_FAILED_PRECONDITION);
  trn_job_free(job);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_params),
      cmocka_unit_test(test_load_bad_input),
      cmocka_unit_test(test_credit_g_deterministic),
      cmocka_unit_test(test_final_metrics),
      cmocka_unit_test(test_artifact_lineage_and_warm_start),
      cmocka_unit_test(test_warm_start_other_schema),
      cmocka_unit_test(test_too_few_rows),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
