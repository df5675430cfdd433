/* model/artifact: the trained model as one serialized credito.v1.ModelArtifact (schema,
 * preparation, coefficients, scorecard, hyperparameters) with its SHA-256, and the checked read
 * back. protobuf-c types stay inside this file. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "credito/v1/model.pb-c.h"
#include "mem.h"
#include "model.h"
#include "model_int.h"

/* Storage for the message tree md_artifact_pack builds; strings are borrowed from p and t. */
struct pack_tree {
  Credito__V1__FeatureSpec *specs, **spec_ptrs;
  Credito__V1__FeaturePreparation *preps, **prep_ptrs;
  Credito__V1__NumericPreparation *nums;
  Credito__V1__CategoricalPreparation *cats;
  char **seen;                            /* width: categories seen, per categorical slot */
  Credito__V1__Coefficient *coefs, **coef_ptrs;
  Credito__V1__FeatureValue *defaults;    /* per feature */
  Credito__V1__Metric *metrics, **metric_ptrs;
  Credito__V1__DatasetInput *inputs, **input_ptrs;
  Credito__V1__DatasetRef *refs;
};

static void pack_tree_free(struct pack_tree *tr)
{
  cm_free(tr->specs);
  cm_free(tr->spec_ptrs);
  cm_free(tr->preps);
  cm_free(tr->prep_ptrs);
  cm_free(tr->nums);
  cm_free(tr->cats);
  cm_free(tr->seen);
  cm_free(tr->coefs);
  cm_free(tr->coef_ptrs);
  cm_free(tr->defaults);
  cm_free(tr->metrics);
  cm_free(tr->metric_ptrs);
  cm_free(tr->inputs);
  cm_free(tr->input_ptrs);
  cm_free(tr->refs);
}

static int pack_tree_alloc(struct pack_tree *tr, size_t nf, size_t d,
                           const struct md_artifact_meta *meta)
{
  size_t f = nf ? nf : 1, w = d ? d : 1;
  size_t nm = meta->n_metrics ? meta->n_metrics : 1, ni = meta->n_datasets ? meta->n_datasets : 1;
  tr->defaults = cm_calloc(f, sizeof *tr->defaults);
  tr->metrics = cm_calloc(nm, sizeof *tr->metrics);
  tr->metric_ptrs = cm_calloc(nm, sizeof *tr->metric_ptrs);
  tr->inputs = cm_calloc(ni, sizeof *tr->inputs);
  tr->input_ptrs = cm_calloc(ni, sizeof *tr->input_ptrs);
  tr->refs = cm_calloc(ni, sizeof *tr->refs);
  if (!tr->defaults || !tr->metrics || !tr->metric_ptrs || !tr->inputs || !tr->input_ptrs ||
      !tr->refs)
    return CM_E_NOMEM;
  tr->specs = cm_calloc(f, sizeof *tr->specs);
  tr->spec_ptrs = cm_calloc(f, sizeof *tr->spec_ptrs);
  tr->preps = cm_calloc(f, sizeof *tr->preps);
  tr->prep_ptrs = cm_calloc(f, sizeof *tr->prep_ptrs);
  tr->nums = cm_calloc(f, sizeof *tr->nums);
  tr->cats = cm_calloc(f, sizeof *tr->cats);
  tr->seen = cm_calloc(w, sizeof *tr->seen);
  tr->coefs = cm_calloc(w, sizeof *tr->coefs);
  tr->coef_ptrs = cm_calloc(w, sizeof *tr->coef_ptrs);
  return tr->specs && tr->spec_ptrs && tr->preps && tr->prep_ptrs && tr->nums && tr->cats &&
                 tr->seen && tr->coefs && tr->coef_ptrs
             ? 0
             : CM_E_NOMEM;
}

/* protobuf-c wants char * for strings it only reads when packing. */
static char *str(const char *s) { return s ? (char *)(uintptr_t)s : (char *)""; }

