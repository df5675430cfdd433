/* The server call state machine: a call is requested on a worker's completion queue, decoded,
 * handed to its handler, and lives until its status is sent and the close is seen. Each
 * operation in flight and the handler (until it finishes) hold one reference. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "call_int.h"
#include "log.h"
#include "mem.h"

struct send_item {
  grpc_byte_buffer *bb;   /* serialized message */
  size_t len;             /* its size, for the queue cap */
  struct send_item *next; /* FIFO link */
};

static void call_on_new(struct rpc_tag *t, bool ok);
static void call_on_recv(struct rpc_tag *t, bool ok);
static void call_on_send(struct rpc_tag *t, bool ok);
static void call_on_close(struct rpc_tag *t, bool ok);

#define CALL_OF(tag, member) ((rpc_call *)((char *)(tag) - offsetof(rpc_call, member)))

/* ---- lifetime ---- */

static void call_drop_queue_locked(rpc_call *c)
{
  struct send_item *it = c->q_head;

  while (it) {
    struct send_item *next = it->next;

    grpc_byte_buffer_destroy(it->bb);
    cm_free(it);
    it = next;
  }
  c->q_head = c->q_tail = NULL;
  c->q_bytes = 0;
}

static rpc_call *call_alloc(struct rpc_worker *w, const struct rpc_reg_method *rm)
{
  rpc_call *c = cm_calloc(1, sizeof(*c));

  if (!c)
    return NULL;
  c->w = w;
  c->rm = rm;
  atomic_init(&c->refs, 1); /* the request's reference */
  atomic_init(&c->cancelled, false);
  pthread_mutex_init(&c->mu, NULL);
  pthread_mutex_init(&c->cb_mu, NULL);
  pthread_cond_init(&c->space, NULL);
  grpc_metadata_array_init(&c->md);
  grpc_call_details_init(&c->details);
  c->t_new.fn = call_on_new;
  c->t_recv.fn = call_on_recv;
  c->t_send.fn = call_on_send;
  c->t_close.fn = call_on_close;
  return c;
}

static void call_destroy(rpc_call *c)
{
  if (c->started_ms)
    atomic_fetch_sub(c->w->active, 1);
  call_drop_queue_locked(c);
  if (c->data_free)
    c->data_free(c->data);
  if (c->payload)
    grpc_byte_buffer_destroy(c->payload);
  if (c->recv_bb)
    grpc_byte_buffer_destroy(c->recv_bb);
  grpc_metadata_array_destroy(&c->md);
  grpc_call_details_destroy(&c->details);
  if (c->gc)
    grpc_call_unref(c->gc);
  if (c->peer)
    gpr_free(c->peer);
  cm_free(c->fin_msg);
  if (c->fin_details) { /* zeroed slices (status never sent) unref as no-ops */
    grpc_slice_unref(c->fin_md.key);
    grpc_slice_unref(c->fin_md.value);
  }
  cm_free(c->fin_details);
  cm_free(c->path);
  cm_arena_free(c->arena);
  pthread_mutex_destroy(&c->mu);
  pthread_mutex_destroy(&c->cb_mu);
  pthread_cond_destroy(&c->space);
  cm_free(c);
}

static void call_ref(rpc_call *c)
{
  atomic_fetch_add(&c->refs, 1);
}

static void call_unref(rpc_call *c)
{
  if (atomic_fetch_sub(&c->refs, 1) == 1)
    call_destroy(c);
}

/* ---- requesting calls ---- */

int rpc_call_request(struct rpc_worker *w, const struct rpc_reg_method *rm)
{
  rpc_call *c = call_alloc(w, rm);
  grpc_call_error e;

  if (!c)
    return CM_E_NOMEM;
  if (rm)
    e = grpc_server_request_registered_call(w->server_gs, rm->handle, &c->gc, &c->deadline,
                                            &c->md, rm->reads_payload ? &c->payload : NULL,
                                            w->cq, w->cq, &c->t_new);
  else
    e = grpc_server_request_call(w->server_gs, &c->gc, &c->details, &c->md, w->cq, w->cq,
                                 &c->t_new);
  if (e != GRPC_CALL_OK) {
    cm_log(CM_LOG_ERROR, "request call failed", "error=%s", grpc_call_error_to_string(e));
    call_destroy(c);
    return CM_E_INTERNAL;
  }
  return 0;
}

/* ---- batches ---- */

