/* track: one training driven end to end against the registry (autolog): resolve the dataset,
 * open a run, log params and tags, load, prepare and store the processed matrix as a dataset
 * version whose parent is the raw one, fit, evaluate, cross-validate, upload the artifact,
 * register the version, check the gates and move the alias. Used by the Train RPC and by the
 * command-line form with --registry. */
#ifndef CREDITO_TRACK_H
#define CREDITO_TRACK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "credito/v1/trainer.pb-c.h"
#include "err.h"
#include "regclient.h"
#include "rpc.h"

/* Where a training's progress goes (the Train stream, or a terminal). */
struct trk_sink {
  void *ctx;
  /* One progress event (borrowed for the call). A nonzero return stops the training with that
   * code (the client went away). */
  int (*progress)(void *ctx, const Credito__V1__TrainProgress *p);
  /* True once the client cancelled; checked between stages. */
  bool (*cancelled)(void *ctx);
};

/* Settings of the trainer process. */
struct trk_opts {
  struct regc reg;             /* the registry (channel borrowed) */
  size_t max_dataset;          /* largest dataset version it trains on, in bytes */
  const char *trainer_version; /* recorded in tags and the artifact */
};

/* The end of a run that could not be recorded because the registry (or its store) was
 * unavailable: trk_train fills it, trk_close_retry records it later. */
struct trk_close {
  bool pending;
  char run_id[64];
  int status;                      /* a Credito__V1__RunStatus */
  int64_t end_ms;
  char reason[CM_ERROR_MSG_SIZE];
};

/* Checks req on its own (params, fractions, folds, scorecard, gates, alias): 0 or
 * CM_E_INVALID with err naming the field. trk_train does the same first. */
int trk_request_check(const Credito__V1__TrainRequest *req, struct cm_error *err);

/* Runs one training for req (borrowed). On success returns 0 and *out, built in arena a (the
 * caller's). On failure returns the CM_E_* code (see trainer.proto for which) with err set;
 * when a run was created it is marked FAILED (KILLED when cancelled) with the reason, and no
 * version is registered unless the failure came after registration (then err says so). */
int trk_train(const struct trk_opts *o, const Credito__V1__TrainRequest *req,
              const struct trk_sink *sink, cm_arena *a, Credito__V1__TrainResult **out,
              struct trk_close *pending, struct cm_error *err);

/* Retries recording c's run end (backoff from 100 ms, doubling to 2 s) until the registry
 * takes it, wait_ms passes, or *stop is set; logs the outcome. Clears c->pending when done. */
void trk_close_retry(const struct trk_opts *o, struct trk_close *c, int64_t wait_ms,
                     const atomic_bool *stop);

#endif
