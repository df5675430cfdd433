/* dataset internals shared by the table (table.c) and the two readers (arff.c, csv.c): the
 * table layout, the builders the readers fill it with, and the strict number reader. */
#ifndef CREDITO_DATASET_INT_H
#define CREDITO_DATASET_INT_H

#include <stdint.h>

#include "buf.h"
#include "dataset.h"

/* Storage of one column, beside its public struct ds_column. */
struct ds_coldata {
  union {
    double *num; /* DS_NUMERIC: rows_cap cells */
    int *cat;    /* DS_CATEGORICAL: rows_cap cells */
  } v;
  size_t cat_cap;     /* entries allocated in categories and cat_hash */
  uint32_t *cat_hash; /* hash of each category, for lookups and rehashing */
  uint32_t *slots;    /* open-addressing index: category index + 1, 0 = empty */
  size_t n_slots;     /* power of two, or 0 before the first category */
};

struct ds_table {
  char *relation;          /* ARFF @relation, or "" */
  struct ds_column *cols;  /* one array, so ds_column_at(t, 0) can serve as a schema */
  struct ds_coldata *data; /* parallel to cols */
  size_t n_cols;           /* columns in use */
  size_t cols_cap;         /* entries allocated in cols and data */
  size_t n_rows;           /* complete rows */
  size_t rows_cap;         /* cells allocated in every column */
  struct ds_limits lim;    /* resolved limits (no zero fields) */
};

/* Result of ds_number_read. */
enum ds_num {
  DS_NUM_OK = 0,        /* a finite number */
  DS_NUM_SYNTAX = 1,    /* not a decimal number */
  DS_NUM_NONFINITE = 2, /* nan, inf or infinity (any case, optional sign) */
  DS_NUM_RANGE = 3,     /* a decimal number too large for a double */
};

/* Copies lim (NULL allowed) into out with zero fields replaced by the defaults. */
void ds_limits_resolve(const struct ds_limits *lim, struct ds_limits *out);

/* A new empty table with limits lim (borrowed, may be NULL) and relation "". The caller frees
 * it with ds_table_free. NULL on out of memory. */
ds_table *ds_table_alloc(const struct ds_limits *lim);

/* Sets the relation name to a copy of s[0..n). 0 or CM_E_NOMEM (err filled). */
int ds_table_relation_set(ds_table *t, const char *s, size_t n, struct cm_error *err);

/* Appends a column named s[0..n) (copied) of the given kind. line (0 = none) goes into messages.
 * Returns 0, CM_E_INVALID for an empty or duplicate name, CM_E_TOOLARGE past max_columns, or
 * CM_E_NOMEM; err is filled on failure. Only before ds_table_rows_reserve. */
int ds_table_column_add(ds_table *t, const char *s, size_t n, enum ds_kind kind, size_t line,
                        struct cm_error *err);

/* Index of category s[0..n) of column col, or -1. s must not contain NUL bytes. */
int ds_table_category_find(const ds_table *t, size_t col, const char *s, size_t n);

/* Appends category s[0..n) (copied; must not be present yet) to categorical column col and
 * sets *idx to its index. line (0 = none) goes into messages. Returns 0, CM_E_TOOLARGE past
 * max_categories, or CM_E_NOMEM; err is filled on failure. */
int ds_table_category_add(ds_table *t, size_t col, const char *s, size_t n, size_t line, int *idx,
                          struct cm_error *err);

/* Makes room for at least n rows in every column (growing geometrically). 0 or CM_E_NOMEM. */
int ds_table_rows_reserve(ds_table *t, size_t n, struct cm_error *err);

/* Reads s[0..n) as a strict decimal number into *out: optional blanks (space, tab) around an
 * optional sign, digits with an optional '.', an optional exponent, nothing else. scratch holds
 * the NUL-terminated copy strtod needs. Returns an enum ds_num, or CM_E_NOMEM/CM_E_TOOLARGE from
 * scratch. */
int ds_number_read(const char *s, size_t n, struct cm_buf *scratch, double *out);

/* Says whether s[0..n) is a strict decimal number (see ds_number_read), without converting. */
bool ds_number_syntax(const char *s, size_t n);

/* Says whether s[0..n), blanks trimmed, is nan, inf or infinity in any case with optional sign. */
bool ds_number_nonfinite(const char *s, size_t n);

/* Length of a value shown in messages: values are cut to keep err->msg readable. */
#define DS_SHOW(n) ((int)((n) < 40 ? (n) : 40))

/* Fills err for an allocation failure and returns CM_E_NOMEM. */
int ds_error_nomem(struct cm_error *err);

/* Checks text for the input size cap and NUL bytes (which C strings could not hold), and skips
 * a UTF-8 byte order mark by advancing *start. Returns 0, CM_E_TOOLARGE or CM_E_INVALID. */
int ds_text_check(const char *text, size_t len, const struct ds_limits *lim, size_t *start,
                  struct cm_error *err);

#endif
