/* batcher: predictor calls for the HTTP requests, a few at a time. A request's rows wait in one
 * queue; each of --upstream-calls threads takes everything waiting (up to --max-batch rows, the
 * first request whole whatever its size), scores it in one PredictBatch call and hands each
 * request its slice of the answer. Nothing waits on purpose: a request that finds a thread free
 * goes alone, and requests that arrive while every thread is in a call go together in the next.
 * At saturation one call carries many requests, so the gRPC cost of a call (about 55 us of CPU
 * on each side here) is paid once for all of them. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "credito/v1/predictor.pb-c.h"
#include "gw.h"
#include "log.h"
#include "mem.h"
#include "upcols.h"

enum {
  GW_UNAVAILABLE_RETRIES = 2, /* calls sent again after UNAVAILABLE, within the deadline */
  GW_RETRY_PAUSE_MS = 10,     /* before the second of them */
};

struct gw_batcher {
  struct gw *g;
  pthread_mutex_t mu;        /* guards the queue and stopping */
  pthread_cond_t cv;         /* a request waits, or stopping */
  struct gw_pending *head, *tail;
  bool stopping;
  size_t max_rows;
  unsigned n_threads;
  pthread_t *threads;
};

void gw_batch_release(struct gw_batch *b)
{
  if (b && atomic_fetch_sub(&b->refs, 1) == 1) {
    cm_arena_free(b->a);
    cm_free(b);
  }
}

/* Ends every request of the list with rc/err and no answer. */
static void fail_all(struct gw_pending *p, int rc, const struct cm_error *err)
{
  while (p) {
    struct gw_pending *next = p->next; /* p may be freed once done() returns */
    p->rc = rc;
    p->err = *err;
    p->batch = NULL;
    p->done(p);
    p = next;
  }
}

/* One PredictBatch call for the list (n_rows rows in all). */
static void call(struct gw_batcher *bt, struct gw_pending *list, size_t n_rows)
{
  Credito__V1__PredictBatchRequest req = CREDITO__V1__PREDICT_BATCH_REQUEST__INIT;
  struct gw_batch *b = cm_calloc(1, sizeof *b);
  int64_t deadline = INT64_MAX, left;
  struct cm_error err;
  Credito__V1__Applicant **rows;
  size_t k = 0, count = 0;
  int rc;

  cm_error_clear(&err);
  if (b)
    b->a = cm_arena_new(0);
  req.rows = b && b->a ? cm_arena_calloc(b->a, n_rows ? n_rows : 1, sizeof *req.rows) : NULL;
  rows = req.rows;
  if (!req.rows) {
    if (b)
      cm_arena_free(b->a);
    cm_free(b);
    cm_error_set(&err, CM_E_NOMEM, "out of memory");
    fail_all(list, CM_E_NOMEM, &err);
    return;
  }
  for (struct gw_pending *p = list; p; p = p->next) {
    memcpy(req.rows + k, p->rows, p->n * sizeof *p->rows);
    p->first = k;
    k += p->n;
    count++;
    if (p->deadline_ms < deadline)
      deadline = p->deadline_ms;
  }
  req.n_rows = n_rows;
  req.request_id = (char *)list->request_id; /* the predictor logs the first request's id */
  if (bt->g->cfg->upstream_columns) {
    rc = gw_cols_request(list, n_rows, b->a, &req);
    if (rc == CM_E_NOMEM) {
      cm_arena_free(b->a);
      cm_free(b);
      cm_error_set(&err, CM_E_NOMEM, "out of memory");
      fail_all(list, CM_E_NOMEM, &err);
      return;
    }
    if (rc) { /* these rows do not fit columns: send them as rows */
      req.columns = NULL;
      req.rows = rows;
      req.n_rows = n_rows;
    }
  }
  /* Scoring is a pure function, so a call that ends UNAVAILABLE is sent again, to the next
   * predictor in the round, whatever happened on the wire. gRPC's own retry policy stops once a
   * call is committed (the predictor died after taking it, mid-answer): these are for that. */
  for (int attempt = 0;; attempt++) {
    left = deadline - gw_mono_ms();
    if (left <= 0) {
      rc = cm_error_set(&err, CM_E_DEADLINE, "the deadline passed while the request %s",
                        attempt ? "was retried" : "waited");
      break;
    }
    rc = rpc_unary(bt->g->pred, "/credito.v1.Predictor/PredictBatch", &req.base,
                   &credito__v1__predict_batch_response__descriptor, left, b->a,
                   (ProtobufCMessage **)&b->resp, &err);
    if (rc != CM_E_UNAVAILABLE || attempt == GW_UNAVAILABLE_RETRIES)
      break;
    gw_metrics_retry(bt->g->metrics);
    if (attempt) /* give the balancer time to see the dead connection */
      nanosleep(&(struct timespec){0, GW_RETRY_PAUSE_MS * 1000000L}, NULL);
  }
  if (!rc && req.columns)
    rc = gw_cols_results(list, n_rows, b->a, b->resp, &err);
  if (!rc && b->resp->n_results != n_rows)
    rc = cm_error_set(&err, CM_E_INTERNAL, "the predictor answered %zu rows for %zu",
                      b->resp->n_results, n_rows);
  if (rc) {
    cm_arena_free(b->a);
    cm_free(b);
    fail_all(list, rc, &err);
    return;
  }
  atomic_init(&b->refs, (int)count);
  gw_metrics_batch(bt->g->metrics, count, n_rows);
  while (list) {
    struct gw_pending *next = list->next;
    list->rc = 0;
    list->batch = b;
    list->done(list);
    list = next;
  }
}

