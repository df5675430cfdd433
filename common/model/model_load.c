/* model/model_load: a model loaded from artifact bytes, scoring one applicant from named feature
 * values. Load decodes and checks the ModelArtifact, rebuilds the trainer's md_prep from it (so
 * the prepared layout and md_reasons are the trainer's) and indexes feature names and declared
 * categories in open-addressing hash tables. Scoring reads the model only, allocates nothing and
 * writes the caller's scratch row, so any number of threads may score with one model. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "credito/v1/model.pb-c.h"
#include "mem.h"
#include "model.h"
#include "model_int.h"

/* Most categorical features without any category seen in training. They have no prepared
 * column to mark them given in the scratch row, so scoring tracks them in a stack bitmap. */
#define BARE_MAX 4096

/* Most features, and most declared categories over all features, a model may have: hash slots
 * are 32-bit and a table holds at most half of its slots. */
#define ENTRIES_MAX (UINT32_MAX / 4)

/* One schema feature as scoring sees it. */
struct ml_feature {
  const char *name;    /* borrowed from the decoded artifact */
  size_t name_len;     /* strlen(name) */
  bool numeric;        /* else categorical */
  bool required;       /* absent or missing is a violation; else imputed */
  bool ignore_unknown; /* categorical: a text outside the categories encodes as zeros */
  size_t width;        /* prepared columns: 1, or the categories seen in training */
  size_t n_cats;       /* categorical: declared categories */
  size_t cat_base;     /* categorical: index of its first declared category in cats */
  uint64_t cat_seed;   /* categorical: hash seed of its categories */
  size_t bare;         /* width 0: its bit in the scoring bitmap */
  const struct md_feature *prep; /* its entry in the rebuilt preparation */
};

/* One declared category, borrowed from the decoded artifact. */
struct ml_cat {
  const char *text;
  size_t len;
};

struct md_model {
  Credito__V1__ModelArtifact *msg; /* decoded artifact, owned (cm_ allocator) */
  struct md_prep *prep;            /* rebuilt preparation, owned */
  double *coef;                    /* prep->width weights then the intercept, owned */
  struct md_scorecard sc;          /* checked scorecard, defaults filled */
  size_t n_features;               /* schema features */
  struct ml_feature *feat;         /* n_features, schema order */
  size_t n_cats;                   /* declared categories over all features */
  struct ml_cat *cats;             /* n_cats, feature after feature in declaration order */
  uint32_t *name_slot;             /* feature index + 1 per slot, 0 empty */
  size_t name_mask;                /* name_slot entries - 1, a power of two less one */
  uint32_t *cat_slot;              /* index in cats + 1 per slot, 0 empty */
  size_t cat_mask;                 /* cat_slot entries - 1 */
  size_t n_bare;                   /* features with width 0 */
};

/* A kind of request problem: its pydantic type name and message. */
struct problem {
  const char *type;
  const char *msg;
};

static const struct problem P_MISSING = {"missing", "Field required"};
static const struct problem P_EXTRA = {"extra_forbidden", "Extra inputs are not permitted"};
static const struct problem P_TWICE = {"extra_forbidden",
                                       "Extra inputs are not permitted (the feature is given "
                                       "more than once)"};
static const struct problem P_FLOAT = {"float_type", "Input should be a valid number"};
static const struct problem P_FINITE = {"finite_number", "Input should be a finite number"};
static const struct problem P_RANGE = {"finite_number", "Input is too large in magnitude to score"};
static const struct problem P_STRING = {"string_type", "Input should be a valid string"};
static const struct problem P_ENUM = {"enum", NULL}; /* message lists the categories */

/* ---- Hashing ---- */

#define SEED_NAME UINT64_C(0x243f6a8885a308d3)
#define SEED_CAT UINT64_C(0x13198a2e03707344)

