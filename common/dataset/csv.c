/* dataset CSV reader (RFC 4180). Two linear passes over the text: the first checks the structure,
 * counts rows and infers each column's kind, the second stores the cells into columns allocated
 * once at their final size. Only quoted fields and numbers are copied, one at a time. */
#include "dataset_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mem.h"

/* Where csv_field_read stopped. */
enum csv_term {
  CSV_MORE = 0, /* after a delimiter: another field follows */
  CSV_EOR = 1,  /* at the end of the record */
};

/* One field as read: borrowed from the text, or from the reader's buffer if it was quoted. */
struct csv_field {
  const char *s; /* value, unquoted; valid until the next field is read */
  size_t n;      /* bytes in s */
  size_t line;   /* line the field starts on */
};

/* Reading state of one column. */
struct csv_col {
  bool forced; /* the schema fixed the kind */
  bool closed; /* the schema fixed the categories: any other value is an error */
  bool text;   /* pass 1 saw a value that is not a number */
};

/* Reader state. */
struct csv {
  const char *p, *end;   /* cursor and end of the text */
  size_t line;           /* 1-based line of the cursor */
  size_t col;            /* column the messages name, or SIZE_MAX for none */
  int pass;              /* 1: check and infer, 2: store */
  size_t rows;           /* rows counted by pass 1 */
  char delim;            /* field separator */
  const char *const *na; /* missing-value tokens (borrowed) */
  size_t n_na;           /* entries in na */
  ds_table *t;           /* the table being built */
  struct csv_col *cols;  /* t->n_cols entries once the header is read */
  struct cm_buf field;   /* the current quoted field, unescaped; capped at max_field */
  struct cm_buf num;     /* scratch for ds_number_read */
  struct cm_error *err;  /* caller's error, may be NULL */
};

static const char *const csv_default_na[] = {"", "NA", "?"};

