/* dataset ARFF reader: the header declares every column and category, and each data row is
 * checked against it, so a bad value fails with its line and column instead of being guessed.
 * One pass over the text; only single tokens are copied (unquoted into a capped buffer). */
#include "dataset_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Reader state. */
struct arff {
  const char *p, *end;  /* text not yet split into lines */
  const char *s, *e;    /* cursor and end of the current line (no CR or LF) */
  size_t line;          /* 1-based number of the current line */
  size_t col;           /* column the messages name, or SIZE_MAX for none */
  ds_table *t;          /* the table being built */
  struct cm_buf tok;    /* the current token, unquoted; capped at max_field */
  bool quoted;          /* the current token was quoted */
  struct cm_buf num;    /* scratch for ds_number_read */
  struct cm_error *err; /* caller's error, may be NULL */
};

/* Fills err with "line L[, column 'NAME']: " and the formatted text; returns code. */
static int arff_fail(struct arff *a, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int arff_fail(struct arff *a, int code, const char *fmt, ...)
{
  char text[CM_ERROR_MSG_SIZE];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  if (a->col < a->t->n_cols)
    return cm_error_set(a->err, code, "line %zu, column '%.40s': %s", a->line,
                        a->t->cols[a->col].name, text);
  return cm_error_set(a->err, code, "line %zu: %s", a->line, text);
}

/* Moves to the next line; false at the end of the text. */
static bool arff_line_next(struct arff *a)
{
  const char *nl;

  if (a->p >= a->end)
    return false;
  nl = memchr(a->p, '\n', (size_t)(a->end - a->p));
  a->s = a->p;
  a->e = nl ? nl : a->end;
  a->p = nl ? nl + 1 : a->end;
  if (a->e > a->s && a->e[-1] == '\r')
    a->e--;
  a->line++;
  return true;
}

static void arff_skip_blanks(struct arff *a)
{
  while (a->s < a->e && (*a->s == ' ' || *a->s == '\t'))
    a->s++;
}

/* Skips blanks; says whether only a comment or nothing is left on the line. */
static bool arff_at_end(struct arff *a)
{
  arff_skip_blanks(a);
  return a->s == a->e || *a->s == '%';
}

/* Turns a cm_buf failure while reading a token into a message. */
static int arff_token_fail(struct arff *a, int rc)
{
  if (rc == CM_E_TOOLARGE)
    return arff_fail(a, rc, "value longer than the max_field limit (%zu bytes)",
                     a->t->lim.max_field);
  return ds_error_nomem(a->err);
}

/* Reads a quoted token, the cursor on its opening quote: backslash escapes \n \t \r, and any
 * other escaped character stands for itself. */
static int arff_quoted(struct arff *a)
{
  char q = *a->s++;
  const char *run = a->s;
  int rc;

  while (a->s < a->e) {
    char c = *a->s;

    if (c != q && c != '\\') {
      a->s++;
      continue;
    }
    rc = cm_buf_add(&a->tok, run, (size_t)(a->s - run));
    if (rc)
      return arff_token_fail(a, rc);
    if (c == q) {
      a->s++;
      return 0;
    }
    if (a->s + 1 >= a->e)
      break;
    c = a->s[1];
    a->s += 2;
    rc = cm_buf_addc(&a->tok, c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c);
    if (rc)
      return arff_token_fail(a, rc);
    run = a->s;
  }
  return arff_fail(a, CM_E_INVALID, "unterminated %c quote", q);
}

/* Reads the next token into a->tok after blanks: quoted, or bare up to a blank, '%' or one of
 * stops. A bare token may be empty. */
static int arff_token(struct arff *a, const char *stops)
{
  const char *start;
  int rc;

  cm_buf_reset(&a->tok);
  arff_skip_blanks(a);
  a->quoted = a->s < a->e && (*a->s == '\'' || *a->s == '"');
  if (a->quoted)
    return arff_quoted(a);
  start = a->s;
  while (a->s < a->e && *a->s != ' ' && *a->s != '\t' && *a->s != '%' && !strchr(stops, *a->s))
    a->s++;
  rc = cm_buf_add(&a->tok, start, (size_t)(a->s - start));
  return rc ? arff_token_fail(a, rc) : 0;
}

/* The current token as a C string ("" when empty; the buffer may not be allocated yet). */
static const char *arff_tok(const struct arff *a)
{
  return cm_buf_str(&a->tok);
}

/* Checks that nothing but blanks or a comment follows on the line. */
static int arff_line_rest(struct arff *a)
{
  if (arff_at_end(a))
    return 0;
  return arff_fail(a, CM_E_INVALID, "unexpected '%.*s' at the end of the line",
                   DS_SHOW((size_t)(a->e - a->s)), a->s);
}

/* Reads "{v1, 'v 2', ...}" into the categories of column col, the cursor on '{'. */
static int arff_nominal(struct arff *a, size_t col)
{
  int rc, idx;

  a->s++;
  for (;;) {
    rc = arff_token(a, ",{}");
    if (rc)
      return rc;
    if (!a->quoted && a->tok.len == 0)
      return arff_fail(a, CM_E_INVALID, "empty category in the declaration");
    if (ds_table_category_find(a->t, col, arff_tok(a), a->tok.len) >= 0)
      return arff_fail(a, CM_E_INVALID, "category '%.*s' declared twice", DS_SHOW(a->tok.len),
                       arff_tok(a));
    rc = ds_table_category_add(a->t, col, arff_tok(a), a->tok.len, a->line, &idx, a->err);
    if (rc)
      return rc;
    arff_skip_blanks(a);
    if (a->s < a->e && *a->s == '}')
      break;
    if (a->s == a->e || *a->s != ',')
      return arff_fail(a, CM_E_INVALID, "expected ',' or '}' after category '%.*s'",
                       DS_SHOW(a->tok.len), arff_tok(a));
    a->s++;
  }
  a->s++;
  return arff_line_rest(a);
}

/* Reads the rest of "@attribute NAME TYPE". */
static int arff_attribute(struct arff *a)
{
  static const char *const unsupported[] = {"string", "date", "relational"};
  size_t col = a->t->n_cols;
  int rc = arff_token(a, "{");

  if (rc == 0 && !a->quoted && a->tok.len == 0)
    return arff_fail(a, CM_E_INVALID, "@attribute needs a name");
  if (rc == 0)
    rc = ds_table_column_add(a->t, arff_tok(a), a->tok.len, DS_NUMERIC, a->line, a->err);
  if (rc)
    return rc;
  a->col = col;
  arff_skip_blanks(a);
  if (a->s < a->e && *a->s == '{') {
    a->t->cols[col].kind = DS_CATEGORICAL;
    return arff_nominal(a, col);
  }
  rc = arff_token(a, "");
  if (rc)
    return rc;
  if (strcasecmp(arff_tok(a), "numeric") == 0 || strcasecmp(arff_tok(a), "real") == 0 ||
      strcasecmp(arff_tok(a), "integer") == 0)
    return arff_line_rest(a);
  for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
    if (strcasecmp(arff_tok(a), unsupported[i]) == 0)
      return arff_fail(a, CM_E_INVALID,
                       "unsupported attribute type '%s' (numeric, real, integer or {...})",
                       unsupported[i]);
  }
  if (a->tok.len == 0)
    return arff_fail(a, CM_E_INVALID, "@attribute needs a type");
  return arff_fail(a, CM_E_INVALID, "unknown attribute type '%.*s'", DS_SHOW(a->tok.len),
                   arff_tok(a));
}

