/* dataset table: column-wise storage, the builders the ARFF and CSV readers fill it with, the
 * accessors, the strict number reader, format sniffing and the choice of target column. */
#include "dataset_int.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mem.h"

void ds_limits_resolve(const struct ds_limits *lim, struct ds_limits *out)
{
  static const struct ds_limits defaults = {
      .max_bytes = (size_t)256 << 20,
      .max_rows = 10000000,
      .max_columns = 4096,
      .max_categories = 65536,
      .max_field = (size_t)64 << 10,
  };

  *out = defaults;
  if (lim) {
    out->max_bytes = lim->max_bytes ? lim->max_bytes : defaults.max_bytes;
    out->max_rows = lim->max_rows ? lim->max_rows : defaults.max_rows;
    out->max_columns = lim->max_columns ? lim->max_columns : defaults.max_columns;
    out->max_categories = lim->max_categories ? lim->max_categories : defaults.max_categories;
    out->max_field = lim->max_field ? lim->max_field : defaults.max_field;
  }
  /* Category indices are ints. */
  if (out->max_categories > INT_MAX)
    out->max_categories = INT_MAX;
}

int ds_error_nomem(struct cm_error *err)
{
  return cm_error_set(err, CM_E_NOMEM, "out of memory reading the dataset");
}

int ds_text_check(const char *text, size_t len, const struct ds_limits *lim, size_t *start,
                  struct cm_error *err)
{
  const char *nul;
  size_t line = 1;

  *start = 0;
  if (!text && len)
    return cm_error_set(err, CM_E_INVALID, "no text but a length of %zu", len);
  if (len > lim->max_bytes)
    return cm_error_set(err, CM_E_TOOLARGE, "input of %zu bytes is over the max_bytes limit (%zu)",
                        len, lim->max_bytes);
  nul = len ? memchr(text, '\0', len) : NULL;
  if (nul) {
    for (const char *p = text; p < nul; p++)
      line += *p == '\n';
    return cm_error_set(err, CM_E_INVALID, "line %zu: NUL byte in text input", line);
  }
  if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
    *start = 3;
  return 0;
}

ds_table *ds_table_alloc(const struct ds_limits *lim)
{
  ds_table *t = cm_calloc(1, sizeof(*t));

  if (!t)
    return NULL;
  t->relation = cm_strdup("");
  if (!t->relation) {
    cm_free(t);
    return NULL;
  }
  ds_limits_resolve(lim, &t->lim);
  return t;
}

void ds_table_free(ds_table *t)
{
  if (!t)
    return;
  for (size_t i = 0; i < t->n_cols; i++) {
    struct ds_column *c = &t->cols[i];
    struct ds_coldata *d = &t->data[i];

    for (size_t k = 0; k < c->n_categories; k++)
      cm_free(c->categories[k]);
    cm_free(c->categories);
    cm_free(c->name);
    cm_free(d->cat_hash);
    cm_free(d->slots);
    /* Both union members are the same pointer. */
    cm_free(d->v.num);
  }
  cm_free(t->cols);
  cm_free(t->data);
  cm_free(t->relation);
  cm_free(t);
}

int ds_table_relation_set(ds_table *t, const char *s, size_t n, struct cm_error *err)
{
  char *copy = cm_strndup(s, n);

  if (!copy)
    return ds_error_nomem(err);
  cm_free(t->relation);
  t->relation = copy;
  return 0;
}

/* Grows the cols/data arrays to hold one more column. */
static int table_cols_grow(ds_table *t, struct cm_error *err)
{
  size_t cap = t->cols_cap ? t->cols_cap * 2 : 16;
  struct ds_column *cols;
  struct ds_coldata *data;

  if (t->n_cols < t->cols_cap)
    return 0;
  cols = cm_realloc(t->cols, cap * sizeof(*cols));
  if (!cols)
    return ds_error_nomem(err);
  t->cols = cols;
  data = cm_realloc(t->data, cap * sizeof(*data));
  if (!data)
    return ds_error_nomem(err);
  t->data = data;
  t->cols_cap = cap;
  return 0;
}

int ds_table_column_add(ds_table *t, const char *s, size_t n, enum ds_kind kind, size_t line,
                        struct cm_error *err)
{
  char where[32] = "";
  char *name = NULL;
  int rc;

