/* gRPC client: channels (round_robin over a comma list of addresses, retries on UNAVAILABLE,
 * optional TLS and mTLS) and blocking unary and streaming calls, each call on a pluck
 * completion queue so any thread may make calls without a polling loop of its own. */
#include <arpa/inet.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "buf.h"
#include "mem.h"
#include "rpc_int.h"

#define PEM_MAX (1024 * 1024)
#define TARGET_MAX 4096

struct rpc_channel {
  grpc_channel *ch;      /* the core channel */
  size_t max_message;    /* receive cap, enforced by the core too */
};

struct rpc_stream {
  grpc_call *call;
  grpc_completion_queue *cq;        /* this stream's own pluck queue */
  size_t max_message;
  grpc_metadata_array init_md, trail_md;
  grpc_status_code status;
  grpc_slice details;
  bool md_sent, md_recv, send_closed, status_done;
  int tag_send, tag_recv, tag_status; /* addresses serve as tags */
};

/* ---- targets ---- */

/* Writes the gRPC target for a comma list: "ipv4:a:p,b:p" (or ipv6:) when every entry is an IP
 * literal; a single entry or a name with a scheme passes through. */
static int target_build(const char *in, struct cm_buf *out, struct cm_error *err)
{
  const char *p = in;
  int family = 0;

  if (!strchr(in, ',') || strchr(in, ':') == NULL || strstr(in, "://") ||
      strncmp(in, "ipv4:", 5) == 0 || strncmp(in, "ipv6:", 5) == 0)
    return cm_buf_add(out, in, strlen(in)) ? cm_error_set(err, CM_E_TOOLARGE, "target too long")
                                            : 0;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char host[64];
    const char *colon = NULL;
    size_t hl;
    unsigned char tmp[16];
    int fam;

    for (size_t i = n; i > 0 && !colon; i--)
      if (p[i - 1] == ':')
        colon = p + i - 1;
    hl = colon ? (size_t)(colon - p) : 0;
    if (!colon || hl == 0 || hl >= sizeof(host))
      return cm_error_set(err, CM_E_INVALID, "bad address in '%s': want IP:PORT,...", in);
    if (p[0] == '[' && hl > 2 && p[hl - 1] == ']') {
      memcpy(host, p + 1, hl - 2);
      host[hl - 2] = '\0';
    } else {
      memcpy(host, p, hl);
      host[hl] = '\0';
    }
    fam = inet_pton(AF_INET, host, tmp) == 1 ? 4 : inet_pton(AF_INET6, host, tmp) == 1 ? 6 : 0;
    if (!fam || (family && fam != family))
      return cm_error_set(err, CM_E_INVALID,
                          "a comma list takes IP literals of one family ('%s'); use dns:///name:port "
                          "for names", in);
    family = fam;
    p += n + (end ? 1 : 0);
  }
  if (cm_buf_addf(out, "ipv%d:%s", family, in))
    return cm_error_set(err, CM_E_TOOLARGE, "target too long");
  return 0;
}

static int service_config(const struct rpc_channel_opts *o, struct cm_buf *out)
{
  int attempts = o->max_attempts > 0 ? o->max_attempts : 3;
  int rc = cm_buf_addf(out, "{\"loadBalancingConfig\":[{\"round_robin\":{}}]");

  if (!rc && attempts > 1)
    rc = cm_buf_addf(out,
                     ",\"methodConfig\":[{\"name\":[{}],\"retryPolicy\":{\"maxAttempts\":%d,"
                     "\"initialBackoff\":\"0.05s\",\"maxBackoff\":\"1s\",\"backoffMultiplier\":2,"
                     "\"retryableStatusCodes\":[\"UNAVAILABLE\"]}}]",
                     attempts > 5 ? 5 : attempts);
  if (!rc && o->health_service)
    rc = cm_buf_addf(out, ",\"healthCheckConfig\":{\"serviceName\":\"%s\"}", o->health_service);
  if (!rc)
    rc = cm_buf_add(out, "}", 1);
  return rc;
}

static grpc_channel_credentials *client_creds(const struct rpc_channel_opts *o,
                                              struct cm_error *err)
{
  grpc_ssl_pem_key_cert_pair pair = {NULL, NULL};
  char *ca = NULL;
  grpc_channel_credentials *creds = NULL;
  bool ok = true;

