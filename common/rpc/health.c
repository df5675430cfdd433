/* grpc.health.v1.Health: Check answers a service's status (NOT_FOUND for a name never
 * registered); Watch streams it, once now and again on every change. Every service starts
 * NOT_SERVING until its program says it is ready. */
#include <pthread.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "log.h"
#include "mem.h"
#include "rpc_int.h"

#define HEALTH_MAX_SERVICES 64

typedef Grpc__Health__V1__HealthCheckResponse__ServingStatus health_status;

struct health_watch {
  rpc_call *call;             /* the Watch stream */
  char *service;              /* the name it watches, owned */
  health_status last;         /* last status sent, to skip repeats */
  struct health_watch *next;
};

struct rpc_health {
  pthread_mutex_t mu;                      /* guards the tables and the watch list */
  char *names[HEALTH_MAX_SERVICES];        /* "" first, then each registered service */
  bool serving[HEALTH_MAX_SERVICES];
  size_t n;
  struct health_watch *watches;
  struct rpc_service svc;
};

static void health_check(rpc_call *call, const ProtobufCMessage *req);
static void health_watch(rpc_call *call, const ProtobufCMessage *req);
static void health_watch_cancel(rpc_call *call);
static void health_shutdown(void *ctx);

static const struct rpc_method health_methods[] = {
    {"Check", RPC_UNARY, &grpc__health__v1__health_check_request__descriptor,
     &grpc__health__v1__health_check_response__descriptor, health_check, NULL, NULL, NULL},
    {"Watch", RPC_SERVER_STREAM, &grpc__health__v1__health_check_request__descriptor,
     &grpc__health__v1__health_check_response__descriptor, health_watch, NULL, NULL,
     health_watch_cancel},
};

struct rpc_health *rpc_health_new(void)
{
  struct rpc_health *h = cm_calloc(1, sizeof(*h));

  if (!h)
    return NULL;
  pthread_mutex_init(&h->mu, NULL);
  h->names[0] = cm_strdup("");
  if (!h->names[0]) {
    rpc_health_free(h);
    return NULL;
  }
  h->n = 1;
  h->svc.name = "grpc.health.v1.Health";
  h->svc.methods = health_methods;
  h->svc.n_methods = sizeof(health_methods) / sizeof(health_methods[0]);
  h->svc.ctx = h;
  h->svc.on_shutdown = health_shutdown;
  return h;
}

void rpc_health_free(struct rpc_health *h)
{
  if (!h)
    return;
  for (size_t i = 0; i < h->n; i++)
    cm_free(h->names[i]);
  while (h->watches) { /* only left if the server never ran */
    struct health_watch *w = h->watches;

    h->watches = w->next;
    cm_free(w->service);
    cm_free(w);
  }
  pthread_mutex_destroy(&h->mu);
  cm_free(h);
}

const struct rpc_service *rpc_health_service(struct rpc_health *h)
{
  return &h->svc;
}

/* Index of a name or -1; caller holds mu. */
static int health_find(const struct rpc_health *h, const char *service)
{
  for (size_t i = 0; i < h->n; i++)
    if (strcmp(h->names[i], service) == 0)
      return (int)i;
  return -1;
}

int rpc_health_register(struct rpc_health *h, const char *service)
{
  int rc = 0;

  pthread_mutex_lock(&h->mu);
  if (health_find(h, service) < 0) {
    if (h->n >= HEALTH_MAX_SERVICES) {
      rc = CM_E_EXHAUSTED;
    } else {
      h->names[h->n] = cm_strdup(service);
      if (h->names[h->n])
        h->serving[h->n++] = false;
      else
        rc = CM_E_NOMEM;
    }
  }
  pthread_mutex_unlock(&h->mu);
  return rc;
}

static health_status health_status_of(const struct rpc_health *h, const char *service)
{
  int i = health_find(h, service);

  if (i < 0)
    return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
  return h->serving[i] ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                       : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

/* Sends w its status if it changed; caller holds mu. */
static void health_notify_locked(struct rpc_health *h, struct health_watch *w)
{
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  health_status st = health_status_of(h, w->service);

  if (st == w->last)
    return;
  resp.status = st;
  if (rpc_call_write(w->call, &resp.base) == 0)
    w->last = st;
}

void rpc_health_set(struct rpc_health *h, const char *service, bool serving)
{
  pthread_mutex_lock(&h->mu);
  for (size_t i = 0; i < h->n; i++)
    if (service[0] == '\0' || strcmp(h->names[i], service) == 0)
      h->serving[i] = serving;
  for (struct health_watch *w = h->watches; w; w = w->next)
    health_notify_locked(h, w);
  pthread_mutex_unlock(&h->mu);
  cm_log(CM_LOG_INFO, "health", "service=%s serving=%b", service, serving);
}

static void health_check(rpc_call *call, const ProtobufCMessage *req)
{
  const Grpc__Health__V1__HealthCheckRequest *r = (const void *)req;
  struct rpc_health *h = rpc_call_service(call);
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;

  pthread_mutex_lock(&h->mu);
  resp.status = health_status_of(h, r->service);
  pthread_mutex_unlock(&h->mu);
  if (resp.status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN) {
    rpc_call_finish(call, CM_E_NOTFOUND, "unknown service");
    return;
  }
  rpc_call_reply(call, &resp.base);
}

static void health_watch(rpc_call *call, const ProtobufCMessage *req)
{
  const Grpc__Health__V1__HealthCheckRequest *r = (const void *)req;
  struct rpc_health *h = rpc_call_service(call);
  struct health_watch *w = cm_calloc(1, sizeof(*w));

  if (w)
    w->service = cm_strdup(r->service);
  if (!w || !w->service) {
    if (w)
      cm_free(w);
    rpc_call_finish(call, CM_E_NOMEM, "out of memory");
    return;
  }
  w->call = call;
  w->last = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__UNKNOWN;
  pthread_mutex_lock(&h->mu);
  w->next = h->watches;
  h->watches = w;
  health_notify_locked(h, w);
  pthread_mutex_unlock(&h->mu);
}

/* Unlinks and finishes the watch of call, if it is still listed. */
static void health_watch_end(struct rpc_health *h, rpc_call *call, int code, const char *msg)
{
  struct health_watch **pp, *w = NULL;

  pthread_mutex_lock(&h->mu);
  for (pp = &h->watches; *pp; pp = &(*pp)->next) {
    if ((*pp)->call == call) {
      w = *pp;
      *pp = w->next;
      break;
    }
  }
  pthread_mutex_unlock(&h->mu);
  if (!w)
    return;
  rpc_call_finish(call, code, msg);
  cm_free(w->service);
  cm_free(w);
}

static void health_watch_cancel(rpc_call *call)
{
  health_watch_end(rpc_call_service(call), call, CM_E_CANCELLED, "cancelled");
}

static void health_shutdown(void *ctx)
{
  struct rpc_health *h = ctx;

  for (;;) {
    rpc_call *call;

    pthread_mutex_lock(&h->mu);
    call = h->watches ? h->watches->call : NULL;
    pthread_mutex_unlock(&h->mu);
    if (!call)
      break;
    health_watch_end(h, call, CM_E_UNAVAILABLE, "server shutting down");
  }
}