  if (line)
    snprintf(where, sizeof(where), "line %zu: ", line);
  if (n == 0)
    return cm_error_set(err, CM_E_INVALID, "%sempty column name (column %zu)", where,
                        t->n_cols + 1);
  if (t->n_cols >= t->lim.max_columns)
    return cm_error_set(err, CM_E_TOOLARGE, "%smore than the max_columns limit (%zu) of columns",
                        where, t->lim.max_columns);
  /* Linear: at most max_columns names, and no row has been read yet. */
  for (size_t i = 0; i < t->n_cols; i++) {
    if (strncmp(t->cols[i].name, s, n) == 0 && t->cols[i].name[n] == '\0')
      return cm_error_set(err, CM_E_INVALID, "%sduplicate column name '%.*s'", where, DS_SHOW(n),
                          s);
  }
  rc = table_cols_grow(t, err);
  if (rc)
    return rc;
  name = cm_strndup(s, n);
  if (!name)
    return ds_error_nomem(err);
  memset(&t->cols[t->n_cols], 0, sizeof(t->cols[0]));
  memset(&t->data[t->n_cols], 0, sizeof(t->data[0]));
  t->cols[t->n_cols].name = name;
  t->cols[t->n_cols].kind = kind;
  t->n_cols++;
  return 0;
}

/* FNV-1a: short category strings, no adversarial-collision concern worth more (the category
 * count is capped). */
static uint32_t category_hash(const char *s, size_t n)
{
  uint32_t h = 2166136261u;

  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 16777619u;
  }
  return h;
}

int ds_table_category_find(const ds_table *t, size_t col, const char *s, size_t n)
{
  const struct ds_coldata *d = &t->data[col];
  char *const *cats = t->cols[col].categories;
  uint32_t h;
  size_t mask;

  if (d->n_slots == 0)
    return -1;
  h = category_hash(s, n);
  mask = d->n_slots - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    uint32_t v = d->slots[i];

    if (v == 0)
      return -1;
    /* strncmp stops at the category's NUL, so a shorter category is never over-read. */
    if (d->cat_hash[v - 1] == h && strncmp(cats[v - 1], s, n) == 0 && cats[v - 1][n] == '\0')
      return (int)(v - 1);
  }
}

/* Rebuilds the slot index of column col at twice its size (load factor stays under 1/2). */
static int category_rehash(struct ds_coldata *d, size_t n_categories, struct cm_error *err)
{
  size_t n_slots = d->n_slots ? d->n_slots * 2 : 16;
  uint32_t *slots = cm_calloc(n_slots, sizeof(*slots));

  if (!slots)
    return ds_error_nomem(err);
  for (size_t k = 0; k < n_categories; k++) {
    size_t i = d->cat_hash[k] & (n_slots - 1);

    while (slots[i])
      i = (i + 1) & (n_slots - 1);
    slots[i] = (uint32_t)(k + 1);
  }
  cm_free(d->slots);
  d->slots = slots;
  d->n_slots = n_slots;
  return 0;
}

/* Makes room for one more category in column col. */
static int category_grow(ds_table *t, size_t col, struct cm_error *err)
{
  struct ds_column *c = &t->cols[col];
  struct ds_coldata *d = &t->data[col];
  size_t cap = d->cat_cap ? d->cat_cap * 2 : 8;
  char **cats;
  uint32_t *hashes;

  if (c->n_categories < d->cat_cap)
    return 0;
  cats = cm_realloc(c->categories, cap * sizeof(*cats));
  if (!cats)
    return ds_error_nomem(err);
  c->categories = cats;
  hashes = cm_realloc(d->cat_hash, cap * sizeof(*hashes));
  if (!hashes)
    return ds_error_nomem(err);
  d->cat_hash = hashes;
  d->cat_cap = cap;
  return 0;
}

int ds_table_category_add(ds_table *t, size_t col, const char *s, size_t n, size_t line, int *idx,
                          struct cm_error *err)
{
  struct ds_column *c = &t->cols[col];
  struct ds_coldata *d = &t->data[col];
  size_t k = c->n_categories;
  uint32_t h = category_hash(s, n);
  size_t i;
  int rc;

  if (k >= t->lim.max_categories)
    return cm_error_set(err, CM_E_TOOLARGE,
                        "line %zu, column '%.40s': more than the max_categories limit (%zu)", line,
                        c->name, t->lim.max_categories);
  rc = category_grow(t, col, err);
  if (rc == 0 && (k + 1) * 2 > d->n_slots)
    rc = category_rehash(d, k, err);
  if (rc)
    return rc;
  c->categories[k] = cm_strndup(s, n);
  if (!c->categories[k])
    return ds_error_nomem(err);
  d->cat_hash[k] = h;
  for (i = h & (d->n_slots - 1); d->slots[i]; i = (i + 1) & (d->n_slots - 1))
    ;
  d->slots[i] = (uint32_t)(k + 1);
  c->n_categories = k + 1;
  *idx = (int)k;
  return 0;
}

