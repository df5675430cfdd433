/* model_bench: applicants per second of md_model_score on German Credit. Fits the preparation
 * and the model on every row of an ARFF file, packs and loads the artifact, then scores every row
 * from named values (as a predictor request carries them) for about --seconds, in schema order
 * and shuffled (best of 5 rounds); also times the parts (md_logreg_predict and md_reasons on
 * the prepared rows).
 * Usage: model_bench [ARFF] [--seconds S]   (ARFF defaults to data/raw/credit-g.arff) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mem.h"
#include "model.h"

static double now_s(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *file_read(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  long n;

  if (!f)
    return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
      buf[n] = '\0';
      *len = (size_t)n;
    } else {
      free(buf);
      buf = NULL;
    }
  }
  fclose(f);
  return buf;
}

/* Prep and fit on every row, then pack: the artifact bytes (cm_free) and the prepared rows. */
static int train(const ds_table *t, int target, int positive, struct md_prep **p, double **X,
                 double **coef, uint8_t **bytes, size_t *len)
{
  size_t n = ds_rows(t), d, *rows = malloc(n * sizeof *rows);
  int *y = malloc(n * sizeof *y), rc;
  struct md_scorecard sc;
  struct md_artifact_meta meta = {.model_name = "bench", .positive_label = "bad", .C = 1.0};
  struct cm_error err;
  char hex[65];

  for (size_t i = 0; i < n; i++)
    rows[i] = i;
  rc = md_prep_fit(t, rows, n, target, p, &err);
  if (rc)
    goto out;
  d = md_prep_width(*p);
  *X = malloc(n * d * sizeof **X);
  *coef = malloc((d + 1) * sizeof **coef);
  md_scorecard_init(&sc);
  rc = md_prep_apply_rows(*p, t, rows, n, target, positive, *X, y, &err);
  if (!rc)
    rc = md_logreg_fit(*X, y, n, d, 1.0, 100, 1e-8, NULL, *coef, NULL, &err);
  if (!rc)
    rc = md_artifact_pack(*p, t, *coef, d + 1, &sc, &meta, bytes, len, hex, &err);
out:
  if (rc)
    fprintf(stderr, "model_bench: %s\n", err.msg);
  free(y);
  free(rows);
  return rc;
}

/* The named values of every row (features only), nf per row. */
static struct md_value *values_make(const ds_table *t, int target, size_t nf)
{
  size_t n = ds_rows(t);
  struct md_value *v = calloc(n * nf, sizeof *v);

  for (size_t r = 0; r < n; r++) {
    struct md_value *x = v + r * nf;
    for (size_t c = 0; c < ds_columns(t); c++) {
      const struct ds_column *col = ds_column_at(t, c);
      int k;
      if ((int)c == target)
        continue;
      x->name = col->name;
      x->name_len = strlen(col->name);
      if (col->kind == DS_NUMERIC) {
        x->number = ds_number(t, r, c);
        x->kind = isnan(x->number) ? MD_VALUE_MISSING : MD_VALUE_NUMBER;
      } else {
        k = ds_category(t, r, c);
        x->kind = k < 0 ? MD_VALUE_MISSING : MD_VALUE_TEXT;
        x->text = k < 0 ? NULL : col->categories[k];
        x->text_len = k < 0 ? 0 : strlen(x->text);
      }
      x++;
    }
  }
  return v;
}

/* Scores every row repeatedly in 5 rounds of secs / 5; returns the best round's ns per row
 * (other processes on the machine only ever slow a round down). */
static double time_score(const md_model *m, const struct md_value *v, size_t n, size_t nf,
                         double secs)
{
  struct md_prediction pred;
  double scratch[4096], best = INFINITY, sum = 0.0;
  size_t nv;

  for (int round = 0; round < 5; round++) {
    double t0 = now_s(), dt;
    size_t done = 0;
    do {
      for (size_t r = 0; r < n; r++) {
        if (md_model_score(m, v + r * nf, nf, scratch, &pred, NULL, 0, &nv) != 0)
          return NAN;
        sum += pred.probability;
      }
      done += n;
      dt = now_s() - t0;
    } while (dt < secs / 5);
    best = fmin(best, dt / (double)done * 1e9);
  }
  return sum > 0 ? best : NAN;
}

int main(int argc, char **argv)
{
  const char *path = "data/raw/credit-g.arff";
  double secs = 1.0, *X = NULL, *coef = NULL, ns, t0, sum = 0.0;
  size_t len = 0, blen = 0, n, nf, d, reps = 200;
  char *text;
  ds_table *t = NULL;
  struct md_prep *p = NULL;
  uint8_t *bytes = NULL;
  md_model *m = NULL;
  struct md_value *v, *shuffled;
  struct cm_error err;
  int target, positive;
  uint64_t seed = 7;

  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
      secs = strtod(argv[++i], NULL);
    else
      path = argv[i];
  }
  text = file_read(path, &len);
  if (!text || ds_parse(text, len, NULL, NULL, &t, &err) ||
      ds_schema_infer_target(t, NULL, NULL, &target, &positive, &err) ||
      train(t, target, positive, &p, &X, &coef, &bytes, &blen) ||
      md_model_load(bytes, blen, &m, &err)) {
    fprintf(stderr, "model_bench: cannot read, train on or load %s\n", path);
    return 1;
  }
  n = ds_rows(t);
  nf = ds_columns(t) - 1;
  d = md_model_width(m);
  if (d > 4096)
    return 1;
  v = values_make(t, target, nf);
  shuffled = malloc(n * nf * sizeof *shuffled);
  memcpy(shuffled, v, n * nf * sizeof *v);
  for (size_t r = 0; r < n; r++) {
    struct md_value *x = shuffled + r * nf;
    for (size_t i = nf - 1; i > 0; i--) {
      size_t j = (size_t)(md_rand_next(&seed) % (i + 1));
      struct md_value tmp = x[i];
      x[i] = x[j];
      x[j] = tmp;
    }
  }
  printf("%s: %zu rows, %zu features, %zu prepared columns, artifact %zu bytes\n", path, n, nf,
         d, blen);
  ns = time_score(m, v, n, nf, secs);
  printf("md_model_score, schema order: %.0f rows/s, %.0f ns/row\n", 1e9 / ns, ns);
  ns = time_score(m, shuffled, n, nf, secs);
  printf("md_model_score, shuffled:     %.0f rows/s, %.0f ns/row\n", 1e9 / ns, ns);
  /* Parts: what md_model_score adds to the trainer's own per-row work. */
  t0 = now_s();
  for (size_t k = 0; k < reps; k++) {
    for (size_t r = 0; r < n; r++) {
      double prob;
      md_logreg_predict(X + r * d, 1, d, coef, &prob);
      sum += prob;
    }
  }
  printf("  of which md_logreg_predict: %.0f ns/row\n", (now_s() - t0) / (double)(reps * n) * 1e9);
  t0 = now_s();
  for (size_t k = 0; k < reps; k++) {
    for (size_t r = 0; r < n; r++) {
      struct md_reason rs[MD_REASONS_MAX];
      size_t nr;
      md_reasons(p, coef, X + r * d, MD_REASONS_MAX, rs, &nr);
      sum += (double)nr;
    }
  }
  printf("  of which md_reasons:        %.0f ns/row (checksum %.1f)\n",
         (now_s() - t0) / (double)(reps * n) * 1e9, sum);
  md_model_free(m);
  free(shuffled);
  free(v);
  cm_free(bytes);
  free(coef);
  free(X);
  md_prep_free(p);
  ds_table_free(t);
  free(text);
  return 0;
}
