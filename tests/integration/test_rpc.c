/* Integration tests of the RPC layer: the C client against real credito-echo-server processes
 * over loopback. Every call shape, deadlines, caps, bad payloads, round_robin with failover,
 * TLS and mTLS, health Watch, and graceful shutdown with calls in flight. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include "credito/test/v1/echo.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "harness.h"
#include "rpc.h"

#define ECHO "/credito.test.v1.Echo/Echo"

struct fixture {
  struct proc srv;      /* one echo server */
  rpc_channel *ch;      /* a channel to it */
  cm_arena *arena;      /* for responses */
};

static int start_echo(struct proc *p, const char *extra1, const char *extra2)
{
  char *argv[8] = {(char *)ECHO_SERVER_PATH, "--listen", "127.0.0.1:0", "--workers", "4", NULL};
  int n = 5;

  if (extra1)
    argv[n++] = (char *)extra1;
  if (extra2)
    argv[n++] = (char *)extra2;
  argv[n] = NULL;
  return proc_start(p, argv, 10000);
}

static rpc_channel *channel_to(const struct proc *p, int attempts)
{
  char addr[64];
  struct cm_error err;
  struct rpc_channel_opts o = {0};

  proc_addr(p, addr, sizeof(addr));
  o.target = addr;
  o.max_attempts = attempts;
  return rpc_channel_new(&o, &err);
}

static int setup(void **state)
{
  struct fixture *f = calloc(1, sizeof(*f));

  if (!f || start_echo(&f->srv, "--max-message", "65536"))
    return -1;
  f->ch = channel_to(&f->srv, 1);
  f->arena = cm_arena_new(0);
  *state = f;
  return f->ch && f->arena ? 0 : -1;
}

static int teardown(void **state)
{
  struct fixture *f = *state;

  rpc_channel_free(f->ch);
  cm_arena_free(f->arena);
  proc_stop(&f->srv);
  free(f);
  return 0;
}

/* One Echo call; returns the status code, the response in *out. */
static int echo(rpc_channel *ch, cm_arena *a, const char *text, size_t payload, int sleep_ms,
                int64_t timeout_ms, Credito__Test__V1__EchoResponse **out, struct cm_error *err)
{
  Credito__Test__V1__EchoRequest req = CREDITO__TEST__V1__ECHO_REQUEST__INIT;
  ProtobufCMessage *resp = NULL;
  uint8_t *bytes = payload ? cm_arena_calloc(a, payload, 1) : NULL;
  int rc;

  req.text = (char *)text;
  req.payload.len = payload;
  req.payload.data = bytes;
  req.sleep_ms = sleep_ms;
  rc = rpc_unary(ch, ECHO, &req.base, &credito__test__v1__echo_response__descriptor, timeout_ms,
                 a, &resp, err);
  if (out)
    *out = (Credito__Test__V1__EchoResponse *)resp;
  return rc;
}

static void test_unary(void **state)
{
  struct fixture *f = *state;
  Credito__Test__V1__EchoResponse *r = NULL;
  struct cm_error err;

  assert_int_equal(echo(f->ch, f->arena, "hello", 1000, 0, 5000, &r, &err), 0);
  assert_string_equal(r->text, "hello");
  assert_int_equal(r->payload.len, 1000);
  assert_int_equal(r->server_pid, f->srv.pid);
}

static void test_failing_handler(void **state)
{
  struct fixture *f = *state;
  Credito__Test__V1__EchoRequest req = CREDITO__TEST__V1__ECHO_REQUEST__INIT;
  ProtobufCMessage *resp;
  struct cm_error err;

  req.fail_code = 5; /* NOT_FOUND */
  assert_int_equal(rpc_unary(f->ch, ECHO, &req.base, &credito__test__v1__echo_response__descriptor,
                             5000, f->arena, &resp, &err),
                   CM_E_NOTFOUND);
  assert_non_null(strstr(err.msg, "failed as asked"));
}

static void test_server_stream(void **state)
{
  struct fixture *f = *state;
  Credito__Test__V1__CountRequest req = CREDITO__TEST__V1__COUNT_REQUEST__INIT;
  struct cm_error err;
  rpc_stream *st = rpc_stream_open(f->ch, "/credito.test.v1.Echo/Count", 10000, &err);
  int seen = 0;

  assert_non_null(st);
  req.n = 100;
  assert_int_equal(rpc_stream_send(st, &req.base, &err), 0);
  assert_int_equal(rpc_stream_close_send(st, &err), 0);
  for (;;) {
    ProtobufCMessage *m;

    assert_int_equal(rpc_stream_recv(st, &credito__test__v1__echo_response__descriptor, f->arena,
                                     &m, &err),
                     0);
    if (!m)
      break;
    assert_int_equal(((Credito__Test__V1__EchoResponse *)m)->seq, ++seen);
  }
  assert_int_equal(seen, 100);
  assert_int_equal(rpc_stream_finish(st, &err), 0);
  rpc_stream_free(st);
}

