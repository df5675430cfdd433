/* model/logreg: L2 logistic regression with scikit-learn's objective
 * 0.5*||w||^2 + C*sum(logloss), intercept not penalised, solved exactly by Newton's method with a
 * Cholesky factorisation of the (d+1)x(d+1) Hessian and step halving. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "mem.h"
#include "model.h"

/* log(1 + exp(z)) without overflow. */
static double softplus(double z)
{
  return (z > 0 ? z : 0.0) + log1p(exp(-fabs(z)));
}

static double sigmoid(double z)
{
  if (z >= 0)
    return 1.0 / (1.0 + exp(-z));
  double e = exp(z);
  return e / (1.0 + e);
}

static double margin(const double *x, size_t d, const double *coef)
{
  double z = coef[d];
  for (size_t j = 0; j < d; j++)
    z += x[j] * coef[j];
  return z;
}

double md_logreg_loss(const double *X, const int *y, size_t n, size_t d, double C,
                      const double *coef, double *grad)
{
  double reg = 0.0, sum = 0.0;
  if (grad) {
    memcpy(grad, coef, d * sizeof *grad);
    grad[d] = 0.0;
  }
  for (size_t j = 0; j < d; j++)
    reg += coef[j] * coef[j];
  for (size_t i = 0; i < n; i++) {
    const double *x = X + i * d;
    double z = margin(x, d, coef);
    sum += softplus(z) - (y[i] ? z : 0.0);
    if (grad) {
      double r = C * (sigmoid(z) - (double)y[i]);
      for (size_t j = 0; j < d; j++)
        grad[j] += r * x[j];
      grad[d] += r;
    }
  }
  return 0.5 * reg + C * sum;
}

void md_logreg_predict(const double *X, size_t n, size_t d, const double *coef, double *p)
{
  for (size_t i = 0; i < n; i++)
    p[i] = sigmoid(margin(X + i * d, d, coef));
}

/* H = diag(1,..,1,0) + C * sum_i p_i(1-p_i) [x_i 1][x_i 1]^T, lower triangle only; m = d+1. */
static void hessian(const double *X, size_t n, size_t d, double C, const double *coef,
                    double *H)
{
  size_t m = d + 1;
  memset(H, 0, m * m * sizeof *H);
  for (size_t i = 0; i < n; i++) {
    const double *x = X + i * d;
    double p = sigmoid(margin(x, d, coef)), w = C * p * (1.0 - p);
    for (size_t a = 0; a < d; a++) {
      double wa = w * x[a];
      double *row = H + a * m;
      for (size_t b = 0; b <= a; b++)
        row[b] += wa * x[b];
    }
    for (size_t b = 0; b < d; b++)
      H[d * m + b] += w * x[b];
    H[d * m + d] += w;
  }
  for (size_t j = 0; j < d; j++)
    H[j * m + j] += 1.0;
}

/* In-place Cholesky of the lower triangle of A (m x m) plus ridge on the diagonal, into L.
 * Returns 0, or -1 when not positive definite. */
static int cholesky(const double *A, size_t m, double ridge, double *L)
{
  for (size_t i = 0; i < m; i++) {
    for (size_t j = 0; j <= i; j++) {
      double s = A[i * m + j] + (i == j ? ridge : 0.0);
      for (size_t k = 0; k < j; k++)
        s -= L[i * m + k] * L[j * m + k];
      if (i == j) {
        if (!(s > 0.0))
          return -1;
        L[i * m + i] = sqrt(s);
      } else {
        L[i * m + j] = s / L[j * m + j];
      }
    }
  }
  return 0;
}

/* Solves L L^T s = -g for s. */
static void cholesky_solve(const double *L, size_t m, const double *g, double *s)
{
  for (size_t i = 0; i < m; i++) {
    double v = -g[i];
    for (size_t k = 0; k < i; k++)
      v -= L[i * m + k] * s[k];
    s[i] = v / L[i * m + i];
  }
  for (size_t i = m; i-- > 0;) {
    double v = s[i];
    for (size_t k = i + 1; k < m; k++)
      v -= L[k * m + i] * s[k];
    s[i] = v / L[i * m + i];
  }
}

static double max_abs(const double *v, size_t m)
{
  double r = 0.0;
  for (size_t i = 0; i < m; i++)
    r = fabs(v[i]) > r ? fabs(v[i]) : r;
  return r;
}

/* Newton direction into s: factorises H (work L), adding a growing ridge if needed. */
static int newton_direction(const double *H, size_t m, const double *g, double *L, double *s)
{
  double ridge = 0.0;
  while (cholesky(H, m, ridge, L)) {
    ridge = ridge == 0.0 ? 1e-10 * (1.0 + max_abs(H, m * m)) : ridge * 10.0;
    if (!isfinite(ridge))
      return -1;
  }
  cholesky_solve(L, m, g, s);
  return 0;
}

