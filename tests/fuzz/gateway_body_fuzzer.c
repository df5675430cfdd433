/* Fuzz target for the gateway's request mapping (gateway/body.c): untrusted HTTP bodies to
 * Predictor features, validated against a model schema. Every input either fails to parse with
 * one json_invalid entry, or maps to at most one feature per schema entry (each of the kind the
 * schema says), or yields at most BODY_MAX_ERRORS 422 entries, each with type, loc, msg and
 * input; a JSON list is mapped row by row as /predict/batch does. The schema mimics German
 * Credit: required numbers, a required category under the reject policy, one under ignore, and
 * an optional number.
 * The fast path (body_applicant_fast, which reads a flat object in place) is checked against
 * the full path differentially: whatever it accepts, the full path accepts with the very same
 * features, in the same order, with bit-identical numbers and equal texts. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *checking[] = {"<0", "0<=X<200", ">=200", "no checking"};
static char *housing[] = {"own", "rent", "for free"};

static Credito__V1__FeatureSpec spec(const char *name, bool numeric, bool required, char **cats,
                                     size_t ncats, bool ignore)
{
  Credito__V1__FeatureSpec f = CREDITO__V1__FEATURE_SPEC__INIT;
  f.name = (char *)name;
  f.kind = numeric ? CREDITO__V1__FEATURE_KIND__FEATURE_KIND_NUMERIC
                   : CREDITO__V1__FEATURE_KIND__FEATURE_KIND_CATEGORICAL;
  f.required = required;
  f.categories = cats;
  f.n_categories = ncats;
  f.unknown_category = ignore ? CREDITO__V1__UNKNOWN_CATEGORY__UNKNOWN_CATEGORY_IGNORE
                              : CREDITO__V1__UNKNOWN_CATEGORY__UNKNOWN_CATEGORY_REJECT;
  return f;
}

/* Checks one applicant's mapping against the invariants above; aborts on a violation. */
static void check_one(const json_t *obj, const Credito__V1__Schema *schema, const json_t *loc)
{
  cm_arena *a = cm_arena_new(0);
  json_t *detail = json_array();
  Credito__V1__Feature **f = NULL;
  size_t n = 0;
  int rc;

  if (!a || !detail)
    abort();
  rc = body_applicant(obj, schema, loc, a, &f, &n, detail);
  if (rc == 0) {
    if (json_array_size(detail) != 0 || n > schema->n_features)
      abort();
    for (size_t i = 0; i < n; i++) {
      const Credito__V1__FeatureValue *v = f[i]->value;
      bool num = v->value_case == CREDITO__V1__FEATURE_VALUE__VALUE_NUMBER;
      bool text = v->value_case == CREDITO__V1__FEATURE_VALUE__VALUE_TEXT;
      if (!v || !(num || text || v->value_case == CREDITO__V1__FEATURE_VALUE__VALUE_MISSING))
        abort();
      if (text && !v->text)
        abort();
    }
  } else if (rc == CM_E_INVALID) {
    size_t k;
    json_t *e;
    if (json_array_size(detail) == 0 || json_array_size(detail) > BODY_MAX_ERRORS)
      abort();
    json_array_foreach(detail, k, e) {
      if (!json_is_string(json_object_get(e, "type")) || !json_is_array(json_object_get(e, "loc")) ||
          !json_is_string(json_object_get(e, "msg")) || !json_object_get(e, "input"))
        abort();
    }
  } else if (rc != CM_E_NOMEM) {
    abort();
  }
  json_decref(detail);
  cm_arena_free(a);
}

/* The fast path's answer must be the full path's whenever it gives one. */
static void check_fast(const uint8_t *data, size_t size, const Credito__V1__Schema *schema)
{
  cm_arena *a = cm_arena_new(0), *b = cm_arena_new(0);
  Credito__V1__Feature **f = NULL, **g = NULL;
  json_t *detail = NULL, *doc, *loc;
  size_t n = 0, m = 0;
  int rc;

  if (!a || !b)
    abort();
  rc = body_applicant_fast((const char *)data, size, schema, a, &f, &n);
  if (rc == 0) {
    doc = body_parse((const char *)data, size, &detail);
    if (!doc)
      abort(); /* the fast path took what jansson refuses */
    loc = json_pack("[s]", "body");
    detail = json_array();
    if (body_applicant(doc, schema, loc, b, &g, &m, detail) != 0 || m != n)
      abort();
    for (size_t i = 0; i < n; i++) {
      const Credito__V1__FeatureValue *x = f[i]->value, *y = g[i]->value;
      if (strcmp(f[i]->name, g[i]->name) != 0 || x->value_case != y->value_case)
        abort();
      if (x->value_case == CREDITO__V1__FEATURE_VALUE__VALUE_NUMBER &&
          memcmp(&x->number, &y->number, sizeof x->number) != 0)
        abort();
      if (x->value_case == CREDITO__V1__FEATURE_VALUE__VALUE_TEXT && strcmp(x->text, y->text) != 0)
        abort();
    }
    json_decref(loc);
    json_decref(detail);
    json_decref(doc);
  } else if (rc != CM_E_INVALID && rc != CM_E_NOMEM) {
    abort();
  }
  cm_arena_free(a);
  cm_arena_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  Credito__V1__FeatureSpec specs[5] = {
      spec("duration", true, true, NULL, 0, false),
      spec("credit_amount", true, true, NULL, 0, false),
      spec("checking_status", false, true, checking, 4, false),
      spec("housing", false, true, housing, 3, true),
      spec("age", true, false, NULL, 0, false),
  };
  Credito__V1__FeatureSpec *ptrs[5] = {&specs[0], &specs[1], &specs[2], &specs[3], &specs[4]};
  Credito__V1__Schema schema = CREDITO__V1__SCHEMA__INIT;
  json_t *detail = NULL, *doc, *loc;

  schema.features = ptrs;
  schema.n_features = 5;
  check_fast(data, size, &schema);
  doc = body_parse((const char *)data, size, &detail);
  if (!doc) {
    if (json_array_size(detail) != 1)
      abort();
    json_decref(detail);
    return 0;
  }
  loc = json_pack("[s]", "body");
  check_one(doc, &schema, loc);
  json_decref(loc);
  if (json_is_array(doc)) {
    size_t i;
    json_t *row;
    json_array_foreach(doc, i, row) {
      loc = json_pack("[s,I]", "body", (json_int_t)i);
      check_one(row, &schema, loc);
      json_decref(loc);
      if (i >= 64)
        break;
    }
  }
  json_decref(doc);
  return 0;
}