static void test_client_stream(void **state)
{
  struct fixture *f = *state;
  Credito__Test__V1__EchoRequest req = CREDITO__TEST__V1__ECHO_REQUEST__INIT;
  uint8_t buf[1000] = {0};
  struct cm_error err;
  ProtobufCMessage *m;
  rpc_stream *st = rpc_stream_open(f->ch, "/credito.test.v1.Echo/Sum", 10000, &err);

  assert_non_null(st);
  req.payload.data = buf;
  req.payload.len = sizeof(buf);
  for (int i = 0; i < 50; i++)
    assert_int_equal(rpc_stream_send(st, &req.base, &err), 0);
  assert_int_equal(rpc_stream_close_send(st, &err), 0);
  assert_int_equal(
      rpc_stream_recv(st, &credito__test__v1__sum_response__descriptor, f->arena, &m, &err), 0);
  assert_non_null(m);
  assert_int_equal(((Credito__Test__V1__SumResponse *)m)->count, 50);
  assert_int_equal(((Credito__Test__V1__SumResponse *)m)->bytes, 50000);
  assert_int_equal(rpc_stream_finish(st, &err), 0);
  rpc_stream_free(st);
}

static void test_bidi(void **state)
{
  struct fixture *f = *state;
  Credito__Test__V1__EchoRequest req = CREDITO__TEST__V1__ECHO_REQUEST__INIT;
  struct cm_error err;
  char text[16];
  rpc_stream *st = rpc_stream_open(f->ch, "/credito.test.v1.Echo/Chat", 10000, &err);
  ProtobufCMessage *m;

  assert_non_null(st);
  for (int i = 0; i < 10; i++) {
    snprintf(text, sizeof(text), "msg%d", i);
    req.text = text;
    assert_int_equal(rpc_stream_send(st, &req.base, &err), 0);
    assert_int_equal(
        rpc_stream_recv(st, &credito__test__v1__echo_response__descriptor, f->arena, &m, &err), 0);
    assert_non_null(m);
    assert_string_equal(((Credito__Test__V1__EchoResponse *)m)->text, text);
  }
  assert_int_equal(rpc_stream_close_send(st, &err), 0);
  assert_int_equal(
      rpc_stream_recv(st, &credito__test__v1__echo_response__descriptor, f->arena, &m, &err), 0);
  assert_null(m);
  assert_int_equal(rpc_stream_finish(st, &err), 0);
  rpc_stream_free(st);
}

static void test_deadline(void **state)
{
  struct fixture *f = *state;
  struct cm_error err;
  long long t0 = harness_now_ms();

  assert_int_equal(echo(f->ch, f->arena, "slow", 0, 3000, 200, NULL, &err), CM_E_DEADLINE);
  assert_true(harness_now_ms() - t0 < 1500);
  /* The server is still there, and its worker came back. */
  assert_int_equal(echo(f->ch, f->arena, "after", 0, 0, 5000, NULL, &err), 0);
}

static void test_unknown_method(void **state)
{
  struct fixture *f = *state;
  Credito__Test__V1__EchoRequest req = CREDITO__TEST__V1__ECHO_REQUEST__INIT;
  ProtobufCMessage *resp;
  struct cm_error err;

  assert_int_equal(rpc_unary(f->ch, "/credito.test.v1.Echo/Nope", &req.base,
                             &credito__test__v1__echo_response__descriptor, 5000, f->arena, &resp,
                             &err),
                   CM_E_UNIMPLEMENTED);
  assert_non_null(strstr(err.msg, "/credito.test.v1.Echo/Nope"));
}

static void test_undecodable(void **state)
{
  struct fixture *f = *state;
  /* CountRequest{n=1} puts a varint where EchoRequest has a string: not an EchoRequest. */
  Credito__Test__V1__CountRequest wrong = CREDITO__TEST__V1__COUNT_REQUEST__INIT;
  ProtobufCMessage *resp;
  struct cm_error err;

  wrong.n = 1;
  assert_int_equal(rpc_unary(f->ch, ECHO, &wrong.base,
                             &credito__test__v1__echo_response__descriptor, 5000, f->arena, &resp,
                             &err),
                   CM_E_INVALID);
  assert_non_null(strstr(err.msg, "credito.test.v1.EchoRequest"));
  assert_int_equal(echo(f->ch, f->arena, "still", 0, 0, 5000, NULL, &err), 0);
}

static void test_oversized(void **state)
{
  struct fixture *f = *state;
  struct cm_error err;

  /* The server runs with --max-message 65536. */
  assert_int_equal(echo(f->ch, f->arena, "big", 100000, 0, 5000, NULL, &err), CM_E_EXHAUSTED);
  assert_int_equal(echo(f->ch, f->arena, "small", 60000, 0, 5000, NULL, &err), 0);
}

