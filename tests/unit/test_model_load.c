/* Unit tests for common/model/model_load.c: a model loaded from artifact bytes scores German
 * Credit's test split bit-identically to the trainer's evaluation (md_prep_apply then
 * md_logreg_predict) with the same reason codes; every violation type, all problems at once,
 * imputation of optional features, the unknown-category policies, corrupt and inconsistent
 * bytes, and an allocation-failure loop. Loads run on cmocka's checked allocator, so a block a
 * load or free leaves behind fails the test. Prints the scoring speed. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "credito/v1/model.pb-c.h"
#include "dataset.h"
#include "harness.h"
#include "mem.h"
#include "model.h"

#ifndef CREDIT_G_PATH
#error "CREDIT_G_PATH must name data/raw/credit-g.arff"
#endif

#define NVIOL 64

static void *leakcheck_malloc(size_t n) { return test_malloc(n); }
static void *leakcheck_realloc(void *p, size_t n) { return test_realloc(p, n); }
static void leakcheck_free(void *p) { test_free(p); }
static const struct cm_mem_hooks leakcheck = {leakcheck_malloc, leakcheck_realloc, leakcheck_free};

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

/* German Credit trained as the trainer does: 70/30 stratified split, prep on the train rows,
 * C = 1; packed twice (unknown categories rejected, and ignored). Built once, libc allocator. */
struct gc {
  char *text;
  ds_table *t;
  int target, positive;
  size_t *train, *test, ntrain, ntest;
  struct md_prep *p;
  size_t d;
  double *coef;
  uint8_t *bytes, *bytes_ignore;
  size_t len, len_ignore;
};

static void gc_pack(const struct gc *g, bool ignore, uint8_t **bytes, size_t *len)
{
  const struct md_metric metrics[] = {{"test_roc_auc", 0.79, 0}};
  const struct md_dataset_ref ds[] = {{"german-credit", "9f5d0b1c", "source"}};
  const struct ds_column *target = ds_column_at(g->t, (size_t)g->target);
  struct md_artifact_meta meta = {
      .model_name = "credit-default", .positive_label = target->categories[g->positive],
      .C = 1.0, .tol = 1e-8, .max_iter = 100, .solver = "newton-cholesky", .iterations = 6,
      .converged = true, .created_ms = 1700000000000, .trainer_version = "0.1.0-test",
      .unknown_ignore = ignore, .metrics = metrics, .n_metrics = 1, .run_id = "r1",
      .experiment_id = "e1", .datasets = ds, .n_datasets = 1};
  struct md_scorecard sc;
  struct cm_error err;
  char hex[65];

  md_scorecard_init(&sc);
  assert_int_equal(md_artifact_pack(g->p, g->t, g->coef, g->d + 1, &sc, &meta, bytes, len, hex,
                                    &err), 0);
}

static int gc_setup(void **state)
{
  struct md_fit_info info = {0};
  struct cm_error err;
  size_t n, len = 0;
  int *y;
  double *X;
  struct gc *g = calloc(1, sizeof *g);

  *state = g;
  g->text = harness_file_read(CREDIT_G_PATH, &len);
  assert_non_null(g->text);
  assert_int_equal(ds_parse_arff(g->text, len, NULL, &g->t, &err), 0);
  assert_int_equal(ds_schema_infer_target(g->t, NULL, NULL, &g->target, &g->positive, &err), 0);
  n = ds_rows(g->t);
  y = malloc(n * sizeof *y);
  g->train = malloc(n * sizeof *g->train);
  g->test = malloc(n * sizeof *g->test);
  for (size_t i = 0; i < n; i++)
    y[i] = ds_category(g->t, i, (size_t)g->target) == g->positive;
  assert_int_equal(md_split_stratified(y, n, 0.3, 42, g->train, &g->ntrain, g->test, &g->ntest,
                                       &err), 0);
  assert_int_equal(md_prep_fit(g->t, g->train, g->ntrain, g->target, &g->p, &err), 0);
  g->d = md_prep_width(g->p);
  X = malloc(g->ntrain * g->d * sizeof *X);
  g->coef = malloc((g->d + 1) * sizeof *g->coef);
  assert_int_equal(md_prep_apply_rows(g->p, g->t, g->train, g->ntrain, g->target, g->positive, X, y,
                                      &err), 0);
  assert_int_equal(md_logreg_fit(X, y, g->ntrain, g->d, 1.0, 100, 1e-8, NULL, g->coef, &info,
                                 &err), 0);
  assert_true(info.converged);
  free(X);
  free(y);
  gc_pack(g, false, &g->bytes, &g->len);
  gc_pack(g, true, &g->bytes_ignore, &g->len_ignore);
  return 0;
}

static int gc_teardown(void **state)
{
  struct gc *g = *state;

  cm_free(g->bytes);
  cm_free(g->bytes_ignore);
  free(g->coef);
  md_prep_free(g->p);
  free(g->train);
  free(g->test);
  ds_table_free(g->t);
  free(g->text);
  free(g);
  return 0;
}

/* The md_values of table row row, every column but skip: numbers, category texts, missing.
 * Names and texts are borrowed from t. Returns the count. */
static size_t row_values(const ds_table *t, size_t row, int skip, struct md_value *v)
{
  size_t n = 0;
  for (size_t c = 0; c < ds_columns(t); c++) {
    const struct ds_column *col = ds_column_at(t, c);
    struct md_value *x = &v[n];

    if ((int)c == skip)
      continue;
    memset(x, 0, sizeof *x);
    x->name = col->name;
    x->name_len = strlen(col->name);
    if (col->kind == DS_NUMERIC) {
      x->number = ds_number(t, row, c);
      x->kind = isnan(x->number) ? MD_VALUE_MISSING : MD_VALUE_NUMBER;
    } else {
      int k = ds_category(t, row, c);
      x->kind = k < 0 ? MD_VALUE_MISSING : MD_VALUE_TEXT;
      if (k >= 0) {
        x->text = col->categories[k];
        x->text_len = strlen(x->text);
      }
    }
    n++;
  }
  return n;
}

