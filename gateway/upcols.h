/* upcols: a batcher call sent by column (PredictBatchRequest.columns) and its answer turned back
 * into the RowResults the routes read. */
#ifndef CREDITO_UPCOLS_H
#define CREDITO_UPCOLS_H

#include "gw.h"

/* Sets req->columns to the rows of list (n_rows in all; strings borrowed from them) in a, and
 * clears req->rows. 0; CM_E_NOMEM; CM_E_INVALID when a row cannot be put in columns (a feature
 * given twice, numbers and texts in one feature): the call then goes in rows. */
int gw_cols_request(const struct gw_pending *list, size_t n_rows, cm_arena *a,
                    Credito__V1__PredictBatchRequest *req);

/* Fills resp->results (n_rows RowResults, in a) from resp->columns and the rows of list, the
 * reasons worded from each row's values. 0; CM_E_INTERNAL with err when the answer does not fit
 * the request (or has no columns); CM_E_NOMEM. */
int gw_cols_results(const struct gw_pending *list, size_t n_rows, cm_arena *a,
                    Credito__V1__PredictBatchResponse *resp, struct cm_error *err);

#endif
