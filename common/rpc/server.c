/* The gRPC server's lifecycle: create with health and reflection, register services, bind
 * (optionally TLS or mTLS), run worker threads each draining its own completion queue, and shut
 * down gracefully on SIGINT or SIGTERM. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "call_int.h"
#include "log.h"
#include "mem.h"

#define SERVER_MAX_METHODS 256
#define SERVER_SLOTS_PER_METHOD 2 /* calls requested ahead per method per worker */
#define PEM_MAX (1024 * 1024)
#define PING_MIN_MS 100 /* the shortest keepalive interval a client may use */

struct rpc_server {
  struct rpc_server_opts opts;        /* copy; strings below are owned copies */
  char *listen, *tls_cert, *tls_key, *tls_client_ca, *program;
  grpc_server *gs;                    /* the core server */
  struct rpc_worker *workers;         /* one thread and queue each */
  int nworkers;
  struct rpc_reg_method methods[SERVER_MAX_METHODS];
  size_t nmethods;
  const struct rpc_service *services[SERVER_MAX_METHODS];
  size_t nservices;
  struct rpc_health *health;          /* built-in services */
  struct rpc_reflection *refl;
  atomic_bool stopping;               /* shutdown began: workers stop requesting calls */
  atomic_bool stop_asked;             /* rpc_server_stop() was called */
  atomic_int active;                  /* calls in progress */
  atomic_bool supervisor_stop;        /* ends the supervisor */
  pthread_t supervisor;               /* adds threads to stalled queues */
  bool has_supervisor;
  bool started, stopped;
  int port;                           /* bound port */
};

extern const unsigned char credito_descriptor_set[];
extern const size_t credito_descriptor_set_len;

void rpc_init(void)
{
  sigset_t set;
  struct sigaction sa;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, NULL);
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  grpc_init();
}

void rpc_cleanup(void)
{
  grpc_shutdown_blocking();
}

static char *opt_dup(const char *s, bool *oom)
{
  char *d;

  if (!s)
    return NULL;
  d = cm_strdup(s);
  if (!d)
    *oom = true;
  return d;
}

rpc_server *rpc_server_new(const struct rpc_server_opts *opts, struct cm_error *err)
{
  rpc_server *s = cm_calloc(1, sizeof(*s));
  bool oom = false;
  long ncpu;

  if (!s)
    goto nomem;
  s->opts = *opts;
  s->listen = opt_dup(opts->listen ? opts->listen : "127.0.0.1:0", &oom);
  s->tls_cert = opt_dup(opts->tls_cert, &oom);
  s->tls_key = opt_dup(opts->tls_key, &oom);
  s->tls_client_ca = opt_dup(opts->tls_client_ca, &oom);
  s->program = opt_dup(opts->program ? opts->program : "credito", &oom);
  if (oom)
    goto nomem;
  if (!s->opts.max_message)
    s->opts.max_message = RPC_DEFAULT_MAX_MESSAGE;
  if (s->opts.grace_ms <= 0)
    s->opts.grace_ms = RPC_DEFAULT_GRACE_MS;
  ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  s->nworkers = opts->workers > 0 ? opts->workers : (int)(ncpu > 0 ? ncpu : 1);
  atomic_init(&s->stopping, false);
  atomic_init(&s->stop_asked, false);
  atomic_init(&s->active, 0);
  atomic_init(&s->supervisor_stop, false);
  s->health = rpc_health_new();
  s->refl = rpc_reflection_new();
  if (!s->health || !s->refl)
    goto nomem;
  if (rpc_reflection_add_set(s->refl, credito_descriptor_set, credito_descriptor_set_len, err))
    goto fail;
  if (rpc_server_add_service(s, rpc_health_service(s->health), err) ||
      rpc_server_add_service(s, rpc_reflection_service_v1(s->refl), err) ||
      rpc_server_add_service(s, rpc_reflection_service_v1alpha(s->refl), err))
    goto fail;
  return s;
nomem:
  cm_error_set(err, CM_E_NOMEM, "out of memory creating the server");
fail:
  rpc_server_free(s);
  return NULL;
}

