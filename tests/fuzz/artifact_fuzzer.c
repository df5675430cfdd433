/* Fuzz target for the model loader (common/model/model_load.c), which turns registry bytes into
 * the model the predictor scores with. A load either fails with CM_E_CORRUPT (or CM_E_NOMEM)
 * and no model, or gives a model that scores: an applicant of the first schema feature alone,
 * then one with every feature at its default value; each either scores to a probability in
 * [0, 1] with at most MD_REASONS_MAX reasons or reports violations. The corpus in artifact/
 * holds a German Credit artifact from `credito-trainer fit` and small ones with missing values,
 * a feature without any trained category, and both unknown-category policies. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "credito/v1/model.pb-c.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Features given in the full applicant; more only slow the run down. */
#define FULL_MAX 256

/* The value of feature spec: its default, else a number or its first category. */
static struct md_value value_of(const Credito__V1__FeatureSpec *spec)
{
  const Credito__V1__FeatureValue *dv = spec->default_value;
  struct md_value v = {.name = spec->name, .name_len = strlen(spec->name)};

  if (spec->kind == CREDITO__V1__FEATURE_KIND__FEATURE_KIND_NUMERIC) {
    v.kind = MD_VALUE_NUMBER;
    v.number = dv && dv->value_case == CREDITO__V1__FEATURE_VALUE__VALUE_NUMBER ? dv->number
                                                                                   : 1.0;
  } else {
    v.kind = MD_VALUE_TEXT;
    v.text = dv && dv->value_case == CREDITO__V1__FEATURE_VALUE__VALUE_TEXT ? dv->text
             : spec->n_categories                                             ? spec->categories[0]
                                                                              : "?";
    v.text_len = strlen(v.text);
  }
  return v;
}

/* Traps unless scoring values[0..n) either succeeds sensibly or reports its problems. */
static void score_check(const md_model *m, const struct md_value *values, size_t n,
                        double *scratch)
{
  struct md_violation viol[4];
  struct md_prediction pred;
  size_t nv = 0;
  int rc = md_model_score(m, values, n, scratch, &pred, viol, 4, &nv);

  if (rc == 0) {
    if (nv != 0 || !(pred.probability >= 0.0 && pred.probability <= 1.0) ||
        !isfinite(pred.score) || pred.n_reasons > MD_REASONS_MAX)
      __builtin_trap();
    for (size_t r = 0; r < pred.n_reasons; r++)
      if (!(pred.reasons[r].impact > 0.0) || !memchr(pred.reasons[r].feature, '\0', 128))
        __builtin_trap();
  } else if (rc != CM_E_INVALID || nv == 0 || !viol[0].type || !viol[0].msg[0]) {
    __builtin_trap();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct md_value values[FULL_MAX];
  struct cm_error err = {0};
  md_model *m = NULL;
  const Credito__V1__ModelArtifact *a;
  double *scratch;
  size_t n = 0;
  int rc = md_model_load(data, size, &m, &err);

  if (rc != 0) {
    if (m || err.code != rc || !err.msg[0] || (rc != CM_E_CORRUPT && rc != CM_E_NOMEM))
      __builtin_trap();
    return 0;
  }
  a = md_model_artifact(m);
  scratch = malloc((md_model_width(m) ? md_model_width(m) : 1) * sizeof *scratch);
  if (!scratch) {
    md_model_free(m);
    return 0;
  }
  if (a->schema->n_features > 0) {
    values[0] = value_of(a->schema->features[0]);
    score_check(m, values, 1, scratch);
  }
  for (; n < a->schema->n_features && n < FULL_MAX; n++)
    values[n] = value_of(a->schema->features[n]);
  score_check(m, values, n, scratch);
  free(scratch);
  md_model_free(m);
  return 0;
}
