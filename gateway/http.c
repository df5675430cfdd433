/* http: the gateway's HTTP server on libmicrohttpd: a thread pool, caps on connections (in all
 * and per client address), header bytes, body bytes and idle time, the body collected with its
 * cap, one access log line and the metrics per request. */
#include <arpa/inet.h>
#include <sys/socket.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "gw.h"
#include "log.h"
#include "mem.h"

/* Body bytes read and thrown away after the cap before the connection is closed instead. */
#define DISCARD_MAX ((size_t)16 << 20)

/* A connection's request in progress. */
struct conn {
  struct cm_buf body;
  bool too_large;            /* the body passed max_body: 413 */
  size_t discarded;          /* body bytes thrown away after the cap */
  struct timespec t0;        /* first byte handled */
  enum gw_route route;
  int status;
  char key_name[80];
  char ip[64];
  char rid[40];
  struct gw_req req;         /* kept while the answer waits for the predictor */
  struct gw_resp resp;
};

int64_t gw_mono_ms(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static double since(const struct timespec *t0)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

void gw_resp_header(struct gw_resp *r, const char *name, const char *value)
{
  if (r->n_headers >= sizeof r->headers / sizeof r->headers[0])
    return;
  snprintf(r->headers[r->n_headers][0], 64, "%s", name);
  snprintf(r->headers[r->n_headers][1], 64, "%s", value);
  r->n_headers++;
}

void gw_resp_detail(struct gw_resp *r, int status, json_t *detail)
{
  json_decref(r->json);
  r->status = status;
  r->json = json_pack("{s:o}", "detail", detail ? detail : json_null());
}

/* Joins every X-Forwarded-For header (a client may send several) with commas. */
struct xff {
  char buf[2048];
  size_t len;
};

static enum MHD_Result xff_add(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
  struct xff *x = cls;
  (void)kind;
  if (strcasecmp(key, "X-Forwarded-For") == 0 && value) {
    int n = snprintf(x->buf + x->len, sizeof x->buf - x->len, "%s%s", x->len ? "," : "", value);
    if (n > 0 && (size_t)n < sizeof x->buf - x->len)
      x->len += (size_t)n;
  }
  return MHD_YES;
}

/* The request id: the client's X-Request-ID if it is short and plain, else a new one. */
static void request_id(struct gw *g, struct MHD_Connection *c, char out[40])
{
  const char *given = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-ID");
  bool ok = given && given[0] && strlen(given) < 40;
  for (const char *p = given; ok && *p; p++)
    ok = (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
         *p == '-' || *p == '_' || *p == '.';
  if (ok) {
    snprintf(out, 40, "%s", given);
    return;
  }
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  snprintf(out, 40, "gw-%llx-%llx", (unsigned long long)t.tv_sec * 1000000ull +
           (unsigned long long)t.tv_nsec / 1000u,
           (unsigned long long)atomic_fetch_add(&g->next_request, 1) + 1);
}

/* Fills req from the connection. */
static void req_fill(struct gw *g, struct MHD_Connection *c, struct conn *st, const char *url,
                     const char *method, struct gw_req *req)
{
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c,
                                                                MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  struct xff x = {{0}, 0};
  const char *key;

  memset(req, 0, sizeof *req);
  req->method = method;
  req->path = url;
  req->content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
  key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-api-key");
  if (key) {
    size_t len = 0;
    /* The value with its length as received, so a key with trailing bytes is not the key. */
    if (MHD_lookup_connection_value_n(c, MHD_HEADER_KIND, "x-api-key", 9, &key, &len) == MHD_YES)
      req->api_key_len = len;
    else
      req->api_key_len = strlen(key);
    req->api_key = key;
  }
  MHD_get_connection_values(c, MHD_HEADER_KIND, xff_add, &x);
  if (!ci || clientip_resolve(&g->cfg->trusted, ci->client_addr, x.len ? x.buf : NULL,
                              req->client_ip))
    snprintf(req->client_ip, sizeof req->client_ip, "unknown");
  request_id(g, c, req->request_id);
  req->body = st->body.data;
  req->body_len = st->body.len;
  snprintf(st->ip, sizeof st->ip, "%s", req->client_ip);
  snprintf(st->rid, sizeof st->rid, "%s", req->request_id);
}

/* Queues resp on c (and frees its body). */
static enum MHD_Result send_resp(struct MHD_Connection *c, struct conn *st, struct gw_resp *r,
                                 const char *rid)
{
  struct MHD_Response *mr;
  enum MHD_Result ok;
  char *text = NULL;
  size_t len = 0;

  if (r->json) {
    text = json_dumps(r->json, JSON_COMPACT | JSON_ENSURE_ASCII);
    len = text ? strlen(text) : 0;
    mr = MHD_create_response_from_buffer(len, text ? text : (char *)"", MHD_RESPMEM_MUST_COPY);
    free(text);
    if (mr)
      MHD_add_response_header(mr, "Content-Type", "application/json");
  } else {
    mr = MHD_create_response_from_buffer(r->text.len, r->text.data ? r->text.data : (char *)"",
                                         MHD_RESPMEM_MUST_COPY);
    if (mr && r->content_type)
      MHD_add_response_header(mr, "Content-Type", r->content_type);
  }
  if (!mr)
    return MHD_NO;
  for (size_t i = 0; i < r->n_headers; i++)
    MHD_add_response_header(mr, r->headers[i][0], r->headers[i][1]);
  if (rid && rid[0])
    MHD_add_response_header(mr, "X-Request-ID", rid);
  st->status = r->status;
  ok = MHD_queue_response(c, (unsigned)r->status, mr);
  MHD_destroy_response(mr);
  json_decref(r->json);
  cm_buf_cleanup(&r->text);
  r->json = NULL;
  return ok;
}

static enum MHD_Result too_large(struct gw *g, struct MHD_Connection *c, struct conn *st)
{
  struct gw_resp r = {0};
  char msg[96];
  cm_buf_init(&r.text, 0);
  snprintf(msg, sizeof msg, "Request body too large: at most %zu bytes", g->cfg->max_body);
  gw_resp_detail(&r, 413, json_string(msg));
  st->route = GW_ROUTE_OTHER;
  return send_resp(c, st, &r, NULL);
}

static void track_mark(struct gw *g, struct MHD_Connection *c, bool reading);

/* The batcher's signal that a suspended request has its answer (any thread). */
static void resume_conn(void *ctx)
{
  MHD_resume_connection(ctx);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
  struct gw *g = cls;
  struct conn *st = *con_cls;
  (void)version;

  if (!st) {
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    st = cm_calloc(1, sizeof *st);
    if (!st)
      return MHD_NO;
    clock_gettime(CLOCK_MONOTONIC, &st->t0);
    cm_buf_init(&st->body, g->cfg->max_body);
    st->route = GW_ROUTE_OTHER;
    *con_cls = st;
    /* A declared length over the cap is refused before a byte of the body is read. */
    if (cl && strtoull(cl, NULL, 10) > g->cfg->max_body)
      return too_large(g, c, st);
    return MHD_YES;
  }
  if (*upload_data_size) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    /* Over the cap (a chunked body declares no length), the rest is discarded unstored and the
     * 413 goes out when the body ends (libmicrohttpd takes no response mid-body); a body that
     * does not end is cut by the watchdog's deadline, and one past DISCARD_MAX by closing. */
    if (st->too_large) {
      st->discarded += n;
      return st->discarded > DISCARD_MAX ? MHD_NO : MHD_YES;
    }
    if (cm_buf_add(&st->body, upload_data, n)) {
      st->too_large = true;
      cm_buf_cleanup(&st->body);
    }
    return MHD_YES;
  }
  if (st->req.call) { /* resumed: the predictor answered */
    gw_route_finish(g, &st->req, &st->resp);
    return send_resp(c, st, &st->resp, st->req.request_id);
  }
  if (st->too_large)
    return too_large(g, c, st);
  track_mark(g, c, false);
  cm_buf_init(&st->resp.text, 1 << 20);
  st->resp.status = 500;
  req_fill(g, c, st, url, method, &st->req);
  st->route = gw_route_request(g, &st->req, &st->resp);
  if (st->req.key_name)
    snprintf(st->key_name, sizeof st->key_name, "%s", st->req.key_name);
  if (st->req.call) {
    /* Suspended first, so an answer that comes at once still finds it suspended. */
    MHD_suspend_connection(c);
    gw_call_submit(g, st->req.call, resume_conn, c);
    return MHD_YES;
  }
  return send_resp(c, st, &st->resp, st->req.request_id);
}

/* ---- The watchdog: a request must arrive whole within --idle-timeout of the connection's
 * accept (or of the previous answer on a kept-alive connection). libmicrohttpd's own timeout
 * counts only silence, so a client trickling a byte at a time (slowloris) would hold the
 * connection forever; the watchdog shuts such sockets down. ---- */

static struct gw_track *track_of(struct MHD_Connection *c)
{
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c,
                                                                MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

/* The request is complete (reading false) or a new one starts (reading true). */
static void track_mark(struct gw *g, struct MHD_Connection *c, bool reading)
{
  struct gw_track *t = track_of(c);
  if (!t)
    return;
  pthread_mutex_lock(&g->track_mu);
  t->reading = reading;
  t->since_ms = gw_mono_ms();
  pthread_mutex_unlock(&g->track_mu);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
  struct gw *g = cls;
  struct gw_track *t = *socket_context;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
        c, MHD_CONNECTION_INFO_CONNECTION_FD);
    t = ci ? cm_calloc(1, sizeof *t) : NULL;
    if (!t)
      return;
    t->fd = ci->connect_fd;
    t->since_ms = gw_mono_ms();
    t->reading = true;
    pthread_mutex_lock(&g->track_mu);
    t->next = g->tracked;
    if (g->tracked)
      g->tracked->prev = t;
    g->tracked = t;
    pthread_mutex_unlock(&g->track_mu);
    *socket_context = t;
    return;
  }
  if (!t)
    return;
  /* Unlisted before libmicrohttpd closes the socket, so the watchdog never touches a reused fd. */
  pthread_mutex_lock(&g->track_mu);
  if (t->prev)
    t->prev->next = t->next;
  else
    g->tracked = t->next;
  if (t->next)
    t->next->prev = t->prev;
  pthread_mutex_unlock(&g->track_mu);
  cm_free(t);
  *socket_context = NULL;
}

