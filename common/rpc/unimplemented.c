/* A service whose methods all answer UNIMPLEMENTED: for APIs declared in the protos before the
 * change that builds them lands. */
#include <string.h>

#include "mem.h"
#include "rpc.h"

struct unimpl {
  struct rpc_service svc;     /* first, so the service pointer is the struct's */
  struct rpc_method *methods; /* one per descriptor method */
  char *why;                  /* the status message */
};

static void unimpl_start(rpc_call *call, const ProtobufCMessage *req)
{
  const struct unimpl *u = rpc_call_service(call);

  (void)req;
  rpc_call_finish(call, CM_E_UNIMPLEMENTED, u->why);
}

static void unimpl_cancel(rpc_call *call)
{
  (void)call; /* unimpl_start already finished it */
}

struct rpc_service *rpc_service_unimplemented_new(const ProtobufCServiceDescriptor *desc,
                                                  const char *why)
{
  struct unimpl *u = cm_calloc(1, sizeof(*u));

  if (!u)
    return NULL;
  u->methods = cm_calloc(desc->n_methods ? desc->n_methods : 1, sizeof(*u->methods));
  u->why = cm_strdup(why);
  if (!u->methods || !u->why) {
    rpc_service_unimplemented_free(&u->svc);
    return NULL;
  }
  for (unsigned i = 0; i < desc->n_methods; i++) {
    struct rpc_method *m = &u->methods[i];

    /* Streaming kind: the core then leaves the request unread, whatever the method's shape. */
    m->name = desc->methods[i].name;
    m->kind = RPC_CLIENT_STREAM;
    m->input = desc->methods[i].input;
    m->output = desc->methods[i].output;
    m->on_start = unimpl_start;
    m->on_cancel = unimpl_cancel;
  }
  u->svc.name = desc->name;
  u->svc.methods = u->methods;
  u->svc.n_methods = desc->n_methods;
  u->svc.ctx = u;
  return &u->svc;
}

void rpc_service_unimplemented_free(struct rpc_service *svc)
{
  struct unimpl *u = (struct unimpl *)svc;

  if (!u)
    return;
  cm_free(u->methods);
  cm_free(u->why);
  cm_free(u);
}
