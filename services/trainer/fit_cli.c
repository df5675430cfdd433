/* fit_cli: `credito-trainer fit`, the trainer run once on a local file with no service and no
 * registry (scripts, dvc.yaml stages, benchmarks). Writes the artifact, the metrics, the
 * processed matrix and the hold-out scores into --out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "config.h"
#include "fit_cli.h"
#include "mem.h"
#include "train.h"

static const char *const fit_summary =
    "train once on a local ARFF or CSV file (no service, no registry); writes model.pb,\n"
    "metrics.json, coefficients.csv, processed.csv and test_scores.csv into --out";

static double seconds_since(const struct timespec *t0)
{
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Reads path whole (at most max bytes) into *out (cm_free). */
static int file_read(const char *path, size_t max, char **out, size_t *len,
                     struct cm_error *err)
{
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  long n;
  if (!f)
    return cm_error_set(err, CM_E_IO, "cannot open %s: %s", path, strerror(errno));
  if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
    fclose(f);
    return cm_error_set(err, CM_E_IO, "cannot read %s", path);
  }
  if ((size_t)n > max) {
    fclose(f);
    return cm_error_set(err, CM_E_TOOLARGE, "%s is %ld bytes, over the cap of %zu "
                        "(--max-dataset)", path, n, max);
  }
  buf = cm_malloc((size_t)n + 1);
  if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
    fclose(f);
    cm_free(buf);
    return cm_error_set(err, buf ? CM_E_IO : CM_E_NOMEM, "cannot read %s", path);
  }
  fclose(f);
  buf[n] = '\0';
  *out = buf;
  *len = (size_t)n;
  return 0;
}

static int file_write(const char *dir, const char *name, const void *p, size_t n,
                      struct cm_error *err)
{
  char path[4096];
  FILE *f;
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
    return cm_error_set(err, CM_E_IO, "cannot write %s", path);
  return 0;
}

/* metrics.json: {"final": {key: value}, "series": [{key, step, value}]} */
static int metrics_write(const trn_job *job, const char *dir, struct cm_error *err)
{
  char path[4096];
  size_t n, nf;
  const struct trn_metric *m = trn_job_metrics(job, &n);
  struct md_metric *fm = NULL;
  FILE *f;
  if (trn_job_final_metrics(job, &fm, &nf))
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  snprintf(path, sizeof(path), "%s/metrics.json", dir);
  f = fopen(path, "w");
  if (f) {
    fprintf(f, "{\"final\": {");
    for (size_t i = 0; i < nf; i++)
      fprintf(f, "%s\n  \"%s\": %.17g", i ? "," : "", fm[i].key, fm[i].value);
    fprintf(f, "\n}, \"series\": [");
    for (size_t i = 0; i < n; i++)
      fprintf(f, "%s\n  {\"key\": \"%s\", \"step\": %lld, \"value\": %.17g}", i ? "," : "",
              m[i].key, (long long)m[i].step, m[i].value);
    fprintf(f, "\n]}\n");
  }
  cm_free(fm);
  if (!f || fclose(f) != 0)
    return cm_error_set(err, CM_E_IO, "cannot write %s", path);
  return 0;
}

/* coefficients.csv: prepared column name and weight, then "(intercept)". */
static int coef_write(const trn_job *job, const char *dir, struct cm_error *err)
{
  char path[4096];
  const struct md_prep *p = trn_job_prep(job);
  const double *w = trn_job_coef(job);
  size_t d = md_prep_width(p);
  FILE *f;
  snprintf(path, sizeof(path), "%s/coefficients.csv", dir);
  f = fopen(path, "w");
  if (f) {
    fprintf(f, "name,value\n");
    for (size_t j = 0; j < d; j++)
      fprintf(f, "\"%s\",%.17g\n", md_prep_name(p, j), w[j]);
    fprintf(f, "(intercept),%.17g\n", w[d]);
  }
  if (!f || fclose(f) != 0)
    return cm_error_set(err, CM_E_IO, "cannot write %s", path);
  return 0;
}

/* test_scores.csv: data row (1-based, in file order) and probability of default. */
static int scores_write(const trn_job *job, const char *dir, struct cm_error *err)
{
  char path[4096];
  const size_t *rows;
  size_t n;
  const double *p = trn_job_test_scores(job, &rows, &n);
  FILE *f;
  snprintf(path, sizeof(path), "%s/test_scores.csv", dir);
  f = fopen(path, "w");
  if (f) {
    fprintf(f, "row,probability\n");
    for (size_t i = 0; i < n; i++)
      fprintf(f, "%zu,%.17g\n", rows[i] + 1, p[i]);
  }
  if (!f || fclose(f) != 0)
    return cm_error_set(err, CM_E_IO, "cannot write %s", path);
  return 0;
}