static struct md_value num(const char *name, double v)
{
  return (struct md_value){.name = name, .name_len = strlen(name), .kind = MD_VALUE_NUMBER,
                           .number = v};
}

static struct md_value text(const char *name, const char *v)
{
  return (struct md_value){.name = name, .name_len = strlen(name), .kind = MD_VALUE_TEXT,
                           .text = v, .text_len = strlen(v)};
}

static struct md_value missing(const char *name)
{
  return (struct md_value){.name = name, .name_len = strlen(name), .kind = MD_VALUE_MISSING};
}

/* Index of the value named name in v[0..n). */
static size_t value_at(const struct md_value *v, size_t n, const char *name)
{
  for (size_t i = 0; i < n; i++)
    if (v[i].name_len == strlen(name) && memcmp(v[i].name, name, v[i].name_len) == 0)
      return i;
  fail_msg("no value %s", name);
  return 0;
}

/* Asserts pred is what the trainer computes on prepared row x under prep p and coef. */
static void assert_prediction(const struct md_prediction *pred, const struct md_prep *p,
                              const double *coef, const double *x)
{
  struct md_reason want[MD_REASONS_MAX];
  struct md_scorecard sc;
  size_t nwant = 0;
  double prob;

  md_logreg_predict(x, 1, md_prep_width(p), coef, &prob);
  assert_true(same_bits(pred->probability, prob));
  md_scorecard_init(&sc);
  assert_true(same_bits(pred->score, md_score_points(&sc, prob)));
  assert_int_equal(pred->decline, md_score_declines(&sc, prob));
  assert_int_equal(md_reasons(p, coef, x, MD_REASONS_MAX, want, &nwant), 0);
  assert_int_equal(pred->n_reasons, nwant);
  for (size_t r = 0; r < nwant; r++) {
    assert_int_equal(pred->reasons[r].column, want[r].column);
    assert_string_equal(pred->reasons[r].feature, want[r].feature);
    assert_true(same_bits(pred->reasons[r].impact, want[r].impact));
  }
}

static md_model *load_ok(const uint8_t *bytes, size_t len)
{
  md_model *m = NULL;
  struct cm_error err = {0};
  int rc = md_model_load(bytes, len, &m, &err);
  if (rc)
    fail_msg("md_model_load: %d %s", rc, err.msg);
  return m;
}

/* Every test-split row scores bit-identically to md_prep_apply + md_logreg_predict (one row,
 * and the trainer's batch over the whole split), with the same scratch row and reasons, in
 * schema order and reversed. */
static void test_german_credit_identical(void **state)
{
  const struct gc *g = *state;
  struct md_value v[32], rev[32];
  struct md_violation viol[NVIOL];
  struct md_prediction pred;
  struct cm_error err;
  double *x, *scratch, *X, *batch;
  int *y;
  md_model *m;
  const Credito__V1__ModelArtifact *a;
  size_t nv = 0, declines = 0;

  cm_mem_set_hooks(&leakcheck);
  m = load_ok(g->bytes, g->len);
  cm_mem_set_hooks(NULL);
  assert_int_equal(md_model_width(m), g->d);
  assert_int_equal(g->d, 61);
  a = md_model_artifact(m);
  assert_string_equal(a->model_name, "credit-default");
  assert_int_equal(a->schema->n_features, 20);
  assert_string_equal(a->schema->features[0]->name, "checking_status");
  x = malloc(g->d * sizeof *x);
  scratch = malloc(g->d * sizeof *scratch);
  X = malloc(g->ntest * g->d * sizeof *X);
  y = malloc(g->ntest * sizeof *y);
  batch = malloc(g->ntest * sizeof *batch);
  assert_int_equal(md_prep_apply_rows(g->p, g->t, g->test, g->ntest, g->target, g->positive, X, y,
                                      &err), 0);
  md_logreg_predict(X, g->ntest, g->d, g->coef, batch);
  for (size_t i = 0; i < g->ntest; i++) {
    size_t n = row_values(g->t, g->test[i], g->target, v);

    assert_int_equal(n, 20);
    assert_int_equal(md_prep_apply(g->p, g->t, g->test[i], x), 0);
    assert_int_equal(md_model_score(m, v, n, scratch, &pred, viol, NVIOL, &nv), 0);
    assert_int_equal(nv, 0);
    assert_memory_equal(scratch, x, g->d * sizeof *x);
    assert_prediction(&pred, g->p, g->coef, x);
    assert_true(same_bits(pred.probability, batch[i]));
    declines += pred.decline;
    for (size_t k = 0; k < n; k++)
      rev[k] = v[n - 1 - k];
    memset(&pred, 0, sizeof pred);
    assert_int_equal(md_model_score(m, rev, n, scratch, &pred, viol, NVIOL, &nv), 0);
    assert_prediction(&pred, g->p, g->coef, x);
  }
  assert_true(declines > 0 && declines < g->ntest);
  free(batch);
  free(y);
  free(X);
  free(scratch);
  free(x);
  cm_mem_set_hooks(&leakcheck);
  md_model_free(m);
  cm_mem_set_hooks(NULL);
}

