/* model/logreg: L2 logistic regression with scikit-learn's objective
 * 0.5*||w||^2 + C*sum(logloss), intercept not penalised, solved exactly by Newton's method with a
 * Cholesky factorisation of the (d+1)x(d+1) Hessian and step halving. The fit's passes over the
 * rows skip zero values (one-hot columns) and run on a few threads, with results that do not
 * depend on the number of threads. */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "mem.h"
#include "model.h"

/* A pass splits the rows into chunks of at least CHUNK_ROWS_MIN rows, at most CHUNKS_MAX of
 * them and at most PARTIALS_BYTES_MAX of partial sums; the split depends on n and d only, and the
 * partials are added in chunk order, so every bit of the result is the same on any thread count. */
#define CHUNK_ROWS_MIN     4096
#define CHUNKS_MAX         64
#define PARTIALS_BYTES_MAX ((size_t)64 << 20)

/* Fewer rows than this run on the calling thread only: starting threads would cost more. */
#define THREADED_ROWS_MIN 20000
#define THREADS_MAX       8

/* 8-byte entries per 64-byte cache line. Data that different threads write (their scratch, their
 * chunks' partials) stays a line apart: sharing a line would make the cores fight over it. */
#define LINE 8

/* What a pass over the rows sums (bits). */
enum { PASS_LOSS = 1, PASS_GRAD = 2, PASS_HESS = 4 };

/* log(1 + exp(z)) without overflow, given e = exp(-|z|). */
static double softplus_e(double z, double e)
{
  return (z > 0 ? z : 0.0) + log1p(e);
}

/* 1 / (1 + exp(-z)) without overflow, given e = exp(-|z|). */
static double sigmoid_e(double z, double e)
{
  return z >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
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
    double z = margin(x, d, coef), e = exp(-fabs(z));
    sum += softplus_e(z, e) - (y[i] ? z : 0.0);
    if (grad) {
      double r = C * (sigmoid_e(z, e) - (double)y[i]);
      for (size_t j = 0; j < d; j++)
        grad[j] += r * x[j];
      grad[d] += r;
    }
  }
  return 0.5 * reg + C * sum;
}

void md_logreg_predict(const double *X, size_t n, size_t d, const double *coef, double *p)
{
  for (size_t i = 0; i < n; i++) {
    double z = margin(X + i * d, d, coef);
    p[i] = sigmoid_e(z, exp(-fabs(z)));
  }
}

/* One fit's data, row split and work arrays. During a pass each thread reads it and writes only
 * its own chunks' partials and its own idx/val rows. m = d + 1 below. */
struct fit {
  const double *X;    /* n x d, row-major (borrowed) */
  const int *y;       /* n labels 0/1 (borrowed) */
  size_t n, d;        /* rows, columns */
  double C;           /* inverse regularisation strength */
  size_t nchunks;     /* row chunks of a pass (from n and d only) */
  size_t nthreads;    /* threads of a pass, the caller's included; <= nchunks */
  size_t tri;         /* doubles of the packed Hessian triangle, m(m+1)/2 */
  size_t stride;      /* doubles per chunk partial: loss, gradient (m), triangle, padding */
  double *part;       /* nchunks * stride partials; the sums land in chunk 0's */
  size_t spacing;     /* entries per thread in idx and val: d and padding */
  size_t *idx;        /* per thread, the nonzero columns of the current row */
  double *val;        /* per thread, their values */
  double *H, *L;      /* Hessian (lower triangle) and its Cholesky factor, m * m */
  double *g, *s;      /* gradient and Newton step, m */
  double *trial, *gt; /* line-search point and its gradient, m */
};

/* Gathers the nonzero values of x (d of them) into idx/val in column order; returns the count.
 * Branch-free: one-hot rows mix zeros and ones too irregularly for the branch predictor. */
static size_t row_nonzeros(const double *x, size_t d, size_t *idx, double *val)
{
  size_t k = 0;
  for (size_t j = 0; j < d; j++) {
    idx[k] = j;
    val[k] = x[j];
    k += x[j] != 0.0;
  }
  return k;
}

