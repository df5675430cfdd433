/* model/metrics: evaluation of scores against 0/1 labels, matching scikit-learn's definitions
 * (roc_auc_score, log_loss, brier_score_loss, confusion matrix) plus KS and PSI. */
#include <math.h>
#include <stdlib.h>

#include "mem.h"
#include "model.h"

/* A score with its label, for sorting. */
struct scored {
  double s;
  int y;
};

static int cmp_scored(const void *a, const void *b)
{
  double x = ((const struct scored *)a)->s, y = ((const struct scored *)b)->s;
  return (x > y) - (x < y);
}

/* Sorted copy of (score, y) ascending, or NULL on allocation failure. */
static struct scored *scored_sort(const double *score, const int *y, size_t n)
{
  struct scored *v = cm_calloc(n ? n : 1, sizeof *v);
  if (!v)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    v[i].s = score[i];
    v[i].y = y[i] != 0;
  }
  qsort(v, n, sizeof *v, cmp_scored);
  return v;
}

double md_roc_auc(const double *score, const int *y, size_t n)
{
  struct scored *v = scored_sort(score, y, n);
  double rank_sum = 0.0, npos = 0.0, nneg;
  if (!v)
    return NAN;
  /* Mann-Whitney: sum of the positives' ranks, tied scores sharing their average rank. */
  for (size_t i = 0; i < n;) {
    size_t j = i, pos = 0;
    while (j < n && v[j].s == v[i].s)
      pos += (size_t)v[j++].y;
    rank_sum += (double)pos * 0.5 * (double)(i + 1 + j);
    npos += (double)pos;
    i = j;
  }
  cm_free(v);
  nneg = (double)n - npos;
  if (npos == 0.0 || nneg == 0.0)
    return NAN;
  return (rank_sum - npos * (npos + 1.0) / 2.0) / (npos * nneg);
}

double md_gini(const double *score, const int *y, size_t n)
{
  return 2.0 * md_roc_auc(score, y, n) - 1.0;
}

double md_ks(const double *score, const int *y, size_t n)
{
  struct scored *v = scored_sort(score, y, n);
  double npos = 0.0, nneg, tp = 0.0, fp = 0.0, ks = 0.0;
  if (!v)
    return NAN;
  for (size_t i = 0; i < n; i++)
    npos += v[i].y;
  nneg = (double)n - npos;
  /* Lower the threshold from the top score down, one tie group at a time. */
  for (size_t i = n; i > 0;) {
    size_t j = i;
    while (j > 0 && v[j - 1].s == v[i - 1].s) {
      j--;
      tp += v[j].y;
      fp += !v[j].y;
    }
    if (npos > 0.0 && nneg > 0.0 && fabs(tp / npos - fp / nneg) > ks)
      ks = fabs(tp / npos - fp / nneg);
    i = j;
  }
  cm_free(v);
  return npos == 0.0 || nneg == 0.0 ? NAN : ks;
}

double md_log_loss(const double *p, const int *y, size_t n)
{
  const double eps = 1e-15;
  double sum = 0.0;
  if (n == 0)
    return NAN;
  for (size_t i = 0; i < n; i++) {
    double q = p[i] < eps ? eps : p[i] > 1.0 - eps ? 1.0 - eps : p[i];
    sum -= y[i] ? log(q) : log1p(-q);
  }
  return sum / (double)n;
}

double md_brier(const double *p, const int *y, size_t n)
{
  double sum = 0.0;
  if (n == 0)
    return NAN;
  for (size_t i = 0; i < n; i++) {
    double e = p[i] - (y[i] ? 1.0 : 0.0);
    sum += e * e;
  }
  return sum / (double)n;
}

void md_confusion_at(const double *p, const int *y, size_t n, double threshold,
                     struct md_confusion *out)
{
  struct md_confusion c = {0};
  double tp, fp, fn;
  for (size_t i = 0; i < n; i++) {
    int pred = p[i] >= threshold;
    if (pred && y[i])
      c.tp++;
    else if (pred)
      c.fp++;
    else if (y[i])
      c.fn++;
    else
      c.tn++;
  }
  tp = (double)c.tp;
  fp = (double)c.fp;
  fn = (double)c.fn;
  c.accuracy = n ? (double)(c.tp + c.tn) / (double)n : 0.0;
  c.precision = c.tp + c.fp ? tp / (tp + fp) : 0.0;
  c.recall = c.tp + c.fn ? tp / (tp + fn) : 0.0;
  c.f1 = c.precision + c.recall > 0.0
             ? 2.0 * c.precision * c.recall / (c.precision + c.recall)
             : 0.0;
  *out = c;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Bin of v: the number of cut points strictly below it (cuts ascending). */
static size_t psi_bin(const double *cuts, size_t ncuts, double v)
{
  size_t k = 0;
  while (k < ncuts && cuts[k] < v)
    k++;
  return k;
}

static double psi_fraction(size_t count, size_t total)
{
  return count ? (double)count / (double)total : MD_PSI_EPSILON;
}

int md_psi(const double *expected, size_t n, const double *actual, size_t m, double *psi,
           struct cm_error *err)
{
  double cuts[9], sum = 0.0, *sorted = NULL;
  size_t ce[10] = {0}, ca[10] = {0};
  int rc = 0;

  if (!expected || !actual || n == 0 || m == 0) {
    rc = cm_error_set(err, CM_E_INVALID, "psi: both distributions need values");
    goto out;
  }
  sorted = cm_calloc(n, sizeof *sorted);
  if (!sorted) {
    rc = cm_error_set(err, CM_E_NOMEM, "psi: out of memory");
    goto out;
  }
  for (size_t i = 0; i < n; i++)
    sorted[i] = expected[i];
  qsort(sorted, n, sizeof *sorted, cmp_double);
  for (size_t k = 1; k <= 9; k++) {
    double pos = (double)(n - 1) * (double)k / 10.0;
    size_t lo = (size_t)pos;
    double frac = pos - (double)lo;
    cuts[k - 1] = lo + 1 < n ? sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]) : sorted[lo];
  }
  for (size_t i = 0; i < n; i++)
    ce[psi_bin(cuts, 9, expected[i])]++;
  for (size_t i = 0; i < m; i++)
    ca[psi_bin(cuts, 9, actual[i])]++;
  for (size_t k = 0; k < 10; k++) {
    double e = psi_fraction(ce[k], n), a = psi_fraction(ca[k], m);
    sum += (a - e) * log(a / e);
  }
  *psi = sum;
out:
  cm_free(sorted);
  return rc;
}