/* Scores the German Credit test rows for about half a second and prints the rate. */
static void test_german_credit_speed(void **state)
{
  const struct gc *g = *state;
  struct md_value *v = malloc(g->ntest * 20 * sizeof *v);
  struct md_prediction pred;
  double scratch[64], t0, dt, sink = 0.0;
  size_t rows = 0;
  md_model *m = load_ok(g->bytes, g->len);

  for (size_t i = 0; i < g->ntest; i++)
    assert_int_equal(row_values(g->t, g->test[i], g->target, v + i * 20), 20);
  t0 = now_s();
  do {
    for (size_t i = 0; i < g->ntest; i++) {
      md_model_score(m, v + i * 20, 20, scratch, &pred, NULL, 0, NULL);
      sink += pred.probability;
    }
    rows += g->ntest;
    dt = now_s() - t0;
  } while (dt < 0.5);
  print_message("md_model_score, German Credit (20 features, 61 columns): %.0f rows/s, "
                "%.0f ns/row (checksum %.3f)\n", (double)rows / dt, dt / (double)rows * 1e9,
                sink / (double)rows);
  free(v);
  md_model_free(m);
}

/* A valid German Credit applicant (test row 0), mutable, in schema order. */
static size_t applicant(const struct gc *g, struct md_value *v)
{
  return row_values(g->t, g->test[0], g->target, v);
}

static void assert_viol(const struct md_violation *v, const char *field, const char *type,
                        const char *msg)
{
  assert_string_equal(v->field, field);
  assert_string_equal(v->type, type);
  assert_string_equal(v->msg, msg);
}

static void test_violation_types(void **state)
{
  const struct gc *g = *state;
  struct md_value v[32];
  struct md_violation viol[NVIOL];
  struct md_prediction pred;
  double scratch[64];
  size_t n, nv = 99;
  md_model *m;

  cm_mem_set_hooks(&leakcheck);
  m = load_ok(g->bytes, g->len);
  n = applicant(g, v);
  v[value_at(v, n, "duration")] = text("duration", "12");
  v[value_at(v, n, "credit_amount")] = num("credit_amount", NAN);
  v[value_at(v, n, "age")] = num("age", -INFINITY);
  v[value_at(v, n, "checking_status")] = text("checking_status", "A14");
  v[value_at(v, n, "purpose")] = num("purpose", 3.0);
  v[value_at(v, n, "housing")] = missing("housing");
  v[value_at(v, n, "num_dependents")] = missing("num_dependents");
  /* Drop own_telephone and foreign_worker, the last two schema features, then add extras. */
  assert_int_equal(value_at(v, n, "own_telephone"), 18);
  n = 18;
  v[n++] = num("salary", 1000.0);
  v[n++] = text("age", "thirty"); /* given twice */
  v[n++] = (struct md_value){.name = "job", .name_len = 3, .kind = (enum md_value_kind)7};
  assert_int_equal(md_model_score(m, v, n, scratch, &pred, viol, NVIOL, &nv), CM_E_INVALID);
  assert_int_equal(nv, 12);
  /* In request order: the schema's first 18 as given, then the three extras... */
  assert_viol(&viol[0], "checking_status", "enum",
              "Input should be '<0', '0<=X<200', '>=200' or 'no checking'");
  assert_viol(&viol[1], "duration", "float_type", "Input should be a valid number");
  assert_viol(&viol[2], "purpose", "string_type", "Input should be a valid string");
  assert_viol(&viol[3], "credit_amount", "finite_number", "Input should be a finite number");
  assert_viol(&viol[4], "age", "finite_number", "Input should be a finite number");
  assert_viol(&viol[5], "housing", "missing", "Field required");
  assert_viol(&viol[6], "num_dependents", "missing", "Field required");
  assert_viol(&viol[7], "salary", "extra_forbidden", "Extra inputs are not permitted");
  assert_string_equal(viol[8].field, "age");
  assert_string_equal(viol[8].type, "extra_forbidden");
  assert_string_equal(viol[9].field, "job");
  assert_string_equal(viol[9].type, "extra_forbidden");
  /* ...then the absent required features in schema order. */
  assert_viol(&viol[10], "own_telephone", "missing", "Field required");
  assert_viol(&viol[11], "foreign_worker", "missing", "Field required");
  md_model_free(m);
  cm_mem_set_hooks(NULL);
}

/* A value of an unknown kind is the wrong type for either kind of feature. */
static void test_bad_kind(void **state)
{
  const struct gc *g = *state;
  struct md_value v[32];
  struct md_violation viol[NVIOL];
  struct md_prediction pred;
  double scratch[64];
  size_t n, nv;
  md_model *m = load_ok(g->bytes, g->len);

  n = applicant(g, v);
  v[value_at(v, n, "duration")].kind = (enum md_value_kind)9;
  v[value_at(v, n, "job")].kind = (enum md_value_kind)9;
  assert_int_equal(md_model_score(m, v, n, scratch, &pred, viol, NVIOL, &nv), CM_E_INVALID);
  assert_int_equal(nv, 2);
  assert_string_equal(viol[0].type, "float_type");
  assert_string_equal(viol[1].type, "string_type");
  md_model_free(m);
}

/* Three bad fields give three violations at once; max_viol caps what is written, not the count. */
static void test_all_at_once_and_cap(void **state)
{
  const struct gc *g = *state;
  struct md_value v[32];
  struct md_violation viol[4];
  struct md_prediction pred;
  double scratch[64];
  size_t n, nv;
  md_model *m = load_ok(g->bytes, g->len);

  n = applicant(g, v);
  v[value_at(v, n, "duration")] = text("duration", "long");
  v[value_at(v, n, "savings_status")] = text("savings_status", "lots");
  v[value_at(v, n, "age")] = missing("age");
  assert_int_equal(md_model_score(m, v, n, scratch, &pred, viol, 4, &nv), CM_E_INVALID);
  assert_int_equal(nv, 3);
  assert_string_equal(viol[0].field, "duration");
  assert_string_equal(viol[1].field, "savings_status");
  assert_string_equal(viol[1].msg, "Input should be '<100', '100<=X<500', '500<=X<1000', "
                                   "'>=1000' or 'no known savings'");
  assert_string_equal(viol[2].field, "age");
  memset(viol, 0x5a, sizeof viol);
  assert_int_equal(md_model_score(m, v, n, scratch, &pred, viol, 1, &nv), CM_E_INVALID);
  assert_int_equal(nv, 3);
  assert_string_equal(viol[0].field, "duration");
  assert_int_equal((unsigned char)viol[1].field[0], 0x5a); /* untouched */
  assert_int_equal(md_model_score(m, v, n, scratch, &pred, NULL, 0, &nv), CM_E_INVALID);
  assert_int_equal(nv, 3);
  /* Fixed again, it scores; NULL arguments are refused. */
  n = applicant(g, v);
  assert_int_equal(md_model_score(m, v, n, scratch, &pred, NULL, 0, &nv), 0);
  assert_int_equal(nv, 0);
  assert_int_equal(md_model_score(m, v, n, NULL, &pred, NULL, 0, &nv), CM_E_INVALID);
  assert_int_equal(md_model_score(NULL, v, n, scratch, &pred, NULL, 0, &nv), CM_E_INVALID);
  md_model_free(m);
}

