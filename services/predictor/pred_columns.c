/* pred_columns: PredictBatch by columns. The request's shape is checked once per column, then
 * each row becomes md_values that point into the columns (no copy, no per-row message) and is
 * scored by md_model_score exactly as a row of the row form is; the rows are split into
 * contiguous ranges over a few threads, each with its own scratch and arena. Scores go into
 * packed arrays; reasons are written four slots a row and compacted at the end. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "credito/v1/model.pb-c.h"
#include "pred_int.h"

/* One checked column. */
struct col {
  const char *name;
  size_t name_len;
  const double *numbers;   /* or NULL */
  const uint32_t *codes;   /* or NULL */
  const char *const *cats; /* codes' texts */
  size_t *cat_len;         /* their lengths */
  const uint32_t *missing; /* ascending row indexes */
  size_t n_missing;
};

/* One thread's share: rows [r0, r1). */
struct part {
  const md_model *model;
  const struct col *cols;
  size_t n_cols, r0, r1;
  Credito__V1__ScoredColumns *out; /* shared arrays; each part writes its own rows */
  cm_arena *a;                     /* this part's: its error messages */
  Credito__V1__RowError **errors;  /* this part's invalid rows, in order */
  size_t n_errors;
  int rc;
};

/* Checks column i of c into *k (lengths in a). CM_E_INVALID with msg; CM_E_NOMEM. */
static int col_check(const Credito__V1__FeatureColumn *f, size_t i, size_t n, cm_arena *a,
                     struct col *k, char *msg, size_t cap)
{
  const char *name = f->name ? f->name : "";
  int rc = CM_E_INVALID;

  if (f->n_numbers && f->n_codes)
    snprintf(msg, cap, "columns.features[%zu] '%.64s': both numbers and codes", i, name);
  else if (f->n_numbers && f->n_numbers != n)
    snprintf(msg, cap, "columns.features[%zu] '%.64s': %zu numbers for %zu rows", i, name,
             f->n_numbers, n);
  else if (f->n_codes && f->n_codes != n)
    snprintf(msg, cap, "columns.features[%zu] '%.64s': %zu codes for %zu rows", i, name,
             f->n_codes, n);
  else if (f->n_categories && !f->n_codes)
    snprintf(msg, cap, "columns.features[%zu] '%.64s': categories without codes", i, name);
  else
    rc = 0;
  for (size_t r = 0; !rc && r < f->n_missing; r++) {
    if (f->missing[r] >= n || (r && f->missing[r] <= f->missing[r - 1])) {
      snprintf(msg, cap, "columns.features[%zu] '%.64s': missing[%zu] = %u is out of range or "
               "order (%zu rows, strictly ascending)", i, name, r, (unsigned)f->missing[r], n);
      rc = CM_E_INVALID;
    }
  }
  /* A missing row's code is ignored, so only the others are checked. */
  for (size_t r = 0, m = 0; !rc && r < f->n_codes; r++) {
    if (m < f->n_missing && f->missing[m] == r) {
      m++;
      continue;
    }
    if (f->codes[r] >= f->n_categories) {
      snprintf(msg, cap, "columns.features[%zu] '%.64s': codes[%zu] = %u but %zu categories", i,
               name, r, (unsigned)f->codes[r], f->n_categories);
      rc = CM_E_INVALID;
    }
  }
  if (rc)
    return rc;
  k->name = name;
  k->name_len = strlen(name);
  k->numbers = f->n_numbers ? f->numbers : NULL;
  k->codes = f->n_codes ? f->codes : NULL;
  k->cats = (const char *const *)f->categories;
  k->missing = f->missing;
  k->n_missing = f->n_missing;
  k->cat_len = cm_arena_alloc(a, (f->n_categories ? f->n_categories : 1) * sizeof *k->cat_len);
  if (!k->cat_len)
    return CM_E_NOMEM;
  for (size_t j = 0; j < f->n_categories; j++)
    k->cat_len[j] = strlen(f->categories[j]);
  return 0;
}