static void call_batch(rpc_call *c, const grpc_op *ops, size_t n, struct rpc_tag *tag)
{
  grpc_call_error e = grpc_call_start_batch(c->gc, ops, n, tag, NULL);

  if (e != GRPC_CALL_OK) {
    /* Only a bug gets here (ops out of order); treat the batch as failed so refs balance. */
    cm_log(CM_LOG_ERROR, "start batch failed", "method=%s error=%s", c->path,
           grpc_call_error_to_string(e));
    tag->fn(tag, false);
  }
}

static void call_start_recv(rpc_call *c)
{
  grpc_op op;

  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &c->recv_bb;
  call_ref(c);
  call_batch(c, &op, 1, &c->t_recv);
}

static void call_start_send_locked(rpc_call *c)
{
  grpc_op ops[3];
  size_t n = 0;
  struct send_item *it = c->q_head;
  grpc_slice details;
  bool with_status = c->finish_req && (!it || !it->next);

  if (!it && !with_status)
    return;
  if (c->status_sent)
    return;
  memset(ops, 0, sizeof(ops));
  if (!c->md_sent) {
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    n++;
    c->md_sent = true;
  }
  if (it) {
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = it->bb;
    n++;
    c->q_head = it->next;
    if (!c->q_head)
      c->q_tail = NULL;
    c->q_bytes -= it->len;
    c->inflight = it;
  }
  if (with_status) {
    details = grpc_slice_from_copied_string(c->fin_msg ? c->fin_msg : "");
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)cm_code_to_grpc(c->fin_code);
    ops[n].data.send_status_from_server.status_details = c->fin_msg ? &details : NULL;
    if (c->fin_details) {
      /* The core base64-encodes a -bin trailer's value on the wire. */
      c->fin_md.key = grpc_slice_from_static_string("grpc-status-details-bin");
      c->fin_md.value = grpc_slice_from_copied_buffer((const char *)c->fin_details,
                                                      c->fin_details_len);
      ops[n].data.send_status_from_server.trailing_metadata_count = 1;
      ops[n].data.send_status_from_server.trailing_metadata = &c->fin_md;
    }
    n++;
    c->status_sent = true;
  }
  c->send_inflight = true;
  call_ref(c);
  call_batch(c, ops, n, &c->t_send);
  if (with_status)
    grpc_slice_unref(details);
}

static bool call_done_reading(rpc_call *c)
{
  bool done;

  pthread_mutex_lock(&c->mu);
  done = c->finish_req || atomic_load(&c->cancelled);
  pthread_mutex_unlock(&c->mu);
  return done;
}

/* ---- events ---- */

enum call_cb { CB_START, CB_MESSAGE, CB_END, CB_CANCEL, CB_WRITABLE };

/* Runs one of the handler's callbacks. Callbacks of one call run one at a time (events of a
 * call may complete on different threads of its queue), and none runs after the handler
 * finished; messages, the end and writability also stop once the call is cancelled. */
static void call_invoke(rpc_call *c, enum call_cb cb, const ProtobufCMessage *msg)
{
  const struct rpc_method *m = c->rm->method;
  bool skip;

  /* The callback may finish the call, and its last batch may complete on another thread before
   * the callback returns: hold a reference so the call (and cb_mu) outlive the callback. */
  call_ref(c);
  pthread_mutex_lock(&c->cb_mu);
  pthread_mutex_lock(&c->mu);
  skip = c->finish_req || (cb != CB_START && cb != CB_CANCEL && atomic_load(&c->cancelled));
  pthread_mutex_unlock(&c->mu);
  if (!skip) {
    switch (cb) {
    case CB_START:
      m->on_start(c, msg);
      break;
    case CB_MESSAGE:
      if (m->on_message)
        m->on_message(c, msg);
      break;
    case CB_END:
      if (m->on_end)
        m->on_end(c);
      break;
    case CB_CANCEL:
      if (m->on_cancel)
        m->on_cancel(c);
      break;
    case CB_WRITABLE:
      if (c->on_writable)
        c->on_writable(c);
      break;
    }
  }
  pthread_mutex_unlock(&c->cb_mu);
  call_unref(c);
}

