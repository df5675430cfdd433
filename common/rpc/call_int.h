/* Inside the RPC server: the worker, registered-method and call structures shared by server.c
 * (lifecycle) and call.c (the per-call state machine). */
#ifndef CREDITO_RPC_CALL_INT_H
#define CREDITO_RPC_CALL_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "rpc_int.h"

/* One completion queue and the threads that drain it. Handlers run on these threads: one
 * thread per queue keeps the fast path free of hand-offs, and when every thread of a queue has
 * been inside a handler for a few milliseconds the server's supervisor starts another (up to
 * max_threads); spares retire when they come back. The queue never stalls behind a slow
 * handler. */
struct rpc_worker {
  grpc_server *server_gs;     /* the server the worker requests calls from */
  grpc_completion_queue *cq;  /* this worker's queue: its calls' events all land here */
  atomic_bool *stopping;      /* the server's flag: stop requesting new calls */
  atomic_int *active;         /* the server's count of calls started and not yet freed */
  size_t max_message;         /* send cap */
  pthread_mutex_t mu;         /* guards the counts below */
  pthread_cond_t gone;        /* signalled when threads drops to 0 */
  int threads;                /* threads serving cq */
  int idle;                   /* of them, waiting in grpc_completion_queue_next */
  int max_threads;            /* cap */
  int64_t progress_ms;        /* when a thread last took or finished an event */
};

struct rpc_reg_method {
  const struct rpc_service *service; /* owner, for its ctx */
  const struct rpc_method *method;   /* handlers and types */
  char *path;                        /* "/pkg.Service/Method" */
  void *handle;                      /* grpc_server_register_method's handle */
  bool reads_payload;                /* unary request: the core reads the one message for us */
};

struct send_item;

struct rpc_call {
  struct rpc_worker *w;               /* the worker whose queue carries this call's events */
  const struct rpc_reg_method *rm;    /* NULL for a method nobody registered */
  grpc_call *gc;                      /* the core's call */
  gpr_timespec deadline;              /* the client's deadline */
  grpc_metadata_array md;             /* request metadata */
  grpc_call_details details;          /* method and host, for unregistered calls */
  grpc_byte_buffer *payload;          /* the unary request as read by the core */
  grpc_byte_buffer *recv_bb;          /* target of the streaming read in flight */
  int close_cancelled;                /* RECV_CLOSE_ON_SERVER's verdict */
  struct rpc_tag t_new, t_recv, t_send, t_close; /* one tag per kind of batch */
  atomic_int refs;                    /* batches in flight + the handler until it finishes */
  atomic_bool cancelled;              /* cancelled, deadline passed, or transport broke */
  pthread_mutex_t cb_mu;              /* serializes the handler's callbacks */
  pthread_mutex_t mu;                 /* guards everything below */
  pthread_cond_t space;               /* the send queue shrank, or the call ended */
  bool md_sent;                       /* initial metadata went out */
  bool send_inflight;                 /* a send batch is in flight (one at a time) */
  bool finish_req;                    /* the handler called finish */
  bool status_sent;                   /* the status batch was started */
  int fin_code;                       /* CM_* status to send */
  char *fin_msg;                      /* status message, owned */
  uint8_t *fin_details;               /* grpc-status-details-bin value (google.rpc.Status), owned */
  size_t fin_details_len;
  grpc_metadata fin_md;               /* the trailer, alive until the call is freed */
  struct send_item *q_head, *q_tail;  /* messages waiting to be sent */
  struct send_item *inflight;         /* the message in the batch in flight */
  size_t q_bytes;                     /* bytes waiting, capped */
  rpc_writable_fn on_writable;        /* pull callback */
  cm_arena *arena;                    /* dies with the call */
  char *path;                         /* method path, owned */
  char *peer;                         /* gpr-allocated peer string */
  void *data;                         /* handler state */
  void (*data_free)(void *);          /* its destructor */
  int64_t started_ms;                 /* for the debug access log; 0 until the call arrived */
};

/* Requests one call of rm (NULL: any unregistered method) on w's queue. */
int rpc_call_request(struct rpc_worker *w, const struct rpc_reg_method *rm);

/* Monotonic milliseconds. */
int64_t rpc_now_ms(void);

#endif
