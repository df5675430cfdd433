/* pred_int: what pred_service.c and pred_columns.c share inside the predictor. */
#ifndef CREDITO_PRED_INT_H
#define CREDITO_PRED_INT_H

#include <stddef.h>

#include "arena.h"
#include "credito/v1/predictor.pb-c.h"
#include "model.h"
#include "pred_service.h"

/* Violations reported per applicant (common.proto allows a server to cap the list at 100). */
#define MAX_VIOLATIONS 100
/* Bytes of violations in one batch row (5,000 invalid rows must still fit the reply). */
#define ROW_DETAIL_MAX_BYTES 400

/* Violations v[0..shown) of total -> a BadRequest in a, as many as fit max_bytes (at least
 * one); *summary gets the status message. NULL when out of memory. */
Credito__V1__BadRequest *pred_bad_request(const struct md_violation *v, size_t shown,
                                          size_t total, size_t max_bytes, cm_arena *a,
                                          char **summary);

/* md_model_score of one row without a violation buffer held by every call: scores with none
 * first, and only for an invalid row allocates *viol in a (MAX_VIOLATIONS records, once per
 * call: pass the same pointer for every row) and scores again to fill it. Returns as
 * md_model_score, or CM_E_NOMEM. */
int pred_score(const md_model *m, const struct md_value *v, size_t n, double *scratch,
               struct md_prediction *out, struct md_violation **viol, cm_arena *a, size_t *nv);

/* Scores a PredictBatch request by columns with sv into *out (allocated in a; worker threads'
 * memory is tied to a as well), on up to o->batch_threads threads. Returns 0; CM_E_INVALID
 * with msg set (cap bytes) when the request as a whole is malformed (a column's shape, the
 * caps); CM_E_NOMEM. Invalid rows are not an error: they are listed in (*out)->errors. */
int pred_columns_score(const struct pred_opts *o, const struct served *sv,
                       const Credito__V1__ApplicantColumns *c, cm_arena *a,
                       Credito__V1__ScoredColumns **out, char *msg, size_t cap);

#endif
