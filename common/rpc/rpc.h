/* The RPC layer: gRPC servers and clients over the gRPC C core, with protobuf-c messages.
 * A server runs worker threads, each with its own completion queue; every server carries the
 * standard health service and server reflection. A client channel adds deadlines, retries on
 * UNAVAILABLE and round_robin across a comma list of addresses. */
#ifndef CREDITO_RPC_H
#define CREDITO_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "arena.h"
#include "err.h"

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;
typedef struct rpc_channel rpc_channel;
typedef struct rpc_stream rpc_stream;

/* Defaults shared by servers and clients. */
#define RPC_DEFAULT_MAX_MESSAGE (4u * 1024 * 1024) /* bytes per message, each way */
#define RPC_DEFAULT_GRACE_MS 5000                  /* shutdown grace period */
#define RPC_MAX_QUEUED_BYTES (16u * 1024 * 1024)   /* unsent stream bytes per call */

/* Initialises the gRPC core and blocks SIGINT, SIGTERM and SIGPIPE in the calling thread, so every
 * thread created after it inherits the mask and rpc_server_wait() alone receives them. Call once,
 * first thing in main, before any thread starts. */
void rpc_init(void);

/* Releases the gRPC core. Call once at the end of main, after every server and channel is freed. */
void rpc_cleanup(void);

/* ---- Server ---- */

enum rpc_kind {
  RPC_UNARY,         /* one request, one response */
  RPC_SERVER_STREAM, /* one request, a stream of responses */
  RPC_CLIENT_STREAM, /* a stream of requests, one response */
  RPC_BIDI           /* streams both ways */
};

/* Called when a call starts. For RPC_UNARY and RPC_SERVER_STREAM, req is the decoded request,
 * living in the call's arena until the call ends; for the streaming-request kinds it is NULL and
 * messages arrive through on_message. The handler owns the call until it calls rpc_call_finish()
 * (or rpc_call_reply()/rpc_call_fail()), from this thread or any other, now or later. */
typedef void (*rpc_start_fn)(rpc_call *call, const ProtobufCMessage *req);
/* One request message of a streaming-request call; msg lives until the callback returns. */
typedef void (*rpc_message_fn)(rpc_call *call, const ProtobufCMessage *msg);
/* The client closed its side: no more on_message. */
typedef void (*rpc_end_fn)(rpc_call *call);
/* The call was cancelled (client cancel, deadline, shutdown): the handler must still finish it,
 * and writes now fail. Runs on a worker thread at most once per call. */
typedef void (*rpc_cancel_fn)(rpc_call *call);
/* The call's send queue drained: a streaming handler may write its next message (pull-style
 * streaming of large content without holding it in memory). */
typedef void (*rpc_writable_fn)(rpc_call *call);

struct rpc_method {
  const char *name;                          /* short name, "Check" */
  enum rpc_kind kind;                        /* call shape */
  const ProtobufCMessageDescriptor *input;   /* request type */
  const ProtobufCMessageDescriptor *output;  /* response type */
  rpc_start_fn on_start;                     /* required */
  rpc_message_fn on_message;                 /* streaming requests only */
  rpc_end_fn on_end;                         /* streaming requests only */
  rpc_cancel_fn on_cancel;                   /* required for streaming requests and for
                                                handlers that finish later */
};

struct rpc_service {
  const char *name;                   /* fully qualified, "credito.v1.Registry" */
  const struct rpc_method *methods;   /* borrowed; must outlive the server */
  size_t n_methods;                   /* entries in methods */
  void *ctx;                          /* the service's state, see rpc_call_service() */
  void (*on_shutdown)(void *ctx);     /* optional: server is stopping, end long streams */
};

struct rpc_server_opts {
  const char *listen;       /* "HOST:PORT"; port 0 picks a free one */
  int workers;              /* completion queues, each drained by its own threads (more start
                               while handlers block); 0: one per core */
  size_t max_message;       /* cap on a message in either direction; 0: RPC_DEFAULT_MAX_MESSAGE */
  int grace_ms;             /* shutdown grace for in-flight calls; 0: RPC_DEFAULT_GRACE_MS */
  const char *tls_cert;     /* PEM certificate chain file; with tls_key, serve TLS */
  const char *tls_key;      /* PEM private key file */
  const char *tls_client_ca;/* PEM CA file: require and verify client certificates (mTLS) */
  const char *program;      /* name for logs, "credito-registry" */
};