/* g[idx[t]] += r * val[t] over the row's nonzeros, and r to the intercept g[d]. */
static void grad_add(double *g, size_t d, double r, const size_t *idx, const double *val, size_t k)
{
  for (size_t t = 0; t < k; t++)
    g[idx[t]] += r * val[t];
  g[d] += r;
}

/* Adds w [x 1][x 1]^T to the packed lower triangle T (row a at a*(a+1)/2) over the nonzero pairs
 * of x only: a zero adds nothing, so this equals the dense update. A dense row (k == d) skips
 * the index loads. */
static void tri_add(double *T, size_t d, double w, const size_t *idx, const double *val, size_t k)
{
  double *last = T + d * (d + 1) / 2;
  for (size_t a = 0; a < k; a++) {
    double wa = w * val[a];
    double *row = T + idx[a] * (idx[a] + 1) / 2;
    if (k == d)
      for (size_t b = 0; b <= a; b++)
        row[b] += wa * val[b];
    else
      for (size_t b = 0; b <= a; b++)
        row[idx[b]] += wa * val[b];
  }
  for (size_t b = 0; b < k; b++)
    last[idx[b]] += w * val[b];
  last[d] += w;
}

/* Adds row i's terms at coef to the partial at sum: what asks for the loss (sum[0]), the
 * gradient (sum[1..m]) and the Hessian triangle (after them). The arithmetic is
 * md_logreg_loss's, term for term. idx/val are the calling thread's scratch. */
static void row_add(const struct fit *f, const double *coef, int what, size_t i, size_t *idx,
                    double *val, double *sum)
{
  size_t d = f->d, k = row_nonzeros(f->X + i * d, d, idx, val);
  double z = coef[d], e, p;

  for (size_t t = 0; t < k; t++)
    z += val[t] * coef[idx[t]];
  e = exp(-fabs(z));
  p = sigmoid_e(z, e);
  if (what & PASS_LOSS)
    sum[0] += softplus_e(z, e) - (f->y[i] ? z : 0.0);
  if (what & PASS_GRAD)
    grad_add(sum + 1, d, f->C * (p - (double)f->y[i]), idx, val, k);
  if (what & PASS_HESS)
    tri_add(sum + d + 2, d, f->C * p * (1.0 - p), idx, val, k);
}

/* Sums what is asked for over chunk c's rows into its partial. Chunk 0 starts the gradient from
 * the penalty's (coef, 0), so one chunk repeats the serial sums exactly. */
static void chunk_run(const struct fit *f, const double *coef, int what, size_t c, size_t *idx,
                      double *val)
{
  size_t d = f->d, lo = f->n * c / f->nchunks, hi = f->n * (c + 1) / f->nchunks;
  double *sum = f->part + c * f->stride;

  if (what & (PASS_LOSS | PASS_GRAD))
    memset(sum, 0, (d + 2) * sizeof *sum);
  if (what & PASS_HESS)
    memset(sum + d + 2, 0, f->tri * sizeof *sum);
  if (c == 0 && (what & PASS_GRAD))
    memcpy(sum + 1, coef, d * sizeof *sum);
  for (size_t i = lo; i < hi; i++)
    row_add(f, coef, what, i, idx, val, sum);
}

/* One thread's share of a pass: chunks [c0, c1). */
struct worker {
  const struct fit *f; /* borrowed */
  const double *coef;  /* point evaluated, borrowed */
  int what;            /* PASS_* bits */
  size_t c0, c1;       /* chunk range */
  size_t *idx;         /* this thread's scratch in f->idx */
  double *val;         /* and in f->val */
  pthread_t th;        /* valid once started */
};

static void *worker_main(void *arg)
{
  struct worker *w = arg;
  for (size_t c = w->c0; c < w->c1; c++)
    chunk_run(w->f, w->coef, w->what, c, w->idx, w->val);
  return NULL;
}

/* Adds the partials of chunks 1.. to chunk 0's over doubles [off, off + len), in chunk order. */
static void partials_reduce(const struct fit *f, size_t off, size_t len)
{
  double *acc = f->part + off;
  for (size_t c = 1; c < f->nchunks; c++) {
    const double *p = f->part + c * f->stride + off;
    for (size_t j = 0; j < len; j++)
      acc[j] += p[j];
  }
}