/* Fills err with "line L[, column 'NAME' | N]: " and the formatted text; returns code. */
static int csv_fail(struct csv *c, size_t line, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int csv_fail(struct csv *c, size_t line, int code, const char *fmt, ...)
{
  char text[CM_ERROR_MSG_SIZE];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  if (c->col < c->t->n_cols)
    return cm_error_set(c->err, code, "line %zu, column '%.40s': %s", line, c->t->cols[c->col].name,
                        text);
  if (c->col != SIZE_MAX)
    return cm_error_set(c->err, code, "line %zu, column %zu: %s", line, c->col + 1, text);
  return cm_error_set(c->err, code, "line %zu: %s", line, text);
}

/* After a field: consumes the delimiter or line end and says which it was. */
static int csv_term(struct csv *c, int *term)
{
  *term = CSV_EOR;
  if (c->p < c->end && *c->p == '\r' && c->p + 1 < c->end && c->p[1] == '\n')
    c->p++;
  if (c->p == c->end)
    return 0;
  if (*c->p == c->delim) {
    *term = CSV_MORE;
  } else if (*c->p == '\n') {
    c->line++;
  } else {
    return csv_fail(c, c->line, CM_E_INVALID, "unexpected '%c' after a closing quote", *c->p);
  }
  c->p++;
  return 0;
}

/* Reads a quoted field, the cursor on its opening quote: "" stands for one quote; delimiters
 * and line breaks inside are data. */
static int csv_quoted(struct csv *c, struct csv_field *f, int *term)
{
  const char *run = ++c->p;
  int rc = 0;

  cm_buf_reset(&c->field);
  for (;;) {
    const char *q = memchr(c->p, '"', (size_t)(c->end - c->p));

    if (!q)
      return csv_fail(c, f->line, CM_E_INVALID, "unterminated quoted field");
    for (const char *s = run; s < q; s++)
      c->line += *s == '\n';
    rc = cm_buf_add(&c->field, run, (size_t)(q - run));
    c->p = q + 1;
    if (rc == 0 && c->p < c->end && *c->p == '"') {
      rc = cm_buf_addc(&c->field, '"');
      run = ++c->p;
    } else if (rc == 0) {
      break;
    }
    if (rc == CM_E_TOOLARGE)
      return csv_fail(c, f->line, rc, "value longer than the max_field limit (%zu bytes)",
                      c->t->lim.max_field);
    if (rc)
      return ds_error_nomem(c->err);
  }
  f->s = cm_buf_str(&c->field);
  f->n = c->field.len;
  return csv_term(c, term);
}

/* Reads the next field of the record and the delimiter or line end after it. */
static int csv_field_read(struct csv *c, struct csv_field *f, int *term)
{
  const char *s = c->p;

  f->line = c->line;
  if (s < c->end && *s == '"')
    return csv_quoted(c, f, term);
  while (s < c->end && *s != c->delim && *s != '\n' && *s != '"')
    s++;
  if (s < c->end && *s == '"')
    return csv_fail(c, f->line, CM_E_INVALID, "quote inside an unquoted field");
  f->s = c->p;
  f->n = (size_t)(s - c->p);
  /* CRLF: the CR belongs to the line end, not the value. */
  if (s < c->end && *s == '\n' && f->n && s[-1] == '\r')
    f->n--;
  if (f->n > c->t->lim.max_field)
    return csv_fail(c, f->line, CM_E_TOOLARGE, "value longer than the max_field limit (%zu bytes)",
                    c->t->lim.max_field);
  c->p = s;
  *term = CSV_EOR;
  if (s == c->end)
    return 0;
  *term = *s == c->delim ? CSV_MORE : CSV_EOR;
  c->line += *s == '\n';
  c->p++;
  return 0;
}

/* Skips blank lines; false at the end of the text. */
static bool csv_record_next(struct csv *c)
{
  while (c->p < c->end) {
    if (*c->p == '\r' && c->p + 1 < c->end && c->p[1] == '\n')
      c->p++;
    if (*c->p != '\n')
      return true;
    c->p++;
    c->line++;
  }
  return false;
}

static bool csv_is_na(const struct csv *c, const struct csv_field *f)
{
  for (size_t i = 0; i < c->n_na; i++) {
    if (strlen(c->na[i]) == f->n && memcmp(c->na[i], f->s, f->n) == 0)
      return true;
  }
  return false;
}

/* Pass 1: notes whether a value of an unforced column is text. */
static void csv_scan(struct csv *c, size_t col, const struct csv_field *f)
{
  struct csv_col *k = &c->cols[col];

  if (k->forced || k->text || csv_is_na(c, f))
    return;
  /* NaN and inf keep a column numeric so pass 2 reports them instead of silently turning a
   * numeric column into a categorical one. */
  if (!ds_number_syntax(f->s, f->n) && !ds_number_nonfinite(f->s, f->n))
    k->text = true;
}

/* Pass 2: stores a numeric cell. */
static int csv_store_number(struct csv *c, size_t col, const struct csv_field *f)
{
  double x;
  int rc = ds_number_read(f->s, f->n, &c->num, &x);

  if (rc == DS_NUM_OK)
    c->t->data[col].v.num[c->t->n_rows] = x;
  else if (rc == DS_NUM_NONFINITE)
    rc = csv_fail(c, f->line, CM_E_INVALID,
                  "'%.*s' is not allowed: NaN and infinity are not numbers (leave it empty)",
                  DS_SHOW(f->n), f->s);
  else if (rc == DS_NUM_RANGE)
    rc = csv_fail(c, f->line, CM_E_INVALID, "'%.*s' is out of range for a number", DS_SHOW(f->n),
                  f->s);
  else if (rc == DS_NUM_SYNTAX)
    rc = csv_fail(c, f->line, CM_E_INVALID, "'%.*s' is not a number", DS_SHOW(f->n), f->s);
  else
    rc = ds_error_nomem(c->err);
  return rc;
}

/* Pass 2: stores a cell. */
static int csv_store(struct csv *c, size_t col, const struct csv_field *f)
{
  struct ds_coldata *d = &c->t->data[col];
  bool numeric = c->t->cols[col].kind == DS_NUMERIC;
  int k, rc = 0;

  if (csv_is_na(c, f)) {
    if (numeric)
      d->v.num[c->t->n_rows] = NAN;
    else
      d->v.cat[c->t->n_rows] = -1;
    return 0;
  }
  if (numeric)
    return csv_store_number(c, col, f);
  k = ds_table_category_find(c->t, col, f->s, f->n);
  if (k < 0 && c->cols[col].closed)
    return csv_fail(c, f->line, CM_E_INVALID, "unknown category '%.*s' (not in the schema)",
                    DS_SHOW(f->n), f->s);
  if (k < 0)
    rc = ds_table_category_add(c->t, col, f->s, f->n, f->line, &k, c->err);
  if (rc == 0)
    d->v.cat[c->t->n_rows] = k;
  return rc;
}

/* Reads the fields of one record, checking their count, then scans or stores them. */
static int csv_record(struct csv *c)
{
  size_t n = c->t->n_cols, col = 0;
  struct csv_field f;
  int term = CSV_MORE, rc = 0;

  for (; term == CSV_MORE && rc == 0; col++) {
    c->col = col;
    rc = csv_field_read(c, &f, &term);
    if (rc == 0 && col >= n) {
      c->col = n - 1;
      return csv_fail(c, f.line, CM_E_INVALID, "too many fields: more than %zu", n);
    }
    if (rc == 0 && c->pass == 1)
      csv_scan(c, col, &f);
    else if (rc == 0)
      rc = csv_store(c, col, &f);
  }
  if (rc == 0 && col < n) {
    c->col = col;
    rc = csv_fail(c, f.line, CM_E_INVALID, "missing value: the row has %zu of %zu fields", col, n);
  }
  return rc;
}

/* Runs one pass over the data records. */
static int csv_rows(struct csv *c)
{
  int rc = 0;

  while (rc == 0 && csv_record_next(c)) {
    c->col = SIZE_MAX;
    if (c->pass == 1 && c->rows >= c->t->lim.max_rows)
      return csv_fail(c, c->line, CM_E_TOOLARGE, "more rows than the max_rows limit (%zu)",
                      c->t->lim.max_rows);
    rc = csv_record(c);
    if (rc == 0 && c->pass == 1)
      c->rows++;
    else if (rc == 0)
      c->t->n_rows++;
  }
  return rc;
}

/* Makes columns from the header record's names. */
static int csv_header_names(struct csv *c)
{
  struct csv_field f;
  int term = CSV_MORE, rc = 0;

  for (size_t col = 0; term == CSV_MORE && rc == 0; col++) {
    c->col = col;
    rc = csv_field_read(c, &f, &term);
    if (rc == 0 && f.n == 0)
      rc = csv_fail(c, f.line, CM_E_INVALID, "empty column name");
    if (rc == 0)
      rc = ds_table_column_add(c->t, f.s, f.n, DS_NUMERIC, f.line, c->err);
  }
  return rc;
}

/* Makes columns V1..Vn, or with the schema's names, for a text without a header; n is the
 * schema's length, or the field count of the first record. */
static int csv_generated_names(struct csv *c, const struct ds_csv_opts *o)
{
  const char *p = c->p;
  size_t line = c->line, n = o->n_schema;
  struct csv_field f;
  char name[32];
  int term = CSV_MORE, rc = 0;

  for (c->col = 0; n == 0 && term == CSV_MORE && rc == 0; c->col++)
    rc = csv_field_read(c, &f, &term);
  if (n == 0)
    n = c->col;
  c->p = p;
  c->line = line;
  c->col = SIZE_MAX;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const char *s = i < o->n_schema ? o->schema[i].name : NULL;

    snprintf(name, sizeof(name), "V%zu", i + 1);
    s = s ? s : name;
    rc = ds_table_column_add(c->t, s, strlen(s), DS_NUMERIC, 0, c->err);
  }
  return rc;
}

