/* model/prep: feature preparation fitted on training rows (median imputation and
 * standardisation of numeric columns, one-hot of the categories seen in training), applied to
 * any row of a table with the same columns. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "model.h"
#include "model_int.h"

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median of the non-missing values of col over rows; 0 when all are missing. tmp holds n. */
static double column_median(const double *v, const size_t *rows, size_t n, double *tmp)
{
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (!isnan(v[rows[i]]))
      tmp[m++] = v[rows[i]];
  if (m == 0)
    return 0.0;
  qsort(tmp, m, sizeof *tmp, cmp_double);
  return m % 2 ? tmp[m / 2] : 0.5 * (tmp[m / 2 - 1] + tmp[m / 2]);
}

static void numeric_fit(struct md_feature *f, const double *v, const size_t *rows, size_t n,
                        double *tmp)
{
  double sum = 0.0, ss = 0.0, lo = INFINITY, hi = -INFINITY;
  f->median = column_median(v, rows, n, tmp);
  f->mode = -1;
  for (size_t i = 0; i < n; i++) {
    double x = isnan(v[rows[i]]) ? f->median : v[rows[i]];
    f->had_missing |= isnan(v[rows[i]]);
    sum += x;
    lo = x < lo ? x : lo;
    hi = x > hi ? x : hi;
  }
  f->mean = sum / (double)n;
  for (size_t i = 0; i < n; i++) {
    double x = isnan(v[rows[i]]) ? f->median : v[rows[i]];
    ss += (x - f->mean) * (x - f->mean);
  }
  /* Compare min and max rather than std with 0: rounding in the mean leaves a constant
   * column a tiny nonzero std that would blow its (meaningless) values up. */
  f->std = lo == hi ? 1.0 : sqrt(ss / (double)n);
}

/* Marks the categories seen in rows, counts them into *seen, and finds the most frequent. */
static int categorical_fit(struct md_feature *f, const struct ds_column *c, const int *codes,
                           const size_t *rows, size_t n, size_t *seen)
{
  size_t *count;
  f->n_levels = c->n_categories;
  f->level = cm_calloc(f->n_levels ? f->n_levels : 1, sizeof *f->level);
  count = cm_calloc(f->n_levels ? f->n_levels : 1, sizeof *count);
  if (!f->level || !count) {
    cm_free(count);
    return CM_E_NOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    int k = codes ? codes[rows[i]] : -1;
    if (k >= 0 && (size_t)k < f->n_levels)
      count[k]++;
    else
      f->had_missing = true;
  }
  *seen = 0;
  f->mode = -1;
  for (size_t k = 0; k < f->n_levels; k++) {
    f->level[k] = count[k] ? (int)(*seen)++ : -1;
    if (count[k] && (f->mode < 0 || count[k] > count[f->mode]))
      f->mode = (int)k;
  }
  cm_free(count);
  return 0;
}

/* Allocates and fills names and source for every prepared value. */
static int prep_names(struct md_prep *p, const ds_table *t)
{
  p->names = cm_calloc(p->width ? p->width : 1, sizeof *p->names);
  p->source = cm_calloc(p->width ? p->width : 1, sizeof *p->source);
  if (!p->names || !p->source)
    return CM_E_NOMEM;
  for (size_t i = 0; i < p->n_features; i++) {
    const struct md_feature *f = &p->features[i];
    const struct ds_column *c = ds_column_at(t, f->col);
    if (f->kind == DS_NUMERIC) {
      p->source[f->offset] = (int)f->col;
      p->names[f->offset] = cm_strdup(c->name);
      if (!p->names[f->offset])
        return CM_E_NOMEM;
      continue;
    }
    for (size_t k = 0; k < f->n_levels; k++) {
      size_t j;
      char *s;
      size_t len;
      if (f->level[k] < 0)
        continue;
      j = f->offset + (size_t)f->level[k];
      len = strlen(c->name) + strlen(c->categories[k]) + 2;
      s = cm_malloc(len);
      if (!s)
        return CM_E_NOMEM;
      snprintf(s, len, "%s=%s", c->name, c->categories[k]);
      p->names[j] = s;
      p->source[j] = (int)f->col;
    }
  }
  return 0;
}