/* Runs a pass at coef on f->nthreads threads (this one included) and leaves the sums in chunk
 * 0's partial. Threads live for one pass: starting one costs tens of microseconds against
 * milliseconds of rows. A thread that cannot start leaves its chunks to this one: slower, the
 * same result. */
static void pass_run(const struct fit *f, const double *coef, int what)
{
  struct worker wk[THREADS_MAX] = {0};
  size_t nt = f->nthreads, started = 0;

  for (size_t t = 0; t < nt; t++)
    wk[t] = (struct worker){.f = f,
                            .coef = coef,
                            .what = what,
                            .c0 = f->nchunks * t / nt,
                            .c1 = f->nchunks * (t + 1) / nt,
                            .idx = f->idx + t * f->spacing,
                            .val = f->val + t * f->spacing};
  while (started + 1 < nt &&
         pthread_create(&wk[started + 1].th, NULL, worker_main, &wk[started + 1]) == 0)
    started++;
  worker_main(&wk[0]);
  for (size_t t = started + 1; t < nt; t++)
    worker_main(&wk[t]);
  for (size_t t = 1; t <= started; t++)
    pthread_join(wk[t].th, NULL);
  if (what & (PASS_LOSS | PASS_GRAD))
    partials_reduce(f, 0, f->d + 2);
  if (what & PASS_HESS)
    partials_reduce(f, f->d + 2, f->tri);
}

/* md_logreg_loss at coef over f's rows, by a pass; grad (m doubles, or NULL) gets the gradient. */
static double fit_loss(const struct fit *f, const double *coef, double *grad)
{
  double reg = 0.0;

  pass_run(f, coef, PASS_LOSS | (grad ? PASS_GRAD : 0));
  for (size_t j = 0; j < f->d; j++)
    reg += coef[j] * coef[j];
  if (grad)
    memcpy(grad, f->part + 1, (f->d + 1) * sizeof *grad);
  return 0.5 * reg + f->C * f->part[0];
}

/* f->H = diag(1,..,1,0) + C * sum_i p_i(1-p_i) [x_i 1][x_i 1]^T at coef, lower triangle only. */
static void fit_hessian(const struct fit *f, const double *coef)
{
  size_t m = f->d + 1;
  const double *T = f->part + m + 1;

  pass_run(f, coef, PASS_HESS);
  for (size_t a = 0; a < m; a++)
    memcpy(f->H + a * m, T + a * (a + 1) / 2, (a + 1) * sizeof *f->H);
  for (size_t j = 0; j < f->d; j++)
    f->H[j * m + j] += 1.0;
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

/* k rounded up to whole cache lines, plus one line of gap. */
static size_t line_padded(size_t k)
{
  return (k + LINE - 1) / LINE * LINE + LINE;
}

/* Chooses f's row split, thread count and array layout from n, d and the online CPUs. */
static void fit_plan(struct fit *f)
{
  size_t m = f->d + 1, most;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);

  f->tri = m * (m + 1) / 2;
  f->stride = line_padded(1 + m + f->tri);
  f->spacing = line_padded(f->d);
  most = PARTIALS_BYTES_MAX / (sizeof(double) * f->stride);
  f->nchunks = f->n / CHUNK_ROWS_MIN;
  f->nchunks = f->nchunks < CHUNKS_MAX ? f->nchunks : CHUNKS_MAX;
  f->nchunks = f->nchunks < most ? f->nchunks : most;
  f->nchunks = f->nchunks ? f->nchunks : 1;
  f->nthreads = 1;
  if (f->n >= THREADED_ROWS_MIN && cpus > 1)
    f->nthreads = (size_t)cpus < THREADS_MAX ? (size_t)cpus : THREADS_MAX;
  f->nthreads = f->nthreads < f->nchunks ? f->nthreads : f->nchunks;
}