static void call_dispatch_unary(rpc_call *c)
{
  const struct rpc_method *m = c->rm->method;
  struct cm_error err;
  ProtobufCMessage *req;

  if (!c->payload) {
    rpc_call_finish(c, CM_E_INVALID, "request message missing");
    return;
  }
  req = rpc_unpack(c->payload, m->input, c->arena, &err);
  grpc_byte_buffer_destroy(c->payload);
  c->payload = NULL;
  if (!req) {
    rpc_call_fail(c, &err);
    return;
  }
  call_invoke(c, CB_START, req);
}

static void call_on_new(struct rpc_tag *t, bool ok)
{
  rpc_call *c = CALL_OF(t, t_new);
  grpc_op op;

  if (!ok) { /* the server is shutting down: this slot never got a call */
    call_unref(c);
    return;
  }
  if (!atomic_load(c->w->stopping))
    rpc_call_request(c->w, c->rm);
  atomic_fetch_add(c->w->active, 1);
  c->started_ms = rpc_now_ms();
  c->arena = cm_arena_new(0);
  if (c->rm)
    c->path = cm_strdup(c->rm->path);
  else
    c->path = cm_strndup((const char *)GRPC_SLICE_START_PTR(c->details.method),
                         GRPC_SLICE_LENGTH(c->details.method));
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &c->close_cancelled;
  call_ref(c);
  call_batch(c, &op, 1, &c->t_close);
  /* From here the request's reference is the handler's, dropped by rpc_call_finish. */
  if (!c->arena || !c->path) {
    rpc_call_finish(c, CM_E_NOMEM, "out of memory");
    return;
  }
  if (!c->rm) {
    char msg[200];

    snprintf(msg, sizeof(msg), "unknown method %s", c->path);
    rpc_call_finish(c, CM_E_UNIMPLEMENTED, msg);
    return;
  }
  if (c->rm->reads_payload) {
    call_dispatch_unary(c);
    return;
  }
  call_ref(c); /* the handler may finish at once: keep the call for the read we start */
  call_invoke(c, CB_START, NULL);
  if (!call_done_reading(c))
    call_start_recv(c);
  call_unref(c);
}

static void call_on_recv(struct rpc_tag *t, bool ok)
{
  rpc_call *c = CALL_OF(t, t_recv);
  const struct rpc_method *m = c->rm->method;
  struct cm_error err;
  cm_arena *tmp;
  ProtobufCMessage *msg;

  if (!ok || !c->recv_bb) {
    if (ok)
      call_invoke(c, CB_END, NULL);
    call_unref(c);
    return;
  }
  tmp = cm_arena_new(0);
  msg = tmp ? rpc_unpack(c->recv_bb, m->input, tmp, &err) : NULL;
  grpc_byte_buffer_destroy(c->recv_bb);
  c->recv_bb = NULL;
  if (!tmp)
    cm_error_set(&err, CM_E_NOMEM, "out of memory");
  if (!msg) {
    if (!call_done_reading(c))
      rpc_call_fail(c, &err);
  } else {
    call_invoke(c, CB_MESSAGE, msg);
  }
  cm_arena_free(tmp);
  if (msg && !call_done_reading(c)) {
    /* The batch's reference carries over to the next read. */
    grpc_op op;

    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv_bb;
    call_batch(c, &op, 1, &c->t_recv);
    return;
  }
  call_unref(c);
}

static void call_on_send(struct rpc_tag *t, bool ok)
{
  rpc_call *c = CALL_OF(t, t_send);
  struct send_item *done;
  bool writable = false;

  pthread_mutex_lock(&c->mu);
  done = c->inflight;
  c->inflight = NULL;
  c->send_inflight = false;
  if (!ok && !c->status_sent) {
    /* The stream broke: drop what waits, but a finish still owes its status batch. */
    atomic_store(&c->cancelled, true);
  }
  if (!c->status_sent && (c->q_head || c->finish_req))
    call_start_send_locked(c);
  else if (!c->finish_req && ok && !atomic_load(&c->cancelled))
    writable = c->on_writable != NULL;
  pthread_mutex_unlock(&c->mu);
  if (done) {
    grpc_byte_buffer_destroy(done->bb);
    cm_free(done);
  }
  if (writable)
    call_invoke(c, CB_WRITABLE, NULL);
  if (c->status_sent && !c->send_inflight && cm_log_enabled(CM_LOG_DEBUG))
    cm_log(CM_LOG_DEBUG, "call", "method=%s code=%s cancelled=%b ms=%lld", c->path,
           cm_grpc_code_name(cm_code_to_grpc(c->fin_code)), (int)atomic_load(&c->cancelled),
           (long long)(rpc_now_ms() - c->started_ms));
  call_unref(c);
}

