/* ctl_predict: `creditoctl predict`, scoring through the predictor: one applicant from a JSON
 * object ({"duration": 12, "checking_status": "<0", ...}), or a CSV file through PredictBatch in
 * chunks, written out in the input's order with the probability, score, decision and reasons. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "credito/v1/predictor.pb-c.h"
#include "ctl.h"
#include "dataset.h"
#include "pbjson.h"

/* Rows per PredictBatch call (the predictor's default cap is 10,000). */
#define CHUNK_ROWS 1000

static rpc_channel *predictor(struct ctl *c)
{
  struct rpc_channel_opts o = {0};
  if (!c->predictor) {
    o.target = c->predictor_addr;
    c->predictor = rpc_channel_new(&o, &c->err);
  }
  return c->predictor;
}

/* A flat JSON object of features -> the Predict request as JSON. */
static int applicant_json(struct ctl *c, const char *text, json_t **out)
{
  json_error_t jerr;
  json_t *obj = json_loads(text, JSON_REJECT_DUPLICATES, &jerr), *features = json_array(), *v;
  const char *key;

  if (!json_is_object(obj)) {
    json_decref(obj);
    json_decref(features);
    return cm_error_set(&c->err, CM_E_INVALID, "--json: want one JSON object of features%s%s",
                        obj ? "" : ": ", obj ? "" : jerr.text);
  }
  json_object_foreach(obj, key, v) {
    json_t *fv = json_is_number(v)   ? json_pack("{s:O}", "number", v)
                 : json_is_string(v) ? json_pack("{s:O}", "text", v)
                                     : json_pack("{s:b}", "missing", 1);
    json_array_append_new(features, json_pack("{s:s, s:o}", "name", key, "value", fv));
  }
  json_decref(obj);
  *out = json_pack("{s:o}", "features", features);
  return 0;
}

static int predict_one(struct ctl *c, const char *text)
{
  json_t *req = NULL, *resp = NULL;
  cm_arena *a = cm_arena_new(0);
  ProtobufCMessage *msg = NULL, *out = NULL;
  int rc = a ? applicant_json(c, text, &req) : cm_error_set(&c->err, CM_E_NOMEM, "no memory");

  rc = rc ? rc : pbjson_to_message(req, &credito__v1__predict_request__descriptor, 0, a, &msg,
                                   &c->err);
  rc = rc ? rc : predictor(c) ? 0 : c->err.code;
  rc = rc ? rc : rpc_unary(c->predictor, "/credito.v1.Predictor/Predict", msg,
                           &credito__v1__predict_response__descriptor, c->timeout_ms, a, &out,
                           &c->err);
  resp = rc ? NULL : pbjson_from_message(out, 0, &c->err);
  if (!rc && !resp)
    rc = c->err.code;
  if (!rc)
    ctl_print_json(resp);
  json_decref(req);
  json_decref(resp);
  cm_arena_free(a);
  return rc;
}

