/* train internals shared by train.c (loading, preparing, packing) and train_eval.c (fitting and
 * evaluating): the job's state. */
#ifndef CREDITO_TRAIN_INT_H
#define CREDITO_TRAIN_INT_H

#include "buf.h"
#include "train.h"

struct trn_job {
  struct trn_params params; /* owned copy */
  ds_table *table;          /* parsed data */
  int target_col;           /* target column in table */
  int positive;             /* positive label's category index */
  int *y;                   /* per table row: 1 = positive */
  size_t *train, *test;     /* row indices, ascending */
  size_t ntrain, ntest;
  struct md_prep *prep;     /* fitted on the training rows */
  double *Xtrain, *Xtest;   /* prepared rows, row-major, width columns */
  int *ytrain, *ytest;
  struct cm_buf processed;  /* processed CSV, when asked for */
  double *coef;             /* width + 1: weights then intercept */
  struct md_fit_info fit;   /* solver report */
  double *ptest;            /* test probabilities, after evaluate */
  struct trn_metric *metrics;
  size_t n_metrics, cap_metrics;
};

/* Appends a metric; CM_E_NOMEM. */
int trn_metric_add(trn_job *job, const char *key, double value, int64_t step);

#endif