enum {
  O_FORMAT, O_TARGET, O_POSITIVE, O_C, O_MAX_ITER, O_TOL, O_UNKNOWN, O_TEST_FRACTION, O_CV_FOLDS,
  O_SEED, O_PDO, O_BASE_SCORE, O_BASE_ODDS, O_THRESHOLD, O_MODEL, O_OUT, O_NO_PROCESSED,
  O_MAX_DATASET, O_N
};

static double opt_double(const struct cm_opt *o, double def, int *bad)
{
  char *end = NULL;
  double v;
  if (!o->value)
    return def;
  errno = 0;
  v = strtod(o->value, &end);
  if (!o->value[0] || *end || errno)
    *bad = 1;
  return v;
}

/* Flags to params; CM_E_INVALID naming the flag. */
static int fit_params(struct cm_opt *o, struct trn_params *p, struct cm_error *err)
{
  const int keys[] = {O_C, O_MAX_ITER, O_TOL, O_UNKNOWN};
  const char *names[] = {"C", "max_iter", "tol", "unknown_category"};
  int bad = 0, rc = 0;
  long folds = 5, seed = 0;

  for (size_t i = 0; !rc && i < 4; i++)
    if (o[keys[i]].value)
      rc = trn_params_set(p, names[i], o[keys[i]].value, err);
  rc = rc ? rc : cm_opt_int(o, O_N, "cv-folds", 1, 20, &folds, err);
  rc = rc ? rc : cm_opt_int(o, O_N, "seed", 0, 0x7fffffffL, &seed, err);
  if (rc)
    return rc;
  p->cv_folds = (int)folds;
  p->seed = (uint64_t)seed;
  p->test_fraction = opt_double(&o[O_TEST_FRACTION], 0.2, &bad);
  p->no_holdout = p->test_fraction == 0;
  p->sc.pdo = opt_double(&o[O_PDO], p->sc.pdo, &bad);
  p->sc.base_score = opt_double(&o[O_BASE_SCORE], p->sc.base_score, &bad);
  p->sc.base_odds = opt_double(&o[O_BASE_ODDS], p->sc.base_odds, &bad);
  p->sc.threshold = opt_double(&o[O_THRESHOLD], p->sc.threshold, &bad);
  if (bad)
    return cm_error_set(err, CM_E_INVALID, "--test-fraction, --pdo, --base-score, --base-odds "
                        "and --threshold take numbers");
  p->target = o[O_TARGET].value ? cm_strdup(o[O_TARGET].value) : NULL;
  p->positive = o[O_POSITIVE].value ? cm_strdup(o[O_POSITIVE].value) : NULL;
  return trn_params_check(p, err);
}

static void on_iter(void *ctx, int it, double loss)
{
  (void)ctx;
  fprintf(stderr, "fit: iteration %d, loss %.10g\n", it, loss);
}

/* Runs every stage and writes the outputs; prints timings to stderr. */
static int fit_run(trn_job *job, const char *text, size_t len, struct cm_opt *o,
                   struct cm_error *err)
{
  const char *dir = o[O_OUT].value;
  struct md_artifact_meta meta = {0};
  struct timespec t0;
  uint8_t *art = NULL;
  size_t alen = 0, plen;
  char sha[65];
  const char *processed;
  double t_load, t_prep, t_fit, t_eval, t_cv;
  int rc;

  clock_gettime(CLOCK_MONOTONIC, &t0);
  rc = trn_job_load(job, text, len, o[O_FORMAT].value, err);
  t_load = seconds_since(&t0);
  rc = rc ? rc : trn_job_prepare(job, !cm_opt_bool(o, O_N, "no-processed"), err);
  t_prep = seconds_since(&t0);
  rc = rc ? rc : trn_job_fit(job, NULL, on_iter, NULL, err);
  t_fit = seconds_since(&t0);
  rc = rc ? rc : trn_job_evaluate(job, err);
  t_eval = seconds_since(&t0);
  rc = rc ? rc : trn_job_cross_validate(job, NULL, NULL, err);
  t_cv = seconds_since(&t0);
  meta.model_name = o[O_MODEL].value;
  meta.trainer_version = CREDITO_TRAINER_VERSION;
  rc = rc ? rc : trn_job_pack(job, &meta, &art, &alen, sha, err);
  if (!rc && mkdir(dir, 0777) && errno != EEXIST)
    rc = cm_error_set(err, CM_E_IO, "cannot create %s: %s", dir, strerror(errno));
  rc = rc ? rc : file_write(dir, "model.pb", art, alen, err);
  rc = rc ? rc : metrics_write(job, dir, err);
  rc = rc ? rc : scores_write(job, dir, err);
  rc = rc ? rc : coef_write(job, dir, err);
  processed = rc ? NULL : trn_job_processed(job, &plen);
  if (!rc && processed)
    rc = file_write(dir, "processed.csv", processed, plen, err);
  cm_free(art);
  if (!rc)
    fprintf(stderr, "fit: load %.3f s, prepare %.3f s, fit %.3f s, evaluate %.3f s, "
            "cross-validate %.3f s\n", t_load, t_prep - t_load, t_fit - t_prep,
            t_eval - t_fit, t_cv - t_eval);
  if (!rc)
    printf("%s/model.pb sha256 %s\n", dir, sha);
  return rc;
}