  if (!o->tls_ca && !o->tls_cert)
    return grpc_insecure_credentials_create();
  if (o->tls_ca)
    ok = (ca = rpc_file_read(o->tls_ca, PEM_MAX, NULL, err)) != NULL;
  if (ok && (o->tls_cert || o->tls_key)) {
    if (!o->tls_cert || !o->tls_key) {
      cm_error_set(err, CM_E_INVALID, "mTLS needs both a client certificate and key");
      ok = false;
    } else {
      pair.cert_chain = rpc_file_read(o->tls_cert, PEM_MAX, NULL, err);
      pair.private_key = pair.cert_chain ? rpc_file_read(o->tls_key, PEM_MAX, NULL, err) : NULL;
      ok = pair.private_key != NULL;
    }
  }
  if (ok)
    creds = grpc_ssl_credentials_create(ca, pair.cert_chain ? &pair : NULL, NULL, NULL);
  cm_free(ca);
  cm_free((void *)pair.cert_chain);
  cm_free((void *)pair.private_key);
  return creds;
}

rpc_channel *rpc_channel_new(const struct rpc_channel_opts *o, struct cm_error *err)
{
  rpc_channel *c = NULL;
  struct cm_buf target, cfg;
  grpc_channel_credentials *creds = NULL;
  grpc_arg args[8];
  grpc_channel_args cargs = {0, args};

  cm_buf_init(&target, TARGET_MAX);
  cm_buf_init(&cfg, TARGET_MAX);
  if (!o->target || !o->target[0]) {
    cm_error_set(err, CM_E_INVALID, "no target address");
    goto out;
  }
  if (target_build(o->target, &target, err))
    goto out;
  if (service_config(o, &cfg)) {
    cm_error_set(err, CM_E_TOOLARGE, "service config too long");
    goto out;
  }
  creds = client_creds(o, err);
  c = creds ? cm_calloc(1, sizeof(*c)) : NULL;
  if (!c) {
    if (creds)
      cm_error_set(err, CM_E_NOMEM, "out of memory");
    goto out;
  }
  c->max_message = o->max_message ? o->max_message : RPC_DEFAULT_MAX_MESSAGE;
  args[cargs.num_args++] = (grpc_arg){GRPC_ARG_STRING, (char *)GRPC_ARG_SERVICE_CONFIG,
                                      {.string = cfg.data}};
  args[cargs.num_args++] = (grpc_arg){GRPC_ARG_INTEGER, (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                                      {.integer = (int)c->max_message}};
  args[cargs.num_args++] = (grpc_arg){GRPC_ARG_INTEGER, (char *)GRPC_ARG_ENABLE_RETRIES,
                                      {.integer = 1}};
  if (o->tls_server_name)
    args[cargs.num_args++] = (grpc_arg){GRPC_ARG_STRING, (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG,
                                        {.string = (char *)o->tls_server_name}};
  if (o->keepalive_ms > 0) {
    int ms = o->keepalive_ms > INT_MAX ? INT_MAX : (int)o->keepalive_ms;

    args[cargs.num_args++] = (grpc_arg){GRPC_ARG_INTEGER, (char *)GRPC_ARG_KEEPALIVE_TIME_MS,
                                        {.integer = ms}};
    args[cargs.num_args++] = (grpc_arg){GRPC_ARG_INTEGER, (char *)GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                                        {.integer = ms}};
    args[cargs.num_args++] = (grpc_arg){GRPC_ARG_INTEGER,
                                        (char *)GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
                                        {.integer = 1}};
    /* an idle connection keeps pinging: its health-check stream is not "data" */
    args[cargs.num_args++] = (grpc_arg){GRPC_ARG_INTEGER,
                                        (char *)GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA,
                                        {.integer = 0}};
  }
  c->ch = grpc_channel_create(target.data, creds, &cargs);
  if (!c->ch) {
    cm_error_set(err, CM_E_INVALID, "cannot create a channel to %s", o->target);
    cm_free(c);
    c = NULL;
  }
out:
  if (creds)
    grpc_channel_credentials_release(creds);
  cm_buf_cleanup(&target);
  cm_buf_cleanup(&cfg);
  return c;
}

void rpc_channel_free(rpc_channel *c)
{
  if (!c)
    return;
  grpc_channel_destroy(c->ch);
  cm_free(c);
}

/* ---- status ---- */

static int status_to_error(grpc_status_code st, grpc_slice details, struct cm_error *err)
{
  int code;

  if (st == GRPC_STATUS_OK)
    return 0;
  code = cm_code_from_grpc((int)st);
  cm_error_set(err, code, "%s: %.*s", cm_grpc_code_name((int)st), (int)GRPC_SLICE_LENGTH(details),
               (const char *)GRPC_SLICE_START_PTR(details));
  return code;
}

/* ---- unary ---- */

static pthread_key_t cq_key;
static pthread_once_t cq_once = PTHREAD_ONCE_INIT;

static void cq_destroy(void *p)
{
  grpc_completion_queue *cq = p;

  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN)
    ;
  grpc_completion_queue_destroy(cq);
}

static void cq_key_init(void)
{
  pthread_key_create(&cq_key, cq_destroy);
}

/* The calling thread's pluck queue for unary calls, created on first use and destroyed with the
 * thread (threads that end via exit() leave it to the process). */
static grpc_completion_queue *thread_cq(void)
{
  grpc_completion_queue *cq;

  pthread_once(&cq_once, cq_key_init);
  cq = pthread_getspecific(cq_key);
  if (!cq) {
    cq = grpc_completion_queue_create_for_pluck(NULL);
    pthread_setspecific(cq_key, cq);
  }
  return cq;
}

int rpc_unary(rpc_channel *ch, const char *method, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms, cm_arena *arena,
              ProtobufCMessage **resp, struct cm_error *err)
{
  grpc_completion_queue *cq = thread_cq();
  grpc_slice mslice = grpc_slice_from_copied_string(method);
  grpc_byte_buffer *out = rpc_pack(req, ch->max_message, NULL, err);
  grpc_byte_buffer *in = NULL;
  grpc_metadata_array imd, tmd;
  grpc_status_code st = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  grpc_call *call = NULL;
  grpc_op ops[6];
  grpc_event ev;
  int rc;

  *resp = NULL;
  grpc_metadata_array_init(&imd);
  grpc_metadata_array_init(&tmd);
  if (!out) {
    rc = err->code;
    goto out;
  }
  call = grpc_channel_create_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, mslice, NULL,
                                  rpc_deadline_in(timeout_ms), NULL);
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = out;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &imd;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &in;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &tmd;
  ops[5].data.recv_status_on_client.status = &st;
  ops[5].data.recv_status_on_client.status_details = &details;
  if (grpc_call_start_batch(call, ops, 6, &ops, NULL) != GRPC_CALL_OK) {
    rc = cm_error_set(err, CM_E_INTERNAL, "cannot start call %s", method);
    goto out;
  }
  ev = grpc_completion_queue_pluck(cq, &ops, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  rc = status_to_error(st, details, err);
  if (rc == 0 && ev.success && !in)
    rc = cm_error_set(err, CM_E_INTERNAL, "%s answered OK without a message", method);
  if (rc == 0) {
    *resp = rpc_unpack(in, resp_desc, arena, err);
    rc = *resp ? 0 : err->code;
  }
out:
  if (call)
    grpc_call_unref(call);
  if (out)
    grpc_byte_buffer_destroy(out);
  if (in)
    grpc_byte_buffer_destroy(in);
  grpc_metadata_array_destroy(&imd);
  grpc_metadata_array_destroy(&tmd);
  grpc_slice_unref(details);
  grpc_slice_unref(mslice);
  return rc;
}

/* ---- streams ---- */

rpc_stream *rpc_stream_open(rpc_channel *ch, const char *method, int64_t timeout_ms,
                            struct cm_error *err)
{
  rpc_stream *st = cm_calloc(1, sizeof(*st));
  grpc_slice mslice;
  grpc_op op;

  if (!st) {
    cm_error_set(err, CM_E_NOMEM, "out of memory");
    return NULL;
  }
  st->cq = grpc_completion_queue_create_for_pluck(NULL);
  st->max_message = ch->max_message;
  st->details = grpc_empty_slice();
  st->status = GRPC_STATUS_UNKNOWN;
  grpc_metadata_array_init(&st->init_md);
  grpc_metadata_array_init(&st->trail_md);
  mslice = grpc_slice_from_copied_string(method);
  st->call = grpc_channel_create_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, st->cq, mslice, NULL,
                                      rpc_deadline_in(timeout_ms), NULL);
  grpc_slice_unref(mslice);
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  op.data.recv_status_on_client.trailing_metadata = &st->trail_md;
  op.data.recv_status_on_client.status = &st->status;
  op.data.recv_status_on_client.status_details = &st->details;
  if (grpc_call_start_batch(st->call, &op, 1, &st->tag_status, NULL) != GRPC_CALL_OK) {
    cm_error_set(err, CM_E_INTERNAL, "cannot start call %s", method);
    st->status_done = true; /* no status batch is pending */
    rpc_stream_free(st);
    return NULL;
  }
  return st;
}