/* Forces column i's kind and categories from schema entry s. */
static int csv_schema_column(struct csv *c, size_t i, const struct ds_column *s, bool header)
{
  struct ds_column *col = &c->t->cols[i];
  int idx, rc = 0;

  c->col = i;
  if (header && s->name && strcmp(s->name, col->name) != 0)
    return csv_fail(c, 1, CM_E_INVALID, "the schema names this column '%.40s'", s->name);
  if (s->kind != DS_NUMERIC && s->kind != DS_CATEGORICAL)
    return csv_fail(c, 1, CM_E_INVALID, "the schema gives an unknown kind (%d)", (int)s->kind);
  col->kind = s->kind;
  c->cols[i].forced = true;
  c->cols[i].closed = s->kind == DS_CATEGORICAL && s->n_categories > 0;
  for (size_t k = 0; s->kind == DS_CATEGORICAL && k < s->n_categories && rc == 0; k++) {
    const char *v = s->categories[k];

    if (!v || ds_table_category_find(c->t, i, v, strlen(v)) >= 0)
      return csv_fail(c, 1, CM_E_INVALID, "the schema repeats category '%.40s' or has NULL",
                      v ? v : "");
    rc = ds_table_category_add(c->t, i, v, strlen(v), 1, &idx, c->err);
  }
  return rc;
}