/* Fills feature i's schema spec, preparation and coefficient entries. */
static void pack_feature(struct pack_tree *tr, const struct md_prep *p, const ds_table *t,
                         size_t i, bool unknown_ignore)
{
  const struct md_feature *f = &p->features[i];
  const struct ds_column *c = ds_column_at(t, f->col);
  Credito__V1__FeatureSpec *spec = &tr->specs[i];
  Credito__V1__FeaturePreparation *fp = &tr->preps[i];
  Credito__V1__FeatureValue *dv = &tr->defaults[i];

  credito__v1__feature_spec__init(spec);
  credito__v1__feature_value__init(dv);
  spec->name = str(c->name);
  spec->required = !f->had_missing;
  spec->default_value = dv;
  if (f->kind == DS_NUMERIC) {
    dv->value_case = CREDITO__V1__FEATURE_VALUE__VALUE_NUMBER;
    dv->number = f->median;
  } else if (f->mode >= 0) {
    dv->value_case = CREDITO__V1__FEATURE_VALUE__VALUE_TEXT;
    dv->text = c->categories[f->mode];
  } else {
    dv->value_case = CREDITO__V1__FEATURE_VALUE__VALUE_MISSING;
    dv->missing = 1;
  }
  if (f->kind == DS_CATEGORICAL)
    spec->unknown_category = unknown_ignore ? CREDITO__V1__UNKNOWN_CATEGORY__UNKNOWN_CATEGORY_IGNORE
                                            : CREDITO__V1__UNKNOWN_CATEGORY__UNKNOWN_CATEGORY_REJECT;
  credito__v1__feature_preparation__init(fp);
  fp->feature = spec->name;
  tr->spec_ptrs[i] = spec;
  tr->prep_ptrs[i] = fp;
  if (f->kind == DS_NUMERIC) {
    Credito__V1__NumericPreparation *np = &tr->nums[i];
    spec->kind = CREDITO__V1__FEATURE_KIND__FEATURE_KIND_NUMERIC;
    credito__v1__numeric_preparation__init(np);
    np->median = f->median;
    np->mean = f->mean;
    np->std = f->std;
    fp->kind_case = CREDITO__V1__FEATURE_PREPARATION__KIND_NUMERIC;
    fp->numeric = np;
    tr->coefs[f->offset].feature = spec->name;
  } else {
    Credito__V1__CategoricalPreparation *cp = &tr->cats[i];
    spec->kind = CREDITO__V1__FEATURE_KIND__FEATURE_KIND_CATEGORICAL;
    spec->n_categories = c->n_categories;
    spec->categories = c->categories;
    credito__v1__categorical_preparation__init(cp);
    cp->categories = &tr->seen[f->offset];
    for (size_t k = 0; k < f->n_levels; k++) {
      size_t j;
      if (f->level[k] < 0)
        continue;
      j = f->offset + (size_t)f->level[k];
      tr->seen[j] = c->categories[k];
      tr->coefs[j].feature = spec->name;
      tr->coefs[j].category = c->categories[k];
      cp->n_categories++;
    }
    /* md_prep encodes a missing value as all zeros: no "<feature>=?" column. */
    cp->missing_column = 0;
    fp->kind_case = CREDITO__V1__FEATURE_PREPARATION__KIND_CATEGORICAL;
    fp->categorical = cp;
  }
}

/* Fills the metrics and the lineage (parent set in *lin by the caller's storage). */
static void pack_lineage(struct pack_tree *tr, const struct md_artifact_meta *meta,
                         Credito__V1__Lineage *lin)
{
  for (size_t i = 0; i < meta->n_metrics; i++) {
    credito__v1__metric__init(&tr->metrics[i]);
    tr->metrics[i].key = str(meta->metrics[i].key);
    tr->metrics[i].value = meta->metrics[i].value;
    tr->metrics[i].step = meta->metrics[i].step;
    tr->metric_ptrs[i] = &tr->metrics[i];
  }
  for (size_t i = 0; i < meta->n_datasets; i++) {
    credito__v1__dataset_input__init(&tr->inputs[i]);
    credito__v1__dataset_ref__init(&tr->refs[i]);
    tr->refs[i].name = str(meta->datasets[i].name);
    tr->refs[i].md5 = str(meta->datasets[i].md5);
    tr->inputs[i].dataset = &tr->refs[i];
    tr->inputs[i].context = str(meta->datasets[i].context);
    tr->input_ptrs[i] = &tr->inputs[i];
  }
  lin->run_id = str(meta->run_id);
  lin->experiment_id = str(meta->experiment_id);
  lin->n_datasets = meta->n_datasets;
  lin->datasets = tr->input_ptrs;
}