/* Creates a server with health and reflection (v1 and v1alpha) already registered, the health
 * status of every service NOT_SERVING. Returns NULL with err set on failure. Free with
 * rpc_server_free(). opts and the strings in it are copied. */
rpc_server *rpc_server_new(const struct rpc_server_opts *opts, struct cm_error *err);

/* Registers a service before rpc_server_start(); svc is borrowed and must outlive the server. */
int rpc_server_add_service(rpc_server *s, const struct rpc_service *svc, struct cm_error *err);

/* Adds a serialized FileDescriptorSet (protoc --descriptor_set_out --include_imports) that
 * reflection serves. The bytes are borrowed and must outlive the server (embedded arrays do).
 * The set of the Credito protos and the standard gRPC ones is always present. */
int rpc_server_add_descriptors(rpc_server *s, const uint8_t *set, size_t len, struct cm_error *err);

/* Binds and starts the workers; calls are served from here on, but health says NOT_SERVING
 * until rpc_server_ready(). */
int rpc_server_start(rpc_server *s, struct cm_error *err);

/* Marks every service SERVING and logs the "listening" line with the real port: the signal
 * that the program is ready, which scripts and tests wait for. */
void rpc_server_ready(rpc_server *s);

/* Logs the "listening" line without touching health: for a program that answers (health
 * NOT_SERVING, UNAVAILABLE) before it can do its job, such as a predictor with no model yet. */
void rpc_server_listening(rpc_server *s);

/* The bound port after rpc_server_start(), else 0. */
int rpc_server_port(const rpc_server *s);

/* Sets the health status of a service ("" is the whole server). Thread safe; Watch streams hear
 * of the change. Setting "" to serving sets every registered service. */
void rpc_server_set_serving(rpc_server *s, const char *service, bool serving);

/* Blocks until SIGINT or SIGTERM (or rpc_server_stop()), then shuts down gracefully: health turns
 * NOT_SERVING, no new calls are accepted, in-flight calls get the grace period to finish, then the
 * rest are cancelled. Returns 0 after a clean shutdown. */
int rpc_server_wait(rpc_server *s);

/* Makes rpc_server_wait() return as if a SIGTERM had come. Thread safe. */
void rpc_server_stop(rpc_server *s);

/* Frees a server (stopping it first if it runs). NULL is fine. */
void rpc_server_free(rpc_server *s);

/* Builds a service from a protobuf-c service descriptor whose every method answers
 * UNIMPLEMENTED with the message `why`: an API that is declared but not built yet still shows in
 * reflection and fails clearly. Returns NULL on OOM; free with rpc_service_unimplemented_free()
 * after the server is freed. */
struct rpc_service *rpc_service_unimplemented_new(const ProtobufCServiceDescriptor *desc,
                                                  const char *why);
void rpc_service_unimplemented_free(struct rpc_service *svc);

/* ---- A server call, from inside a handler ---- */

/* The service's ctx of the call's service. */
void *rpc_call_service(const rpc_call *call);
/* The method's full path, "/credito.v1.Registry/GetRun". Borrowed. */
const char *rpc_call_method(const rpc_call *call);
/* The call's arena: dies with the call. Responses may be built in it. */
cm_arena *rpc_call_arena(rpc_call *call);
/* Milliseconds left before the client's deadline; INT64_MAX when it set none. */
int64_t rpc_call_remaining_ms(const rpc_call *call);
/* True once the call was cancelled or its deadline passed. */
bool rpc_call_cancelled(const rpc_call *call);
/* The value of request metadata key (lower case), or NULL. Borrowed, lives with the call. */
const char *rpc_call_metadata(rpc_call *call, const char *key);
/* The peer's address, "ipv4:127.0.0.1:5555". Borrowed, lives with the call. */
const char *rpc_call_peer(rpc_call *call);
/* Per-call handler state; free_fn(data) runs when the call is freed. */
void rpc_call_set_data(rpc_call *call, void *data, void (*free_fn)(void *));
void *rpc_call_data(const rpc_call *call);
/* Registers the pull callback for streaming responses (see rpc_writable_fn). */
void rpc_call_on_writable(rpc_call *call, rpc_writable_fn fn);

/* Queues a response message. Returns 0, CM_E_CANCELLED when the call is gone, CM_E_EXHAUSTED
 * when RPC_MAX_QUEUED_BYTES are already waiting, CM_E_TOOLARGE over the message cap. msg is
 * borrowed: it is serialized before the call returns. Thread safe. */
int rpc_call_write(rpc_call *call, const ProtobufCMessage *msg);

