/* answer: the /predict answer JSON, written without building jansson values. */
#ifndef CREDITO_ANSWER_H
#define CREDITO_ANSWER_H

#include <stdint.h>

#include "buf.h"
#include "credito/v1/predictor.pb-c.h"

/* Appends {"probability", "score", "decision", "reasons": [{"feature", "impact", "text"}],
 * "request_id", "model": {"name", "version", "alias"}} for p to o: the bytes
 * json_dumps(JSON_COMPACT | JSON_ENSURE_ASCII) gives for that object. Strings are borrowed
 * UTF-8. 0; CM_E_INVALID for a non-finite number or a string that is not UTF-8; CM_E_NOMEM or
 * CM_E_TOOLARGE from o. On failure o holds a partial answer: reset it. */
int gw_answer_predict(struct cm_buf *o, const Credito__V1__Prediction *p, const char *request_id,
                      const char *model, int64_t version, const char *alias);

#endif
