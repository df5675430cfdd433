/* service: Train over gRPC. The handler hands the call to a training thread, which streams
 * progress events with backpressure and finishes the call with the result or the error. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "credito/v1/trainer.pb-c.h"
#include "log.h"
#include "mem.h"
#include "train_service.h"

struct trainer_service {
  struct rpc_service svc;     /* first: the server sees this */
  struct rpc_method method;   /* Train */
  const struct trk_opts *opts;
  pthread_mutex_t mu;         /* guards busy and thread */
  bool busy;                  /* a training is running, or its run's end is being recorded */
  bool closing;               /* ... the latter: the registry was unavailable at the end */
  atomic_bool stop;           /* the service is going away: stop retrying */
  bool joinable;              /* thread holds a thread to join */
  pthread_t thread;
};

/* How long a progress event may wait for a slow client before the training gives up. */
#define TRAIN_WRITE_WAIT_MS 30000
/* How long a run's end is retried while the registry is unavailable (the slot stays taken). */
#define CLOSE_RETRY_MS (10 * 60 * 1000)

static int sink_progress(void *ctx, const Credito__V1__TrainProgress *p)
{
  Credito__V1__TrainEvent ev = CREDITO__V1__TRAIN_EVENT__INIT;
  ev.event_case = CREDITO__V1__TRAIN_EVENT__EVENT_PROGRESS;
  ev.progress = (Credito__V1__TrainProgress *)(uintptr_t)p;
  return rpc_call_write_wait(ctx, &ev.base, TRAIN_WRITE_WAIT_MS);
}

static bool sink_cancelled(void *ctx) { return rpc_call_cancelled(ctx); }

/* Finishes with err; an INVALID_ARGUMENT carries a BadRequest detail naming the data cell
 * ("lines[17].duration", from the parser's "line 17, column 'duration'") or the request. */
static void finish_error(rpc_call *call, int rc, const struct cm_error *err)
{
  Credito__V1__BadRequest br = CREDITO__V1__BAD_REQUEST__INIT;
  Credito__V1__FieldViolation fv = CREDITO__V1__FIELD_VIOLATION__INIT;
  Credito__V1__FieldViolation *fvp = &fv;
  const char *at = strstr(err->msg, "line ");
  char field[128] = "request", col[64];
  unsigned long line;

  if (rc != CM_E_INVALID) {
    rpc_call_finish(call, rc, err->msg);
    return;
  }
  if (at && sscanf(at, "line %lu, column '%63[^']'", &line, col) == 2)
    snprintf(field, sizeof(field), "lines[%lu].%s", line, col);
  fv.field = field;
  fv.message = (char *)err->msg;
  fv.type = (char *)"value_error";
  br.violations = &fvp;
  br.n_violations = 1;
  rpc_call_finish_detail(call, rc, err->msg, &br.base);
}

