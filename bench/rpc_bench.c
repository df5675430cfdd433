/* rpc_bench: unary calls per second and latency percentiles of the RPC layer on loopback.
 * Client threads (one per call in flight) call credito.test.v1.Echo/Echo on a running
 * credito-echo-server through the Credito client, for a fixed time after a warm-up.
 * Usage: rpc_bench TARGET [--inflight N] [--seconds S] [--payload BYTES] [--channels C] */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "credito/test/v1/echo.pb-c.h"
#include "rpc.h"

#define MAX_SAMPLES (1 << 22)

struct worker {
  rpc_channel *ch;      /* shared per channel group */
  size_t payload;       /* request payload bytes */
  long *lat_us;         /* latencies of this worker's calls after warm-up */
  size_t n;             /* how many */
  size_t cap;
  long errors;          /* failed calls */
  pthread_t th;
};

static atomic_int phase; /* 0 warm-up, 1 measure, 2 stop */

static long now_us(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

static void *worker_main(void *arg)
{
  struct worker *w = arg;
  Credito__Test__V1__EchoRequest req = CREDITO__TEST__V1__ECHO_REQUEST__INIT;
  uint8_t *payload = calloc(w->payload ? w->payload : 1, 1);
  cm_arena *a = cm_arena_new(0);

  req.text = "bench";
  req.payload.data = payload;
  req.payload.len = w->payload;
  while (atomic_load(&phase) < 2) {
    ProtobufCMessage *resp;
    struct cm_error err;
    long t0 = now_us();
    int rc = rpc_unary(w->ch, "/credito.test.v1.Echo/Echo", &req.base,
                       &credito__test__v1__echo_response__descriptor, 5000, a, &resp, &err);
    long dt = now_us() - t0;

    if (rc)
      w->errors++;
    if (atomic_load(&phase) == 1 && w->n < w->cap)
      w->lat_us[w->n++] = dt;
    cm_arena_free(a); /* a fresh arena per call, as a server-facing client would */
    a = cm_arena_new(0);
  }
  cm_arena_free(a);
  free(payload);
  return NULL;
}

static int cmp_long(const void *x, const void *y)
{
  long a = *(const long *)x, b = *(const long *)y;

  return (a > b) - (a < b);
}

int main(int argc, char **argv)
{
  int inflight = 1, seconds = 5, channels = 1;
  size_t payload = 16;
  struct rpc_channel_opts o = {0};
  rpc_channel *chs[64];
  struct worker *ws;
  struct cm_error err;
  size_t total = 0;
  long errors = 0, *all;

  if (argc < 2) {
    fprintf(stderr, "usage: rpc_bench TARGET [--inflight N] [--seconds S] [--payload B] "
                    "[--channels C]\n");
    return 2;
  }
  for (int i = 2; i + 1 < argc; i += 2) {
    long v = strtol(argv[i + 1], NULL, 10);

    if (strcmp(argv[i], "--inflight") == 0)
      inflight = (int)v;
    else if (strcmp(argv[i], "--seconds") == 0)
      seconds = (int)v;
    else if (strcmp(argv[i], "--payload") == 0)
      payload = (size_t)v;
    else if (strcmp(argv[i], "--channels") == 0)
      channels = (int)v;
  }
  if (inflight < 1 || inflight > 1024 || channels < 1 || channels > 64 || seconds < 1)
    return 2;
  rpc_init();
  o.target = argv[1];
  o.max_attempts = 1;
  for (int c = 0; c < channels; c++) {
    chs[c] = rpc_channel_new(&o, &err);
    if (!chs[c]) {
      fprintf(stderr, "channel: %s\n", err.msg);
      return 1;
    }
  }
  ws = calloc((size_t)inflight, sizeof(*ws));
  for (int i = 0; i < inflight; i++) {
    ws[i].ch = chs[i % channels];
    ws[i].payload = payload;
    ws[i].cap = MAX_SAMPLES / (size_t)inflight;
    ws[i].lat_us = malloc(ws[i].cap * sizeof(long));
    pthread_create(&ws[i].th, NULL, worker_main, &ws[i]);
  }
  {
    struct timespec warm = {1, 0}, run = {seconds, 0};

    nanosleep(&warm, NULL);
    atomic_store(&phase, 1);
    nanosleep(&run, NULL);
    atomic_store(&phase, 2);
  }
  for (int i = 0; i < inflight; i++) {
    pthread_join(ws[i].th, NULL);
    total += ws[i].n;
    errors += ws[i].errors;
  }
  all = malloc((total ? total : 1) * sizeof(long));
  total = 0;
  for (int i = 0; i < inflight; i++) {
    memcpy(all + total, ws[i].lat_us, ws[i].n * sizeof(long));
    total += ws[i].n;
    free(ws[i].lat_us);
  }
  qsort(all, total, sizeof(long), cmp_long);
  printf("inflight=%d channels=%d payload=%zu seconds=%d calls=%zu calls_per_s=%.0f "
         "p50_us=%ld p99_us=%ld errors=%ld\n",
         inflight, channels, payload, seconds, total, (double)total / seconds,
         total ? all[total / 2] : 0L, total ? all[(size_t)(total * 0.99)] : 0L, errors);
  free(all);
  free(ws);
  for (int c = 0; c < channels; c++)
    rpc_channel_free(chs[c]);
  rpc_cleanup();
  return errors ? 1 : 0;
}