int fit_cli_main(int argc, char **argv)
{
  struct cm_opt o[O_N] = {
      [O_FORMAT] = {"format", NULL, NULL, "arff or csv (default: sniffed)", false, NULL, false},
      [O_TARGET] = {"target", NULL, NULL, "target column (default: class, else the last)",
                    false, NULL, false},
      [O_POSITIVE] = {"positive", NULL, NULL, "target value meaning default (default: bad)",
                      false, NULL, false},
      [O_C] = {"C", NULL, NULL, "inverse regularisation strength (default 1)", false, NULL,
               false},
      [O_MAX_ITER] = {"max-iter", NULL, NULL, "solver iteration cap (default 100)", false, NULL,
                      false},
      [O_TOL] = {"tol", NULL, NULL, "gradient tolerance (default 1e-4)", false, NULL, false},
      [O_UNKNOWN] = {"unknown-category", NULL, NULL, "reject or ignore (default reject)", false,
                     NULL, false},
      [O_TEST_FRACTION] = {"test-fraction", NULL, "0.2", "hold-out share; 0 fits on every row",
                           false, NULL, false},
      [O_CV_FOLDS] = {"cv-folds", NULL, "5", "k-fold AUC folds, 1 for none", false, NULL, false},
      [O_SEED] = {"seed", NULL, "0", "split and fold seed", false, NULL, false},
      [O_PDO] = {"pdo", NULL, NULL, "scorecard points to double the odds (20)", false, NULL,
                 false},
      [O_BASE_SCORE] = {"base-score", NULL, NULL, "points at the base odds (600)", false, NULL,
                        false},
      [O_BASE_ODDS] = {"base-odds", NULL, NULL, "good:bad base odds (50)", false, NULL, false},
      [O_THRESHOLD] = {"threshold", NULL, NULL, "decline at this probability (0.5)", false,
                       NULL, false},
      [O_MODEL] = {"model-name", NULL, "credit-default", "model name in the artifact", false,
                   NULL, false},
      [O_OUT] = {"out", NULL, "model", "output folder", false, NULL, false},
      [O_NO_PROCESSED] = {"no-processed", NULL, NULL, "do not write processed.csv", true, NULL,
                          false},
      [O_MAX_DATASET] = {"max-dataset", NULL, "268435456", "largest input file in bytes", false,
                         NULL, false},
  };
  struct trn_params params;
  struct cm_error err;
  trn_job *job = NULL;
  char *text = NULL;
  size_t len = 0;
  long max = 0;
  int first = 0, rc;

  cm_error_clear(&err);
  trn_params_init(&params);
  rc = cm_config_parse(o, O_N, argc, argv, &first, &err);
  if (rc == 1) {
    cm_config_usage(stdout, "credito-trainer fit FILE", fit_summary, o, O_N);
    return 0;
  }
  if (!rc && first != argc - 1)
    rc = cm_error_set(&err, CM_E_INVALID, "usage: credito-trainer fit FILE [flags]");
  rc = rc ? rc : cm_opt_int(o, O_N, "max-dataset", 1, 1L << 40, &max, &err);
  rc = rc ? rc : fit_params(o, &params, &err);
  rc = rc ? rc : file_read(argv[first], (size_t)max, &text, &len, &err);
  job = rc ? NULL : trn_job_new(&params);
  if (!rc && !job)
    rc = cm_error_set(&err, CM_E_NOMEM, "out of memory");
  rc = rc ? rc : fit_run(job, text, len, o, &err);
  if (rc)
    fprintf(stderr, "credito-trainer fit: %s: %s\n", cm_code_name(rc), err.msg);
  trn_job_free(job);
  trn_params_cleanup(&params);
  cm_free(text);
  return rc ? (rc == CM_E_INVALID || rc == CM_E_FAILED_PRECONDITION ? 2 : 1) : 0;
}