/* Reads "@relation NAME". */
static int arff_relation(struct arff *a)
{
  int rc = arff_token(a, "");

  if (rc == 0 && !a->quoted && a->tok.len == 0)
    return arff_fail(a, CM_E_INVALID, "@relation needs a name");
  if (rc == 0)
    rc = ds_table_relation_set(a->t, arff_tok(a), a->tok.len, a->err);
  return rc ? rc : arff_line_rest(a);
}

/* Reads declarations up to and including @data. */
static int arff_header(struct arff *a)
{
  int rc = 0;

  while (rc == 0 && arff_line_next(a)) {
    const char *kw;

    a->col = SIZE_MAX;
    if (arff_at_end(a))
      continue;
    if (*a->s != '@')
      return arff_fail(a, CM_E_INVALID, "expected @relation, @attribute or @data, found '%.*s'",
                       DS_SHOW((size_t)(a->e - a->s)), a->s);
    kw = ++a->s;
    while (a->s < a->e && *a->s != ' ' && *a->s != '\t' && *a->s != '{' && *a->s != '%')
      a->s++;
    if (a->s - kw == 8 && strncasecmp(kw, "relation", 8) == 0) {
      rc = arff_relation(a);
    } else if (a->s - kw == 9 && strncasecmp(kw, "attribute", 9) == 0) {
      rc = arff_attribute(a);
    } else if (a->s - kw == 4 && strncasecmp(kw, "data", 4) == 0) {
      if (a->t->n_cols == 0)
        return arff_fail(a, CM_E_INVALID, "@data before any @attribute");
      return arff_line_rest(a);
    } else {
      return arff_fail(a, CM_E_INVALID, "unknown declaration '@%.*s'", DS_SHOW((size_t)(a->s - kw)),
                       kw);
    }
  }
  a->col = SIZE_MAX;
  if (rc == 0 && a->line == 0)
    rc = cm_error_set(a->err, CM_E_INVALID, "empty input: no ARFF header");
  else if (rc == 0)
    rc = arff_fail(a, CM_E_INVALID, "no @data section before the end of the input");
  return rc;
}