/* Fits every feature; the caller has allocated p->features. */
static int prep_fit_features(struct md_prep *p, const ds_table *t, const size_t *rows, size_t n,
                             int target_col, double *tmp)
{
  size_t fi = 0;
  for (size_t c = 0; c < p->n_columns; c++) {
    const struct ds_column *col = ds_column_at(t, c);
    struct md_feature *f;
    size_t seen = 1;
    if ((int)c == target_col)
      continue;
    f = &p->features[fi++];
    f->col = c;
    f->kind = col->kind;
    f->offset = p->width;
    if (col->kind == DS_NUMERIC) {
      numeric_fit(f, ds_column_numbers(t, c), rows, n, tmp);
    } else if (categorical_fit(f, col, ds_column_codes(t, c), rows, n, &seen)) {
      return CM_E_NOMEM;
    }
    p->width += seen;
  }
  return 0;
}

int md_prep_fit(const ds_table *t, const size_t *rows, size_t n, int target_col,
                struct md_prep **out, struct cm_error *err)
{
  struct md_prep *p = NULL;
  double *tmp = NULL;
  int rc = 0;

  *out = NULL;
  if (!t || !rows || n == 0 || target_col < 0 || (size_t)target_col >= ds_columns(t)) {
    rc = cm_error_set(err, CM_E_INVALID, "prep: need rows and a target column in range");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    if (rows[i] >= ds_rows(t)) {
      rc = cm_error_set(err, CM_E_INVALID, "prep: row %zu out of range", rows[i]);
      goto out;
    }
  }
  p = cm_calloc(1, sizeof *p);
  tmp = cm_calloc(n, sizeof *tmp);
  if (!p || !tmp)
    goto nomem;
  p->n_columns = ds_columns(t);
  p->n_features = p->n_columns - 1;
  p->features = cm_calloc(p->n_features ? p->n_features : 1, sizeof *p->features);
  if (!p->features || prep_fit_features(p, t, rows, n, target_col, tmp) || prep_names(p, t))
    goto nomem;
  *out = p;
  p = NULL;
  goto out;
nomem:
  rc = cm_error_set(err, CM_E_NOMEM, "prep: out of memory");
out:
  cm_free(tmp);
  md_prep_free(p);
  return rc;
}

void md_prep_free(struct md_prep *p)
{
  if (!p)
    return;
  for (size_t i = 0; p->features && i < p->n_features; i++)
    cm_free(p->features[i].level);
  for (size_t j = 0; p->names && j < p->width; j++)
    cm_free(p->names[j]);
  cm_free(p->features);
  cm_free(p->names);
  cm_free(p->source);
  cm_free(p);
}

size_t md_prep_width(const struct md_prep *p) { return p->width; }

const char *md_prep_name(const struct md_prep *p, size_t j)
{
  return j < p->width ? p->names[j] : NULL;
}

int md_prep_source_column(const struct md_prep *p, size_t j)
{
  return j < p->width ? p->source[j] : -1;
}

int md_prep_apply(const struct md_prep *p, const ds_table *t, size_t row, double *x)
{
  if (ds_columns(t) != p->n_columns || row >= ds_rows(t))
    return CM_E_INVALID;
  memset(x, 0, p->width * sizeof *x);
  for (size_t i = 0; i < p->n_features; i++) {
    const struct md_feature *f = &p->features[i];
    const struct ds_column *c = ds_column_at(t, f->col);
    if (c->kind != f->kind)
      return CM_E_INVALID;
    if (f->kind == DS_NUMERIC) {
      double v = ds_number(t, row, f->col);
      x[f->offset] = ((isnan(v) ? f->median : v) - f->mean) / f->std;
    } else {
      int k = ds_category(t, row, f->col);
      /* Missing (-1), unseen in training (level -1) or beyond the fitted categories: zeros. */
      if (k >= 0 && (size_t)k < f->n_levels && f->level[k] >= 0)
        x[f->offset + (size_t)f->level[k]] = 1.0;
    }
  }
  return 0;
}

int md_prep_apply_rows(const struct md_prep *p, const ds_table *t, const size_t *rows, size_t n,
                       int target_col, int positive_index, double *X, int *y,
                       struct cm_error *err)
{
  for (size_t i = 0; i < n; i++) {
    int k;
    if (md_prep_apply(p, t, rows[i], X + i * p->width))
      return cm_error_set(err, CM_E_INVALID, "prep: row %zu does not match the fitted columns",
                          rows[i]);
    k = ds_category(t, rows[i], (size_t)target_col);
    if (k < 0)
      return cm_error_set(err, CM_E_INVALID, "prep: row %zu has no target value", rows[i]);
    y[i] = k == positive_index;
  }
  return 0;
}
