/* Fuzz target for the predictor's batches by column (services/predictor/pred_columns.c): the
 * bytes are a credito.v1.ApplicantColumns, scored against the German Credit model of the
 * artifact corpus (artifact/credit_g.pb), at most 64 rows, split over two threads from 8 rows.
 * A request either fails as a whole with CM_E_INVALID and a message, or gives n_rows scores:
 * probabilities in [0, 1], reason counts that add up to the reasons, reason features inside
 * feature_names, invalid rows in ascending order with their violations, and an answer that
 * packs. The corpus in pred_columns/ holds requests written with the generated Python classes:
 * German Credit rows, missing values, an unknown column, wrong kinds, an absent feature, a short
 * column, 60 rows. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "credito/v1/predictor.pb-c.h"
#include "pred_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef CREDITO_FUZZ_MODEL
#error "CREDITO_FUZZ_MODEL: the artifact file the requests are scored with"
#endif

static struct served *model_once(void)
{
  static struct served sv;
  static uint8_t *bytes; /* kept for the model's life, as md_model_load borrows them */
  static int loaded;
  FILE *f;
  long len;

  if (loaded)
    return sv.model ? &sv : NULL;
  loaded = 1;
  f = fopen(CREDITO_FUZZ_MODEL, "rb");
  if (!f || fseek(f, 0, SEEK_END) || (len = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET))
    abort();
  bytes = malloc((size_t)len);
  if (!bytes || fread(bytes, 1, (size_t)len, f) != (size_t)len)
    abort();
  fclose(f);
  if (md_model_load(bytes, (size_t)len, &sv.model, NULL))
    abort();
  return &sv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* Small batches split over two threads from 8 rows: the split is fuzzed at full speed. */
  static const struct pred_opts o = {NULL, "fuzz", 64, 1000, 2, 8};
  struct served *sv = model_once();
  Credito__V1__ApplicantColumns *c;
  Credito__V1__ScoredColumns *out = NULL;
  cm_arena *a;
  char msg[200] = "";
  int rc;

  a = cm_arena_new(0);
  if (!a)
    return 0;
  c = credito__v1__applicant_columns__unpack(cm_arena_allocator(a), size, data);
  if (!c) {
    cm_arena_free(a);
    return 0;
  }
  rc = pred_columns_score(&o, sv, c, a, &out, msg, sizeof msg);
  if (rc == CM_E_INVALID) {
    if (!msg[0] || out)
      abort();
  } else if (rc == 0) {
    size_t n = c->n_rows, reasons = 0, e = 0;
    if (!out || out->n_probability != n || out->n_score != n || out->n_decision != n ||
        out->n_reason_count != n)
      abort();
    for (size_t r = 0; r < n; r++) {
      bool bad = e < out->n_errors && out->errors[e]->row == r;
      if (out->reason_count[r] > MD_REASONS_MAX)
        abort();
      if (bad) {
        if (!out->errors[e]->error || out->errors[e]->error->n_violations == 0 ||
            out->reason_count[r] || out->probability[r] != 0.0)
          abort();
        e++;
      } else if (!(out->probability[r] >= 0.0 && out->probability[r] <= 1.0) ||
                 !isfinite(out->score[r])) {
        abort();
      }
      reasons += out->reason_count[r];
    }
    if (e != out->n_errors || reasons != out->n_reason_feature ||
        reasons != out->n_reason_impact)
      abort();
    for (size_t i = 0; i < reasons; i++)
      if (out->reason_feature[i] >= out->n_feature_names || !(out->reason_impact[i] > 0.0))
        abort();
    {
      size_t want = protobuf_c_message_get_packed_size(&out->base);
      uint8_t *buf = cm_arena_alloc(a, want ? want : 1);
      if (!buf || protobuf_c_message_pack(&out->base, buf) != want)
        abort();
    }
  } else if (rc != CM_E_NOMEM) {
    abort();
  }
  cm_arena_free(a);
  return 0;
}
