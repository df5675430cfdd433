/* model internals shared inside common/model: the fitted preparation's layout, read by the
 * artifact writer and the reason codes. Not part of the public interface (model.h). */
#ifndef CREDITO_MODEL_INT_H
#define CREDITO_MODEL_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "dataset.h"

/* One source column's encoding. */
struct md_feature {
  size_t col;        /* column in the table */
  enum ds_kind kind; /* DS_NUMERIC or DS_CATEGORICAL */
  size_t offset;     /* first prepared value it writes */
  double median;     /* numeric: imputes a missing cell */
  double mean;       /* numeric: of the imputed training values */
  double std;        /* numeric: population std of the same; 1 when constant */
  size_t n_levels;   /* categorical: declared categories (length of level) */
  int *level;        /* categorical: per declared category its one-hot slot, -1 if unseen */
  int mode;          /* categorical: most frequent training category (first on ties), -1 none */
  bool had_missing;  /* the training rows had missing cells in this column */
};

/* The prepared columns of one feature are contiguous, from offset, in feature order. */
struct md_prep {
  size_t n_columns;             /* columns of the fitted table, checked on apply */
  size_t n_features;            /* entries in features */
  struct md_feature *features;  /* every column but the target */
  size_t width;                 /* prepared values per row */
  char **names;                 /* width names, owned */
  int *source;                  /* width source columns */
};

#endif