int rpc_server_add_service(rpc_server *s, const struct rpc_service *svc, struct cm_error *err)
{
  if (s->started)
    return cm_error_set(err, CM_E_FAILED_PRECONDITION, "add %s before the server starts",
                        svc->name);
  if (s->nmethods + svc->n_methods > SERVER_MAX_METHODS || s->nservices >= SERVER_MAX_METHODS)
    return cm_error_set(err, CM_E_EXHAUSTED, "too many methods");
  for (size_t i = 0; i < svc->n_methods; i++) {
    const struct rpc_method *m = &svc->methods[i];
    struct rpc_reg_method *rm = &s->methods[s->nmethods];
    size_t n = strlen(svc->name) + strlen(m->name) + 3;

    rm->path = cm_malloc(n);
    if (!rm->path)
      return cm_error_set(err, CM_E_NOMEM, "out of memory");
    snprintf(rm->path, n, "/%s/%s", svc->name, m->name);
    rm->service = svc;
    rm->method = m;
    rm->reads_payload = m->kind == RPC_UNARY || m->kind == RPC_SERVER_STREAM;
    s->nmethods++;
  }
  s->services[s->nservices++] = svc;
  if (rpc_reflection_add_service(s->refl, svc->name) || rpc_health_register(s->health, svc->name))
    return cm_error_set(err, CM_E_NOMEM, "out of memory");
  return 0;
}

int rpc_server_add_descriptors(rpc_server *s, const uint8_t *set, size_t len,
                               struct cm_error *err)
{
  return rpc_reflection_add_set(s->refl, set, len, err);
}

static grpc_server_credentials *server_creds(rpc_server *s, struct cm_error *err)
{
  grpc_ssl_pem_key_cert_pair pair = {NULL, NULL};
  char *ca = NULL;
  grpc_server_credentials *creds = NULL;

  if (!s->tls_cert && !s->tls_key && !s->tls_client_ca)
    return grpc_insecure_server_credentials_create();
  if (!s->tls_cert || !s->tls_key) {
    cm_error_set(err, CM_E_INVALID, "TLS needs both a certificate and a key file");
    return NULL;
  }
  pair.cert_chain = rpc_file_read(s->tls_cert, PEM_MAX, NULL, err);
  pair.private_key = pair.cert_chain ? rpc_file_read(s->tls_key, PEM_MAX, NULL, err) : NULL;
  if (pair.private_key && s->tls_client_ca)
    ca = rpc_file_read(s->tls_client_ca, PEM_MAX, NULL, err);
  if (pair.private_key && (!s->tls_client_ca || ca))
    creds = grpc_ssl_server_credentials_create_ex(
        ca, &pair, 1,
        ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
           : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        NULL);
  cm_free((void *)pair.cert_chain);
  cm_free((void *)pair.private_key);
  cm_free(ca);
  return creds;
}

#define WORKER_STALL_MS 5      /* a queue whose threads are all this long in handlers gets one more */
#define WORKER_MAX_THREADS 64
#define SUPERVISOR_TICK_NS (2 * 1000 * 1000)

static void *worker_main(void *arg);

/* Starts a thread on w's queue; caller holds w->mu. */
static int worker_spawn_locked(struct rpc_worker *w)
{
  pthread_t th;
  pthread_attr_t attr;
  int rc;

  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  rc = pthread_create(&th, &attr, worker_main, w);
  pthread_attr_destroy(&attr);
  if (rc)
    return CM_E_NOMEM;
  w->threads++;
  w->idle++;
  return 0;
}