/* Reads or makes the column names and applies the schema. */
static int csv_columns(struct csv *c, const struct ds_csv_opts *o)
{
  int rc;

  if (!csv_record_next(c))
    return csv_fail(c, c->line, CM_E_INVALID, "empty input: no %s",
                    o->no_header ? "rows" : "header line");
  rc = o->no_header ? csv_generated_names(c, o) : csv_header_names(c);
  if (rc == 0 && o->n_schema && o->n_schema != c->t->n_cols) {
    c->col = SIZE_MAX;
    rc = csv_fail(c, 1, CM_E_INVALID, "the header has %zu columns but the schema %zu", c->t->n_cols,
                  o->n_schema);
  }
  if (rc == 0) {
    c->cols = cm_calloc(c->t->n_cols, sizeof(*c->cols));
    rc = c->cols ? 0 : ds_error_nomem(c->err);
  }
  for (size_t i = 0; i < o->n_schema && rc == 0; i++)
    rc = csv_schema_column(c, i, &o->schema[i], !o->no_header);
  return rc;
}

/* Both passes over the records after the header. */
static int csv_read(struct csv *c, const struct ds_csv_opts *o)
{
  const char *data;
  size_t line;
  int rc = csv_columns(c, o);

  if (rc)
    return rc;
  data = c->p;
  line = c->line;
  c->pass = 1;
  rc = csv_rows(c);
  for (size_t i = 0; i < c->t->n_cols && rc == 0; i++) {
    if (!c->cols[i].forced)
      c->t->cols[i].kind = c->cols[i].text ? DS_CATEGORICAL : DS_NUMERIC;
  }
  if (rc == 0)
    rc = ds_table_rows_reserve(c->t, c->rows, c->err);
  c->p = data;
  c->line = line;
  c->pass = 2;
  return rc ? rc : csv_rows(c);
}

/* Checks the options a caller passed. */
static int csv_opts_check(const struct ds_csv_opts *o, struct cm_error *err)
{
  char d = o->delimiter;

  if (d == '"' || d == '\n' || d == '\r')
    return cm_error_set(err, CM_E_INVALID, "a quote or line break cannot be the CSV delimiter");
  if (o->n_schema && !o->schema)
    return cm_error_set(err, CM_E_INVALID, "n_schema is %zu but the schema is NULL", o->n_schema);
  for (size_t i = 0; o->na_tokens && i < o->n_na_tokens; i++) {
    if (!o->na_tokens[i])
      return cm_error_set(err, CM_E_INVALID, "missing-value token %zu is NULL", i);
  }
  for (size_t i = 0; o->no_header && i < o->n_schema; i++) {
    if (o->schema[i].name && !o->schema[i].name[0])
      return cm_error_set(err, CM_E_INVALID, "schema column %zu has an empty name", i + 1);
  }
  return 0;
}

int ds_parse_csv(const char *text, size_t len, const struct ds_csv_opts *opts,
                 const struct ds_limits *lim, ds_table **out, struct cm_error *err)
{
  static const struct ds_csv_opts defaults = {0};
  const struct ds_csv_opts *o = opts ? opts : &defaults;
  struct csv c = {.line = 1, .col = SIZE_MAX, .err = err};
  struct ds_limits l;
  size_t start;
  int rc;

  *out = NULL;
  ds_limits_resolve(lim, &l);
  rc = csv_opts_check(o, err);
  if (rc == 0)
    rc = ds_text_check(text, len, &l, &start, err);
  /* A NULL text of length 0 reads as "" (no arithmetic on NULL). */
  text = text ? text : "";
  if (rc)
    return rc;
  c.t = ds_table_alloc(&l);
  if (!c.t)
    return ds_error_nomem(err);
  c.p = text + start;
  c.end = text + len;
  c.delim = o->delimiter ? o->delimiter : ',';
  c.na = o->na_tokens ? o->na_tokens : csv_default_na;
  c.n_na = o->na_tokens ? o->n_na_tokens : sizeof(csv_default_na) / sizeof(csv_default_na[0]);
  cm_buf_init(&c.field, l.max_field);
  cm_buf_init(&c.num, l.max_field);
  rc = csv_read(&c, o);
  cm_buf_cleanup(&c.field);
  cm_buf_cleanup(&c.num);
  cm_free(c.cols);
  if (rc) {
    ds_table_free(c.t);
    return rc;
  }
  *out = c.t;
  return 0;
}
