/* creditoctl's shared pieces: the connection to the services, output as tables or JSON, and
 * the command table. */
#ifndef CREDITO_CTL_H
#define CREDITO_CTL_H

#include <stdbool.h>

#include <jansson.h>

#include "config.h"
#include "rpc.h"

struct ctl {
  rpc_channel *registry;  /* connected lazily by ctl_registry() */
  const char *registry_addr;
  const char *trainer_addr; /* --trainer / CREDITO_TRAINER */
  rpc_channel *predictor;   /* connected on first use */
  const char *predictor_addr; /* --predictor / CREDITO_PREDICTOR */
  bool json;              /* --json: print responses as JSON */
  long timeout_ms;        /* per call */
  struct cm_error err;    /* the failing command's error */
};

/* One command: argv holds its positional arguments and flags (after the command words). */
typedef int (*ctl_cmd_fn)(struct ctl *c, int argc, char **argv);

/* The registry channel, created on first use; NULL with c->err set. */
rpc_channel *ctl_registry(struct ctl *c);

/* Calls a Registry method; *resp becomes the response as JSON (caller decrefs). */
int ctl_call(struct ctl *c, const char *method, const ProtobufCMessage *req, json_t **resp);

/* Same, with the request given as JSON text of the request message. */
int ctl_call_json(struct ctl *c, const char *method, json_t *req, json_t **resp);

/* Prints rows (an array of objects) as a table of the given columns: each column is
 * "HEADER=path" where path is a member name, or a.b for a nested member. */
void ctl_table(const json_t *rows, const char *const *columns, size_t ncolumns);

/* Prints v as indented JSON on stdout. */
void ctl_print_json(const json_t *v);

/* Parses a command's flags into opts (no environment twins); positional arguments end up in
 * argv[*first..]. Returns 0, or CM_E_INVALID with c->err set. */
int ctl_flags(struct ctl *c, struct cm_opt *opts, size_t n, int argc, char **argv, int *first);

int ctl_cmd_dataset(struct ctl *c, int argc, char **argv);
int ctl_cmd_runs(struct ctl *c, int argc, char **argv);
int ctl_cmd_model(struct ctl *c, int argc, char **argv);
int ctl_cmd_lineage(struct ctl *c, int argc, char **argv);
int ctl_cmd_events(struct ctl *c, int argc, char **argv);
int ctl_cmd_train(struct ctl *c, int argc, char **argv);
int ctl_cmd_predict(struct ctl *c, int argc, char **argv);
int ctl_cmd_apikey(struct ctl *c, int argc, char **argv);
int ctl_cmd_model_pull(struct ctl *c, int argc, char **argv);
int ctl_cmd_health(struct ctl *c, int argc, char **argv);

#endif