static void call_on_close(struct rpc_tag *t, bool ok)
{
  rpc_call *c = CALL_OF(t, t_close);
  bool notify;

  pthread_mutex_lock(&c->mu);
  if (!ok || c->close_cancelled)
    atomic_store(&c->cancelled, true);
  notify = atomic_load(&c->cancelled) && !c->finish_req && c->rm;
  pthread_cond_broadcast(&c->space);
  pthread_mutex_unlock(&c->mu);
  if (notify)
    call_invoke(c, CB_CANCEL, NULL);
  call_unref(c);
}

/* ---- the handler's interface ---- */

/* Queues msg; with wait_ms > 0 waits that long for room instead of failing when the queue is
 * full. */
static int call_write(rpc_call *c, const ProtobufCMessage *msg, int64_t wait_ms)
{
  struct cm_error err;
  struct send_item *it;
  size_t len = 0;
  grpc_byte_buffer *bb = rpc_pack(msg, c->w->max_message, &len, &err);
  int rc = 0;
  gpr_timespec until = rpc_deadline_in(wait_ms);
  struct timespec ts = {until.tv_sec, until.tv_nsec};

  if (!bb)
    return err.code;
  it = cm_calloc(1, sizeof(*it));
  if (!it) {
    grpc_byte_buffer_destroy(bb);
    return CM_E_NOMEM;
  }
  it->bb = bb;
  it->len = len;
  pthread_mutex_lock(&c->mu);
  while (wait_ms > 0 && !c->finish_req && !atomic_load(&c->cancelled) && c->q_head &&
         c->q_bytes + len > RPC_MAX_QUEUED_BYTES) {
    if (pthread_cond_timedwait(&c->space, &c->mu, &ts) != 0)
      break;
  }
  if (c->finish_req || atomic_load(&c->cancelled)) {
    rc = CM_E_CANCELLED;
  } else if (c->q_head && c->q_bytes + len > RPC_MAX_QUEUED_BYTES) {
    rc = wait_ms > 0 ? CM_E_DEADLINE : CM_E_EXHAUSTED;
  } else {
    if (c->q_tail)
      c->q_tail->next = it;
    else
      c->q_head = it;
    c->q_tail = it;
    c->q_bytes += len;
    it = NULL;
    if (!c->send_inflight)
      call_start_send_locked(c);
  }
  pthread_mutex_unlock(&c->mu);
  if (it) {
    grpc_byte_buffer_destroy(it->bb);
    cm_free(it);
  }
  return rc;
}

int rpc_call_write(rpc_call *c, const ProtobufCMessage *msg)
{
  return call_write(c, msg, 0);
}

int rpc_call_write_wait(rpc_call *c, const ProtobufCMessage *msg, int64_t wait_ms)
{
  return call_write(c, msg, wait_ms > 0 ? wait_ms : 1);
}