/* 10,000 unknown features: every one reported (the first max_viol written), plus the 20
 * required features, quickly. With the 20 real ones too, only the 10,000. */
static void test_many_unknown(void **state)
{
  const struct gc *g = *state;
  enum { N = 10000 };
  struct md_value *v = malloc((N + 20) * sizeof *v);
  char *names = malloc(N * 16);
  struct md_violation viol[NVIOL];
  struct md_prediction pred;
  double scratch[64], t0, ms;
  size_t nv = 0;
  md_model *m = load_ok(g->bytes, g->len);

  for (size_t i = 0; i < N; i++) {
    int len = snprintf(names + i * 16, 16, "extra_%zu", i);
    v[i] = (struct md_value){.name = names + i * 16, .name_len = (size_t)len,
                             .kind = MD_VALUE_NUMBER, .number = 1.0};
  }
  t0 = now_s();
  assert_int_equal(md_model_score(m, v, N, scratch, &pred, viol, NVIOL, &nv), CM_E_INVALID);
  ms = (now_s() - t0) * 1e3;
  assert_int_equal(nv, N + 20);
  assert_string_equal(viol[0].field, "extra_0");
  assert_string_equal(viol[NVIOL - 1].type, "extra_forbidden");
  print_message("10,000 unknown features: %.3f ms\n", ms);
  assert_true(ms < 100.0); /* linear; a quadratic scan would take far longer */
  assert_int_equal(applicant(g, v + N), 20);
  assert_int_equal(md_model_score(m, v, N + 20, scratch, &pred, viol, NVIOL, &nv),
                   CM_E_INVALID);
  assert_int_equal(nv, N);
  free(names);
  free(v);
  md_model_free(m);
}

/* Field names are cut to 255 bytes on a UTF-8 boundary. */
static void test_long_field(void **state)
{
  const struct gc *g = *state;
  char name[400];
  struct md_value v;
  struct md_violation viol[NVIOL];
  struct md_prediction pred;
  double scratch[64];
  size_t nv;
  md_model *m = load_ok(g->bytes, g->len);

  memset(name, 'a', sizeof name);
  memcpy(name + 254, "\xc3\xa9", 2); /* 'é' straddles the cut at 255 */
  v = (struct md_value){.name = name, .name_len = sizeof name, .kind = MD_VALUE_NUMBER};
  assert_int_equal(md_model_score(m, &v, 1, scratch, &pred, viol, NVIOL, &nv), CM_E_INVALID);
  assert_int_equal(strlen(viol[0].field), 254);
  /* Not NUL-terminated names and texts: only name_len / text_len bytes are read. */
  v = (struct md_value){.name = "agex", .name_len = 3, .kind = MD_VALUE_TEXT,
                        .text = "1", .text_len = 1};
  assert_int_equal(md_model_score(m, &v, 1, scratch, &pred, viol, NVIOL, &nv), CM_E_INVALID);
  assert_string_equal(viol[0].field, "age");
  assert_string_equal(viol[0].type, "float_type");
  md_model_free(m);
}

/* Under the ignore policy an unknown category encodes as all zeros; under reject it is "enum". */
static void test_ignore_policy(void **state)
{
  const struct gc *g = *state;
  struct md_value v[32];
  struct md_violation viol[NVIOL];
  struct md_prediction pred;
  double scratch[64], x[64];
  size_t n, nv;
  md_model *ign, *rej;

  cm_mem_set_hooks(&leakcheck);
  ign = load_ok(g->bytes_ignore, g->len_ignore);
  rej = load_ok(g->bytes, g->len);
  cm_mem_set_hooks(NULL);
  n = applicant(g, v);
  v[value_at(v, n, "checking_status")] = text("checking_status", "A14");
  assert_int_equal(md_model_score(ign, v, n, scratch, &pred, viol, NVIOL, &nv), 0);
  assert_int_equal(md_prep_apply(g->p, g->t, g->test[0], x), 0);
  for (size_t j = 0; j < g->d; j++)
    if (strncmp(md_prep_name(g->p, j), "checking_status=", 16) == 0)
      x[j] = 0.0;
  assert_memory_equal(scratch, x, g->d * sizeof *x);
  assert_prediction(&pred, g->p, g->coef, x);
  assert_int_equal(md_model_score(rej, v, n, scratch, &pred, viol, NVIOL, &nv), CM_E_INVALID);
  assert_int_equal(nv, 1);
  assert_string_equal(viol[0].type, "enum");
  /* The policy changes nothing else: a number is still the wrong type. */
  v[value_at(v, n, "checking_status")] = num("checking_status", 1.0);
  assert_int_equal(md_model_score(ign, v, n, scratch, &pred, viol, NVIOL, &nv), CM_E_INVALID);
  assert_string_equal(viol[0].type, "string_type");
  cm_mem_set_hooks(&leakcheck);
  md_model_free(ign);
  md_model_free(rej);
  cm_mem_set_hooks(NULL);
}

