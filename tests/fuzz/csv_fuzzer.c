/* Fuzz target for the CSV reader (common/dataset/csv.c): RFC 4180 quoting, type inference and
 * missing values on arbitrary bytes, with and without a header, and through ds_parse's format
 * sniffing. A parse either fails with a filled error and no table, or gives a table whose cells
 * agree with their columns. The corpus in csv/ holds a cut-down German Credit as CSV and small
 * files for quoting, embedded newlines, CRLF and missing values. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Traps unless t is self-consistent. */
static void table_check(const ds_table *t)
{
  for (size_t i = 0; i < ds_columns(t); i++) {
    const struct ds_column *c = ds_column_at(t, i);

    if (!c->name || !c->name[0] || ds_column_find(t, c->name) != (int)i)
      __builtin_trap();
    if (c->kind == DS_NUMERIC && (c->n_categories || ds_column_codes(t, i)))
      __builtin_trap();
    for (size_t k = 0; k < c->n_categories; k++) {
      for (size_t j = 0; j < k; j++) {
        if (strcmp(c->categories[j], c->categories[k]) == 0)
          __builtin_trap();
      }
    }
    for (size_t r = 0; r < ds_rows(t); r++) {
      int k = ds_category(t, r, i);

      if (c->kind == DS_NUMERIC && isinf(ds_number(t, r, i)))
        __builtin_trap();
      if (c->kind == DS_CATEGORICAL && (k < -1 || k >= (int)c->n_categories))
        __builtin_trap();
    }
  }
}

/* Runs one parse and checks its outcome. */
static void parse_one(const uint8_t *data, size_t size, const struct ds_csv_opts *opts, int sniff)
{
  const struct ds_limits lim = {
      .max_rows = 5000, .max_columns = 256, .max_categories = 512, .max_field = 1024};
  struct cm_error err = {0};
  ds_table *t = NULL;
  int rc = sniff ? ds_parse((const char *)data, size, NULL, &lim, &t, &err)
                 : ds_parse_csv((const char *)data, size, opts, &lim, &t, &err);

  if (rc == 0) {
    table_check(t);
    ds_table_free(t);
  } else if (t || err.code != rc || !err.msg[0]) {
    __builtin_trap();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const char *const na[] = {"-", "null"};
  const struct ds_csv_opts plain = {0};
  const struct ds_csv_opts headless = {
      .delimiter = ';', .no_header = true, .na_tokens = na, .n_na_tokens = 2};

  parse_one(data, size, &plain, 0);
  parse_one(data, size, &headless, 0);
  parse_one(data, size, NULL, 1);
  return 0;
}
