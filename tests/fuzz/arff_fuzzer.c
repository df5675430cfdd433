/* Fuzz target for the ARFF reader (common/dataset/arff.c), which parses uploaded datasets. A
 * parse either fails with a filled error and no table, or gives a table whose every cell agrees
 * with its column: categories in range, no infinities, unique names. The corpus in arff/ holds a
 * cut-down German Credit and small files for quoting, comments, CRLF, missing values. */
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
    if (c->kind != DS_NUMERIC && c->kind != DS_CATEGORICAL)
      __builtin_trap();
    for (size_t k = 0; k < c->n_categories; k++) {
      if (!c->categories[k])
        __builtin_trap();
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* Small caps keep each run fast; the code paths are the same as with the defaults. */
  const struct ds_limits lim = {
      .max_rows = 5000, .max_columns = 256, .max_categories = 512, .max_field = 1024};
  struct cm_error err = {0};
  ds_table *t = NULL;
  int rc = ds_parse_arff((const char *)data, size, &lim, &t, &err);

  if (rc == 0) {
    table_check(t);
    ds_table_free(t);
  } else if (t || err.code != rc || !err.msg[0]) {
    __builtin_trap();
  }
  return 0;
}