/* The first entry of missing[0..n) that is >= r. */
static size_t lower_bound(const uint32_t *missing, size_t n, size_t r)
{
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (missing[mid] < r)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Records row r's violations as a RowError of p. */
static int part_error(struct part *p, size_t r, const struct md_violation *viol, size_t nv)
{
  Credito__V1__RowError *e;
  char *summary = NULL;

  if (!p->errors) {
    p->errors = cm_arena_alloc(p->a, (p->r1 - p->r0) * sizeof *p->errors);
    if (!p->errors)
      return CM_E_NOMEM;
  }
  e = cm_arena_alloc(p->a, sizeof *e);
  if (!e)
    return CM_E_NOMEM;
  credito__v1__row_error__init(e);
  e->row = (uint32_t)r;
  e->error = pred_bad_request(viol, nv < MAX_VIOLATIONS ? nv : MAX_VIOLATIONS, nv,
                              ROW_DETAIL_MAX_BYTES, p->a, &summary);
  if (!e->error)
    return CM_E_NOMEM;
  p->errors[p->n_errors++] = e;
  return 0;
}

static void *part_run(void *arg)
{
  struct part *p = arg;
  Credito__V1__ScoredColumns *o = p->out;
  size_t nc = p->n_cols;
  double *scratch = cm_arena_alloc(p->a, (md_model_width(p->model) + 1) * sizeof *scratch);
  struct md_violation *viol = NULL; /* once a row is invalid */
  struct md_value *v = cm_arena_calloc(p->a, nc ? nc : 1, sizeof *v);
  size_t *next_missing = cm_arena_alloc(p->a, (nc ? nc : 1) * sizeof *next_missing);

  if (!scratch || !v || !next_missing) {
    p->rc = CM_E_NOMEM;
    return NULL;
  }
  for (size_t j = 0; j < nc; j++) {
    v[j].name = p->cols[j].name;
    v[j].name_len = p->cols[j].name_len;
    next_missing[j] = lower_bound(p->cols[j].missing, p->cols[j].n_missing, p->r0);
  }
  for (size_t r = p->r0; r < p->r1; r++) {
    struct md_prediction pr;
    size_t nv = 0;
    int rc;

    for (size_t j = 0; j < nc; j++) {
      const struct col *k = &p->cols[j];
      if (next_missing[j] < k->n_missing && k->missing[next_missing[j]] == r) {
        next_missing[j]++;
        v[j].kind = MD_VALUE_MISSING;
      } else if (k->numbers) {
        v[j].kind = MD_VALUE_NUMBER;
        v[j].number = k->numbers[r];
      } else if (k->codes) {
        v[j].kind = MD_VALUE_TEXT;
        v[j].text = k->cats[k->codes[r]];
        v[j].text_len = k->cat_len[k->codes[r]];
      } else {
        v[j].kind = MD_VALUE_MISSING;
      }
    }
    rc = pred_score(p->model, v, nc, scratch, &pr, &viol, p->a, &nv);
    o->reason_count[r] = 0;
    if (rc == CM_E_INVALID) {
      o->probability[r] = 0.0;
      o->score[r] = 0.0;
      o->decision[r] = CREDITO__V1__DECISION__DECISION_UNSPECIFIED;
      rc = part_error(p, r, viol, nv);
    } else if (!rc) {
      o->probability[r] = pr.probability;
      o->score[r] = pr.score;
      o->decision[r] = pr.decline ? CREDITO__V1__DECISION__DECISION_DECLINE
                                  : CREDITO__V1__DECISION__DECISION_APPROVE;
      o->reason_count[r] = (uint32_t)pr.n_reasons;
      for (size_t k = 0; k < pr.n_reasons; k++) {
        /* In a loaded model a reason's column is its schema feature's index. */
        o->reason_feature[r * MD_REASONS_MAX + k] = (uint32_t)pr.reasons[k].column;
        o->reason_impact[r * MD_REASONS_MAX + k] = pr.reasons[k].impact;
      }
    }
    if (rc) {
      p->rc = rc;
      return NULL;
    }
  }
  return NULL;
}

/* The output arrays for n rows, and the model's feature names. */
static Credito__V1__ScoredColumns *out_new(const struct served *sv, size_t n, cm_arena *a)
{
  const Credito__V1__ModelArtifact *art = md_model_artifact(sv->model);
  const Credito__V1__Schema *schema = art->schema;
  Credito__V1__ScoredColumns *o = cm_arena_alloc(a, sizeof *o);
  size_t m = n ? n : 1, nf = schema ? schema->n_features : 0;

  if (!o)
    return NULL;
  credito__v1__scored_columns__init(o);
  o->probability = cm_arena_alloc(a, m * sizeof *o->probability);
  o->score = cm_arena_alloc(a, m * sizeof *o->score);
  o->decision = cm_arena_alloc(a, m * sizeof *o->decision);
  o->reason_count = cm_arena_alloc(a, m * sizeof *o->reason_count);
  o->reason_feature = cm_arena_alloc(a, m * MD_REASONS_MAX * sizeof *o->reason_feature);
  o->reason_impact = cm_arena_alloc(a, m * MD_REASONS_MAX * sizeof *o->reason_impact);
  o->feature_names = cm_arena_alloc(a, (nf ? nf : 1) * sizeof *o->feature_names);
  if (!o->probability || !o->score || !o->decision || !o->reason_count || !o->reason_feature ||
      !o->reason_impact || !o->feature_names)
    return NULL;
  o->n_probability = o->n_score = o->n_decision = o->n_reason_count = n;
  for (size_t i = 0; i < nf; i++)
    o->feature_names[i] = schema->features[i]->name;
  o->n_feature_names = nf;
  return o;
}

/* Moves each row's reasons from its four slots to their place one after another. */
static void reasons_compact(Credito__V1__ScoredColumns *o)
{
  size_t w = 0;
  for (size_t r = 0; r < o->n_reason_count; r++) {
    for (size_t k = 0; k < o->reason_count[r]; k++, w++) {
      o->reason_feature[w] = o->reason_feature[r * MD_REASONS_MAX + k];
      o->reason_impact[w] = o->reason_impact[r * MD_REASONS_MAX + k];
    }
  }
  o->n_reason_feature = o->n_reason_impact = w;
}

int pred_columns_score(const struct pred_opts *o, const struct served *sv,
                       const Credito__V1__ApplicantColumns *c, cm_arena *a,
                       Credito__V1__ScoredColumns **out, char *msg, size_t cap)
{
  size_t n = c->n_rows, nc = c->n_features, n_parts, n_errors = 0, min_rows;
  struct col *cols;
  struct part parts[64];
  pthread_t tid[64];
  bool started[64] = {false};
  Credito__V1__ScoredColumns *res;
  int rc = 0;

  *out = NULL;
  if (n > o->max_batch) {
    snprintf(msg, cap, "%zu rows; at most %zu per batch", n, o->max_batch);
    return CM_E_INVALID;
  }
  if (nc > o->max_features) {
    snprintf(msg, cap, "%zu feature columns; at most %zu per applicant", nc, o->max_features);
    return CM_E_INVALID;
  }
  cols = cm_arena_calloc(a, nc ? nc : 1, sizeof *cols);
  if (!cols)
    return CM_E_NOMEM;
  for (size_t i = 0; !rc && i < nc; i++)
    rc = col_check(c->features[i], i, n, a, &cols[i], msg, cap);
  res = rc ? NULL : out_new(sv, n, a);
  if (rc || !res)
    return rc ? rc : CM_E_NOMEM;

  n_parts = o->batch_threads ? o->batch_threads : 1;
  if (n_parts > sizeof parts / sizeof parts[0])
    n_parts = sizeof parts / sizeof parts[0];
  min_rows = o->thread_rows_min ? o->thread_rows_min : PRED_THREAD_ROWS_MIN;
  if (n_parts > n / min_rows)
    n_parts = n / min_rows ? n / min_rows : 1;
  for (size_t t = 0; t < n_parts; t++) {
    parts[t] = (struct part){sv->model, cols, nc, n * t / n_parts, n * (t + 1) / n_parts, res,
                             NULL, NULL, 0, 0};
    /* The part's arena lives as long as the call's: the reply refers to its errors. */
    parts[t].a = t == 0 ? a : cm_arena_new(0);
    if (!parts[t].a || (t && cm_arena_cleanup_add(a, (void (*)(void *))cm_arena_free,
                                                  parts[t].a))) {
      return CM_E_NOMEM; /* the arenas made so far go with a */
    }
  }
  /* Part 0 runs on this thread; a part whose thread cannot start runs here too. */
  for (size_t t = 1; t < n_parts; t++)
    started[t] = pthread_create(&tid[t], NULL, part_run, &parts[t]) == 0;
  for (size_t t = 0; t < n_parts; t++)
    if (!started[t])
      part_run(&parts[t]);
  for (size_t t = 1; t < n_parts; t++)
    if (started[t])
      pthread_join(tid[t], NULL);
  for (size_t t = 0; t < n_parts; t++) {
    rc = rc ? rc : parts[t].rc;
    n_errors += parts[t].n_errors;
  }
  if (rc)
    return rc;
  reasons_compact(res);
  if (n_errors) {
    res->errors = cm_arena_alloc(a, n_errors * sizeof *res->errors);
    if (!res->errors)
      return CM_E_NOMEM;
    for (size_t t = 0; t < n_parts; t++)
      for (size_t i = 0; i < parts[t].n_errors; i++)
        res->errors[res->n_errors++] = parts[t].errors[i];
  }
  *out = res;
  return 0;
}