/* A small data set with missing cells: a (numeric) and c (categorical) are optional, k is
 * required, e was never seen (all missing, so no prepared column); w and z are declared but
 * unseen. */
static const char small_header[] = "@relation t\n"
                                   "@attribute a numeric\n"
                                   "@attribute c {x, y, z, w}\n"
                                   "@attribute k numeric\n"
                                   "@attribute e {p, q}\n"
                                   "@attribute class {good, bad}\n"
                                   "@data\n";
static const char small_rows[] = "0.1, x, 5, ?, good\n"
                                 "0.3, y, 6, ?, bad\n"
                                 "0.2, x, 7, ?, good\n"
                                 "?, y, 8, ?, bad\n"
                                 "0.4, ?, 9, ?, good\n"
                                 "0.5, x, 1, ?, bad\n"
                                 "0.7, y, 2, ?, good\n";

/* Fits and packs header+rows (target the last column) with prep, coef and the table kept. */
struct small {
  ds_table *t;
  struct md_prep *p;
  double coef[16];
  uint8_t *bytes;
  size_t len;
};

static void small_fit(struct small *s, const char *header, const char *rows, bool ignore)
{
  char text[4096];
  size_t n, d, all[64];
  int y[64];
  double X[64 * 16];
  struct md_scorecard sc;
  struct md_artifact_meta meta = {.model_name = "small", .positive_label = "bad", .C = 1.0,
                                  .max_iter = 100, .unknown_ignore = ignore};
  struct cm_error err;
  char hex[65];
  int target;

  snprintf(text, sizeof text, "%s%s", header, rows);
  assert_int_equal(ds_parse_arff(text, strlen(text), NULL, &s->t, &err), 0);
  n = ds_rows(s->t);
  target = (int)ds_columns(s->t) - 1;
  for (size_t i = 0; i < n; i++)
    all[i] = i;
  assert_int_equal(md_prep_fit(s->t, all, n, target, &s->p, &err), 0);
  d = md_prep_width(s->p);
  assert_true(d < 16);
  assert_int_equal(md_prep_apply_rows(s->p, s->t, all, n, target, 1, X, y, &err), 0);
  assert_int_equal(md_logreg_fit(X, y, n, d, 1.0, 100, 1e-10, NULL, s->coef, NULL, &err), 0);
  md_scorecard_init(&sc);
  assert_int_equal(md_artifact_pack(s->p, s->t, s->coef, d + 1, &sc, &meta, &s->bytes, &s->len,
                                    hex, &err), 0);
}

static void small_free(struct small *s)
{
  cm_free(s->bytes);
  md_prep_free(s->p);
  ds_table_free(s->t);
}

/* Scores v and checks it against query row `row` ("a, c, k, e, class") prepared by the fit. */
static void assert_like_row(md_model *m, const struct small *s, const struct md_value *v,
                            size_t n, const char *row)
{
  char text[1024];
  ds_table *q = NULL;
  struct cm_error err;
  struct md_violation viol[NVIOL];
  struct md_prediction pred;
  double scratch[16], x[16];
  size_t nv = 0;

  snprintf(text, sizeof text, "%s%s\n", small_header, row);
  assert_int_equal(ds_parse_arff(text, strlen(text), NULL, &q, &err), 0);
  assert_int_equal(md_prep_apply(s->p, q, 0, x), 0);
  if (md_model_score(m, v, n, scratch, &pred, viol, NVIOL, &nv))
    fail_msg("%s: %zu violations, first %s %s", row, nv, viol[0].field, viol[0].type);
  assert_memory_equal(scratch, x, md_prep_width(s->p) * sizeof *x);
  assert_prediction(&pred, s->p, s->coef, x);
  ds_table_free(q);
}

static void test_optional_features(void **state)
{
  struct small s = {0};
  struct md_violation viol[NVIOL];
  struct md_prediction pred;
  double scratch[16];
  size_t nv;
  md_model *m;
  const Credito__V1__ModelArtifact *a;

  (void)state;
  cm_mem_set_hooks(&leakcheck);
  small_fit(&s, small_header, small_rows, false);
  assert_int_equal(md_prep_width(s.p), 4); /* a, c=x, c=y, k; e has no column */
  m = load_ok(s.bytes, s.len);
  a = md_model_artifact(m);
  assert_false(a->schema->features[0]->required);
  assert_false(a->schema->features[1]->required);
  assert_true(a->schema->features[2]->required);
  /* Absent optional features are imputed (median, zeros), as '?' cells are. */
  assert_like_row(m, &s, (struct md_value[]){num("k", 5)}, 1, "?, ?, 5, ?, good");
  assert_like_row(m, &s, (struct md_value[]){missing("a"), missing("c"), num("k", 5),
                                             missing("e")}, 4, "?, ?, 5, ?, good");
  assert_like_row(m, &s, (struct md_value[]){num("k", 5), text("c", "y"), num("a", 0.25)}, 3,
                  "0.25, y, 5, ?, good");
  /* Declared but unseen in training: all zeros, like the reference level. */
  assert_like_row(m, &s, (struct md_value[]){num("k", 1), text("c", "w"), text("e", "q")}, 3,
                  "?, w, 1, q, good");
  /* A required feature missing or absent, an undeclared category, a repeated column-less one. */
  assert_int_equal(md_model_score(m, (struct md_value[]){missing("k")}, 1, scratch, &pred, viol,
                                  NVIOL, &nv), CM_E_INVALID);
  assert_int_equal(nv, 1);
  assert_viol(&viol[0], "k", "missing", "Field required");
  assert_int_equal(md_model_score(m, (struct md_value[]){text("c", "v"), text("e", "p"),
                                                         text("e", "q"), text("e", "r")},
                                  4, scratch, &pred, viol, NVIOL, &nv), CM_E_INVALID);
  assert_int_equal(nv, 4);
  assert_viol(&viol[0], "c", "enum", "Input should be 'x', 'y', 'z' or 'w'");
  assert_string_equal(viol[1].type, "extra_forbidden");
  assert_string_equal(viol[1].field, "e");
  assert_string_equal(viol[2].type, "extra_forbidden");
  assert_viol(&viol[3], "k", "missing", "Field required");
  assert_int_equal(md_model_score(m, (struct md_value[]){text("e", "r"), num("k", 1)}, 2,
                                  scratch, &pred, viol, NVIOL, &nv), CM_E_INVALID);
  assert_viol(&viol[0], "e", "enum", "Input should be 'p' or 'q'");
  /* A finite number whose standardised value overflows (std of a < 1) is refused, not scored
   * as inf (an inf term could make the probability NaN). */
  assert_int_equal(md_model_score(m, (struct md_value[]){num("a", 1.7e308), num("k", 1)}, 2,
                                  scratch, &pred, viol, NVIOL, &nv), CM_E_INVALID);
  assert_viol(&viol[0], "a", "finite_number", "Input is too large in magnitude to score");
  md_model_free(m);
  small_free(&s);
  cm_mem_set_hooks(NULL);
}

