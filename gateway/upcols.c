/* upcols: a batcher call's rows by column, and its answer back as rows. The requests' rows
 * (Applicant messages, as the body parsers build them) are transposed into ApplicantColumns:
 * each feature's numbers, or its texts (each row's own, so no dictionary lookup) with a code per
 * row, and the rows where it is missing or absent. The predictor's ScoredColumns then become
 * the RowResults the routes read, each reason worded by md_reason_text from the row's own value,
 * as the predictor words them. A row whose values cannot go in a column (a feature given twice,
 * numbers and texts in one feature) sends the call in rows instead. */
#include <string.h>

#include "model.h"
#include "upcols.h"

/* One column being built. */
struct colb {
  const char *name;
  int kind;            /* 0 none yet, 1 numbers, 2 texts */
  size_t set_row;      /* 1 + the last row that gave it a value */
  double *numbers;     /* n_rows, zeroed */
  uint32_t *codes;     /* n_rows, zeroed */
  char **cats;         /* one per row that gave a text */
  size_t n_cats;
  uint32_t *missing;   /* n_rows at most */
  size_t n_missing;
};

struct build {
  cm_arena *a;
  size_t n_rows;
  struct colb *c;
  size_t n, cap;
};

/* Column of name, added (missing in rows [0, row)) when new; NULL when out of memory. */
static struct colb *col_of(struct build *b, const char *name, size_t hint, size_t row)
{
  struct colb *k;

  if (hint < b->n && strcmp(b->c[hint].name, name) == 0)
    return &b->c[hint];
  for (size_t j = 0; j < b->n; j++)
    if (strcmp(b->c[j].name, name) == 0)
      return &b->c[j];
  if (b->n == b->cap) {
    size_t cap = b->cap ? 2 * b->cap : 32;
    struct colb *c = cm_arena_alloc(b->a, cap * sizeof *c);
    if (!c)
      return NULL;
    if (b->n)
      memcpy(c, b->c, b->n * sizeof *c);
    b->c = c;
    b->cap = cap;
  }
  k = &b->c[b->n];
  memset(k, 0, sizeof *k);
  k->name = name;
  k->missing = cm_arena_alloc(b->a, (b->n_rows ? b->n_rows : 1) * sizeof *k->missing);
  if (!k->missing)
    return NULL;
  for (size_t r = 0; r < row; r++)
    k->missing[k->n_missing++] = (uint32_t)r;
  b->n++;
  return k;
}

/* Puts row r's value of feature f in its column. CM_E_INVALID when it cannot go there. */
static int col_put(struct build *b, struct colb *k, const Credito__V1__FeatureValue *v,
                   size_t r)
{
  if (k->set_row == r + 1)
    return CM_E_INVALID; /* given twice in this row */
  k->set_row = r + 1;
  if (v && v->value_case == CREDITO__V1__FEATURE_VALUE__VALUE_NUMBER) {
    if (k->kind == 2)
      return CM_E_INVALID;
    if (!k->numbers && !(k->numbers = cm_arena_calloc(b->a, b->n_rows, sizeof *k->numbers)))
      return CM_E_NOMEM;
    k->kind = 1;
    k->numbers[r] = v->number;
  } else if (v && v->value_case == CREDITO__V1__FEATURE_VALUE__VALUE_TEXT) {
    if (k->kind == 1)
      return CM_E_INVALID;
    if (!k->codes) {
      k->codes = cm_arena_calloc(b->a, b->n_rows, sizeof *k->codes);
      k->cats = cm_arena_alloc(b->a, b->n_rows * sizeof *k->cats);
      if (!k->codes || !k->cats)
        return CM_E_NOMEM;
    }
    k->kind = 2;
    k->codes[r] = (uint32_t)k->n_cats;
    k->cats[k->n_cats++] = v->text;
  } else {
    k->missing[k->n_missing++] = (uint32_t)r;
  }
  return 0;
}