static int fit_args_check(const double *X, const int *y, size_t n, size_t d, double C,
                          const double *warm, struct cm_error *err)
{
  if (!X || !y || n == 0 || !(C > 0.0) || !isfinite(C))
    return cm_error_set(err, CM_E_INVALID, "logreg: need rows and a finite C > 0");
  for (size_t i = 0; i < n; i++)
    if (y[i] != 0 && y[i] != 1)
      return cm_error_set(err, CM_E_INVALID, "logreg: label %d at row %zu is not 0/1", y[i], i);
  for (size_t i = 0; i < n * d; i++)
    if (!isfinite(X[i]))
      return cm_error_set(err, CM_E_INVALID, "logreg: non-finite value at row %zu", i / d);
  for (size_t j = 0; warm && j <= d; j++)
    if (!isfinite(warm[j]))
      return cm_error_set(err, CM_E_INVALID, "logreg: non-finite warm start");
  return 0;
}

/* Work arrays of one fit, all (d+1) or (d+1)^2 doubles. */
struct newton {
  double *H, *L, *g, *s, *trial;
};

/* Backtracking line search along s from coef (objective f, gradient g); on success moves coef
 * and updates *f and g. Returns 0, or -1 when no step decreases the objective. */
static int line_search(const double *X, const int *y, size_t n, size_t d, double C,
                       double *coef, double *f, struct newton *w)
{
  size_t m = d + 1;
  double gs = 0.0;
  for (size_t j = 0; j < m; j++)
    gs += w->g[j] * w->s[j];
  for (double t = 1.0; t > 1e-12; t *= 0.5) {
    double ft;
    for (size_t j = 0; j < m; j++)
      w->trial[j] = coef[j] + t * w->s[j];
    ft = md_logreg_loss(X, y, n, d, C, w->trial, NULL);
    /* Armijo, with slack for rounding once the decrease is below the objective's precision. */
    if (ft <= *f + 1e-4 * t * gs + 8 * DBL_EPSILON * fabs(*f)) {
      memcpy(coef, w->trial, m * sizeof *coef);
      *f = md_logreg_loss(X, y, n, d, C, coef, w->g);
      return 0;
    }
  }
  return -1;
}

static void newton_run(const double *X, const int *y, size_t n, size_t d, double C,
                       int max_iter, double tol, double *coef, struct newton *w,
                       struct md_fit_info *info)
{
  size_t m = d + 1;
  double scale = C * (double)n;
  double f = md_logreg_loss(X, y, n, d, C, coef, w->g);
  int it = 0;
  if (info->on_progress)
    info->on_progress(info->ctx, 0, f);
  while (max_abs(w->g, m) > tol * scale && it < max_iter) {
    hessian(X, n, d, C, coef, w->H);
    if (newton_direction(w->H, m, w->g, w->L, w->s) ||
        line_search(X, y, n, d, C, coef, &f, w))
      break;
    it++;
    if (info->on_progress)
      info->on_progress(info->ctx, it, f);
  }
  info->iterations = it;
  info->loss = f;
  info->grad_max = max_abs(w->g, m) / scale;
  info->converged = info->grad_max <= tol;
}

int md_logreg_fit(const double *X, const int *y, size_t n, size_t d, double C, int max_iter,
                  double tol, const double *warm_start, double *coef_out,
                  struct md_fit_info *info, struct cm_error *err)
{
  struct md_fit_info local = {0};
  struct newton w = {0};
  size_t m = d + 1;
  int rc;

  if (!info)
    info = &local;
  rc = fit_args_check(X, y, n, d, C, warm_start, err);
  if (rc)
    goto out;
  w.H = cm_calloc(m * m, sizeof *w.H);
  w.L = cm_calloc(m * m, sizeof *w.L);
  w.g = cm_calloc(m, sizeof *w.g);
  w.s = cm_calloc(m, sizeof *w.s);
  w.trial = cm_calloc(m, sizeof *w.trial);
  if (!w.H || !w.L || !w.g || !w.s || !w.trial) {
    rc = cm_error_set(err, CM_E_NOMEM, "logreg: out of memory for %zu features", d);
    goto out;
  }
  if (warm_start)
    memcpy(coef_out, warm_start, m * sizeof *coef_out);
  else
    memset(coef_out, 0, m * sizeof *coef_out);
  newton_run(X, y, n, d, C, max_iter, tol, coef_out, &w, info);
out:
  cm_free(w.H);
  cm_free(w.L);
  cm_free(w.g);
  cm_free(w.s);
  cm_free(w.trial);
  return rc;
}
