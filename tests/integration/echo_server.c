/* credito-echo-server: the RPC layer's test server. Serves credito.test.v1.Echo (every call
 * shape, a slow handler, a failing handler) with health and reflection, through the same
 * service skeleton as the real programs, so tests and benchmarks judge the real layer. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "credito/test/v1/echo.pb-c.h"
#include "log.h"
#include "service.h"

extern const unsigned char credito_test_descriptor_set[];
extern const size_t credito_test_descriptor_set_len;

struct sum_state {
  int32_t count;   /* messages seen */
  int64_t bytes;   /* payload bytes seen */
};

/* Sleeps up to ms, waking early when the call is cancelled. */
static void nap(rpc_call *call, int ms)
{
  while (ms > 0 && !rpc_call_cancelled(call)) {
    int step = ms < 10 ? ms : 10;
    struct timespec ts = {0, (long)step * 1000000L};

    nanosleep(&ts, NULL);
    ms -= step;
  }
}

static void echo_unary(rpc_call *call, const ProtobufCMessage *msg)
{
  const Credito__Test__V1__EchoRequest *req = (const void *)msg;
  Credito__Test__V1__EchoResponse resp = CREDITO__TEST__V1__ECHO_RESPONSE__INIT;

  if (req->sleep_ms > 0)
    nap(call, req->sleep_ms);
  if (rpc_call_cancelled(call)) {
    rpc_call_finish(call, CM_E_DEADLINE, "cancelled while sleeping");
    return;
  }
  if (req->fail_code) {
    rpc_call_finish(call, cm_code_from_grpc(req->fail_code), "failed as asked");
    return;
  }
  resp.text = req->text;
  resp.payload = req->payload;
  resp.seq = 1;
  resp.server_pid = (int32_t)getpid();
  rpc_call_reply(call, &resp.base);
}

static void echo_count(rpc_call *call, const ProtobufCMessage *msg)
{
  const Credito__Test__V1__CountRequest *req = (const void *)msg;
  Credito__Test__V1__EchoResponse resp = CREDITO__TEST__V1__ECHO_RESPONSE__INIT;
  char text[32];

  for (int32_t i = 1; i <= req->n; i++) {
    if (req->interval_ms > 0)
      nap(call, req->interval_ms);
    snprintf(text, sizeof(text), "%d", (int)i);
    resp.text = text;
    resp.seq = i;
    if (rpc_call_write(call, &resp.base)) {
      rpc_call_finish(call, CM_E_CANCELLED, "stream ended early");
      return;
    }
  }
  rpc_call_finish(call, CM_OK, NULL);
}

static void sum_start(rpc_call *call, const ProtobufCMessage *msg)
{
  struct sum_state *st = cm_arena_calloc(rpc_call_arena(call), 1, sizeof(*st));

  (void)msg;
  if (!st) {
    rpc_call_finish(call, CM_E_NOMEM, "out of memory");
    return;
  }
  rpc_call_set_data(call, st, NULL);
}

static void sum_message(rpc_call *call, const ProtobufCMessage *msg)
{
  const Credito__Test__V1__EchoRequest *req = (const void *)msg;
  struct sum_state *st = rpc_call_data(call);

  st->count++;
  st->bytes += (int64_t)req->payload.len;
}

static void sum_end(rpc_call *call)
{
  struct sum_state *st = rpc_call_data(call);
  Credito__Test__V1__SumResponse resp = CREDITO__TEST__V1__SUM_RESPONSE__INIT;

  resp.count = st->count;
  resp.bytes = st->bytes;
  rpc_call_reply(call, &resp.base);
}

static void chat_start(rpc_call *call, const ProtobufCMessage *msg)
{
  (void)call;
  (void)msg;
}

static void chat_message(rpc_call *call, const ProtobufCMessage *msg)
{
  const Credito__Test__V1__EchoRequest *req = (const void *)msg;
  Credito__Test__V1__EchoResponse resp = CREDITO__TEST__V1__ECHO_RESPONSE__INIT;

  resp.text = req->text;
  resp.payload = req->payload;
  if (rpc_call_write(call, &resp.base))
    rpc_call_finish(call, CM_E_EXHAUSTED, "cannot queue the answer");
}

static void chat_end(rpc_call *call)
{
  rpc_call_finish(call, CM_OK, NULL);
}

static void stream_cancel(rpc_call *call)
{
  rpc_call_finish(call, CM_E_CANCELLED, "cancelled");
}

static const struct rpc_method echo_methods[] = {
    {"Echo", RPC_UNARY, &credito__test__v1__echo_request__descriptor,
     &credito__test__v1__echo_response__descriptor, echo_unary, NULL, NULL, NULL},
    {"Count", RPC_SERVER_STREAM, &credito__test__v1__count_request__descriptor,
     &credito__test__v1__echo_response__descriptor, echo_count, NULL, NULL, NULL},
    {"Sum", RPC_CLIENT_STREAM, &credito__test__v1__echo_request__descriptor,
     &credito__test__v1__sum_response__descriptor, sum_start, sum_message, sum_end,
     stream_cancel},
    {"Chat", RPC_BIDI, &credito__test__v1__echo_request__descriptor,
     &credito__test__v1__echo_response__descriptor, chat_start, chat_message, chat_end,
     stream_cancel},
};

static const struct rpc_service echo_service = {
    "credito.test.v1.Echo", echo_methods, sizeof(echo_methods) / sizeof(echo_methods[0]), NULL,
    NULL};

int main(int argc, char **argv)
{
  struct cm_opt opts[] = {SVC_COMMON_OPTS("127.0.0.1:0")};
  size_t nopts = sizeof(opts) / sizeof(opts[0]);
  struct rpc_server_opts so;
  struct cm_error err;
  rpc_server *server = NULL;
  int rc;

  cm_error_clear(&err);
  rc = svc_config("credito-echo-server", "test server for the RPC layer", opts, nopts, argc,
                  argv, &so, &err);
  if (rc == 1)
    return 0;
  if (rc) {
    fprintf(stderr, "credito-echo-server: %s\n", err.msg);
    return 2;
  }
  rpc_init();
  server = rpc_server_new(&so, &err);
  if (!server ||
      rpc_server_add_descriptors(server, credito_test_descriptor_set,
                                 credito_test_descriptor_set_len, &err) ||
      rpc_server_add_service(server, &echo_service, &err)) {
    cm_log(CM_LOG_ERROR, "cannot create server", "error=%s", err.msg);
    rc = 1;
    goto out;
  }
  rc = svc_run(server);
out:
  rpc_server_free(server);
  rpc_cleanup();
  return rc;
}