static uint64_t mix(uint64_t h)
{
  h = (h ^ (h >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  h = (h ^ (h >> 27)) * UINT64_C(0x94d049bb133111eb);
  return h ^ (h >> 31);
}

/* Hash of s[0..n): 8 bytes at a time, the last word overlapping, short strings read as in
 * wyhash; one multiply per word and splitmix64's finaliser. The tables hold only the model's own
 * names, so a request cannot lengthen a probe sequence, whatever names it sends. */
static uint64_t hash_bytes(const char *s, size_t n, uint64_t seed)
{
  uint64_t h = seed ^ ((uint64_t)n * UINT64_C(0x9e3779b97f4a7c15)), w = 0;

  if (n > 8) {
    for (; n > 8; s += 8, n -= 8) {
      memcpy(&w, s, 8);
      h = (h ^ w) * UINT64_C(0xff51afd7ed558ccd);
      h ^= h >> 29;
    }
    memcpy(&w, s + n - 8, 8); /* the last 8 bytes of the string, overlapping the loop's */
  } else if (n >= 4) {
    uint32_t a, b;
    memcpy(&a, s, 4);
    memcpy(&b, s + n - 4, 4);
    w = (uint64_t)a << 32 | b;
  } else if (n > 0) {
    w = (uint64_t)(unsigned char)s[0] << 16 | (uint64_t)(unsigned char)s[n / 2] << 8 |
        (unsigned char)s[n - 1];
  }
  return mix(h ^ w);
}

/* a[0..alen) == b[0..blen). Names and categories are short: comparing whole words inline beats
 * a call to memcmp. */
static bool bytes_equal(const char *a, size_t alen, const char *b, size_t blen)
{
  uint64_t x, y;
  uint32_t u, v;

  if (alen != blen)
    return false;
  if (alen >= 8) {
    for (size_t i = 0; i + 8 < alen; i += 8) {
      memcpy(&x, a + i, 8);
      memcpy(&y, b + i, 8);
      if (x != y)
        return false;
    }
    memcpy(&x, a + alen - 8, 8);
    memcpy(&y, b + alen - 8, 8);
    return x == y;
  }
  if (alen >= 4) {
    memcpy(&u, a, 4);
    memcpy(&v, b, 4);
    if (u != v)
      return false;
    memcpy(&u, a + alen - 4, 4);
    memcpy(&v, b + alen - 4, 4);
    return u == v;
  }
  for (size_t i = 0; i < alen; i++)
    if (a[i] != b[i])
      return false;
  return true;
}

/* Slots for n entries at most half full: a power of two, at least 4. */
static size_t table_slots(size_t n)
{
  size_t slots = 4;
  while (slots < 2 * n)
    slots *= 2;
  return slots;
}

/* Index of the feature named s[0..len), or -1; *slot (may be NULL) gets the slot that holds it
 * or the empty slot ending the probe. */
static long feature_probe(const struct md_model *m, const char *s, size_t len, size_t *slot)
{
  size_t i = (size_t)hash_bytes(s, len, SEED_NAME) & m->name_mask;
  long found = -1;
  for (; m->name_slot[i]; i = (i + 1) & m->name_mask) {
    const struct ml_feature *f = &m->feat[m->name_slot[i] - 1];
    if (bytes_equal(f->name, f->name_len, s, len)) {
      found = (long)(m->name_slot[i] - 1);
      break;
    }
  }
  if (slot)
    *slot = i;
  return found;
}

/* Declared index of category s[0..len) of feature fi, or -1; *slot as feature_probe. */
static long category_probe(const struct md_model *m, size_t fi, const char *s, size_t len,
                           size_t *slot)
{
  const struct ml_feature *f = &m->feat[fi];
  size_t i = (size_t)hash_bytes(s, len, f->cat_seed) & m->cat_mask;
  long found = -1;
  for (; m->cat_slot[i]; i = (i + 1) & m->cat_mask) {
    size_t g = m->cat_slot[i] - 1;
    if (g >= f->cat_base && g - f->cat_base < f->n_cats &&
        bytes_equal(m->cats[g].text, m->cats[g].len, s, len)) {
      found = (long)(g - f->cat_base);
      break;
    }
  }
  if (slot)
    *slot = i;
  return found;
}

/* ---- Load ---- */

static void *pb_alloc(void *data, size_t size)
{
  (void)data;
  return cm_malloc(size);
}

static void pb_free(void *data, void *p)
{
  (void)data;
  cm_free(p);
}

/* protobuf-c's allocator over cm_, so tests can fail its allocations too. */
static ProtobufCAllocator pb_allocator(void)
{
  ProtobufCAllocator a = {pb_alloc, pb_free, NULL};
  return a;
}

/* Fills feat and the name table from the schema. */
static int model_features(struct md_model *m, struct cm_error *err)
{
  const Credito__V1__Schema *schema = m->msg->schema;
  size_t nf = schema->n_features, total = 0;

  if (nf > ENTRIES_MAX)
    return cm_error_set(err, CM_E_CORRUPT, "model: %zu features is too many", nf);
  m->n_features = nf;
  m->feat = cm_calloc(nf ? nf : 1, sizeof *m->feat);
  m->name_mask = table_slots(nf) - 1;
  m->name_slot = cm_calloc(m->name_mask + 1, sizeof *m->name_slot);
  if (!m->feat || !m->name_slot)
    return cm_error_set(err, CM_E_NOMEM, "model: out of memory");
  for (size_t i = 0; i < nf; i++) {
    const Credito__V1__FeatureSpec *spec = schema->features[i];
    struct ml_feature *f = &m->feat[i];
    size_t slot;

    f->name = spec->name;
    f->name_len = strlen(spec->name);
    f->numeric = spec->kind == CREDITO__V1__FEATURE_KIND__FEATURE_KIND_NUMERIC;
    f->required = spec->required;
    f->ignore_unknown =
        spec->unknown_category == CREDITO__V1__UNKNOWN_CATEGORY__UNKNOWN_CATEGORY_IGNORE;
    f->cat_base = total;
    f->cat_seed = SEED_CAT ^ mix(i + 1);
    if (!f->numeric) {
      if (spec->n_categories > ENTRIES_MAX - total)
        return cm_error_set(err, CM_E_CORRUPT, "model: too many categories");
      f->n_cats = spec->n_categories;
      total += f->n_cats;
    }
    if (feature_probe(m, f->name, f->name_len, &slot) >= 0)
      return cm_error_set(err, CM_E_CORRUPT, "model: the schema names feature '%s' twice",
                          f->name);
    m->name_slot[slot] = (uint32_t)i + 1;
  }
  m->n_cats = total;
  return 0;
}

/* Fills cats and the category table from the schema's categorical features. */
static int model_categories(struct md_model *m, struct cm_error *err)
{
  const Credito__V1__Schema *schema = m->msg->schema;

  m->cats = cm_calloc(m->n_cats ? m->n_cats : 1, sizeof *m->cats);
  m->cat_mask = table_slots(m->n_cats) - 1;
  m->cat_slot = cm_calloc(m->cat_mask + 1, sizeof *m->cat_slot);
  if (!m->cats || !m->cat_slot)
    return cm_error_set(err, CM_E_NOMEM, "model: out of memory");
  for (size_t i = 0; i < m->n_features; i++) {
    const Credito__V1__FeatureSpec *spec = schema->features[i];
    const struct ml_feature *f = &m->feat[i];

    for (size_t k = 0; k < f->n_cats; k++) {
      struct ml_cat *c = &m->cats[f->cat_base + k];
      size_t slot;

      c->text = spec->categories[k];
      c->len = strlen(c->text);
      /* Only categories 0..k-1 of this feature are in the table yet, so a hit is a repeat. */
      if (category_probe(m, i, c->text, c->len, &slot) >= 0)
        return cm_error_set(err, CM_E_CORRUPT, "model: feature '%s' declares category '%s' "
                            "twice", f->name, c->text);
      m->cat_slot[slot] = (uint32_t)(f->cat_base + k) + 1;
    }
  }
  return 0;
}

/* Rebuilds categorical feature i of the preparation from offset: level per declared category,
 * names "feature=category" as prep.c's prep_names makes them. */
static int prep_categorical(struct md_model *m, size_t i, size_t offset, struct cm_error *err)
{
  const Credito__V1__FeatureSpec *spec = m->msg->schema->features[i];
  const Credito__V1__CategoricalPreparation *cp = m->msg->preparation[i]->categorical;
  const Credito__V1__FeatureValue *dv = spec->default_value;
  struct md_prep *p = m->prep;
  struct md_feature *pf = &p->features[i];

  pf->kind = DS_CATEGORICAL;
  pf->n_levels = spec->n_categories;
  pf->level = cm_malloc((pf->n_levels ? pf->n_levels : 1) * sizeof *pf->level);
  if (!pf->level)
    return cm_error_set(err, CM_E_NOMEM, "model: out of memory");
  for (size_t k = 0; k < pf->n_levels; k++)
    pf->level[k] = -1;
  for (size_t s = 0; s < cp->n_categories; s++) {
    const char *cat = cp->categories[s];
    long k = category_probe(m, i, cat, strlen(cat), NULL);
    size_t len;

    if (k < 0 || pf->level[k] >= 0)
      return cm_error_set(err, CM_E_CORRUPT, "model: feature '%s' prepares category '%s' "
                          "twice or undeclared", spec->name, cat);
    pf->level[k] = (int)s;
    len = strlen(spec->name) + strlen(cat) + 2;
    p->names[offset + s] = cm_malloc(len);
    if (!p->names[offset + s])
      return cm_error_set(err, CM_E_NOMEM, "model: out of memory");
    snprintf(p->names[offset + s], len, "%s=%s", spec->name, cat);
    p->source[offset + s] = (int)i;
  }
  pf->mode = -1;
  if (dv && dv->value_case == CREDITO__V1__FEATURE_VALUE__VALUE_TEXT)
    pf->mode = (int)category_probe(m, i, dv->text, strlen(dv->text), NULL);
  m->feat[i].width = cp->n_categories;
  return 0;
}

/* Rebuilds numeric feature i of the preparation at offset. */
static int prep_numeric(struct md_model *m, size_t i, size_t offset, struct cm_error *err)
{
  const Credito__V1__NumericPreparation *np = m->msg->preparation[i]->numeric;
  struct md_prep *p = m->prep;
  struct md_feature *pf = &p->features[i];

  pf->kind = DS_NUMERIC;
  pf->median = np->median;
  pf->mean = np->mean;
  pf->std = np->std;
  pf->mode = -1;
  /* Scoring refuses a value whose term overflows; the imputed one is checked here, once. */
  if (!isfinite((pf->median - pf->mean) / pf->std * m->coef[offset]))
    return cm_error_set(err, CM_E_CORRUPT, "model: feature '%s': the imputed value overflows",
                        m->feat[i].name);
  p->names[offset] = cm_strdup(m->feat[i].name);
  if (!p->names[offset])
    return cm_error_set(err, CM_E_NOMEM, "model: out of memory");
  p->source[offset] = (int)i;
  m->feat[i].width = 1;
  return 0;
}

/* Builds m->prep for width prepared values: one md_feature per schema feature, column = feature
 * index, the target last (n_columns = n_features + 1). */
static int model_prep(struct md_model *m, size_t width, struct cm_error *err)
{
  struct md_prep *p = cm_calloc(1, sizeof *p);
  size_t offset = 0;
  int rc = 0;

  m->prep = p;
  if (!p)
    return cm_error_set(err, CM_E_NOMEM, "model: out of memory");
  p->n_features = m->n_features;
  p->n_columns = m->n_features + 1;
  p->features = cm_calloc(p->n_features ? p->n_features : 1, sizeof *p->features);
  p->names = cm_calloc(width ? width : 1, sizeof *p->names);
  p->source = cm_calloc(width ? width : 1, sizeof *p->source);
  if (!p->features || !p->names || !p->source)
    return cm_error_set(err, CM_E_NOMEM, "model: out of memory");
  p->width = width; /* names[] is zeroed, so md_prep_free may now walk it */
  for (size_t i = 0; i < m->n_features && !rc; i++) {
    const Credito__V1__FeaturePreparation *fp = m->msg->preparation[i];
    bool numeric = fp->kind_case == CREDITO__V1__FEATURE_PREPARATION__KIND_NUMERIC;
    size_t need = numeric ? 1 : fp->categorical->n_categories;

    /* md_artifact_unpack matched the layout to the coefficients; this guards our writes. */
    if (need > width - offset)
      return cm_error_set(err, CM_E_CORRUPT, "model: preparation wider than its coefficients");
    p->features[i].col = i;
    p->features[i].offset = offset;
    m->feat[i].prep = &p->features[i];
    p->features[i].had_missing = !m->feat[i].required;
    rc = numeric ? prep_numeric(m, i, offset, err) : prep_categorical(m, i, offset, err);
    offset += need;
    if (!rc && m->feat[i].width == 0) {
      if (m->n_bare == BARE_MAX)
        rc = cm_error_set(err, CM_E_CORRUPT, "model: more than %d categorical features without "
                          "a category seen in training", BARE_MAX);
      else
        m->feat[i].bare = m->n_bare++;
    }
  }
  if (!rc && offset != width)
    rc = cm_error_set(err, CM_E_CORRUPT, "model: preparation narrower than its coefficients");
  return rc;
}

int md_model_load(const uint8_t *bytes, size_t len, md_model **out, struct cm_error *err)
{
  ProtobufCAllocator alloc = pb_allocator();
  struct md_model *m = NULL;
  double *coef = NULL;
  size_t ncoef = 0;
  struct md_scorecard sc;
  int rc;

  *out = NULL;
  /* Every consistency check of the artifact reader, on the same bytes. */
  rc = md_artifact_unpack(bytes, len, &coef, &ncoef, &sc, err);
  if (rc)
    goto out;
  m = cm_calloc(1, sizeof *m);
  if (!m) {
    rc = cm_error_set(err, CM_E_NOMEM, "model: out of memory");
    goto out;
  }
  m->coef = coef;
  coef = NULL;
  m->sc = sc;
  /* The bytes just decoded, so a failure now can only be memory. */
  m->msg = credito__v1__model_artifact__unpack(&alloc, len, bytes);
  if (!m->msg) {
    rc = cm_error_set(err, CM_E_NOMEM, "model: out of memory");
    goto out;
  }
  rc = model_features(m, err);
  if (!rc)
    rc = model_categories(m, err);
  if (!rc)
    rc = model_prep(m, ncoef - 1, err);
  if (rc)
    goto out;
  *out = m;
  m = NULL;
out:
  cm_free(coef);
  md_model_free(m);
  return rc;
}

void md_model_free(md_model *m)
{
  ProtobufCAllocator alloc = pb_allocator();

  if (!m)
    return;
  md_prep_free(m->prep);
  cm_free(m->coef);
  cm_free(m->feat);
  cm_free(m->cats);
  cm_free(m->name_slot);
  cm_free(m->cat_slot);
  if (m->msg)
    credito__v1__model_artifact__free_unpacked(m->msg, &alloc);
  cm_free(m);
}

size_t md_model_width(const md_model *m) { return m->prep->width; }

const void *md_model_artifact(const md_model *m) { return &m->msg->base; }

/* ---- Score ---- */

/* Where violations go: the caller's array (max entries) and the running total. */
struct sink {
  struct md_violation *v;
  size_t max;
  size_t n;
};

/* Copies the field name, cut to 255 bytes at a UTF-8 character boundary. */
static void field_copy(char *dst, size_t cap, const char *s, size_t len)
{
  if (len > cap - 1) {
    len = cap - 1;
    while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
      len--;
  }
  if (len)
    memcpy(dst, s, len);
  dst[len] = '\0';
}

/* Appends s[0..len) at *pos if it fits with room for the NUL and reserve more bytes. */
static bool msg_append(char *dst, size_t cap, size_t *pos, const char *s, size_t len,
                       size_t reserve)
{
  if (len + reserve >= cap - *pos)
    return false;
  memcpy(dst + *pos, s, len);
  *pos += len;
  dst[*pos] = '\0';
  return true;
}

/* An "enum" message as pydantic words a literal: "Input should be 'A11', 'A12' or 'A13'".
 * When that does not fit: "Input should be one of 40 categories: 'a', 'b', ..." with as many
 * whole categories as fit. */
static void enum_msg(const struct md_model *m, size_t fi, char *dst, size_t cap)
{
  const struct ml_feature *f = &m->feat[fi];
  size_t n = f->n_cats, pos = 0;
  bool fits = true;

  dst[0] = '\0';
  if (n == 0) {
    snprintf(dst, cap, "Input should be a category, and the feature declares none");
    return;
  }
  msg_append(dst, cap, &pos, "Input should be ", 16, 0);
  for (size_t k = 0; k < n && fits; k++) {
    const struct ml_cat *c = &m->cats[f->cat_base + k];
    const char *sep = k == 0 ? "'" : k + 1 == n ? " or '" : ", '";
    fits = msg_append(dst, cap, &pos, sep, strlen(sep), 0) &&
           msg_append(dst, cap, &pos, c->text, c->len, 1) &&
           msg_append(dst, cap, &pos, "'", 1, 0);
  }
  if (fits)
    return;
  pos = (size_t)snprintf(dst, cap, "Input should be one of %zu categor%s:", n,
                         n == 1 ? "y" : "ies");
  for (size_t k = 0; k < n; k++) {
    const struct ml_cat *c = &m->cats[f->cat_base + k];
    size_t mark = pos;
    /* Keep room for " ..." after every category written. */
    if (!msg_append(dst, cap, &pos, k ? ", '" : " '", k ? 3 : 2, 4) ||
        !msg_append(dst, cap, &pos, c->text, c->len, 5) ||
        !msg_append(dst, cap, &pos, "'", 1, 4)) {
      pos = mark;
      break;
    }
  }
  dst[pos] = '\0';
  msg_append(dst, cap, &pos, " ...", 4, 0);
}

/* Counts one problem and, while there is room, records it for field s[0..len) of feature fi
 * (-1 for none). */
static void sink_add(struct sink *k, const struct md_model *m, long fi, const char *s,
                     size_t len, const struct problem *pr)
{
  struct md_violation *v;

  if (k->n++ >= k->max)
    return;
  v = &k->v[k->n - 1];
  field_copy(v->field, sizeof v->field, s, len);
  v->type = pr->type;
  if (pr->msg)
    snprintf(v->msg, sizeof v->msg, "%s", pr->msg);
  else
    enum_msg(m, (size_t)fi, v->msg, sizeof v->msg);
}

/* True when feature fi already has a value in this request: its first prepared column is no
 * longer the NaN the row started as (a prepared value is never NaN), or its bare bit is set. */
static bool feature_given(const struct md_model *m, size_t fi, const double *x,
                          const uint64_t *bare)
{
  const struct ml_feature *f = &m->feat[fi];
  if (f->width == 0)
    return (bare[f->bare / 64] >> (f->bare % 64)) & 1;
  return !isnan(x[f->prep->offset]);
}

/* Prepares numeric value v into x[offset] as md_prep_apply does; returns the problem or NULL.
 * A problem leaves 0 there, which still marks the feature given. */
static const struct problem *numeric_put(const struct md_model *m, size_t fi,
                                         const struct md_value *v, double *x)
{
  const struct md_feature *pf = m->feat[fi].prep;
  double *slot = &x[pf->offset];

  *slot = 0.0;
  if (v->kind == MD_VALUE_MISSING) {
    if (m->feat[fi].required)
      return &P_MISSING;
    *slot = (pf->median - pf->mean) / pf->std;
    return NULL;
  }
  if (v->kind != MD_VALUE_NUMBER)
    return &P_FLOAT;
  if (!isfinite(v->number))
    return &P_FINITE;
  *slot = (v->number - pf->mean) / pf->std;
  /* Far outside the training range the standardised value, or its term of the log-odds, can
   * overflow; two infinite terms of opposite signs would make the probability NaN. */
  if (!isfinite(*slot * m->coef[pf->offset])) {
    *slot = 0.0;
    return &P_RANGE;
  }
  return NULL;
}

/* Prepares categorical value v into its one-hot block (zeros, then the category's slot if it
 * was seen in training); returns the problem or NULL. */
static const struct problem *categorical_put(const struct md_model *m, size_t fi,
                                             const struct md_value *v, double *x)
{
  const struct ml_feature *f = &m->feat[fi];
  const struct md_feature *pf = f->prep;
  long k;

  for (size_t j = 0; j < f->width; j++)
    x[pf->offset + j] = 0.0;
  if (v->kind == MD_VALUE_MISSING)
    return f->required ? &P_MISSING : NULL;
  if (v->kind != MD_VALUE_TEXT)
    return &P_STRING;
  k = category_probe(m, fi, v->text ? v->text : "", v->text ? v->text_len : 0, NULL);
  if (k < 0)
    return f->ignore_unknown ? NULL : &P_ENUM;
  if (pf->level[k] >= 0)
    x[pf->offset + (size_t)pf->level[k]] = 1.0;
  return NULL;
}

/* Checks and prepares one request value. *next is the feature after the previous value's:
 * requests usually list features in schema order, and then a compare replaces the hash. */
static void value_take(const struct md_model *m, const struct md_value *v, double *x,
                       uint64_t *bare, size_t *next, struct sink *k)
{
  const char *name = v->name ? v->name : "";
  size_t len = v->name ? v->name_len : 0;
  const struct ml_feature *f;
  const struct problem *pr;
  long fi;

  if (*next < m->n_features && bytes_equal(m->feat[*next].name, m->feat[*next].name_len, name,
                                           len))
    fi = (long)*next;
  else
    fi = feature_probe(m, name, len, NULL);
  *next = (size_t)(fi + 1);

  if (fi < 0) {
    sink_add(k, m, -1, name, len, &P_EXTRA);
    return;
  }
  if (feature_given(m, (size_t)fi, x, bare)) {
    sink_add(k, m, -1, name, len, &P_TWICE);
    return;
  }
  f = &m->feat[fi];
  if (f->width == 0)
    bare[f->bare / 64] |= UINT64_C(1) << (f->bare % 64);
  pr = f->numeric ? numeric_put(m, (size_t)fi, v, x) : categorical_put(m, (size_t)fi, v, x);
  if (pr)
    sink_add(k, m, fi, name, len, pr);
}

/* Features the request did not give: a violation when required, else imputed as missing. */
static void absent_fill(const struct md_model *m, double *x, const uint64_t *bare,
                        struct sink *k)
{
  for (size_t fi = 0; fi < m->n_features; fi++) {
    const struct ml_feature *f = &m->feat[fi];
    const struct md_feature *pf = f->prep;

    if (feature_given(m, fi, x, bare))
      continue;
    if (f->required)
      sink_add(k, m, (long)fi, f->name, f->name_len, &P_MISSING);
    else if (f->numeric)
      x[pf->offset] = (pf->median - pf->mean) / pf->std;
    else
      memset(x + pf->offset, 0, f->width * sizeof *x);
  }
}

int md_model_score(const md_model *m, const struct md_value *values, size_t n, double *scratch,
                   struct md_prediction *out, struct md_violation *viol, size_t max_viol,
                   size_t *n_viol)
{
  uint64_t bare[BARE_MAX / 64];
  struct sink k = {viol, viol ? max_viol : 0, 0};
  double none = 0.0, *x = scratch;
  size_t width, next = 0;

  if (n_viol)
    *n_viol = 0;
  if (!m || !out || (n && !values) || (!scratch && m->prep->width))
    return CM_E_INVALID;
  width = m->prep->width;
  if (!x)
    x = &none; /* width 0: md_reasons still wants a row */
  /* NaN marks "not given yet" in the first column of every feature that has columns: all-ones
   * bytes are a NaN, and memset is much faster than a loop of stores. */
  memset(x, 0xff, width * sizeof *x);
  memset(bare, 0, (m->n_bare + 63) / 64 * sizeof *bare);
  for (size_t i = 0; i < n; i++)
    value_take(m, &values[i], x, bare, &next, &k);
  absent_fill(m, x, bare, &k);
  if (n_viol)
    *n_viol = k.n;
  if (k.n)
    return CM_E_INVALID;
  md_logreg_predict(x, 1, width, m->coef, &out->probability);
  out->score = md_score_points(&m->sc, out->probability);
  out->decline = md_score_declines(&m->sc, out->probability);
  md_reasons(m->prep, m->coef, x, MD_REASONS_MAX, out->reasons, &out->n_reasons);
  return 0;
}