/* Stores the token just read as the cell of column col in the row being built. */
static int arff_cell(struct arff *a, size_t col)
{
  const struct ds_column *c = &a->t->cols[col];
  size_t row = a->t->n_rows;
  double x;
  int k, rc;

  if (!a->quoted && a->tok.len == 1 && arff_tok(a)[0] == '?') {
    if (c->kind == DS_NUMERIC)
      a->t->data[col].v.num[row] = NAN;
    else
      a->t->data[col].v.cat[row] = -1;
    return 0;
  }
  if (!a->quoted && a->tok.len == 0)
    return arff_fail(a, CM_E_INVALID, "empty value (write ? for a missing value)");
  if (c->kind == DS_CATEGORICAL) {
    k = ds_table_category_find(a->t, col, arff_tok(a), a->tok.len);
    if (k < 0)
      return arff_fail(a, CM_E_INVALID, "unknown category '%.*s' (not declared in @attribute)",
                       DS_SHOW(a->tok.len), arff_tok(a));
    a->t->data[col].v.cat[row] = k;
    return 0;
  }
  rc = ds_number_read(arff_tok(a), a->tok.len, &a->num, &x);
  if (rc == DS_NUM_OK)
    a->t->data[col].v.num[row] = x;
  else if (rc == DS_NUM_NONFINITE)
    rc = arff_fail(a, CM_E_INVALID,
                   "'%.*s' is not allowed: NaN and infinity are not numbers "
                   "(write ? for missing)",
                   DS_SHOW(a->tok.len), arff_tok(a));
  else if (rc == DS_NUM_RANGE)
    rc = arff_fail(a, CM_E_INVALID, "'%.*s' is out of range for a number", DS_SHOW(a->tok.len),
                   arff_tok(a));
  else if (rc == DS_NUM_SYNTAX)
    rc = arff_fail(a, CM_E_INVALID, "'%.*s' is not a number", DS_SHOW(a->tok.len), arff_tok(a));
  else
    rc = ds_error_nomem(a->err);
  return rc;
}

/* Reads one data row, the cursor at its first non-blank character. */
static int arff_row(struct arff *a)
{
  size_t n = a->t->n_cols;
  int rc = 0;

  for (size_t col = 0; col < n && rc == 0; col++) {
    a->col = col;
    if (col > 0 && arff_at_end(a))
      return arff_fail(a, CM_E_INVALID, "missing value: the row has %zu of %zu fields", col, n);
    /* The cursor is on the ',' the previous field was checked to end with. */
    if (col > 0)
      a->s++;
    rc = arff_token(a, ",");
    /* Checked before the value, so "no checking" unquoted gets the helpful message. */
    if (rc == 0 && !arff_at_end(a) && *a->s != ',')
      return arff_fail(a, CM_E_INVALID,
                       "unexpected '%.*s' after the value (quote values with spaces)",
                       DS_SHOW((size_t)(a->e - a->s)), a->s);
    if (rc == 0)
      rc = arff_cell(a, col);
  }
  if (rc == 0 && !arff_at_end(a))
    rc = arff_fail(a, CM_E_INVALID, "too many fields: more than %zu", n);
  return rc;
}

/* Reads the rows after @data. */
static int arff_data(struct arff *a)
{
  int rc = 0;

  while (rc == 0 && arff_line_next(a)) {
    a->col = SIZE_MAX;
    if (arff_at_end(a))
      continue;
    if (*a->s == '{')
      return arff_fail(a, CM_E_INVALID, "sparse ARFF rows ({index value, ...}) are unsupported");
    if (a->t->n_rows >= a->t->lim.max_rows)
      return arff_fail(a, CM_E_TOOLARGE, "more rows than the max_rows limit (%zu)",
                       a->t->lim.max_rows);
    rc = ds_table_rows_reserve(a->t, a->t->n_rows + 1, a->err);
    if (rc == 0)
      rc = arff_row(a);
    if (rc == 0)
      a->t->n_rows++;
  }
  return rc;
}

int ds_parse_arff(const char *text, size_t len, const struct ds_limits *lim, ds_table **out,
                  struct cm_error *err)
{
  struct arff a = {.err = err, .col = SIZE_MAX};
  struct ds_limits l;
  size_t start;
  int rc;

  *out = NULL;
  ds_limits_resolve(lim, &l);
  rc = ds_text_check(text, len, &l, &start, err);
  /* A NULL text of length 0 reads as "" (no arithmetic on NULL). */
  text = text ? text : "";
  if (rc)
    return rc;
  a.t = ds_table_alloc(&l);
  if (!a.t)
    return ds_error_nomem(err);
  a.p = text + start;
  a.end = text + len;
  cm_buf_init(&a.tok, l.max_field);
  cm_buf_init(&a.num, l.max_field);
  rc = arff_header(&a);
  if (rc == 0)
    rc = arff_data(&a);
  cm_buf_cleanup(&a.tok);
  cm_buf_cleanup(&a.num);
  if (rc) {
    ds_table_free(a.t);
    return rc;
  }
  *out = a.t;
  return 0;
}