static void *batcher_main(void *arg)
{
  struct gw_batcher *bt = arg;

  pthread_mutex_lock(&bt->mu);
  for (;;) {
    struct gw_pending *list, *last;
    size_t rows;

    while (!bt->head && !bt->stopping)
      pthread_cond_wait(&bt->cv, &bt->mu);
    if (!bt->head)
      break; /* stopping, and nothing waits */
    /* The first request whatever its size, then more while they fit. */
    list = last = bt->head;
    rows = list->n;
    while (last->next && rows + last->next->n <= bt->max_rows) {
      last = last->next;
      rows += last->n;
    }
    bt->head = last->next;
    if (!bt->head)
      bt->tail = NULL;
    last->next = NULL;
    pthread_mutex_unlock(&bt->mu);
    call(bt, list, rows);
    pthread_mutex_lock(&bt->mu);
  }
  pthread_mutex_unlock(&bt->mu);
  return NULL;
}

int gw_batcher_start(struct gw *g, unsigned calls, size_t max_rows, struct cm_error *err)
{
  struct gw_batcher *bt = cm_calloc(1, sizeof *bt);

  if (bt)
    bt->threads = cm_calloc(calls, sizeof *bt->threads);
  if (!bt || !bt->threads) {
    cm_free(bt);
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  }
  bt->g = g;
  bt->max_rows = max_rows;
  pthread_mutex_init(&bt->mu, NULL);
  pthread_cond_init(&bt->cv, NULL);
  g->batcher = bt;
  for (unsigned i = 0; i < calls; i++) {
    if (pthread_create(&bt->threads[i], NULL, batcher_main, bt) != 0) {
      gw_batcher_free(g);
      return cm_error_set(err, CM_E_INTERNAL, "cannot start the predictor call threads");
    }
    bt->n_threads++;
  }
  return 0;
}

void gw_batcher_submit(struct gw *g, struct gw_pending *p)
{
  struct gw_batcher *bt = g->batcher;
  struct cm_error err;

  p->next = NULL;
  pthread_mutex_lock(&bt->mu);
  if (bt->stopping) {
    pthread_mutex_unlock(&bt->mu);
    cm_error_set(&err, CM_E_UNAVAILABLE, "the gateway is stopping");
    fail_all(p, CM_E_UNAVAILABLE, &err);
    return;
  }
  if (bt->tail)
    bt->tail->next = p;
  else
    bt->head = p;
  bt->tail = p;
  pthread_cond_signal(&bt->cv);
  pthread_mutex_unlock(&bt->mu);
}

void gw_batcher_stop(struct gw *g)
{
  struct gw_batcher *bt = g->batcher;

  if (!bt)
    return;
  /* The threads finish what waits (every request gets its answer), then end; a request
   * submitted from now on is answered at once (UNAVAILABLE). */
  pthread_mutex_lock(&bt->mu);
  bt->stopping = true;
  pthread_cond_broadcast(&bt->cv);
  pthread_mutex_unlock(&bt->mu);
  for (unsigned i = 0; i < bt->n_threads; i++)
    pthread_join(bt->threads[i], NULL);
  bt->n_threads = 0;
}

void gw_batcher_free(struct gw *g)
{
  struct gw_batcher *bt = g->batcher;

  if (!bt)
    return;
  gw_batcher_stop(g);
  pthread_cond_destroy(&bt->cv);
  pthread_mutex_destroy(&bt->mu);
  cm_free(bt->threads);
  cm_free(bt);
  g->batcher = NULL;
}