int ds_table_rows_reserve(ds_table *t, size_t n, struct cm_error *err)
{
  size_t cap = t->rows_cap ? t->rows_cap : 64;

  if (n <= t->rows_cap)
    return 0;
  while (cap < n)
    cap = cap > SIZE_MAX / 2 ? n : cap * 2;
  for (size_t i = 0; i < t->n_cols; i++) {
    size_t cell = t->cols[i].kind == DS_NUMERIC ? sizeof(double) : sizeof(int);
    void *p;

    if (cap > SIZE_MAX / cell)
      return ds_error_nomem(err);
    /* Columns may end up with different capacities after a failure; only rows_cap, the
     * minimum, is trusted, and a retry reallocates to the same size. */
    p = cm_realloc(t->data[i].v.num, cap * cell);
    if (!p)
      return ds_error_nomem(err);
    t->data[i].v.num = p;
  }
  t->rows_cap = cap;
  return 0;
}

size_t ds_rows(const ds_table *t)
{
  return t->n_rows;
}

size_t ds_columns(const ds_table *t)
{
  return t->n_cols;
}

const struct ds_column *ds_column_at(const ds_table *t, size_t i)
{
  return i < t->n_cols ? &t->cols[i] : NULL;
}

int ds_column_find(const ds_table *t, const char *name)
{
  for (size_t i = 0; i < t->n_cols; i++) {
    if (strcmp(t->cols[i].name, name) == 0)
      return i <= INT_MAX ? (int)i : -1;
  }
  return -1;
}

double ds_number(const ds_table *t, size_t row, size_t col)
{
  if (row >= t->n_rows || col >= t->n_cols || t->cols[col].kind != DS_NUMERIC)
    return NAN;
  return t->data[col].v.num[row];
}

int ds_category(const ds_table *t, size_t row, size_t col)
{
  if (row >= t->n_rows || col >= t->n_cols || t->cols[col].kind != DS_CATEGORICAL)
    return -1;
  return t->data[col].v.cat[row];
}

const double *ds_column_numbers(const ds_table *t, size_t col)
{
  if (col >= t->n_cols || t->cols[col].kind != DS_NUMERIC)
    return NULL;
  return t->data[col].v.num;
}

const int *ds_column_codes(const ds_table *t, size_t col)
{
  if (col >= t->n_cols || t->cols[col].kind != DS_CATEGORICAL)
    return NULL;
  return t->data[col].v.cat;
}

const char *ds_relation(const ds_table *t)
{
  return t->relation;
}

static bool is_blank(char c)
{
  return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
  return c >= '0' && c <= '9';
}

/* Trims blanks from both ends of s[0..*n); returns the new start. */
static const char *trim_blanks(const char *s, size_t *n)
{
  while (*n && is_blank(*s)) {
    s++;
    (*n)--;
  }
  while (*n && is_blank(s[*n - 1]))
    (*n)--;
  return s;
}

bool ds_number_syntax(const char *s, size_t n)
{
  size_t i = 0, digits = 0, exp_digits = 0;

  s = trim_blanks(s, &n);
  if (i < n && (s[i] == '+' || s[i] == '-'))
    i++;
  for (; i < n && is_digit(s[i]); i++)
    digits++;
  if (i < n && s[i] == '.') {
    for (i++; i < n && is_digit(s[i]); i++)
      digits++;
  }
  if (digits == 0)
    return false;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-'))
      i++;
    for (; i < n && is_digit(s[i]); i++)
      exp_digits++;
    if (exp_digits == 0)
      return false;
  }
  return i == n;
}

bool ds_number_nonfinite(const char *s, size_t n)
{
  s = trim_blanks(s, &n);
  if (n && (*s == '+' || *s == '-')) {
    s++;
    n--;
  }
  return (n == 3 && (strncasecmp(s, "nan", 3) == 0 || strncasecmp(s, "inf", 3) == 0)) ||
         (n == 8 && strncasecmp(s, "infinity", 8) == 0);
}