static void *worker_main(void *arg)
{
  struct rpc_worker *w = arg;

  for (;;) {
    grpc_event ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    struct rpc_tag *tag = ev.tag;

    pthread_mutex_lock(&w->mu);
    w->idle--;
    w->progress_ms = rpc_now_ms();
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
      break;
    pthread_mutex_unlock(&w->mu);
    if (ev.type == GRPC_OP_COMPLETE)
      tag->fn(tag, ev.success != 0);
    pthread_mutex_lock(&w->mu);
    w->progress_ms = rpc_now_ms();
    if (w->idle > 0 && w->threads > 1) /* a spare took over while we were busy: retire */
      break;
    w->idle++;
    pthread_mutex_unlock(&w->mu);
  }
  w->threads--;
  if (w->threads == 0)
    pthread_cond_broadcast(&w->gone);
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

/* Watches the queues: one whose every thread is stuck in a handler gets another thread, so
 * cancellations, stream sends and other calls on it keep moving. */
static void *supervisor_main(void *arg)
{
  rpc_server *s = arg;
  struct timespec tick = {0, SUPERVISOR_TICK_NS};

  while (!atomic_load(&s->supervisor_stop)) {
    int64_t now = rpc_now_ms();

    for (int i = 0; i < s->nworkers; i++) {
      struct rpc_worker *w = &s->workers[i];

      pthread_mutex_lock(&w->mu);
      if (w->idle == 0 && w->threads < w->max_threads &&
          now - w->progress_ms >= WORKER_STALL_MS) {
        if (worker_spawn_locked(w) == 0)
          w->progress_ms = now;
      }
      pthread_mutex_unlock(&w->mu);
    }
    nanosleep(&tick, NULL);
  }
  return NULL;
}

static int server_create_core(rpc_server *s, struct cm_error *err)
{
  grpc_arg args[5];
  grpc_channel_args cargs = {5, args};

  args[0].type = GRPC_ARG_INTEGER;
  args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[0].value.integer = (int)s->opts.max_message;
  args[1].type = GRPC_ARG_INTEGER;
  args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
  args[1].value.integer = (int)s->opts.max_message;
  /* Clients may keep their connections checked with PINGs as often as every PING_MIN_MS, with
   * or without calls (the gateway's --upstream-keepalive); by default the core answers a PING
   * more often than every 5 minutes with GOAWAY "too_many_pings". */
  args[2] = (grpc_arg){GRPC_ARG_INTEGER, (char *)GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                       {.integer = PING_MIN_MS}};
  args[3] = (grpc_arg){GRPC_ARG_INTEGER, (char *)GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
                       {.integer = 1}};
  args[4] = (grpc_arg){GRPC_ARG_INTEGER, (char *)GRPC_ARG_HTTP2_MAX_PING_STRIKES, {.integer = 0}};
  s->gs = grpc_server_create(&cargs, NULL);
  s->workers = cm_calloc((size_t)s->nworkers, sizeof(*s->workers));
  if (!s->gs || !s->workers)
    return cm_error_set(err, CM_E_NOMEM, "out of memory creating the server");
  for (int i = 0; i < s->nworkers; i++) {
    struct rpc_worker *w = &s->workers[i];

    w->cq = grpc_completion_queue_create_for_next(NULL);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->gone, NULL);
    w->max_threads = WORKER_MAX_THREADS;
    w->server_gs = s->gs;
    w->stopping = &s->stopping;
    w->active = &s->active;
    w->max_message = s->opts.max_message;
    grpc_server_register_completion_queue(s->gs, w->cq, NULL);
  }
  for (size_t i = 0; i < s->nmethods; i++) {
    struct rpc_reg_method *rm = &s->methods[i];

    rm->handle = grpc_server_register_method(
        s->gs, rm->path, NULL,
        rm->reads_payload ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER : GRPC_SRM_PAYLOAD_NONE, 0);
    if (!rm->handle)
      return cm_error_set(err, CM_E_INTERNAL, "cannot register %s", rm->path);
  }
  return 0;
}

int rpc_server_start(rpc_server *s, struct cm_error *err)
{
  grpc_server_credentials *creds;
  int rc;

  if (s->started)
    return cm_error_set(err, CM_E_FAILED_PRECONDITION, "server already started");
  rc = server_create_core(s, err);
  if (rc)
    return rc;
  creds = server_creds(s, err);
  if (!creds)
    return err->code ? err->code : cm_error_set(err, CM_E_INVALID, "bad TLS files");
  s->port = grpc_server_add_http2_port(s->gs, s->listen, creds);
  grpc_server_credentials_release(creds);
  if (s->port <= 0)
    return cm_error_set(err, CM_E_UNAVAILABLE, "cannot listen on %s (in use or bad address)",
                        s->listen);
  grpc_server_start(s->gs);
  s->started = true;
  for (int i = 0; i < s->nworkers; i++) {
    struct rpc_worker *w = &s->workers[i];

    for (size_t m = 0; m < s->nmethods; m++)
      for (int k = 0; k < SERVER_SLOTS_PER_METHOD; k++)
        if (rpc_call_request(w, &s->methods[m]))
          return cm_error_set(err, CM_E_NOMEM, "out of memory requesting calls");
    if (rpc_call_request(w, NULL))
      return cm_error_set(err, CM_E_NOMEM, "out of memory requesting calls");
    pthread_mutex_lock(&w->mu);
    rc = worker_spawn_locked(w);
    pthread_mutex_unlock(&w->mu);
    if (rc)
      return cm_error_set(err, CM_E_INTERNAL, "cannot start worker threads");
  }
  if (pthread_create(&s->supervisor, NULL, supervisor_main, s))
    return cm_error_set(err, CM_E_INTERNAL, "cannot start the supervisor thread");
  s->has_supervisor = true;
  return 0;
}

void rpc_server_ready(rpc_server *s)
{
  rpc_health_set(s->health, "", true);
  rpc_server_listening(s);
}

void rpc_server_listening(rpc_server *s)
{
  cm_log(CM_LOG_INFO, "listening", "addr=%s port=%d tls=%b mtls=%b queues=%d", s->listen,
         s->port, s->tls_cert != NULL, s->tls_client_ca != NULL, s->nworkers);
}

int rpc_server_port(const rpc_server *s)
{
  return s->started ? s->port : 0;
}

void rpc_server_set_serving(rpc_server *s, const char *service, bool serving)
{
  rpc_health_set(s->health, service, serving);
}

void rpc_server_stop(rpc_server *s)
{
  atomic_store(&s->stop_asked, true);
}