/* Appends a protobuf varint to p; returns the new end. */
static uint8_t *pb_varint(uint8_t *p, uint64_t v)
{
  do {
    *p++ = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  return p;
}

/* Appends field (wire type 2) with n bytes from s. */
static uint8_t *pb_bytes(uint8_t *p, unsigned field, const void *s, size_t n)
{
  p = pb_varint(p, (uint64_t)field << 3 | 2);
  p = pb_varint(p, n);
  memcpy(p, s, n);
  return p + n;
}

/* google.rpc.Status{code, message, details: [Any{type_url, value}]} by hand: the RPC layer
 * needs no generated code for it. NULL when out of memory. */
static uint8_t *status_details(int grpc_code, const char *msg, const char *type_name,
                               const uint8_t *detail, size_t len, size_t *out_len)
{
  static const char prefix[] = "type.googleapis.com/";
  size_t ml = msg ? strlen(msg) : 0, tl = sizeof(prefix) - 1 + strlen(type_name);
  size_t any_len = 2 * 10 + tl + len, cap = 3 * 10 + ml + any_len + 10;
  uint8_t *buf = cm_malloc(cap), *any = cm_malloc(any_len), *p, *a;
  char *url = cm_malloc(tl + 1);

  if (!buf || !any || !url) {
    cm_free(buf);
    cm_free(any);
    cm_free(url);
    return NULL;
  }
  snprintf(url, tl + 1, "%s%s", prefix, type_name);
  a = pb_bytes(any, 1, url, tl);
  a = pb_bytes(a, 2, detail, len);
  p = pb_varint(buf, 1 << 3 | 0);
  p = pb_varint(p, (uint64_t)(uint32_t)grpc_code);
  p = pb_bytes(p, 2, msg ? msg : "", ml);
  p = pb_bytes(p, 3, any, (size_t)(a - any));
  cm_free(any);
  cm_free(url);
  *out_len = (size_t)(p - buf);
  return buf;
}

static void call_finish(rpc_call *c, int code, const char *msg, uint8_t *details,
                        size_t details_len)
{
  pthread_mutex_lock(&c->mu);
  if (c->finish_req) {
    pthread_mutex_unlock(&c->mu);
    cm_free(details);
    cm_log(CM_LOG_ERROR, "call finished twice", "method=%s", c->path);
    return;
  }
  c->finish_req = true;
  c->fin_code = code;
  c->fin_msg = msg ? cm_strdup(msg) : NULL;
  c->fin_details = details;
  c->fin_details_len = details_len;
  if (!c->send_inflight)
    call_start_send_locked(c);
  pthread_mutex_unlock(&c->mu);
  call_unref(c); /* the handler's reference */
}

void rpc_call_finish(rpc_call *c, int code, const char *msg)
{
  call_finish(c, code, msg, NULL, 0);
}

void rpc_call_finish_detail(rpc_call *c, int code, const char *msg,
                            const ProtobufCMessage *detail)
{
  size_t len = protobuf_c_message_get_packed_size(detail), n = 0;
  uint8_t *packed = cm_malloc(len ? len : 1), *st = NULL;

  if (packed) {
    protobuf_c_message_pack(detail, packed);
    st = status_details(cm_code_to_grpc(code), msg, detail->descriptor->name, packed, len, &n);
  }
  cm_free(packed);
  /* Out of memory for the detail: the status and message still go out. */
  call_finish(c, code, msg, st, n);
}

void rpc_call_reply(rpc_call *c, const ProtobufCMessage *resp)
{
  int rc = rpc_call_write(c, resp);

  if (rc == 0) {
    rpc_call_finish(c, CM_OK, NULL);
    return;
  }
  rpc_call_finish(c, rc, rc == CM_E_TOOLARGE ? "response larger than the message cap"
                                             : cm_code_text(rc));
}

void rpc_call_fail(rpc_call *c, const struct cm_error *err)
{
  rpc_call_finish(c, err->code ? err->code : CM_E_UNKNOWN, err->msg);
}

void *rpc_call_service(const rpc_call *c)
{
  return c->rm ? c->rm->service->ctx : NULL;
}

const char *rpc_call_method(const rpc_call *c)
{
  return c->path ? c->path : "";
}

cm_arena *rpc_call_arena(rpc_call *c)
{
  return c->arena;
}

int64_t rpc_call_remaining_ms(const rpc_call *c)
{
  return rpc_deadline_remaining_ms(c->deadline);
}

bool rpc_call_cancelled(const rpc_call *c)
{
  return atomic_load(&c->cancelled) || rpc_deadline_remaining_ms(c->deadline) <= 0;
}

const char *rpc_call_metadata(rpc_call *c, const char *key)
{
  size_t klen = strlen(key);

  for (size_t i = 0; i < c->md.count; i++) {
    const grpc_metadata *m = &c->md.metadata[i];

    if (GRPC_SLICE_LENGTH(m->key) == klen &&
        memcmp(GRPC_SLICE_START_PTR(m->key), key, klen) == 0)
      return cm_arena_strndup(c->arena, (const char *)GRPC_SLICE_START_PTR(m->value),
                              GRPC_SLICE_LENGTH(m->value));
  }
  return NULL;
}

const char *rpc_call_peer(rpc_call *c)
{
  if (!c->peer)
    c->peer = grpc_call_get_peer(c->gc);
  return c->peer ? c->peer : "";
}

void rpc_call_set_data(rpc_call *c, void *data, void (*free_fn)(void *))
{
  c->data = data;
  c->data_free = free_fn;
}

void *rpc_call_data(const rpc_call *c)
{
  return c->data;
}

void rpc_call_on_writable(rpc_call *c, rpc_writable_fn fn)
{
  pthread_mutex_lock(&c->mu);
  c->on_writable = fn;
  pthread_mutex_unlock(&c->mu);
}