/* Runs one batch and waits for it; false when the call has failed. */
static bool stream_batch(rpc_stream *st, grpc_op *ops, size_t n, void *tag)
{
  grpc_event ev;

  if (grpc_call_start_batch(st->call, ops, n, tag, NULL) != GRPC_CALL_OK)
    return false;
  ev = grpc_completion_queue_pluck(st->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  return ev.type == GRPC_OP_COMPLETE && ev.success;
}

/* The status of a call that failed under an operation. */
static int stream_failed(rpc_stream *st, struct cm_error *err)
{
  int rc = rpc_stream_finish(st, err);

  return rc ? rc : cm_error_set(err, CM_E_UNAVAILABLE, "stream closed");
}

int rpc_stream_send(rpc_stream *st, const ProtobufCMessage *msg, struct cm_error *err)
{
  grpc_byte_buffer *bb = rpc_pack(msg, st->max_message, NULL, err);
  grpc_op ops[2];
  size_t n = 0;
  bool ok;

  if (!bb)
    return err->code;
  memset(ops, 0, sizeof(ops));
  if (!st->md_sent) {
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    st->md_sent = true;
  }
  ops[n].op = GRPC_OP_SEND_MESSAGE;
  ops[n++].data.send_message.send_message = bb;
  ok = stream_batch(st, ops, n, &st->tag_send);
  grpc_byte_buffer_destroy(bb);
  return ok ? 0 : stream_failed(st, err);
}

int rpc_stream_close_send(rpc_stream *st, struct cm_error *err)
{
  grpc_op ops[2];
  size_t n = 0;

  if (st->send_closed)
    return 0;
  memset(ops, 0, sizeof(ops));
  if (!st->md_sent) {
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    st->md_sent = true;
  }
  ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  st->send_closed = true;
  return stream_batch(st, ops, n, &st->tag_send) ? 0 : stream_failed(st, err);
}

int rpc_stream_recv(rpc_stream *st, const ProtobufCMessageDescriptor *desc, cm_arena *arena,
                    ProtobufCMessage **out, struct cm_error *err)
{
  grpc_byte_buffer *bb = NULL;
  grpc_op ops[3];
  size_t n = 0;
  bool ok;

  *out = NULL;
  memset(ops, 0, sizeof(ops));
  if (!st->md_sent) { /* a server stream may be read before anything is sent */
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    st->md_sent = true;
  }
  if (!st->md_recv) {
    ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[n++].data.recv_initial_metadata.recv_initial_metadata = &st->init_md;
    st->md_recv = true;
  }
  ops[n].op = GRPC_OP_RECV_MESSAGE;
  ops[n++].data.recv_message.recv_message = &bb;
  ok = stream_batch(st, ops, n, &st->tag_recv);
  if (!ok || !bb) {
    if (bb)
      grpc_byte_buffer_destroy(bb);
    return ok ? 0 : stream_failed(st, err); /* end of stream: *out stays NULL */
  }
  *out = rpc_unpack(bb, desc, arena, err);
  grpc_byte_buffer_destroy(bb);
  if (!*out) {
    grpc_call_cancel_with_status(st->call, GRPC_STATUS_INTERNAL, "undecodable message", NULL);
    return err->code;
  }
  return 0;
}

int rpc_stream_finish(rpc_stream *st, struct cm_error *err)
{
  if (!st->status_done) {
    grpc_completion_queue_pluck(st->cq, &st->tag_status, gpr_inf_future(GPR_CLOCK_REALTIME),
                                NULL);
    st->status_done = true;
  }
  return status_to_error(st->status, st->details, err);
}

void rpc_stream_cancel(rpc_stream *st)
{
  grpc_call_cancel(st->call, NULL);
}

void rpc_stream_free(rpc_stream *st)
{
  if (!st)
    return;
  if (st->call) {
    if (!st->status_done) {
      grpc_call_cancel(st->call, NULL);
      grpc_completion_queue_pluck(st->cq, &st->tag_status, gpr_inf_future(GPR_CLOCK_REALTIME),
                                  NULL);
    }
    grpc_call_unref(st->call);
  }
  grpc_completion_queue_shutdown(st->cq);
  while (grpc_completion_queue_pluck(st->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
             .type != GRPC_QUEUE_SHUTDOWN)
    ;
  grpc_completion_queue_destroy(st->cq);
  grpc_metadata_array_destroy(&st->init_md);
  grpc_metadata_array_destroy(&st->trail_md);
  grpc_slice_unref(st->details);
  cm_free(st);
}