/* A categorical feature with many long categories: the message lists what fits, whole. */
static void test_enum_message_cut(void **state)
{
  char header[4096], rows[4096];
  size_t hl, rl = 0;
  struct small s = {0};
  struct md_violation viol[NVIOL];
  struct md_prediction pred;
  double scratch[16];
  size_t nv;
  const char *want;
  md_model *m;

  (void)state;
  hl = (size_t)snprintf(header, sizeof header, "@relation t\n@attribute c {");
  for (int k = 0; k < 40; k++)
    hl += (size_t)snprintf(header + hl, sizeof header - hl, "%scategory_%02d", k ? "," : "", k);
  snprintf(header + hl, sizeof header - hl, "}\n@attribute class {good, bad}\n@data\n");
  for (int i = 0; i < 8; i++)
    rl += (size_t)snprintf(rows + rl, sizeof rows - rl, "category_0%d,%s\n", i % 3,
                           i % 2 ? "bad" : "good");
  small_fit(&s, header, rows, false);
  m = load_ok(s.bytes, s.len);
  assert_int_equal(md_model_score(m, (struct md_value[]){text("c", "nope")}, 1, scratch, &pred,
                                  viol, NVIOL, &nv), CM_E_INVALID);
  assert_string_equal(viol[0].type, "enum");
  assert_true(strlen(viol[0].msg) < sizeof viol[0].msg);
  want = "Input should be one of 40 categories: 'category_00', 'category_01', ";
  assert_true(strncmp(viol[0].msg, want, strlen(want)) == 0);
  assert_non_null(strstr(viol[0].msg, "' ..."));
  print_message("cut enum message: %s\n", viol[0].msg);
  md_model_free(m);
  small_free(&s);
}

/* Truncated, flipped and wrong-version bytes: CM_E_CORRUPT (or, for a change that still makes a
 * consistent artifact, a load), never a crash, and *out NULL on failure. */
static void test_corrupt(void **state)
{
  struct small s = {0};
  struct cm_error err;
  md_model *m = NULL;
  uint8_t *copy;
  size_t refused = 0;

  (void)state;
  cm_mem_set_hooks(&leakcheck);
  small_fit(&s, small_header, small_rows, false);
  copy = malloc(s.len);
  for (size_t n = 0; n < s.len; n++) {
    int rc;
    m = (md_model *)&s; /* a stale pointer md_model_load must clear */
    rc = md_model_load(s.bytes, n, &m, &err);
    assert_true(rc == 0 || rc == CM_E_CORRUPT);
    if (rc) {
      assert_null(m);
      assert_int_equal(err.code, CM_E_CORRUPT);
    }
    md_model_free(m);
  }
  assert_int_equal(md_model_load(s.bytes, s.len - 1, &m, &err), CM_E_CORRUPT);
  assert_null(m);
  assert_int_equal(md_model_load(s.bytes, 0, &m, &err), CM_E_CORRUPT);
  for (size_t i = 0; i < s.len; i++) {
    for (int bit = 0; bit < 8; bit += 3) {
      int rc;
      memcpy(copy, s.bytes, s.len);
      copy[i] ^= (uint8_t)(1u << bit);
      rc = md_model_load(copy, s.len, &m, &err);
      assert_true(rc == 0 || rc == CM_E_CORRUPT);
      refused += rc != 0;
      if (rc)
        assert_null(m);
      md_model_free(m);
    }
  }
  print_message("%zu of %zu bit flips refused\n", refused, 3 * s.len);
  assert_true(refused > s.len); /* most flips break it */
  /* format_version is field 1 (tag 0x08), first on the wire. */
  memcpy(copy, s.bytes, s.len);
  assert_int_equal(copy[0], 0x08);
  assert_int_equal(copy[1], MD_ARTIFACT_FORMAT);
  copy[1] = MD_ARTIFACT_FORMAT + 1;
  assert_int_equal(md_model_load(copy, s.len, &m, &err), CM_E_CORRUPT);
  assert_null(m);
  assert_non_null(strstr(err.msg, "format_version"));
  free(copy);
  small_free(&s);
  cm_mem_set_hooks(NULL);
}

/* Re-encodes the small artifact after edit() and expects md_model_load to refuse it with a
 * message holding want, though md_artifact_unpack accepts it. */