static void test_round_robin_failover(void **state)
{
  struct proc a, b;
  char target[128];
  struct cm_error err;
  struct rpc_channel_opts o = {0};
  rpc_channel *ch;
  cm_arena *arena = cm_arena_new(0);
  bool seen_a = false, seen_b = false;

  (void)state;
  assert_int_equal(start_echo(&a, NULL, NULL), 0);
  assert_int_equal(start_echo(&b, NULL, NULL), 0);
  snprintf(target, sizeof(target), "127.0.0.1:%d,127.0.0.1:%d", a.port, b.port);
  o.target = target;
  ch = rpc_channel_new(&o, &err);
  assert_non_null(ch);
  for (int i = 0; i < 40; i++) {
    Credito__Test__V1__EchoResponse *r;

    assert_int_equal(echo(ch, arena, "rr", 0, 0, 5000, &r, &err), 0);
    seen_a |= r->server_pid == a.pid;
    seen_b |= r->server_pid == b.pid;
  }
  assert_true(seen_a && seen_b);
  proc_signal(&a, SIGKILL);
  assert_int_equal(proc_wait(&a, 5000), 128 + SIGKILL);
  for (int i = 0; i < 100; i++) {
    Credito__Test__V1__EchoResponse *r;

    assert_int_equal(echo(ch, arena, "failover", 0, 0, 5000, &r, &err), 0);
    assert_int_equal(r->server_pid, b.pid);
  }
  rpc_channel_free(ch);
  cm_arena_free(arena);
  proc_stop(&a);
  proc_stop(&b);
}

struct slow_call {
  rpc_channel *ch;
  int rc;
  char text[32];
};

static void *slow_call_main(void *arg)
{
  struct slow_call *c = arg;
  cm_arena *a = cm_arena_new(0);
  Credito__Test__V1__EchoResponse *r = NULL;
  struct cm_error err;

  c->rc = echo(c->ch, a, "inflight", 0, 800, 10000, &r, &err);
  if (c->rc == 0)
    snprintf(c->text, sizeof(c->text), "%s", r->text);
  cm_arena_free(a);
  return NULL;
}

static void test_graceful_shutdown(void **state)
{
  struct proc p;
  struct slow_call calls[4];
  pthread_t th[4];
  struct cm_error err;
  rpc_channel *ch;
  cm_arena *a = cm_arena_new(0);

  (void)state;
  assert_int_equal(start_echo(&p, NULL, NULL), 0);
  ch = channel_to(&p, 1);
  assert_int_equal(echo(ch, a, "warm", 0, 0, 5000, NULL, &err), 0);
  for (int i = 0; i < 4; i++) {
    calls[i] = (struct slow_call){ch, -1, ""};
    pthread_create(&th[i], NULL, slow_call_main, &calls[i]);
  }
  harness_sleep_ms(200);
  assert_int_equal(proc_signal(&p, SIGTERM), 0);
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(calls[i].rc, 0);
    assert_string_equal(calls[i].text, "inflight");
  }
  assert_int_equal(proc_wait(&p, 10000), 0);
  assert_int_equal(echo(ch, a, "late", 0, 0, 2000, NULL, &err), CM_E_UNAVAILABLE);
  rpc_channel_free(ch);
  cm_arena_free(a);
  proc_stop(&p);
}

