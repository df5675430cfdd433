/* predict_bench: calls per second and latency percentiles of the predictor on loopback.
 * Client threads (one per call in flight) send Predict (one German Credit applicant), PredictBatch
 * (R copies of it, as rows or as columns) or grpc.health.v1.Health/Check (the RPC layer's
 * ceiling) to a running credito-predictor through the Credito client, for a fixed time after a
 * warm-up.
 * Usage: predict_bench TARGET --method predict|health|batch|columns [--inflight N] [--seconds S]
 *                      [--rows R] [--channels C]
 *        predict_bench TARGET --wait-ready S   (exit 0 once Health/Check "" says SERVING) */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "credito/v1/predictor.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "rpc.h"

#define MAX_SAMPLES (1 << 22)
#define N_FEATURES 20
#define CALL_TIMEOUT_MS 30000

enum method { M_PREDICT, M_HEALTH, M_BATCH, M_COLUMNS };

/* The first applicant of data/raw/credit-g.arff (class good), in file column order: text is NULL
 * for a numeric feature. */
static const struct {
  const char *name;
  const char *text;
  double number;
} applicant[N_FEATURES] = {
    {"checking_status", "<0", 0},
    {"duration", NULL, 6},
    {"credit_history", "critical/other existing credit", 0},
    {"purpose", "radio/tv", 0},
    {"credit_amount", NULL, 1169},
    {"savings_status", "no known savings", 0},
    {"employment", ">=7", 0},
    {"installment_commitment", NULL, 4},
    {"personal_status", "male single", 0},
    {"other_parties", "none", 0},
    {"residence_since", NULL, 4},
    {"property_magnitude", "real estate", 0},
    {"age", NULL, 67},
    {"other_payment_plans", "none", 0},
    {"housing", "own", 0},
    {"existing_credits", NULL, 2},
    {"job", "skilled", 0},
    {"num_dependents", NULL, 1},
    {"own_telephone", "yes", 0},
    {"foreign_worker", "yes", 0},
};

/* The request messages every worker sends (read-only once built; packing only reads them). */
struct requests {
  Credito__V1__FeatureValue values[N_FEATURES];
  Credito__V1__Feature features[N_FEATURES];
  Credito__V1__Feature *fp[N_FEATURES];
  Credito__V1__PredictRequest predict;
  Credito__V1__Applicant row;           /* the applicant as a batch row */
  Credito__V1__Applicant **rows;        /* rows_n pointers to row */
  Credito__V1__PredictBatchRequest batch;
  Credito__V1__FeatureColumn cols[N_FEATURES]; /* the same rows by column */
  Credito__V1__FeatureColumn *colp[N_FEATURES];
  Credito__V1__ApplicantColumns columns;
  Credito__V1__PredictBatchRequest by_columns;
  double *numbers;  /* rows copies of each numeric value, one block per feature */
  uint32_t *codes;  /* rows zeros: every categorical column's one category */
  Grpc__Health__V1__HealthCheckRequest health;
};

struct worker {
  rpc_channel *ch;          /* shared per channel group */
  enum method m;
  const struct requests *rq;
  size_t rows;              /* batch rows expected back */
  long *lat_us;             /* latencies of this worker's calls after warm-up */
  size_t n;                 /* how many */
  size_t cap;
  long errors;              /* failed calls (a status other than OK, or a wrong answer) */
  char first_error[200];    /* the first failure's message, for the report */
  pthread_t th;
};

static atomic_int phase; /* 0 warm-up, 1 measure, 2 stop */