int md_artifact_sha256(const uint8_t *bytes, size_t len, char hex[65])
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (!EVP_Digest(bytes, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
    return CM_E_INTERNAL;
  for (unsigned int i = 0; i < mdlen; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
  return 0;
}

/* The target is the one table column that is not a feature. */
static size_t prep_target(const struct md_prep *p)
{
  size_t target = p->n_features;
  for (size_t i = 0; i < p->n_features; i++) {
    if (p->features[i].col != i) {
      target = i;
      break;
    }
  }
  return target;
}

int md_artifact_pack(const struct md_prep *p, const ds_table *t, const double *coef,
                     size_t ncoef, const struct md_scorecard *sc,
                     const struct md_artifact_meta *meta, uint8_t **bytes, size_t *len,
                     char sha256_hex[65], struct cm_error *err)
{
  Credito__V1__ModelArtifact a = CREDITO__V1__MODEL_ARTIFACT__INIT;
  Credito__V1__Schema schema = CREDITO__V1__SCHEMA__INIT;
  Credito__V1__LogisticRegression lr = CREDITO__V1__LOGISTIC_REGRESSION__INIT;
  Credito__V1__Scorecard card = CREDITO__V1__SCORECARD__INIT;
  Credito__V1__Lineage lineage = CREDITO__V1__LINEAGE__INIT;
  Credito__V1__ModelRef parent = CREDITO__V1__MODEL_REF__INIT;
  struct pack_tree tr = {0};
  uint8_t *out = NULL;
  size_t n = 0;
  int rc = 0;

  if (bytes)
    *bytes = NULL;
  if (!p || !t || !coef || !sc || !meta || !bytes || !len || !sha256_hex) {
    rc = cm_error_set(err, CM_E_INVALID, "artifact: missing argument");
    goto out;
  }
  if (ncoef != p->width + 1 || ds_columns(t) != p->n_columns) {
    rc = cm_error_set(err, CM_E_INVALID, "artifact: %zu coefficients for width %zu, or the "
                      "table does not match the preparation", ncoef, p->width);
    goto out;
  }
  for (size_t i = 0; i < p->n_features; i++) {
    if (ds_column_at(t, p->features[i].col)->kind != p->features[i].kind) {
      rc = cm_error_set(err, CM_E_INVALID, "artifact: column %zu kind differs from the "
                        "preparation", p->features[i].col);
      goto out;
    }
  }
  if (pack_tree_alloc(&tr, p->n_features, p->width, meta))
    goto nomem;
  for (size_t j = 0; j < p->width; j++) {
    credito__v1__coefficient__init(&tr.coefs[j]);
    tr.coefs[j].name = p->names[j];
    tr.coefs[j].value = coef[j];
    tr.coef_ptrs[j] = &tr.coefs[j];
  }
  for (size_t i = 0; i < p->n_features; i++)
    pack_feature(&tr, p, t, i, meta->unknown_ignore);
  pack_lineage(&tr, meta, &lineage);
  if (meta->parent_name && meta->parent_name[0]) {
    parent.name = str(meta->parent_name);
    parent.selector_case = CREDITO__V1__MODEL_REF__SELECTOR_VERSION;
    parent.version = meta->parent_version;
    lineage.parent = &parent;
  }
  a.n_metrics = meta->n_metrics;
  a.metrics = tr.metric_ptrs;
  a.lineage = &lineage;

  schema.n_features = p->n_features;
  schema.features = tr.spec_ptrs;
  schema.target = str(ds_column_at(t, prep_target(p))->name);
  schema.positive_label = str(meta->positive_label);
  lr.c = meta->C;
  lr.tol = meta->tol;
  lr.max_iter = meta->max_iter;
  lr.solver = str(meta->solver);
  lr.intercept = coef[p->width];
  lr.n_coefficients = p->width;
  lr.coefficients = tr.coef_ptrs;
  lr.iterations = meta->iterations;
  lr.converged = meta->converged;
  card.pdo = sc->pdo;
  card.base_score = sc->base_score;
  card.base_odds = sc->base_odds;
  card.threshold = sc->threshold;
  a.format_version = MD_ARTIFACT_FORMAT;
  a.model_name = str(meta->model_name);
  a.schema = &schema;
  a.n_preparation = p->n_features;
  a.preparation = tr.prep_ptrs;
  a.logistic_regression = &lr;
  a.scorecard = &card;
  a.created_ms = meta->created_ms;
  a.trainer_version = str(meta->trainer_version);

  n = credito__v1__model_artifact__get_packed_size(&a);
  out = cm_malloc(n ? n : 1);
  if (!out)
    goto nomem;
  if (credito__v1__model_artifact__pack(&a, out) != n) {
    rc = cm_error_set(err, CM_E_INTERNAL, "artifact: packed size changed");
    goto out;
  }
  if (md_artifact_sha256(out, n, sha256_hex)) {
    rc = cm_error_set(err, CM_E_INTERNAL, "artifact: SHA-256 failed");
    goto out;
  }
  *bytes = out;
  *len = n;
  out = NULL;
  goto out;
nomem:
  rc = cm_error_set(err, CM_E_NOMEM, "artifact: out of memory");
out:
  cm_free(out);
  pack_tree_free(&tr);
  return rc;
}

/* ---- Unpack ---- */

static bool in_list(const char *s, char *const *list, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(s, list[i]) == 0)
      return true;
  return false;
}

/* Checks coefficient j names column "<feature>" or "<feature>=<category>" (category NULL for
 * numeric) and carries a finite value. */
static bool coef_ok(const Credito__V1__Coefficient *c, const char *feature, const char *category)
{
  size_t fl = strlen(feature);
  if (!c || !isfinite(c->value) || strcmp(c->feature, feature) != 0)
    return false;
  if (!category)
    return strcmp(c->name, feature) == 0 && c->category[0] == '\0' && !c->missing_indicator;
  return strncmp(c->name, feature, fl) == 0 && c->name[fl] == '=' &&
         strcmp(c->name + fl + 1, category) == 0 && strcmp(c->category, category) == 0 &&
         !c->missing_indicator;
}

/* Checks preparation i against its schema spec and its coefficients from *j; advances *j. */
static bool feature_ok(const Credito__V1__ModelArtifact *a, size_t i, size_t *j)
{
  const Credito__V1__FeatureSpec *spec = a->schema->features[i];
  const Credito__V1__FeaturePreparation *fp = a->preparation[i];
  const Credito__V1__LogisticRegression *lr = a->logistic_regression;
  if (!spec || !fp || strcmp(spec->name, fp->feature) != 0)
    return false;
  if (fp->kind_case == CREDITO__V1__FEATURE_PREPARATION__KIND_NUMERIC) {
    const Credito__V1__NumericPreparation *np = fp->numeric;
    if (spec->kind != CREDITO__V1__FEATURE_KIND__FEATURE_KIND_NUMERIC || !np ||
        !isfinite(np->median) || !isfinite(np->mean) || !isfinite(np->std) || !(np->std > 0))
      return false;
    if (*j >= lr->n_coefficients || !coef_ok(lr->coefficients[*j], spec->name, NULL))
      return false;
    (*j)++;
    return true;
  }
  if (fp->kind_case != CREDITO__V1__FEATURE_PREPARATION__KIND_CATEGORICAL || !fp->categorical ||
      spec->kind != CREDITO__V1__FEATURE_KIND__FEATURE_KIND_CATEGORICAL)
    return false;
  /* md_prep has no missing-value column; an artifact asking for one is not ours to score. */
  if (fp->categorical->missing_column)
    return false;
  for (size_t k = 0; k < fp->categorical->n_categories; k++) {
    const char *cat = fp->categorical->categories[k];
    if (!in_list(cat, spec->categories, spec->n_categories) || *j >= lr->n_coefficients ||
        !coef_ok(lr->coefficients[*j], spec->name, cat))
      return false;
    (*j)++;
  }
  return true;
}

/* Fills *sc from the artifact's scorecard (zero fields take the defaults) and checks it. */
static bool scorecard_ok(const Credito__V1__Scorecard *card, struct md_scorecard *sc)
{
  md_scorecard_init(sc);
  if (card) {
    sc->pdo = card->pdo != 0 ? card->pdo : sc->pdo;
    sc->base_score = card->base_score != 0 ? card->base_score : sc->base_score;
    sc->base_odds = card->base_odds != 0 ? card->base_odds : sc->base_odds;
    sc->threshold = card->threshold != 0 ? card->threshold : sc->threshold;
  }
  return isfinite(sc->pdo) && sc->pdo > 0 && isfinite(sc->base_score) &&
         isfinite(sc->base_odds) && sc->base_odds > 0 && sc->threshold > 0 &&
         sc->threshold <= 1;
}

int md_artifact_unpack(const uint8_t *bytes, size_t len, double **coef, size_t *ncoef,
                       struct md_scorecard *sc, struct cm_error *err)
{
  Credito__V1__ModelArtifact *a = NULL;
  const Credito__V1__LogisticRegression *lr;
  double *w = NULL;
  size_t j = 0;
  int rc = 0;

  *coef = NULL;
  if (!bytes && len) {
    rc = cm_error_set(err, CM_E_INVALID, "artifact: no bytes");
    goto out;
  }
  a = credito__v1__model_artifact__unpack(NULL, len, bytes);
  if (!a) {
    rc = cm_error_set(err, CM_E_CORRUPT, "artifact: not a ModelArtifact message");
    goto out;
  }
  if (a->format_version != MD_ARTIFACT_FORMAT) {
    rc = cm_error_set(err, CM_E_CORRUPT, "artifact: format_version %u not supported",
                      a->format_version);
    goto out;
  }
  lr = a->logistic_regression;
  if (!a->schema || !lr || a->schema->n_features != a->n_preparation ||
      !isfinite(lr->intercept)) {
    rc = cm_error_set(err, CM_E_CORRUPT, "artifact: schema, preparation or model missing or "
                      "of different lengths");
    goto out;
  }
  for (size_t i = 0; i < a->n_preparation; i++) {
    if (!feature_ok(a, i, &j)) {
      rc = cm_error_set(err, CM_E_CORRUPT, "artifact: feature %zu inconsistent with its "
                        "schema entry or coefficients", i);
      goto out;
    }
  }
  if (j != lr->n_coefficients) {
    rc = cm_error_set(err, CM_E_CORRUPT, "artifact: %zu coefficients for preparation width %zu",
                      lr->n_coefficients, j);
    goto out;
  }
  if (!scorecard_ok(a->scorecard, sc)) {
    rc = cm_error_set(err, CM_E_CORRUPT, "artifact: unusable scorecard");
    goto out;
  }
  w = cm_malloc((j + 1) * sizeof *w);
  if (!w) {
    rc = cm_error_set(err, CM_E_NOMEM, "artifact: out of memory");
    goto out;
  }
  for (size_t k = 0; k < j; k++)
    w[k] = lr->coefficients[k]->value;
  w[j] = lr->intercept;
  *coef = w;
  *ncoef = j + 1;
out:
  if (a)
    credito__v1__model_artifact__free_unpacked(a, NULL);
  return rc;
}

/* ---- Warm start ---- */

/* CM_E_FAILED_PRECONDITION unless the parent's schema has t's features (p's) by name and kind,
 * in order. */
static int warm_schema_check(const Credito__V1__Schema *schema, const struct md_prep *p,
                             const ds_table *t, struct cm_error *err)
{
  if (schema->n_features != p->n_features)
    return cm_error_set(err, CM_E_FAILED_PRECONDITION, "parent has %zu features, the data %zu",
                        schema->n_features, p->n_features);
  for (size_t i = 0; i < p->n_features; i++) {
    const struct ds_column *c = ds_column_at(t, p->features[i].col);
    const Credito__V1__FeatureSpec *spec = schema->features[i];
    bool numeric = spec->kind == CREDITO__V1__FEATURE_KIND__FEATURE_KIND_NUMERIC;
    if (strcmp(spec->name, c->name) != 0 || numeric != (c->kind == DS_NUMERIC))
      return cm_error_set(err, CM_E_FAILED_PRECONDITION,
                          "parent's feature %zu is '%s', the data's '%s' (or its kind differs)",
                          i + 1, spec->name, c->name);
  }
  return 0;
}

int md_artifact_warm_start(const uint8_t *bytes, size_t len, const struct md_prep *p,
                           const ds_table *t, double *coef, size_t *matched,
                           struct cm_error *err)
{
  Credito__V1__ModelArtifact *a = NULL;
  const Credito__V1__LogisticRegression *lr;
  double *check = NULL;
  size_t ncheck = 0, found = 0;
  struct md_scorecard sc;
  int rc;

  /* The full consistency check first: a parent we would refuse to serve starts nothing. */
  rc = md_artifact_unpack(bytes, len, &check, &ncheck, &sc, err);
  cm_free(check);
  if (rc)
    return rc;
  a = credito__v1__model_artifact__unpack(NULL, len, bytes);
  if (!a)
    return cm_error_set(err, CM_E_NOMEM, "artifact: out of memory");
  rc = warm_schema_check(a->schema, p, t, err);
  if (rc)
    goto out;
  lr = a->logistic_regression;
  for (size_t j = 0; j < p->width; j++) {
    coef[j] = 0.0;
    for (size_t k = 0; k < lr->n_coefficients; k++) {
      if (strcmp(lr->coefficients[k]->name, p->names[j]) == 0) {
        coef[j] = lr->coefficients[k]->value;
        found++;
        break;
      }
    }
  }
  coef[p->width] = lr->intercept;
  if (matched)
    *matched = found;
out:
  credito__v1__model_artifact__free_unpacked(a, NULL);
  return rc;
}