int gw_cols_request(const struct gw_pending *list, size_t n_rows, cm_arena *a,
                    Credito__V1__PredictBatchRequest *req)
{
  struct build b = {a, n_rows, NULL, 0, 0};
  Credito__V1__ApplicantColumns *ac = cm_arena_alloc(a, sizeof *ac);
  Credito__V1__FeatureColumn *fc, **fp;
  size_t r = 0;

  if (!ac)
    return CM_E_NOMEM;
  for (const struct gw_pending *p = list; p; p = p->next) {
    for (size_t i = 0; i < p->n; i++, r++) {
      const Credito__V1__Applicant *ap = p->rows[i];
      for (size_t f = 0; f < ap->n_features; f++) {
        struct colb *k = col_of(&b, ap->features[f]->name, f, r);
        int rc = k ? col_put(&b, k, ap->features[f]->value, r) : CM_E_NOMEM;
        if (rc)
          return rc;
      }
      for (size_t j = 0; j < b.n; j++) /* absent from this row: missing */
        if (b.c[j].set_row != r + 1)
          b.c[j].missing[b.c[j].n_missing++] = (uint32_t)r;
    }
  }
  fc = cm_arena_alloc(a, (b.n ? b.n : 1) * sizeof *fc);
  fp = cm_arena_alloc(a, (b.n ? b.n : 1) * sizeof *fp);
  if (!fc || !fp)
    return CM_E_NOMEM;
  for (size_t j = 0; j < b.n; j++) {
    const struct colb *k = &b.c[j];
    credito__v1__feature_column__init(&fc[j]);
    fc[j].name = (char *)k->name;
    if (k->kind == 1) {
      fc[j].numbers = k->numbers;
      fc[j].n_numbers = n_rows;
    } else if (k->kind == 2) {
      fc[j].codes = k->codes;
      fc[j].n_codes = n_rows;
      fc[j].categories = k->cats;
      fc[j].n_categories = k->n_cats;
    }
    fc[j].missing = k->missing;
    fc[j].n_missing = k->n_missing;
    fp[j] = &fc[j];
  }
  credito__v1__applicant_columns__init(ac);
  ac->n_rows = (uint32_t)n_rows;
  ac->features = fp;
  ac->n_features = b.n;
  req->columns = ac;
  req->rows = NULL;
  req->n_rows = 0;
  return 0;
}

/* Row ap's value of feature (NULL when absent) as an md_value in *v. */
static const struct md_value *value_of(const Credito__V1__Applicant *ap, const char *feature,
                                       struct md_value *v)
{
  for (size_t f = 0; f < ap->n_features; f++) {
    const Credito__V1__FeatureValue *fv = ap->features[f]->value;
    if (strcmp(ap->features[f]->name, feature) != 0)
      continue;
    memset(v, 0, sizeof *v);
    v->name = feature;
    v->name_len = strlen(feature);
    if (fv && fv->value_case == CREDITO__V1__FEATURE_VALUE__VALUE_NUMBER) {
      v->kind = MD_VALUE_NUMBER;
      v->number = fv->number;
    } else if (fv && fv->value_case == CREDITO__V1__FEATURE_VALUE__VALUE_TEXT) {
      v->kind = MD_VALUE_TEXT;
      v->text = fv->text;
      v->text_len = strlen(fv->text);
    }
    return v;
  }
  return NULL;
}