int ds_number_read(const char *s, size_t n, struct cm_buf *scratch, double *out)
{
  char *end = NULL;
  int rc;

  *out = NAN;
  if (!ds_number_syntax(s, n))
    return ds_number_nonfinite(s, n) ? DS_NUM_NONFINITE : DS_NUM_SYNTAX;
  s = trim_blanks(s, &n);
  cm_buf_reset(scratch);
  rc = cm_buf_add(scratch, s, n);
  if (rc)
    return rc;
  /* The syntax check above is locale-free; if a locale made strtod stop early the whole-field
   * check below still refuses the value rather than misreading it. */
  *out = strtod(scratch->data, &end);
  if (end != scratch->data + n)
    return DS_NUM_SYNTAX;
  /* Underflow to 0 or a subnormal is a fine value; overflow to HUGE_VAL is not. */
  return isfinite(*out) ? DS_NUM_OK : DS_NUM_RANGE;
}

/* Says whether text, after a byte order mark, blank lines and '%' comment lines, starts with
 * '@' (an ARFF header). */
static bool text_looks_arff(const char *p, const char *end)
{
  if (end - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
    p += 3;
  while (p < end) {
    if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
      p++;
    } else if (*p == '%') {
      const char *nl = memchr(p, '\n', (size_t)(end - p));

      p = nl ? nl + 1 : end;
    } else {
      return *p == '@';
    }
  }
  return false;
}

int ds_parse(const char *text, size_t len, const char *format, const struct ds_limits *lim,
             ds_table **out, struct cm_error *err)
{
  bool arff;

  *out = NULL;
  if (!text && len)
    return cm_error_set(err, CM_E_INVALID, "no text but a length of %zu", len);
  text = text ? text : "";
  if (format)
    arff = strcasecmp(format, "arff") == 0;
  else
    arff = text_looks_arff(text, text + len);
  if (format && !arff && strcasecmp(format, "csv") != 0)
    return cm_error_set(err, CM_E_INVALID, "unknown dataset format '%.40s' (arff or csv)", format);
  if (arff)
    return ds_parse_arff(text, len, lim, out, err);
  return ds_parse_csv(text, len, NULL, lim, out, err);
}

/* Picks the target column for ds_schema_infer_target; returns its index or fills err. */
static int target_column(const ds_table *t, const char *target, struct cm_error *err)
{
  int col;

  if (t->n_cols == 0)
    return cm_error_set(err, CM_E_INVALID, "the dataset has no columns");
  if (target && *target) {
    col = ds_column_find(t, target);
    if (col < 0)
      return cm_error_set(err, CM_E_INVALID, "target column '%.40s' does not exist", target);
  } else {
    col = ds_column_find(t, "class");
    if (col < 0)
      col = (int)(t->n_cols - 1);
  }
  if (t->cols[col].kind != DS_CATEGORICAL)
    return cm_error_set(err, CM_E_INVALID,
                        "target column '%.40s' is numeric; it must be categorical with 2 classes",
                        t->cols[col].name);
  /* One class (or none) is data that cannot be fitted; three or more is a wrong column. */
  if (t->cols[col].n_categories < 2)
    return cm_error_set(err, CM_E_FAILED_PRECONDITION,
                        "one class only: target column '%.40s' has %zu class(es); need 2",
                        t->cols[col].name, t->cols[col].n_categories);
  if (t->cols[col].n_categories != 2)
    return cm_error_set(err, CM_E_INVALID,
                        "target column '%.40s' has %zu classes; it must have exactly 2",
                        t->cols[col].name, t->cols[col].n_categories);
  return col;
}

int ds_schema_infer_target(const ds_table *t, const char *target, const char *positive,
                           int *target_col, int *positive_index, struct cm_error *err)
{
  const struct ds_column *c;
  const char *label = positive && *positive ? positive : "bad";
  int col = target_column(t, target, err);

  if (col < 0)
    return col;
  c = &t->cols[col];
  for (size_t k = 0; k < 2; k++) {
    if (strcmp(c->categories[k], label) == 0) {
      *target_col = col;
      *positive_index = (int)k;
      return 0;
    }
  }
  if (label != positive)
    return cm_error_set(err, CM_E_INVALID,
                        "target '%.40s' has no class 'bad'; choose the positive label with "
                        "--positive ('%.30s' or '%.30s')",
                        c->name, c->categories[0], c->categories[1]);
  return cm_error_set(
      err, CM_E_INVALID,
      "positive label '%.30s' is not a class of target '%.40s' ('%.30s' or '%.30s')", label,
      c->name, c->categories[0], c->categories[1]);
}
