/* pred_service: the credito.v1.Predictor gRPC service: Predict, PredictBatch, GetModelInfo over
 * the served model slot. Every call takes one reference to the current version, so an answer is
 * scored entirely by one version even while a swap happens. */
#ifndef CREDITO_PRED_SERVICE_H
#define CREDITO_PRED_SERVICE_H

#include <stddef.h>

#include "rpc.h"
#include "served.h"
#include "source.h"

/* Fewer rows than this per thread are not worth a thread (creating one costs about 30 us, a
 * row about 1 us). */
#define PRED_THREAD_ROWS_MIN 512

/* Settings, borrowed for the service's life. */
struct pred_opts {
  struct served_slot *slot; /* the served version */
  const char *model_ref;    /* --model, reported by GetModelInfo */
  size_t max_batch;         /* rows per PredictBatch */
  size_t max_features;      /* features per applicant */
  unsigned batch_threads;   /* threads that score one batch by columns (at least 1) */
  size_t thread_rows_min;   /* rows a thread takes at least (0: PRED_THREAD_ROWS_MIN) */
};

/* Creates the service. NULL when out of memory. */
struct rpc_service *pred_service_new(const struct pred_opts *o);

/* Gives the service the model source (for GetModelInfo's last load error); may be NULL. */
void pred_service_set_source(struct rpc_service *svc, source *src);

/* Frees svc after the server stopped. NULL does nothing. */
void pred_service_free(struct rpc_service *svc);

#endif
