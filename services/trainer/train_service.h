/* service: the credito.v1.Trainer gRPC service. Train runs one training at a time on its own
 * thread and streams its progress; a second concurrent Train gets RESOURCE_EXHAUSTED. */
#ifndef CREDITO_TRAIN_SERVICE_H
#define CREDITO_TRAIN_SERVICE_H

#include "rpc.h"
#include "track.h"

/* Creates the service; opts (and the channel in it) are borrowed and must outlive it. NULL when
 * out of memory. Free with trainer_service_free after the server stopped. */
struct rpc_service *trainer_service_new(const struct trk_opts *opts);

/* Waits for a training still running (it ends once its call is cancelled) and frees svc. */
void trainer_service_free(struct rpc_service *svc);

#endif