static void *watchdog_main(void *arg)
{
  struct gw *g = arg;
  int64_t limit = (int64_t)g->cfg->idle_timeout_s * 1000;
  struct timespec tick = {0, 200 * 1000000L};

  for (;;) {
    int64_t now = gw_mono_ms();
    pthread_mutex_lock(&g->track_mu);
    if (g->stopping) {
      pthread_mutex_unlock(&g->track_mu);
      return NULL;
    }
    for (struct gw_track *t = g->tracked; t; t = t->next) {
      if (t->reading && now - t->since_ms > limit) {
        shutdown(t->fd, SHUT_RDWR);
        t->reading = false; /* once */
        cm_log(CM_LOG_INFO, "closed a connection too slow to send its request", "ms=%lld",
               (long long)(now - t->since_ms));
      }
    }
    pthread_mutex_unlock(&g->track_mu);
    nanosleep(&tick, NULL);
  }
}

/* After the response went out (or the connection broke): metrics and the access log line. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
  struct gw *g = cls;
  struct conn *st = *con_cls;
  double s;
  /* A kept-alive connection now waits for its next request: the clock starts again. */
  track_mark(g, c, true);
  if (!st)
    return;
  s = since(&st->t0);
  if (st->status) {
    gw_metrics_request(g->metrics, st->route, st->status, s);
    cm_log(CM_LOG_INFO, "request", "id=%s route=%s status=%d ms=%f key=%s ip=%s", st->rid,
           gw_route_name(st->route), st->status, s * 1e3, st->key_name[0] ? st->key_name : "-",
           st->ip[0] ? st->ip : "-");
  } else if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
    cm_log(CM_LOG_DEBUG, "connection ended before a response", "reason=%d", (int)toe);
  }
  gw_call_free(st->req.call); /* a request whose answer was never sent */
  json_decref(st->resp.json);
  cm_buf_cleanup(&st->resp.text);
  cm_buf_cleanup(&st->body);
  cm_free(st);
  *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
  char msg[256];
  (void)cls;
  vsnprintf(msg, sizeof msg, fmt, ap);
  msg[strcspn(msg, "\n")] = '\0';
  cm_log(CM_LOG_DEBUG, "http", "detail=%s", msg);
}