static long now_us(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

/* Fills rq (caller's storage) with the requests; rows copies of the applicant in the batches.
 * rq->rows, numbers and codes are malloc'ed: requests_free. Returns 0 or -1 when out of memory. */
static int requests_build(struct requests *rq, size_t rows)
{
  for (size_t i = 0; i < N_FEATURES; i++) {
    credito__v1__feature_value__init(&rq->values[i]);
    if (applicant[i].text) {
      rq->values[i].value_case = CREDITO__V1__FEATURE_VALUE__VALUE_TEXT;
      rq->values[i].text = (char *)applicant[i].text;
    } else {
      rq->values[i].value_case = CREDITO__V1__FEATURE_VALUE__VALUE_NUMBER;
      rq->values[i].number = applicant[i].number;
    }
    credito__v1__feature__init(&rq->features[i]);
    rq->features[i].name = (char *)applicant[i].name;
    rq->features[i].value = &rq->values[i];
    rq->fp[i] = &rq->features[i];
  }
  credito__v1__predict_request__init(&rq->predict);
  rq->predict.features = rq->fp;
  rq->predict.n_features = N_FEATURES;
  rq->predict.request_id = "bench"; /* so the server does not make one per call */
  credito__v1__applicant__init(&rq->row);
  rq->row.features = rq->fp;
  rq->row.n_features = N_FEATURES;
  rq->rows = malloc((rows ? rows : 1) * sizeof(*rq->rows));
  if (!rq->rows)
    return -1;
  for (size_t i = 0; i < rows; i++)
    rq->rows[i] = &rq->row;
  credito__v1__predict_batch_request__init(&rq->batch);
  rq->batch.rows = rq->rows;
  rq->batch.n_rows = rows;
  rq->batch.request_id = "bench";
  rq->numbers = malloc((rows ? rows : 1) * N_FEATURES * sizeof(*rq->numbers));
  rq->codes = calloc(rows ? rows : 1, sizeof(*rq->codes));
  if (!rq->numbers || !rq->codes)
    return -1;
  for (size_t i = 0; i < N_FEATURES; i++) {
    Credito__V1__FeatureColumn *c = &rq->cols[i];
    credito__v1__feature_column__init(c);
    c->name = (char *)applicant[i].name;
    if (applicant[i].text) {
      c->categories = (char **)&applicant[i].text;
      c->n_categories = 1;
      c->codes = rq->codes;
      c->n_codes = rows;
    } else {
      c->numbers = rq->numbers + i * rows;
      c->n_numbers = rows;
      for (size_t r = 0; r < rows; r++)
        c->numbers[r] = applicant[i].number;
    }
    rq->colp[i] = c;
  }
  credito__v1__applicant_columns__init(&rq->columns);
  rq->columns.n_rows = (uint32_t)rows;
  rq->columns.features = rq->colp;
  rq->columns.n_features = N_FEATURES;
  credito__v1__predict_batch_request__init(&rq->by_columns);
  rq->by_columns.columns = &rq->columns;
  rq->by_columns.request_id = "bench";
  grpc__health__v1__health_check_request__init(&rq->health);
  rq->health.service = "";
  return 0;
}

static void requests_free(struct requests *rq)
{
  free(rq->rows);
  free(rq->numbers);
  free(rq->codes);
}

/* True when resp is the answer the method should give: SERVING, a prediction, every row scored. */
static bool answer_ok(const struct worker *w, const ProtobufCMessage *resp)
{
  if (w->m == M_HEALTH)
    return ((const Grpc__Health__V1__HealthCheckResponse *)resp)->status ==
           GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  if (w->m == M_PREDICT)
    return ((const Credito__V1__PredictResponse *)resp)->prediction != NULL;
  if (w->m == M_COLUMNS) {
    const Credito__V1__PredictBatchResponse *b = (const void *)resp;
    return b->columns && b->columns->n_probability == w->rows && b->columns->n_errors == 0;
  }
  {
    const Credito__V1__PredictBatchResponse *b = (const void *)resp;

    if (b->n_results != w->rows)
      return false;
    for (size_t i = 0; i < b->n_results; i++)
      if (b->results[i]->outcome_case != CREDITO__V1__ROW_RESULT__OUTCOME_PREDICTION)
        return false;
    return true;
  }
}

/* One call of w's method; 0 when it succeeded with the right answer. */
static int call_once(struct worker *w, cm_arena *a)
{
  static const char *const paths[] = {"/credito.v1.Predictor/Predict",
                                      "/grpc.health.v1.Health/Check",
                                      "/credito.v1.Predictor/PredictBatch",
                                      "/credito.v1.Predictor/PredictBatch"};
  const ProtobufCMessage *req = w->m == M_PREDICT   ? &w->rq->predict.base
                                : w->m == M_HEALTH  ? &w->rq->health.base
                                : w->m == M_COLUMNS ? &w->rq->by_columns.base
                                                    : &w->rq->batch.base;
  const ProtobufCMessageDescriptor *desc =
      w->m == M_PREDICT  ? &credito__v1__predict_response__descriptor
      : w->m == M_HEALTH ? &grpc__health__v1__health_check_response__descriptor
                         : &credito__v1__predict_batch_response__descriptor;
  ProtobufCMessage *resp = NULL;
  struct cm_error err;
  int rc = rpc_unary(w->ch, paths[w->m], req, desc, CALL_TIMEOUT_MS, a, &resp, &err);

  if (!rc && !answer_ok(w, resp)) {
    rc = -1;
    snprintf(err.msg, sizeof(err.msg), "unexpected answer");
  }
  if (rc && !w->first_error[0])
    snprintf(w->first_error, sizeof(w->first_error), "%s", err.msg);
  return rc;
}

static void *worker_main(void *arg)
{
  struct worker *w = arg;

  while (atomic_load(&phase) < 2) {
    cm_arena *a = cm_arena_new(0); /* a fresh arena per call, as a server-facing client would */
    long t0 = now_us();
    int rc = a ? call_once(w, a) : -1;
    long dt = now_us() - t0;

    if (rc)
      w->errors++;
    if (atomic_load(&phase) == 1 && w->n < w->cap)
      w->lat_us[w->n++] = dt;
    cm_arena_free(a);
  }
  return NULL;
}

static int cmp_long(const void *x, const void *y)
{
  long a = *(const long *)x, b = *(const long *)y;

  return (a > b) - (a < b);
}

/* Warm-up of one second, then the measured window. */
static void run_window(int seconds)
{
  struct timespec warm = {1, 0}, run = {seconds, 0};

  nanosleep(&warm, NULL);
  atomic_store(&phase, 1);
  nanosleep(&run, NULL);
  atomic_store(&phase, 2);
}

/* Joins the workers, prints the result line; returns the error count. */
static long report(struct worker *ws, int inflight, int channels, const char *method,
                   size_t rows, int seconds, size_t req_bytes)
{
  size_t total = 0;
  long errors = 0, *all;

  for (int i = 0; i < inflight; i++) {
    pthread_join(ws[i].th, NULL);
    total += ws[i].n;
    errors += ws[i].errors;
    /* Only the first worker that failed: the others most likely say the same. */
    if (ws[i].first_error[0] && ws[i].errors == errors)
      fprintf(stderr, "predict_bench: first error: %s\n", ws[i].first_error);
  }
  all = malloc((total ? total : 1) * sizeof(long));
  total = 0;
  for (int i = 0; all && i < inflight; i++) {
    memcpy(all + total, ws[i].lat_us, ws[i].n * sizeof(long));
    total += ws[i].n;
  }
  qsort(all, total, sizeof(long), cmp_long);
  printf("method=%s inflight=%d channels=%d rows=%zu request_bytes=%zu seconds=%d calls=%zu "
         "calls_per_s=%.1f rows_per_s=%.0f p50_us=%ld p99_us=%ld errors=%ld\n",
         method, inflight, channels, rows, req_bytes, seconds, total, (double)total / seconds,
         (double)total * (double)rows / seconds, total ? all[total / 2] : 0L,
         total ? all[(size_t)(total * 0.99)] : 0L, errors);
  free(all);
  return errors;
}

static int usage(void)
{
  fprintf(stderr, "usage: predict_bench TARGET --method predict|health|batch|columns "
                  "[--inflight N] "
                  "[--seconds S] [--rows R] [--channels C]\n"
                  "       predict_bench TARGET --wait-ready S\n");
  return 2;
}

/* Polls Health/Check "" on target every 50 ms for up to seconds; 0 once it says SERVING. */
static int wait_ready(const char *target, long seconds)
{
  struct rpc_channel_opts o = {0};
  struct worker w = {0};
  struct requests rq;
  struct cm_error err;
  long end = now_us() + seconds * 1000000L;
  int rc = -1;

  if (requests_build(&rq, 1))
    return 1;
  rpc_init();
  o.target = target;
  o.max_attempts = 1;
  w.ch = rpc_channel_new(&o, &err);
  w.m = M_HEALTH;
  w.rq = &rq;
  while (w.ch && rc && now_us() < end) {
    cm_arena *a = cm_arena_new(0);
    struct timespec pause = {0, 50 * 1000000L};

    w.first_error[0] = '\0'; /* keep the last failure's message */
    rc = a ? call_once(&w, a) : -1;
    cm_arena_free(a);
    if (rc)
      nanosleep(&pause, NULL);
  }
  if (rc)
    fprintf(stderr, "predict_bench: %s not SERVING after %ld s: %s\n", target, seconds,
            w.ch ? w.first_error : err.msg);
  rpc_channel_free(w.ch);
  rpc_cleanup();
  requests_free(&rq);
  return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
  int inflight = 1, seconds = 5, channels = 1;
  long rows = 1000;
  const char *method = NULL;
  enum method m;
  struct rpc_channel_opts o = {0};
  struct requests rq;
  rpc_channel *chs[64];
  struct worker *ws;
  struct cm_error err;
  size_t req_bytes;
  long errors;

  if (argc < 2)
    return usage();
  for (int i = 2; i + 1 < argc; i += 2) {
    long v = strtol(argv[i + 1], NULL, 10);

    if (strcmp(argv[i], "--wait-ready") == 0)
      return wait_ready(argv[1], v);
    else if (strcmp(argv[i], "--method") == 0)
      method = argv[i + 1];
    else if (strcmp(argv[i], "--inflight") == 0)
      inflight = (int)v;
    else if (strcmp(argv[i], "--seconds") == 0)
      seconds = (int)v;
    else if (strcmp(argv[i], "--rows") == 0)
      rows = v;
    else if (strcmp(argv[i], "--channels") == 0)
      channels = (int)v;
    else
      return usage();
  }
  if (!method || inflight < 1 || inflight > 1024 || channels < 1 || channels > 64 ||
      seconds < 1 || rows < 1 || rows > 1000000)
    return usage();
  if (strcmp(method, "predict") == 0)
    m = M_PREDICT;
  else if (strcmp(method, "health") == 0)
    m = M_HEALTH;
  else if (strcmp(method, "batch") == 0)
    m = M_BATCH;
  else if (strcmp(method, "columns") == 0)
    m = M_COLUMNS;
  else
    return usage();
  if (m != M_BATCH && m != M_COLUMNS)
    rows = 1;
  if (requests_build(&rq, (size_t)rows))
    return 1;
  req_bytes = protobuf_c_message_get_packed_size(m == M_PREDICT   ? &rq.predict.base
                                                 : m == M_HEALTH  ? &rq.health.base
                                                 : m == M_COLUMNS ? &rq.by_columns.base
                                                                  : &rq.batch.base);
  rpc_init();
  o.target = argv[1];
  o.max_attempts = 1;
  o.max_message = 64u * 1024 * 1024; /* a 10,000-row batch is over the 4 MiB default */
  for (int c = 0; c < channels; c++) {
    chs[c] = rpc_channel_new(&o, &err);
    if (!chs[c]) {
      fprintf(stderr, "channel: %s\n", err.msg);
      return 1;
    }
  }
  ws = calloc((size_t)inflight, sizeof(*ws));
  for (int i = 0; ws && i < inflight; i++) {
    ws[i].ch = chs[i % channels];
    ws[i].m = m;
    ws[i].rq = &rq;
    ws[i].rows = (size_t)rows;
    ws[i].cap = MAX_SAMPLES / (size_t)inflight;
    ws[i].lat_us = malloc(ws[i].cap * sizeof(long));
    pthread_create(&ws[i].th, NULL, worker_main, &ws[i]);
  }
  if (!ws)
    return 1;
  run_window(seconds);
  errors = report(ws, inflight, channels, method, (size_t)rows, seconds, req_bytes);
  for (int i = 0; i < inflight; i++)
    free(ws[i].lat_us);
  free(ws);
  requests_free(&rq);
  for (int c = 0; c < channels; c++)
    rpc_channel_free(chs[c]);
  rpc_cleanup();
  return errors ? 1 : 0;
}
