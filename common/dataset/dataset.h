/* dataset: tabular data for the trainer, read from ARFF (types and categories from the header)
 * or CSV (types inferred, or forced by a schema). Every bad value is reported by line and column,
 * never dropped or guessed, and every size is capped by struct ds_limits. */
#ifndef CREDITO_DATASET_H
#define CREDITO_DATASET_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* The kind of a column. */
enum ds_kind {
  DS_NUMERIC = 1,     /* cells are doubles, NAN = missing */
  DS_CATEGORICAL = 2, /* cells are indices into categories, -1 = missing */
};

/* A column's description. Owned by its table, or by the caller when passed as a schema. */
struct ds_column {
  char *name;          /* NUL-terminated, unique within a table */
  enum ds_kind kind;   /* DS_NUMERIC or DS_CATEGORICAL */
  char **categories;   /* categorical only: declared order (ARFF) or first-seen order (CSV) */
  size_t n_categories; /* entries in categories; 0 for numeric columns */
};

/* A parsed table: columns plus rows of cells, stored column by column. */
typedef struct ds_table ds_table;

/* Caps on untrusted input; each exceeded one fails with CM_E_TOOLARGE naming it. A zero field
 * takes the default given beside it. */
struct ds_limits {
  size_t max_bytes;      /* input size; 256 MiB */
  size_t max_rows;       /* data rows; 10 000 000 */
  size_t max_columns;    /* columns; 4096 */
  size_t max_categories; /* categories of one column; 65536 (at most INT_MAX) */
  size_t max_field;      /* bytes of one value, name or category after unquoting; 64 KiB */
};

/* CSV options. A zero-initialised struct (or NULL) gives the defaults. */
struct ds_csv_opts {
  char delimiter;                 /* field separator; 0 means ',' */
  bool no_header;                 /* true: the first line is data, columns are named V1..Vn */
  const struct ds_column *schema; /* optional, borrowed: n_schema columns forcing kinds (below) */
  size_t n_schema;                /* entries in schema; 0 = infer types */
  const char *const *na_tokens;   /* borrowed; NULL = {"", "NA", "?"} */
  size_t n_na_tokens;             /* entries in na_tokens when it is not NULL */
};

/* Parses ARFF text (borrowed; len bytes, need not be NUL-terminated): @relation, @attribute
 * NAME numeric|real|integer|{v1,v2,...}, @data, then one row per line; '%' comments, blank
 * lines, CRLF, '?' for missing, names and values quoted with ' or " and backslash escapes.
 * string/date/relational attributes and sparse rows fail with CM_E_INVALID. lim may be NULL
 * for the defaults. On success returns 0 and *out is a table the caller frees with
 * ds_table_free; a header without rows gives a table with 0 rows. On failure returns
 * CM_E_INVALID (message "line L, column 'NAME': ..."), CM_E_TOOLARGE or CM_E_NOMEM, fills err
 * (may be NULL) and sets *out to NULL. */
int ds_parse_arff(const char *text, size_t len, const struct ds_limits *lim, ds_table **out,
                  struct cm_error *err);

/* Parses RFC 4180 CSV text (borrowed; len bytes): quoted fields with "" escapes, delimiters and
 * newlines inside quotes, LF or CRLF; blank lines are skipped. opts (borrowed, may be NULL)
 * sets the delimiter, header and missing tokens; a field equal to a missing token (quoted or
 * not) is missing. Without a schema a column is numeric when every non-missing value is a whole
 * decimal number (surrounding blanks allowed; no hex, no inf/nan), otherwise categorical with
 * categories in first-seen order; a column with no values is numeric. With a schema (one entry
 * per column, matched by position; a non-NULL name must equal the header's) the kinds are
 * forced, and a categorical schema column with categories accepts only those, in that order
 * (with none it collects them first-seen). ds_column_at(t, 0) of another table can serve as a
 * schema. Results, ownership and errors as ds_parse_arff. */
int ds_parse_csv(const char *text, size_t len, const struct ds_csv_opts *opts,
                 const struct ds_limits *lim, ds_table **out, struct cm_error *err);

/* Parses text as format "arff" or "csv" (case-insensitive; CSV with default options), or
 * sniffs it when format is NULL: ARFF if the first line that is not blank or a '%' comment
 * starts with '@', CSV otherwise. An unknown format is CM_E_INVALID. Otherwise as
 * ds_parse_arff. */
int ds_parse(const char *text, size_t len, const char *format, const struct ds_limits *lim,
             ds_table **out, struct cm_error *err);

/* Frees t and everything it owns. NULL does nothing. */
void ds_table_free(ds_table *t);

/* Number of data rows. */
size_t ds_rows(const ds_table *t);

/* Number of columns. */
size_t ds_columns(const ds_table *t);

/* Column i (borrowed from t; NULL if i is out of range). The columns are one array, so
 * ds_column_at(t, 0) points to ds_columns(t) consecutive entries. */
const struct ds_column *ds_column_at(const ds_table *t, size_t i);

/* Index of the column called name (borrowed), or -1 if there is none. */
int ds_column_find(const ds_table *t, const char *name);

/* Cell of a numeric column; NAN when missing, or when row or col is out of range or col is
 * categorical. */
double ds_number(const ds_table *t, size_t row, size_t col);

/* Cell of a categorical column: an index into its categories; -1 when missing, or when row or
 * col is out of range or col is numeric. */
int ds_category(const ds_table *t, size_t row, size_t col);

/* All ds_rows(t) cells of numeric column col, contiguous (borrowed from t); NULL if col is out
 * of range or categorical, and possibly when there are no rows. For code that walks a column. */
const double *ds_column_numbers(const ds_table *t, size_t col);

/* All ds_rows(t) cells of categorical column col (borrowed from t); NULL if col is out of range
 * or numeric, and possibly when there are no rows. */
const int *ds_column_codes(const ds_table *t, size_t col);

/* The ARFF @relation name, or "" (CSV, or none declared). Borrowed from t, never NULL. */
const char *ds_relation(const ds_table *t);

/* Picks the target column and its positive label. target (borrowed) NULL or "" means "class" if
 * there is such a column, else the last column; positive (borrowed) NULL or "" means "bad",
 * which must then be a category of the target. The target must be categorical with exactly two
 * declared categories. Returns 0 with *target_col and *positive_index set, CM_E_FAILED_PRECONDITION
 * when the target has fewer than two classes (one class only), or CM_E_INVALID with err saying
 * what to fix (a missing positive label asks for --positive). */
int ds_schema_infer_target(const ds_table *t, const char *target, const char *positive,
                           int *target_col, int *positive_index, struct cm_error *err);

#endif