static int server_wait_signal(rpc_server *s)
{
  sigset_t set;
  struct timespec tick = {0, 100 * 1000 * 1000};

  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  while (!atomic_load(&s->stop_asked)) {
    int sig = sigtimedwait(&set, NULL, &tick);

    if (sig == SIGINT || sig == SIGTERM)
      return sig;
  }
  return 0;
}

static void server_shutdown(rpc_server *s)
{
  grpc_completion_queue *cq;
  grpc_event ev;
  int dummy_tag;
  int64_t until;

  if (s->stopped || !s->started)
    return;
  s->stopped = true;
  atomic_store(&s->stopping, true);
  rpc_health_set(s->health, "", false);
  for (size_t i = 0; i < s->nservices; i++)
    if (s->services[i]->on_shutdown)
      s->services[i]->on_shutdown(s->services[i]->ctx);
  cq = grpc_completion_queue_create_for_pluck(NULL);
  grpc_server_shutdown_and_notify(s->gs, cq, &dummy_tag);
  /* The core finishes shutdown only when every connection is gone, and an idle client may not
   * act on GOAWAY for seconds. So wait for our calls, not for connections: once none is in
   * progress (or the grace is over), cancel what is left, which also drops idle connections. */
  until = rpc_now_ms() + s->opts.grace_ms;
  do {
    ev = grpc_completion_queue_pluck(cq, &dummy_tag, rpc_deadline_in(10), NULL);
  } while (ev.type == GRPC_QUEUE_TIMEOUT && atomic_load(&s->active) > 0 && rpc_now_ms() < until);
  if (ev.type == GRPC_QUEUE_TIMEOUT) {
    if (atomic_load(&s->active) > 0)
      cm_log(CM_LOG_WARN, "grace period over, cancelling calls", "grace_ms=%d calls=%d",
             s->opts.grace_ms, atomic_load(&s->active));
    grpc_server_cancel_all_calls(s->gs);
    grpc_completion_queue_pluck(cq, &dummy_tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  }
  grpc_completion_queue_shutdown(cq);
  grpc_completion_queue_destroy(cq);
  /* Cancelled calls still belong to their handlers until they finish: the queues must stay
   * open for those last batches. */
  for (int64_t next_log = rpc_now_ms() + 1000; atomic_load(&s->active) > 0;) {
    struct timespec tick = {0, 5 * 1000 * 1000};

    if (rpc_now_ms() >= next_log) {
      cm_log(CM_LOG_WARN, "waiting for handlers to finish cancelled calls", "calls=%d",
             atomic_load(&s->active));
      next_log += 1000;
    }
    nanosleep(&tick, NULL);
  }
  if (s->has_supervisor) {
    atomic_store(&s->supervisor_stop, true);
    pthread_join(s->supervisor, NULL);
    s->has_supervisor = false;
  }
  for (int i = 0; i < s->nworkers; i++)
    grpc_completion_queue_shutdown(s->workers[i].cq);
  for (int i = 0; i < s->nworkers; i++) {
    struct rpc_worker *w = &s->workers[i];

    pthread_mutex_lock(&w->mu);
    while (w->threads > 0)
      pthread_cond_wait(&w->gone, &w->mu);
    pthread_mutex_unlock(&w->mu);
  }
}

int rpc_server_wait(rpc_server *s)
{
  int sig = server_wait_signal(s);

  cm_log(CM_LOG_INFO, "shutting down", "signal=%s",
         sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "none");
  server_shutdown(s);
  cm_log(CM_LOG_INFO, "stopped", NULL);
  return 0;
}

void rpc_server_free(rpc_server *s)
{
  if (!s)
    return;
  if (s->started && !s->stopped)
    server_shutdown(s);
  if (s->gs)
    grpc_server_destroy(s->gs);
  if (s->workers) {
    for (int i = 0; i < s->nworkers; i++) {
      grpc_completion_queue *cq = s->workers[i].cq;

      if (!cq)
        continue;
      if (!s->stopped) { /* never ran: drain it here */
        grpc_completion_queue_shutdown(cq);
        while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
          ;
      }
      grpc_completion_queue_destroy(cq);
      pthread_mutex_destroy(&s->workers[i].mu);
      pthread_cond_destroy(&s->workers[i].gone);
    }
    cm_free(s->workers);
  }
  for (size_t i = 0; i < s->nmethods; i++)
    cm_free(s->methods[i].path);
  rpc_health_free(s->health);
  rpc_reflection_free(s->refl);
  cm_free(s->listen);
  cm_free(s->tls_cert);
  cm_free(s->tls_key);
  cm_free(s->tls_client_ca);
  cm_free(s->program);
  cm_free(s);
}
