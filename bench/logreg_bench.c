/* logreg_bench: rows per second of md_logreg_fit on a synthetic table shaped like German Credit
 * after preparation: 7 standardised numeric columns and 13 one-hot categorical features (54
 * columns), so 61 columns with about 20 nonzeros per row. Data and labels are deterministic.
 * Usage: logreg_bench [--rows N] [--coef FILE]  (FILE receives the d+1 coefficients, %.17g) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model.h"

#define NUMERIC     7
#define CATEGORICAL 13

/* Category counts of German Credit's categorical features, in table order (54 in all). */
static const int levels[CATEGORICAL] = {4, 5, 10, 5, 5, 4, 3, 4, 3, 3, 4, 2, 2};

static double now_s(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Uniform in (0, 1) from the top 53 bits. */
static double uniform(uint64_t *s)
{
  return ((double)(md_rand_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* Standard normal by Box-Muller (one of the pair). */
static double normal(uint64_t *s)
{
  double u = uniform(s), v = uniform(s);

  return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Fills row x (d columns) and returns its label drawn from the known model w (d + 1). */
static int row_make(uint64_t *s, double *x, size_t d, const double *w)
{
  size_t col = 0;
  double z = w[d];

  memset(x, 0, d * sizeof *x);
  for (; col < NUMERIC; col++)
    x[col] = normal(s);
  for (int f = 0; f < CATEGORICAL; f++) {
    /* Skewed categories, as real ones are: the first level is the most common. */
    double u = uniform(s);
    int k = (int)(levels[f] * u * u);
    x[col + (size_t)k] = 1.0;
    col += (size_t)levels[f];
  }
  for (size_t j = 0; j < d; j++)
    z += w[j] * x[j];
  return uniform(s) < 1.0 / (1.0 + exp(-z));
}

static size_t width(void)
{
  size_t d = NUMERIC;

  for (int f = 0; f < CATEGORICAL; f++)
    d += (size_t)levels[f];
  return d;
}

static int coef_write(const char *path, const double *coef, size_t m)
{
  FILE *f = fopen(path, "w");

  if (!f)
    return -1;
  for (size_t j = 0; j < m; j++)
    fprintf(f, "%.17g\n", coef[j]);
  return fclose(f);
}

/* FNV-1a over the coefficients' bytes: equal hashes mean bit-identical results. */
static uint64_t coef_hash(const double *coef, size_t m)
{
  const unsigned char *p = (const unsigned char *)coef;
  uint64_t h = 1469598103934665603ULL;

  for (size_t i = 0; i < m * sizeof *coef; i++)
    h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

int main(int argc, char **argv)
{
  size_t n = 1000000, d = width();
  const char *coef_path = NULL;
  uint64_t s = 20261201;

  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--rows") == 0)
      n = strtoull(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--coef") == 0)
      coef_path = argv[i + 1];
  }
  if (argc % 2 == 0 || n == 0) {
    fprintf(stderr, "usage: logreg_bench [--rows N] [--coef FILE]\n");
    return 2;
  }

  double *X = malloc(n * d * sizeof *X), *w = malloc((d + 1) * sizeof *w);
  double *coef = malloc((d + 1) * sizeof *coef);
  int *y = malloc(n * sizeof *y);
  if (!X || !w || !coef || !y) {
    fprintf(stderr, "logreg_bench: out of memory for %zu rows\n", n);
    return 1;
  }
  for (size_t j = 0; j <= d; j++)
    w[j] = 0.8 * normal(&s);
  for (size_t i = 0; i < n; i++)
    y[i] = row_make(&s, X + i * d, d, w);

  struct md_fit_info info = {0};
  struct cm_error err;
  double t0 = now_s();
  int rc = md_logreg_fit(X, y, n, d, 1.0, 100, 1e-4, NULL, coef, &info, &err);
  double secs = now_s() - t0;
  if (rc) {
    fprintf(stderr, "logreg_bench: fit failed: %s\n", err.msg);
    return 1;
  }
  printf("rows %zu  cols %zu  cpus %ld  iterations %d  converged %d  loss %.17g\n", n, d,
         sysconf(_SC_NPROCESSORS_ONLN), info.iterations, info.converged, info.loss);
  printf("seconds %.3f  rows/s %.0f  coef_hash %016llx\n", secs, (double)n / secs,
         (unsigned long long)coef_hash(coef, d + 1));
  if (coef_path && coef_write(coef_path, coef, d + 1)) {
    fprintf(stderr, "logreg_bench: cannot write %s\n", coef_path);
    return 1;
  }
  free(X);
  free(w);
  free(coef);
  free(y);
  return 0;
}