static void assert_refused(const struct small *s,
                           void (*edit)(Credito__V1__ModelArtifact *, char **saved),
                           void (*undo)(Credito__V1__ModelArtifact *, char **saved),
                           const char *want)
{
  Credito__V1__ModelArtifact *a = credito__v1__model_artifact__unpack(NULL, s->len, s->bytes);
  char *saved[8];
  uint8_t *b;
  size_t n, ncoef;
  double *coef = NULL;
  struct md_scorecard sc;
  struct cm_error err;
  md_model *m = NULL;

  assert_non_null(a);
  edit(a, saved);
  n = credito__v1__model_artifact__get_packed_size(a);
  b = malloc(n);
  credito__v1__model_artifact__pack(a, b);
  undo(a, saved);
  credito__v1__model_artifact__free_unpacked(a, NULL);
  assert_int_equal(md_artifact_unpack(b, n, &coef, &ncoef, &sc, &err), 0);
  cm_free(coef);
  assert_int_equal(md_model_load(b, n, &m, &err), CM_E_CORRUPT);
  assert_null(m);
  if (!strstr(err.msg, want))
    fail_msg("message '%s' lacks '%s'", err.msg, want);
  free(b);
}

/* Feature k (index 2, one coefficient at 3) renamed "a": two features called "a". */
static void dup_feature(Credito__V1__ModelArtifact *a, char **saved)
{
  saved[0] = a->schema->features[2]->name;
  saved[1] = a->preparation[2]->feature;
  saved[2] = a->logistic_regression->coefficients[3]->name;
  saved[3] = a->logistic_regression->coefficients[3]->feature;
  a->schema->features[2]->name = "a";
  a->preparation[2]->feature = "a";
  a->logistic_regression->coefficients[3]->name = "a";
  a->logistic_regression->coefficients[3]->feature = "a";
}

static void dup_feature_undo(Credito__V1__ModelArtifact *a, char **saved)
{
  a->schema->features[2]->name = saved[0];
  a->preparation[2]->feature = saved[1];
  a->logistic_regression->coefficients[3]->name = saved[2];
  a->logistic_regression->coefficients[3]->feature = saved[3];
}

/* c declares {x, y, x, w}. */
static void dup_category(Credito__V1__ModelArtifact *a, char **saved)
{
  saved[0] = a->schema->features[1]->categories[2];
  a->schema->features[1]->categories[2] = "x";
}

static void dup_category_undo(Credito__V1__ModelArtifact *a, char **saved)
{
  a->schema->features[1]->categories[2] = saved[0];
}

/* c prepares x twice (columns "c=x", "c=x"). */
static void dup_prepared(Credito__V1__ModelArtifact *a, char **saved)
{
  saved[0] = a->preparation[1]->categorical->categories[1];
  saved[1] = a->logistic_regression->coefficients[2]->name;
  saved[2] = a->logistic_regression->coefficients[2]->category;
  a->preparation[1]->categorical->categories[1] = "x";
  a->logistic_regression->coefficients[2]->name = "c=x";
  a->logistic_regression->coefficients[2]->category = "x";
}

static void dup_prepared_undo(Credito__V1__ModelArtifact *a, char **saved)
{
  a->preparation[1]->categorical->categories[1] = saved[0];
  a->logistic_regression->coefficients[2]->name = saved[1];
  a->logistic_regression->coefficients[2]->category = saved[2];
}

static void test_inconsistent(void **state)
{
  struct small s = {0};

  (void)state;
  cm_mem_set_hooks(&leakcheck);
  small_fit(&s, small_header, small_rows, false);
  assert_string_equal(md_prep_name(s.p, 2), "c=y");
  assert_refused(&s, dup_feature, dup_feature_undo, "feature 'a' twice");
  assert_refused(&s, dup_category, dup_category_undo, "category 'x' twice");
  assert_refused(&s, dup_prepared, dup_prepared_undo, "prepares category 'x' twice");
  small_free(&s);
  cm_mem_set_hooks(NULL);
}

/* Fails the n-th allocation of md_model_load for n = 0, 1, ... until it succeeds: every
 * failure is CM_E_NOMEM with *out NULL and nothing leaked (cmocka checks the blocks). */
static void test_allocation_failures(void **state)
{
  const struct gc *g = *state;
  struct md_value v[32];
  struct md_prediction pred;
  double scratch[64];
  struct cm_error err;
  md_model *m = NULL;
  size_t nv;
  long n;
  int rc = -1;

  cm_mem_set_hooks(&leakcheck);
  for (n = 0; n < 100000 && rc != 0; n++) {
    cm_mem_fail_after(n);
    rc = md_model_load(g->bytes, g->len, &m, &err);
    cm_mem_fail_after(-1);
    if (rc) {
      assert_int_equal(rc, CM_E_NOMEM);
      assert_int_equal(err.code, CM_E_NOMEM);
      assert_null(m);
    }
  }
  assert_int_equal(rc, 0);
  assert_true(n > 50);
  print_message("md_model_load survived %ld failing allocations\n", n - 1);
  /* Scoring allocates nothing: it works with every allocation failing. */
  cm_mem_fail_after(0);
  assert_int_equal(md_model_score(m, v, applicant(g, v), scratch, &pred, NULL, 0, &nv), 0);
  cm_mem_fail_after(-1);
  md_model_free(m);
  md_model_free(NULL);
  cm_mem_set_hooks(NULL);
}

