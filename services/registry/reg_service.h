/* credito.v1.Registry as an rpc_service over a registry. */
#ifndef CREDITO_REG_SERVICE_H
#define CREDITO_REG_SERVICE_H

#include "registry.h"
#include "rpc.h"

/* Builds the service over r (borrowed; must outlive it). NULL on OOM. Free with
 * reg_service_free() after the server is freed. */
struct rpc_service *reg_service_new(registry *r);
void reg_service_free(struct rpc_service *svc);

#endif