static void *train_thread(void *arg)
{
  rpc_call *call = arg;
  struct trainer_service *ts = rpc_call_service(call);
  const Credito__V1__TrainRequest *req = rpc_call_data(call);
  struct trk_sink sink = {call, sink_progress, sink_cancelled};
  Credito__V1__TrainResult *res = NULL;
  Credito__V1__TrainEvent ev = CREDITO__V1__TRAIN_EVENT__INIT;
  cm_arena *a = cm_arena_new(0);
  struct trk_close pending = {0};
  struct cm_error err;
  int rc;

  cm_error_clear(&err);
  rc = a ? trk_train(ts->opts, req, &sink, a, &res, &pending, &err)
         : cm_error_set(&err, CM_E_NOMEM, "out of memory");
  if (!rc) {
    ev.event_case = CREDITO__V1__TRAIN_EVENT__EVENT_RESULT;
    ev.result = res;
    rc = rpc_call_write_wait(call, &ev.base, TRAIN_WRITE_WAIT_MS);
    if (rc)
      cm_error_set(&err, rc, "the client went away before the result");
    cm_log(CM_LOG_INFO, "trained", "model=%s version=%lld run=%s alias=%s", req->model_name,
           res->model_version ? (long long)res->model_version->version : 0LL, res->run_id,
           res->alias);
  }
  /* Free the slot before the status goes out: a client that calls again as soon as it has its
   * answer must not be told the trainer is busy. Unless the run's end is still to be recorded:
   * then the client has its answer at once, and the slot stays taken until the registry takes
   * the end (a new training would otherwise meet the same outage). */
  pthread_mutex_lock(&ts->mu);
  ts->closing = pending.pending;
  ts->busy = pending.pending;
  pthread_mutex_unlock(&ts->mu);
  if (rc)
    finish_error(call, rc, &err);
  else
    rpc_call_finish(call, CM_OK, NULL);
  cm_arena_free(a);
  if (pending.pending) {
    trk_close_retry(ts->opts, &pending, CLOSE_RETRY_MS, &ts->stop);
    pthread_mutex_lock(&ts->mu);
    ts->closing = false;
    ts->busy = false;
    pthread_mutex_unlock(&ts->mu);
  }
  return NULL;
}

static void train_start(rpc_call *call, const ProtobufCMessage *req)
{
  struct trainer_service *ts = rpc_call_service(call);
  struct cm_error err;
  bool busy, closing;

  /* A bad request is answered at once, busy or not, and never takes the slot. */
  cm_error_clear(&err);
  if (trk_request_check((const Credito__V1__TrainRequest *)req, &err)) {
    finish_error(call, err.code, &err);
    return;
  }
  pthread_mutex_lock(&ts->mu);
  busy = ts->busy;
  closing = ts->closing;
  if (!busy) {
    /* The previous training's thread has ended (busy is false): reap it. */
    if (ts->joinable)
      pthread_join(ts->thread, NULL);
    ts->joinable = false;
    rpc_call_set_data(call, (void *)(uintptr_t)req, NULL);
    ts->busy = pthread_create(&ts->thread, NULL, train_thread, call) == 0;
    ts->joinable = ts->busy;
  }
  pthread_mutex_unlock(&ts->mu);
  if (busy && closing)
    rpc_call_finish(call, CM_E_EXHAUSTED, "the trainer is still recording the end of its last "
                    "run (the registry was unavailable); retry shortly");
  else if (busy)
    rpc_call_finish(call, CM_E_EXHAUSTED, "the trainer is busy with another training; retry "
                    "when it ends");
  else if (!ts->joinable)
    rpc_call_finish(call, CM_E_INTERNAL, "cannot start a training thread");
}

/* The thread sees rpc_call_cancelled at its next checkpoint and finishes the call. */
static void train_cancel(rpc_call *call)
{
  cm_log(CM_LOG_INFO, "training cancelled", "peer=%s", rpc_call_peer(call));
}

struct rpc_service *trainer_service_new(const struct trk_opts *opts)
{
  const ProtobufCServiceDescriptor *d = &credito__v1__trainer__descriptor;
  struct trainer_service *ts = cm_calloc(1, sizeof *ts);

  if (!ts)
    return NULL;
  ts->opts = opts;
  pthread_mutex_init(&ts->mu, NULL);
  ts->method = (struct rpc_method){"Train", RPC_SERVER_STREAM, d->methods[0].input,
                                   d->methods[0].output, train_start, NULL, NULL, train_cancel};
  ts->svc = (struct rpc_service){d->name, &ts->method, 1, ts, NULL};
  return &ts->svc;
}

void trainer_service_free(struct rpc_service *svc)
{
  struct trainer_service *ts = (struct trainer_service *)svc;
  if (!ts)
    return;
  atomic_store(&ts->stop, true);
  if (ts->joinable)
    pthread_join(ts->thread, NULL);
  pthread_mutex_destroy(&ts->mu);
  cm_free(ts);
}