int gw_http_start(struct gw *g, struct cm_error *err)
{
  const struct gw_config *cfg = g->cfg;
  struct sockaddr_storage ss;
  struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                   MHD_ALLOW_SUSPEND_RESUME;
  struct MHD_Daemon *d;
  const union MHD_DaemonInfo *di;

  memset(&ss, 0, sizeof ss);
  if (inet_pton(AF_INET, cfg->listen_host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)cfg->port);
  } else if (inet_pton(AF_INET6, cfg->listen_host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)cfg->port);
    flags |= MHD_USE_IPv6;
  } else {
    return cm_error_set(err, CM_E_INVALID, "--listen: '%s' is not an IP address",
                        cfg->listen_host);
  }
  /* The predictor calls first: a request may come the moment the daemon listens. */
  if (gw_batcher_start(g, cfg->upstream_calls, cfg->max_batch, err))
    return err->code;
  d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, g,
                       MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                       MHD_OPTION_THREAD_POOL_SIZE, cfg->threads,
                       MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
                       MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_per_ip,
                       MHD_OPTION_CONNECTION_TIMEOUT, cfg->idle_timeout_s,
                       MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->max_header_bytes,
                       MHD_OPTION_NOTIFY_COMPLETED, on_completed, g,
                       MHD_OPTION_NOTIFY_CONNECTION, on_connection, g,
                       MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                       MHD_OPTION_END);
  if (!d) {
    int e = errno;
    gw_batcher_free(g);
    return cm_error_set(err, CM_E_UNAVAILABLE, "cannot listen on %s:%d: %s", cfg->listen_host,
                        cfg->port, strerror(e));
  }
  di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  g->bound_port = di ? di->port : cfg->port;
  g->daemon = d;
  g->watchdog_on = pthread_create(&g->watchdog, NULL, watchdog_main, g) == 0;
  if (!g->watchdog_on)
    cm_log(CM_LOG_WARN, "no watchdog thread: slow clients are only cut by the idle timeout", "");
  return 0;
}

void gw_http_stop(struct gw *g)
{
  pthread_mutex_lock(&g->track_mu);
  g->stopping = true;
  pthread_mutex_unlock(&g->track_mu);
  if (g->watchdog_on)
    pthread_join(g->watchdog, NULL);
  g->watchdog_on = false;
  /* Requests waiting for the predictor get their answers (their connections resumed) before
   * libmicrohttpd closes the connections, so no answer lands on a freed connection. */
  gw_batcher_stop(g);
  if (g->daemon)
    MHD_stop_daemon(g->daemon);
  g->daemon = NULL;
  gw_batcher_free(g);
}