/* Checks that c answers n_rows rows consistently. */
static int answer_check(const Credito__V1__ScoredColumns *c, size_t n_rows, struct cm_error *err)
{
  size_t reasons = 0;

  if (!c)
    return cm_error_set(err, CM_E_INTERNAL, "the predictor did not answer by column (an older "
                        "version? run the gateway with --upstream-form rows)");
  if (c->n_probability != n_rows || c->n_score != n_rows || c->n_decision != n_rows ||
      c->n_reason_count != n_rows)
    return cm_error_set(err, CM_E_INTERNAL, "the predictor answered %zu rows for %zu",
                        c->n_probability, n_rows);
  for (size_t r = 0; r < n_rows; r++)
    reasons += c->reason_count[r];
  if (reasons != c->n_reason_feature || reasons != c->n_reason_impact)
    return cm_error_set(err, CM_E_INTERNAL, "the predictor's reasons do not add up");
  for (size_t i = 0; i < reasons; i++)
    if (c->reason_feature[i] >= c->n_feature_names)
      return cm_error_set(err, CM_E_INTERNAL, "the predictor named feature %u of %zu",
                          (unsigned)c->reason_feature[i], c->n_feature_names);
  for (size_t e = 0; e < c->n_errors; e++)
    if (c->errors[e]->row >= n_rows || (e && c->errors[e]->row <= c->errors[e - 1]->row) ||
        !c->errors[e]->error)
      return cm_error_set(err, CM_E_INTERNAL, "the predictor's row errors are out of order");
  return 0;
}

int gw_cols_results(const struct gw_pending *list, size_t n_rows, cm_arena *a,
                    Credito__V1__PredictBatchResponse *resp, struct cm_error *err)
{
  const Credito__V1__ScoredColumns *c = resp->columns;
  Credito__V1__RowResult *rr, **rp;
  Credito__V1__Prediction *pr;
  size_t r = 0, k = 0, e = 0;
  int rc = answer_check(c, n_rows, err);

  if (rc)
    return rc;
  rr = cm_arena_alloc(a, (n_rows ? n_rows : 1) * sizeof *rr);
  rp = cm_arena_alloc(a, (n_rows ? n_rows : 1) * sizeof *rp);
  pr = cm_arena_alloc(a, (n_rows ? n_rows : 1) * sizeof *pr);
  if (!rr || !rp || !pr)
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  for (const struct gw_pending *p = list; p; p = p->next) {
    for (size_t i = 0; i < p->n; i++, r++) {
      size_t nr = c->reason_count[r];
      credito__v1__row_result__init(&rr[r]);
      rp[r] = &rr[r];
      if (e < c->n_errors && c->errors[e]->row == r) {
        rr[r].outcome_case = CREDITO__V1__ROW_RESULT__OUTCOME_ERROR;
        rr[r].error = c->errors[e++]->error;
        k += nr;
        continue;
      }
      credito__v1__prediction__init(&pr[r]);
      pr[r].probability = c->probability[r];
      pr[r].score = c->score[r];
      pr[r].decision = c->decision[r];
      if (nr) {
        Credito__V1__Reason *rs = cm_arena_alloc(a, nr * sizeof *rs);
        Credito__V1__Reason **rsp = cm_arena_alloc(a, nr * sizeof *rsp);
        if (!rs || !rsp)
          return cm_error_set(err, CM_E_NOMEM, "out of memory");
        for (size_t j = 0; j < nr; j++, k++) {
          const char *feature = c->feature_names[c->reason_feature[k]];
          size_t cap = strlen(feature) + MD_REASON_TEXT_EXTRA;
          struct md_value v;
          credito__v1__reason__init(&rs[j]);
          rs[j].feature = (char *)feature;
          rs[j].impact = c->reason_impact[k];
          rs[j].text = cm_arena_alloc(a, cap);
          if (!rs[j].text)
            return cm_error_set(err, CM_E_NOMEM, "out of memory");
          md_reason_text(rs[j].text, cap, feature, value_of(p->rows[i], feature, &v));
          rsp[j] = &rs[j];
        }
        pr[r].reasons = rsp;
        pr[r].n_reasons = nr;
      }
      rr[r].outcome_case = CREDITO__V1__ROW_RESULT__OUTCOME_PREDICTION;
      rr[r].prediction = &pr[r];
    }
  }
  resp->results = rp;
  resp->n_results = n_rows;
  return 0;
}