/* No features at all: the intercept alone, scored without a scratch row; any value is extra. */
static void test_intercept_only(void **state)
{
  Credito__V1__ModelArtifact a = CREDITO__V1__MODEL_ARTIFACT__INIT;
  Credito__V1__Schema schema = CREDITO__V1__SCHEMA__INIT;
  Credito__V1__LogisticRegression lr = CREDITO__V1__LOGISTIC_REGRESSION__INIT;
  uint8_t bytes[64];
  size_t len, nv;
  struct md_prediction pred;
  struct md_violation viol[NVIOL];
  double coef = -0.75, none = 0.0, p;
  md_model *m;

  (void)state;
  a.format_version = MD_ARTIFACT_FORMAT;
  a.schema = &schema;
  a.logistic_regression = &lr;
  lr.intercept = coef;
  len = credito__v1__model_artifact__pack(&a, bytes);
  cm_mem_set_hooks(&leakcheck);
  m = load_ok(bytes, len);
  assert_int_equal(md_model_width(m), 0);
  assert_int_equal(md_model_score(m, NULL, 0, NULL, &pred, viol, NVIOL, &nv), 0);
  md_logreg_predict(&none, 1, 0, &coef, &p);
  assert_true(same_bits(pred.probability, p));
  assert_int_equal(pred.n_reasons, 0);
  assert_int_equal(md_model_score(m, (struct md_value[]){num("x", 1)}, 1, NULL, &pred, viol,
                                  NVIOL, &nv), CM_E_INVALID);
  assert_viol(&viol[0], "x", "extra_forbidden", "Extra inputs are not permitted");
  md_model_free(m);
  cm_mem_set_hooks(NULL);
}

/* Threads scoring one model at once get what one thread gets. */
struct worker {
  const struct gc *g;
  const md_model *m;
  double p[300];
  size_t n;
};

static void *worker_run(void *arg)
{
  struct worker *w = arg;
  const struct gc *g = w->g;
  struct md_value v[32];
  struct md_prediction pred;
  double scratch[64];

  for (int rep = 0; rep < 20; rep++) {
    for (size_t i = 0; i < w->n; i++) {
      size_t n = row_values(g->t, g->test[i], g->target, v);
      if (md_model_score(w->m, v, n, scratch, &pred, NULL, 0, NULL) != 0)
        return NULL;
      w->p[i] = pred.probability;
    }
  }
  return w;
}

static void test_threads(void **state)
{
  const struct gc *g = *state;
  struct worker w[4];
  pthread_t th[4];
  md_model *m = load_ok(g->bytes, g->len);

  for (int k = 0; k < 4; k++) {
    w[k].g = g;
    w[k].m = m;
    w[k].n = g->ntest < 300 ? g->ntest : 300;
    assert_int_equal(pthread_create(&th[k], NULL, worker_run, &w[k]), 0);
  }
  for (int k = 0; k < 4; k++) {
    void *ret = NULL;
    assert_int_equal(pthread_join(th[k], &ret), 0);
    assert_ptr_equal(ret, &w[k]);
  }
  for (int k = 1; k < 4; k++)
    assert_memory_equal(w[k].p, w[0].p, w[0].n * sizeof w[0].p[0]);
  md_model_free(m);
}

/* md_reason_text against the printf wording it replaces, for numbers on both sides of its
 * integer fast path, texts over the cut (at a UTF-8 boundary), and missing values. */
static void test_reason_text(void **state)
{
  static const double nums[] = {0.0, -0.0, 1.0, -1.0, 6.0, 1169.0, 67.0, 15000.0, 0.5, -2.25,
                                1e14, 999999999999999.0, -999999999999999.0, 1e15, 1e16,
                                123456789012345678.0, 0.1, 1e-300, 1e308, -1e308, 3.0e-5,
                                4503599627370496.5, 2.5e14, 7.000000000000001};
  char got[512], want[512], text[300];
  struct md_value v = {0};
  size_t n;
  (void)state;

  v.kind = MD_VALUE_NUMBER;
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
    v.number = nums[i];
    n = md_reason_text(got, sizeof got, "credit_amount", &v);
    snprintf(want, sizeof want, "credit_amount = %.15g raised the risk of default", nums[i]);
    assert_string_equal(got, want);
    assert_int_equal(n, strlen(want));
  }
  v.kind = MD_VALUE_TEXT;
  v.text = "radio/tv";
  v.text_len = 8;
  md_reason_text(got, sizeof got, "purpose", &v);
  assert_string_equal(got, "purpose = radio/tv raised the risk of default");
  /* 199 ASCII bytes then a 2-byte character across the 200-byte cut: the cut goes before it. */
  memset(text, 'a', 199);
  memcpy(text + 199, "\xc3\xa9xyz", 5);
  v.text = text;
  v.text_len = 204;
  md_reason_text(got, sizeof got, "f", &v);
  snprintf(want, sizeof want, "f = %.199s raised the risk of default", text);
  assert_string_equal(got, want);
  v.text_len = 200; /* exactly at the cap: kept whole */
  memset(text, 'b', 200);
  md_reason_text(got, sizeof got, "f", &v);
  snprintf(want, sizeof want, "f = %.200s raised the risk of default", text);
  assert_string_equal(got, want);
  v.kind = MD_VALUE_MISSING;
  md_reason_text(got, sizeof got, "age", &v);
  assert_string_equal(got, "age (missing) raised the risk of default");
  md_reason_text(got, sizeof got, "age", NULL);
  assert_string_equal(got, "age (missing) raised the risk of default");
  /* Too small a buffer: nothing written but the terminator. */
  assert_int_equal(md_reason_text(got, 20, "age", NULL), 0);
  assert_string_equal(got, "");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_german_credit_identical),
      cmocka_unit_test(test_german_credit_speed),
      cmocka_unit_test(test_violation_types),
      cmocka_unit_test(test_bad_kind),
      cmocka_unit_test(test_all_at_once_and_cap),
      cmocka_unit_test(test_many_unknown),
      cmocka_unit_test(test_long_field),
      cmocka_unit_test(test_ignore_policy),
      cmocka_unit_test(test_optional_features),
      cmocka_unit_test(test_enum_message_cut),
      cmocka_unit_test(test_corrupt),
      cmocka_unit_test(test_inconsistent),
      cmocka_unit_test(test_allocation_failures),
      cmocka_unit_test(test_intercept_only),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_reason_text),
  };
  return cmocka_run_group_tests_name("model_load", tests, gc_setup, gc_teardown);
}