/* Reads path whole (at most 256 MiB) into b. */
static int read_file(struct ctl *c, const char *path, struct cm_buf *b)
{
  FILE *f = fopen(path, "rb");
  char chunk[65536];
  size_t n;
  int rc = 0;
  if (!f)
    return cm_error_set(&c->err, CM_E_IO, "cannot read %s", path);
  while (!rc && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    rc = cm_buf_add(b, chunk, n);
  fclose(f);
  return rc ? cm_error_set(&c->err, rc, "%s is too large", path) : 0;
}

/* The served model's schema: for each table column, its feature kind (0: not a feature). */
static int column_kinds(struct ctl *c, const ds_table *t, int *kind, cm_arena *a)
{
  Credito__V1__GetModelInfoRequest req = CREDITO__V1__GET_MODEL_INFO_REQUEST__INIT;
  Credito__V1__GetModelInfoResponse *info = NULL;
  size_t used = 0;
  int rc = rpc_unary(c->predictor, "/credito.v1.Predictor/GetModelInfo", &req.base,
                     &credito__v1__get_model_info_response__descriptor, c->timeout_ms, a,
                     (ProtobufCMessage **)&info, &c->err);
  if (rc)
    return rc;
  if (!info->serving || !info->schema)
    return cm_error_set(&c->err, CM_E_UNAVAILABLE, "the predictor serves no model yet");
  for (size_t i = 0; i < ds_columns(t); i++) {
    kind[i] = 0;
    for (size_t k = 0; k < info->schema->n_features; k++)
      if (strcmp(info->schema->features[k]->name, ds_column_at(t, i)->name) == 0)
        kind[i] = info->schema->features[k]->kind;
    used += kind[i] != 0;
    if (!kind[i])
      fprintf(stderr, "creditoctl: column '%s' is not a model feature; not sent\n",
              ds_column_at(t, i)->name);
  }
  return used ? 0 : cm_error_set(&c->err, CM_E_INVALID, "no column names a model feature");
}

/* One cell as the FeatureValue the model's kind wants (a numeric-looking category as text). */
static void cell_value(const ds_table *t, size_t row, size_t col, int kind,
                       Credito__V1__FeatureValue *v, cm_arena *a)
{
  const struct ds_column *c = ds_column_at(t, col);
  credito__v1__feature_value__init(v);
  v->value_case = CREDITO__V1__FEATURE_VALUE__VALUE_MISSING;
  v->missing = 1;
  if (c->kind == DS_NUMERIC && !isnan(ds_number(t, row, col))) {
    if (kind == CREDITO__V1__FEATURE_KIND__FEATURE_KIND_NUMERIC) {
      v->value_case = CREDITO__V1__FEATURE_VALUE__VALUE_NUMBER;
      v->number = ds_number(t, row, col);
    } else {
      v->value_case = CREDITO__V1__FEATURE_VALUE__VALUE_TEXT;
      v->text = cm_arena_printf(a, "%.17g", ds_number(t, row, col));
    }
  } else if (c->kind == DS_CATEGORICAL && ds_category(t, row, col) >= 0) {
    v->value_case = CREDITO__V1__FEATURE_VALUE__VALUE_TEXT;
    v->text = c->categories[ds_category(t, row, col)];
  }
}

/* Rows [from, to) as one PredictBatch request in a. */
static Credito__V1__PredictBatchRequest *batch_of(const ds_table *t, const int *kind, size_t from,
                                                  size_t to, cm_arena *a)
{
  Credito__V1__PredictBatchRequest *r = cm_arena_calloc(a, 1, sizeof *r);
  size_t n = to - from, nc = ds_columns(t), used = 0;
  Credito__V1__Applicant *ap = cm_arena_calloc(a, n, sizeof *ap);
  Credito__V1__Applicant **app = cm_arena_calloc(a, n, sizeof *app);
  Credito__V1__Feature *f = cm_arena_calloc(a, n * nc, sizeof *f);
  Credito__V1__Feature **fp = cm_arena_calloc(a, n * nc, sizeof *fp);
  Credito__V1__FeatureValue *v = cm_arena_calloc(a, n * nc, sizeof *v);

  if (!r || !ap || !app || !f || !fp || !v)
    return NULL;
  credito__v1__predict_batch_request__init(r);
  for (size_t i = 0; i < n; i++) {
    credito__v1__applicant__init(&ap[i]);
    ap[i].features = &fp[used];
    for (size_t j = 0; j < nc; j++) {
      if (!kind[j])
        continue;
      credito__v1__feature__init(&f[used]);
      f[used].name = ds_column_at(t, j)->name;
      cell_value(t, from + i, j, kind[j], &v[used], a);
      f[used].value = &v[used];
      fp[used] = &f[used];
      used++;
      ap[i].n_features++;
    }
    app[i] = &ap[i];
  }
  r->rows = app;
  r->n_rows = n;
  return r;
}

/* Writes s as one CSV field. */
static void csv_put(FILE *f, const char *s)
{
  if (!strpbrk(s, ",\"\r\n")) {
    fputs(s, f);
    return;
  }
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"')
      fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

/* One output row: the input cells, then the outcome. */
static void row_out(FILE *f, const ds_table *t, size_t row, const Credito__V1__RowResult *r)
{
  char num[40];
  for (size_t j = 0; j < ds_columns(t); j++) {
    const struct ds_column *c = ds_column_at(t, j);
    if (c->kind == DS_NUMERIC && !isnan(ds_number(t, row, j))) {
      snprintf(num, sizeof(num), "%.17g", ds_number(t, row, j));
      fputs(num, f);
    } else if (c->kind == DS_CATEGORICAL && ds_category(t, row, j) >= 0) {
      csv_put(f, c->categories[ds_category(t, row, j)]);
    }
    fputc(',', f);
  }
  if (r->outcome_case == CREDITO__V1__ROW_RESULT__OUTCOME_PREDICTION) {
    const Credito__V1__Prediction *p = r->prediction;
    fprintf(f, "%.17g,%.17g,%s,", p->probability, p->score,
            p->decision == CREDITO__V1__DECISION__DECISION_DECLINE ? "decline" : "approve");
    for (size_t k = 0; k < p->n_reasons; k++)
      fprintf(f, "%s%s", k ? ";" : "", p->reasons[k]->feature);
    fputs(",\n", f);
    return;
  }
  fputs(",,,,", f);
  for (size_t k = 0; r->error && k < r->error->n_violations; k++) {
    char e[600];
    snprintf(e, sizeof(e), "%s%s: %s", k ? "; " : "", r->error->violations[k]->field,
             r->error->violations[k]->message);
    csv_put(f, e);
  }
  fputc('\n', f);
}

/* Scores every row of path through PredictBatch and writes out (or stdout for "-"). */
static int predict_file(struct ctl *c, const char *path, const char *out_path)
{
  struct cm_buf text;
  ds_table *t = NULL;
  cm_arena *a = cm_arena_new(0);
  int *kind = NULL, rc;
  FILE *out = NULL;
  size_t bad = 0;

  cm_buf_init(&text, (size_t)256 << 20);
  rc = a ? read_file(c, path, &text) : cm_error_set(&c->err, CM_E_NOMEM, "out of memory");
  rc = rc ? rc : ds_parse(text.data ? text.data : "", text.len, NULL, NULL, &t, &c->err);
  cm_buf_cleanup(&text);
  kind = rc ? NULL : calloc(ds_columns(t), sizeof *kind);
  rc = rc ? rc : kind ? 0 : cm_error_set(&c->err, CM_E_NOMEM, "out of memory");
  rc = rc ? rc : predictor(c) ? column_kinds(c, t, kind, a) : c->err.code;
  out = rc ? NULL : strcmp(out_path, "-") == 0 ? stdout : fopen(out_path, "w");
  if (!rc && !out)
    rc = cm_error_set(&c->err, CM_E_IO, "cannot write %s", out_path);
  for (size_t j = 0; !rc && j < ds_columns(t); j++) {
    csv_put(out, ds_column_at(t, j)->name);
    fputc(',', out);
  }
  if (!rc)
    fputs("probability,score,decision,reasons,error\n", out);
  for (size_t from = 0; !rc && t && from < ds_rows(t); from += CHUNK_ROWS) {
    size_t to = from + CHUNK_ROWS < ds_rows(t) ? from + CHUNK_ROWS : ds_rows(t);
    cm_arena *ca = cm_arena_new(0);
    Credito__V1__PredictBatchRequest *req = ca ? batch_of(t, kind, from, to, ca) : NULL;
    Credito__V1__PredictBatchResponse *resp = NULL;
    rc = req ? rpc_unary(c->predictor, "/credito.v1.Predictor/PredictBatch", &req->base,
                         &credito__v1__predict_batch_response__descriptor, c->timeout_ms, ca,
                         (ProtobufCMessage **)&resp, &c->err)
             : cm_error_set(&c->err, CM_E_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < resp->n_results; i++) {
      row_out(out, t, from + i, resp->results[i]);
      bad += resp->results[i]->outcome_case != CREDITO__V1__ROW_RESULT__OUTCOME_PREDICTION;
    }
    cm_arena_free(ca);
  }
  if (!rc)
    fprintf(stderr, "scored %zu rows (%zu invalid) into %s\n", ds_rows(t) - bad, bad, out_path);
  if (out && out != stdout && fclose(out) && !rc)
    rc = cm_error_set(&c->err, CM_E_IO, "cannot write %s", out_path);
  free(kind);
  ds_table_free(t);
  cm_arena_free(a);
  return rc;
}

int ctl_cmd_predict(struct ctl *c, int argc, char **argv)
{
  struct cm_opt o[] = {
      {"json", NULL, NULL, "", false, NULL, false},
      {"file", NULL, NULL, "", false, NULL, false},
      {"out", NULL, "-", "", false, NULL, false},
  };
  int rc = ctl_flags(c, o, 3, argc, argv, NULL);
  if (rc)
    return rc;
  if (o[0].value && !o[1].value)
    return predict_one(c, o[0].value);
  if (o[1].value && !o[0].value)
    return predict_file(c, o[1].value, o[2].value);
  return cm_error_set(&c->err, CM_E_INVALID, "usage: predict --json '{...}' | --file ROWS.csv "
                      "[--out SCORES.csv]");
}