/* Allocates f's work arrays after fit_plan. Returns 0 or -1 (fit_free still frees). */
static int fit_alloc(struct fit *f)
{
  size_t m = f->d + 1;

  f->part = cm_calloc(f->nchunks * f->stride, sizeof *f->part);
  f->idx = cm_calloc(f->nthreads * f->spacing, sizeof *f->idx);
  f->val = cm_calloc(f->nthreads * f->spacing, sizeof *f->val);
  f->H = cm_calloc(m * m, sizeof *f->H);
  f->L = cm_calloc(m * m, sizeof *f->L);
  f->g = cm_calloc(m, sizeof *f->g);
  f->s = cm_calloc(m, sizeof *f->s);
  f->trial = cm_calloc(m, sizeof *f->trial);
  f->gt = cm_calloc(m, sizeof *f->gt);
  if (!f->part || !f->idx || !f->val || !f->H || !f->L || !f->g || !f->s || !f->trial || !f->gt)
    return -1;
  return 0;
}

static void fit_free(struct fit *f)
{
  cm_free(f->part);
  cm_free(f->idx);
  cm_free(f->val);
  cm_free(f->H);
  cm_free(f->L);
  cm_free(f->g);
  cm_free(f->s);
  cm_free(f->trial);
  cm_free(f->gt);
}

/* Backtracking line search along f->s from coef (objective *obj, gradient f->g); on success
 * moves coef and updates *obj and f->g. Each trial's pass sums its gradient too, so the accepted
 * point (nearly always the full step) needs no second pass. Returns 0, or -1 when no step
 * decreases the objective. */
static int line_search(struct fit *f, double *coef, double *obj)
{
  size_t m = f->d + 1;
  double gs = 0.0;
  for (size_t j = 0; j < m; j++)
    gs += f->g[j] * f->s[j];
  for (double t = 1.0; t > 1e-12; t *= 0.5) {
    double ft;
    for (size_t j = 0; j < m; j++)
      f->trial[j] = coef[j] + t * f->s[j];
    ft = fit_loss(f, f->trial, f->gt);
    /* Armijo, with slack for rounding once the decrease is below the objective's precision. */
    if (ft <= *obj + 1e-4 * t * gs + 8 * DBL_EPSILON * fabs(*obj)) {
      memcpy(coef, f->trial, m * sizeof *coef);
      memcpy(f->g, f->gt, m * sizeof *f->g);
      *obj = ft;
      return 0;
    }
  }
  return -1;
}

static void newton_run(struct fit *f, int max_iter, double tol, double *coef,
                       struct md_fit_info *info)
{
  size_t m = f->d + 1;
  double scale = f->C * (double)f->n;
  double obj = fit_loss(f, coef, f->g);
  int it = 0;
  if (info->on_progress)
    info->on_progress(info->ctx, 0, obj);
  while (max_abs(f->g, m) > tol * scale && it < max_iter) {
    fit_hessian(f, coef);
    if (newton_direction(f->H, m, f->g, f->L, f->s) || line_search(f, coef, &obj))
      break;
    it++;
    if (info->on_progress)
      info->on_progress(info->ctx, it, obj);
  }
  info->iterations = it;
  info->loss = obj;
  info->grad_max = max_abs(f->g, m) / scale;
  info->converged = info->grad_max <= tol;
}

int md_logreg_fit(const double *X, const int *y, size_t n, size_t d, double C, int max_iter,
                  double tol, const double *warm_start, double *coef_out,
                  struct md_fit_info *info, struct cm_error *err)
{
  struct md_fit_info local = {0};
  struct fit f = {.X = X, .y = y, .n = n, .d = d, .C = C};
  size_t m = d + 1;
  int rc;

  if (!info)
    info = &local;
  rc = fit_args_check(X, y, n, d, C, warm_start, err);
  if (rc)
    goto out;
  fit_plan(&f);
  if (fit_alloc(&f)) {
    rc = cm_error_set(err, CM_E_NOMEM, "logreg: out of memory for %zu features", d);
    goto out;
  }
  if (warm_start)
    memcpy(coef_out, warm_start, m * sizeof *coef_out);
  else
    memset(coef_out, 0, m * sizeof *coef_out);
  newton_run(&f, max_iter, tol, coef_out, info);
out:
  fit_free(&f);
  return rc;
}