static void test_health_watch(void **state)
{
  struct proc p;
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  Grpc__Health__V1__HealthCheckResponse *r;
  ProtobufCMessage *m;
  struct cm_error err;
  rpc_channel *ch;
  rpc_stream *st;
  cm_arena *a = cm_arena_new(0);

  (void)state;
  assert_int_equal(start_echo(&p, NULL, NULL), 0);
  ch = channel_to(&p, 1);
  req.service = "credito.test.v1.Echo";
  st = rpc_stream_open(ch, "/grpc.health.v1.Health/Watch", 10000, &err);
  assert_non_null(st);
  assert_int_equal(rpc_stream_send(st, &req.base, &err), 0);
  assert_int_equal(rpc_stream_close_send(st, &err), 0);
  assert_int_equal(
      rpc_stream_recv(st, &grpc__health__v1__health_check_response__descriptor, a, &m, &err), 0);
  r = (Grpc__Health__V1__HealthCheckResponse *)m;
  assert_non_null(r);
  assert_int_equal(r->status, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
  assert_int_equal(proc_signal(&p, SIGTERM), 0);
  assert_int_equal(
      rpc_stream_recv(st, &grpc__health__v1__health_check_response__descriptor, a, &m, &err), 0);
  r = (Grpc__Health__V1__HealthCheckResponse *)m;
  assert_non_null(r);
  assert_int_equal(r->status,
                   GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
  assert_int_equal(
      rpc_stream_recv(st, &grpc__health__v1__health_check_response__descriptor, a, &m, &err), 0);
  assert_null(m);
  assert_int_equal(rpc_stream_finish(st, &err), CM_E_UNAVAILABLE);
  rpc_stream_free(st);
  /* The Watch ended at once, so shutdown needed no grace period. */
  assert_int_equal(proc_wait(&p, 3000), 0);
  assert_false(proc_log_has(&p, "grace period over"));
  rpc_channel_free(ch);
  cm_arena_free(a);
  proc_stop(&p);
}

/* Writes a CA, a server certificate for 127.0.0.1/localhost and a client certificate. */
static int make_certs(const char *dir)
{
  char cmd[2048];

  snprintf(cmd, sizeof(cmd),
           "set -e; cd %s;"
           "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
           "-subj /CN=test-ca >/dev/null 2>&1;"
           "for n in server client; do "
           "openssl req -newkey rsa:2048 -nodes -keyout $n.key -out $n.csr -subj /CN=$n "
           ">/dev/null 2>&1;"
           "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > $n.ext;"
           "openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $n.pem "
           "-days 2 -extfile $n.ext >/dev/null 2>&1; done",
           dir);
  return system(cmd);
}

static int tls_health(const char *addr, const char *dir, bool ca, bool client_cert)
{
  char cap[300], cert[300], key[300];
  struct rpc_channel_opts o = {0};
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  ProtobufCMessage *resp;
  struct cm_error err;
  cm_arena *a = cm_arena_new(0);
  rpc_channel *ch;
  int rc;

  snprintf(cap, sizeof(cap), "%s/ca.pem", dir);
  snprintf(cert, sizeof(cert), "%s/client.pem", dir);
  snprintf(key, sizeof(key), "%s/client.key", dir);
  o.target = addr;
  o.max_attempts = 1;
  o.tls_ca = ca ? cap : NULL;
  o.tls_cert = client_cert ? cert : NULL;
  o.tls_key = client_cert ? key : NULL;
  ch = rpc_channel_new(&o, &err);
  assert_non_null(ch);
  rc = rpc_unary(ch, "/grpc.health.v1.Health/Check", &req.base,
                 &grpc__health__v1__health_check_response__descriptor, 3000, a, &resp, &err);
  rpc_channel_free(ch);
  cm_arena_free(a);
  return rc;
}

static void test_tls(void **state)
{
  char dir[] = "/tmp/credito-tls-XXXXXX";
  char cert[300], key[300], ca[300], addr[64], cmd[400];
  struct proc p;

  (void)state;
  assert_non_null(mkdtemp(dir));
  assert_int_equal(make_certs(dir), 0);
  snprintf(cert, sizeof(cert), "--tls-cert=%s/server.pem", dir);
  snprintf(key, sizeof(key), "--tls-key=%s/server.key", dir);
  snprintf(ca, sizeof(ca), "--tls-client-ca=%s/ca.pem", dir);
  assert_int_equal(start_echo(&p, cert, key), 0);
  proc_addr(&p, addr, sizeof(addr));
  assert_int_equal(tls_health(addr, dir, true, false), 0);
  assert_int_equal(tls_health(addr, dir, false, false), CM_E_UNAVAILABLE); /* plaintext */
  proc_stop(&p);
  {
    char *argv[] = {(char *)ECHO_SERVER_PATH, "--listen", "127.0.0.1:0", cert, key, ca, NULL};

    assert_int_equal(proc_start(&p, argv, 10000), 0);
  }
  proc_addr(&p, addr, sizeof(addr));
  assert_int_not_equal(tls_health(addr, dir, true, false), 0); /* no client certificate */
  assert_int_equal(tls_health(addr, dir, true, true), 0);
  proc_stop(&p);
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void)
{
  const struct CMUnitTest with_server[] = {
      cmocka_unit_test(test_unary),          cmocka_unit_test(test_failing_handler),
      cmocka_unit_test(test_server_stream),  cmocka_unit_test(test_client_stream),
      cmocka_unit_test(test_bidi),           cmocka_unit_test(test_deadline),
      cmocka_unit_test(test_unknown_method), cmocka_unit_test(test_undecodable),
      cmocka_unit_test(test_oversized),
  };
  const struct CMUnitTest alone[] = {
      cmocka_unit_test(test_round_robin_failover),
      cmocka_unit_test(test_graceful_shutdown),
      cmocka_unit_test(test_health_watch),
      cmocka_unit_test(test_tls),
  };
  int failed;

  rpc_init();
  failed = cmocka_run_group_tests_name("rpc.echo", with_server, setup, teardown);
  failed += cmocka_run_group_tests_name("rpc.processes", alone, NULL, NULL);
  rpc_cleanup();
  return failed ? 1 : 0;
}