/* Like rpc_call_write, but when the queue is full waits up to wait_ms for the client to take
 * what waits (CM_E_DEADLINE after that): backpressure for a handler streaming large content.
 * Blocks the calling thread: call it from a handler's own thread or a worker thread (a blocked
 * worker's queue gets another thread), never with a lock the call's events need. */
int rpc_call_write_wait(rpc_call *call, const ProtobufCMessage *msg, int64_t wait_ms);

/* Ends the call with a status (a CM_E_* code, mapped to gRPC) and a message (may be NULL), after
 * every queued message is sent. The handler must not touch the call afterwards. Thread safe. */
void rpc_call_finish(rpc_call *call, int code, const char *msg);

/* Like rpc_call_finish, with one structured detail (borrowed; for example a
 * credito.v1.BadRequest) in the grpc-status-details-bin trailer, as google.rpc.Status
 * {code, message, details: [Any]}: what grpcio-status and buf read. */
void rpc_call_finish_detail(rpc_call *call, int code, const char *msg,
                            const ProtobufCMessage *detail);

/* Writes resp and finishes OK; if resp cannot be sent, finishes with that error. */
void rpc_call_reply(rpc_call *call, const ProtobufCMessage *resp);

/* Finishes with err's code and message. */
void rpc_call_fail(rpc_call *call, const struct cm_error *err);

/* ---- Client ---- */

struct rpc_channel_opts {
  const char *target;       /* "host:port", "a:p1,b:p2" (IP literals, round_robin), "dns:///n:p" */
  size_t max_message;       /* 0: RPC_DEFAULT_MAX_MESSAGE */
  int max_attempts;         /* retry attempts on UNAVAILABLE, 1 = none; 0: 3 */
  const char *health_service; /* if set, round_robin skips backends not SERVING this service */
  const char *tls_ca;       /* PEM CA file: use TLS and verify the server against it */
  const char *tls_cert;     /* PEM client certificate (mTLS) */
  const char *tls_key;      /* PEM client key (mTLS) */
  const char *tls_server_name; /* override the name checked in the server certificate */
  int64_t keepalive_ms;     /* > 0: HTTP/2 PING every keepalive_ms, idle or not; a connection
                               whose PING is not answered within keepalive_ms is closed, so a
                               server that hangs (SIGSTOP, a partition) leaves round_robin.
                               0: gRPC's default (no keepalive) */
};

/* Creates a channel; connects lazily. Returns NULL with err set. Free with rpc_channel_free(). */
rpc_channel *rpc_channel_new(const struct rpc_channel_opts *opts, struct cm_error *err);
void rpc_channel_free(rpc_channel *ch);

/* One unary call, blocking. method is the full path ("/credito.v1.Registry/GetRun"). The
 * response is unpacked into arena (the caller's) and set in *resp. timeout_ms <= 0 means none.
 * Returns 0, or the call's status as a CM_E_* code with the server's message in err. */
int rpc_unary(rpc_channel *ch, const char *method, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, int64_t timeout_ms, cm_arena *arena,
              ProtobufCMessage **resp, struct cm_error *err);

/* Opens a streaming call (any kind). timeout_ms <= 0 means no deadline. md_key/md_value is one
 * optional metadata pair (both NULL for none). Free with rpc_stream_free(). */
rpc_stream *rpc_stream_open(rpc_channel *ch, const char *method, int64_t timeout_ms,
                            struct cm_error *err);
/* Sends one message (blocking until the transport takes it). */
int rpc_stream_send(rpc_stream *st, const ProtobufCMessage *msg, struct cm_error *err);
/* Half-closes: the server sees the end of the request stream. */
int rpc_stream_close_send(rpc_stream *st, struct cm_error *err);
/* Receives one message into arena. At the end of the stream returns 0 with *out NULL; call
 * rpc_stream_finish() for the status. */
int rpc_stream_recv(rpc_stream *st, const ProtobufCMessageDescriptor *desc, cm_arena *arena,
                    ProtobufCMessage **out, struct cm_error *err);
/* Waits for the call's status: 0 for OK, else the CM_E_* code with the message in err. */
int rpc_stream_finish(rpc_stream *st, struct cm_error *err);
/* Cancels the call; pending and later operations fail with CM_E_CANCELLED. Thread safe. */
void rpc_stream_cancel(rpc_stream *st);
/* Frees the stream, cancelling it if it is still open. NULL is fine. */
void rpc_stream_free(rpc_stream *st);

#endif
