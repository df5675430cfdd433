/* model_tool: test helper for the scikit-learn parity check. Reads an ARFF/CSV file, prepares
 * every row, fits L2 logistic regression and prints one JSON object on stdout: names, the
 * prepared matrix X, labels y, coef, intercept, probabilities p, our metrics and fit info.
 * Usage: model_tool FILE [C]  (C defaults to 1.0) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "dataset.h"
#include "harness.h"
#include "mem.h"
#include "model.h"

static void print_array(const char *key, const double *v, size_t n)
{
  printf("\"%s\":[", key);
  for (size_t i = 0; i < n; i++)
    printf("%s%.17g", i ? "," : "", v[i]);
  printf("],\n");
}

/* Names are "column=category"; ARFF categories here hold no quote or backslash. */
static void print_output(const struct md_prep *p, const double *X, const int *y, size_t n,
                         const double *coef, const double *prob, const struct md_fit_info *info,
                         double seconds)
{
  size_t d = md_prep_width(p);
  printf("{\"names\":[");
  for (size_t j = 0; j < d; j++)
    printf("%s\"%s\"", j ? "," : "", md_prep_name(p, j));
  printf("],\n\"X\":[");
  for (size_t i = 0; i < n; i++) {
    printf("%s[", i ? ",\n" : "");
    for (size_t j = 0; j < d; j++)
      printf("%s%.17g", j ? "," : "", X[i * d + j]);
    printf("]");
  }
  printf("],\n\"y\":[");
  for (size_t i = 0; i < n; i++)
    printf("%s%d", i ? "," : "", y[i]);
  printf("],\n");
  print_array("coef", coef, d);
  print_array("p", prob, n);
  printf("\"intercept\":%.17g,\"auc\":%.17g,\"log_loss\":%.17g,\"brier\":%.17g,\n",
         coef[d], md_roc_auc(prob, y, n), md_log_loss(prob, y, n), md_brier(prob, y, n));
  printf("\"iterations\":%d,\"converged\":%d,\"grad_max\":%.17g,\"seconds\":%.9f}\n",
         info->iterations, info->converged, info->grad_max, seconds);
}

int main(int argc, char **argv)
{
  size_t len = 0, n, d, *rows = NULL;
  char *text = NULL;
  ds_table *t = NULL;
  struct md_prep *p = NULL;
  struct md_fit_info info = {0};
  struct cm_error err = {0};
  struct timespec t0, t1;
  int target, positive, *y = NULL, rc = 1;
  double C = argc > 2 ? strtod(argv[2], NULL) : 1.0, *X = NULL, *coef = NULL, *prob = NULL;

  text = argc > 1 ? harness_file_read(argv[1], &len) : NULL;
  if (!text || ds_parse(text, len, NULL, NULL, &t, &err) ||
      ds_schema_infer_target(t, NULL, NULL, &target, &positive, &err))
    goto out;
  n = ds_rows(t);
  rows = malloc(n * sizeof *rows);
  for (size_t i = 0; rows && i < n; i++)
    rows[i] = i;
  if (!rows || md_prep_fit(t, rows, n, target, &p, &err))
    goto out;
  d = md_prep_width(p);
  X = malloc(n * d * sizeof *X);
  y = malloc(n * sizeof *y);
  coef = malloc((d + 1) * sizeof *coef);
  prob = malloc(n * sizeof *prob);
  if (!X || !y || !coef || !prob ||
      md_prep_apply_rows(p, t, rows, n, target, positive, X, y, &err))
    goto out;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (md_logreg_fit(X, y, n, d, C, 200, 1e-12, NULL, coef, &info, &err))
    goto out;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  md_logreg_predict(X, n, d, coef, prob);
  print_output(p, X, y, n, coef, prob, &info,
               (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
  rc = 0;
out:
  if (rc)
    fprintf(stderr, "model_tool: %s\n", text ? err.msg : "usage: model_tool FILE [C]");
  free(prob);
  free(coef);
  free(y);
  free(X);
  free(rows);
  md_prep_free(p);
  ds_table_free(t);
  free(text);
  return rc;
}
