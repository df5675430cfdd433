/* creditoctl: the command line of Credito. Talks to the services over gRPC; tables for people,
 * --json for scripts; exit 0 on success, else 1 with a one-line reason on stderr (2 for a
 * usage error). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credito/v1/registry.pb-c.h"
#include "ctl.h"
#include "pbjson.h"

static const char usage[] =
    "Usage: creditoctl [--registry HOST:PORT] [--trainer HOST:PORT] [--predictor HOST:PORT]\n"
    "                  [--json] [--timeout MS] COMMAND ...\n"
    "\n"
    "  dataset push FILE --name NAME [--format arff|csv] [--parent NAME@MD5]\n"
    "               [--target COL] [--positive LABEL]\n"
    "                                   store FILE's bytes, record a version, write FILE.dvc\n"
    "  dataset list [--name NAME]       dataset versions, newest first\n"
    "  dataset show NAME[@MD5]          one version (the newest without @MD5)\n"
    "  runs list [--experiment ID] [--status running|finished|failed|killed]\n"
    "  runs show RUN_ID [--history]     a run with its params, metrics, tags, inputs\n"
    "  model list                       registered models\n"
    "  model show NAME                  a model and its versions\n"
    "  model alias NAME ALIAS VERSION   point ALIAS at VERSION (--delete to remove it)\n"
    "  model pull NAME/N|NAME@ALIAS --out DIR\n"
    "                                   fetch and verify an artifact into a predictor cache\n"
    "                                   (then: credito-predictor --model REF --cache-dir DIR)\n"
    "  lineage NAME/N | NAME@ALIAS      a version's run, datasets and their parents\n"
    "  events [--subject PREFIX]        the audit log\n"
    "  train DATASET[@MD5] [--model NAME] [--alias ALIAS [--min-auc X]] [--experiment NAME]\n"
    "        [--C C] [--max-iter N] [--tol T] [--unknown-category reject|ignore]\n"
    "        [--test-fraction F (0: fit on every row)] [--cv-folds K] [--seed S]\n"
    "        [--target COL] [--positive LABEL] [--parent NAME/N|NAME@ALIAS]\n"
    "        [--pdo P] [--base-score S] [--base-odds O] [--threshold T] [--tags k=v,...]\n"
    "                                   train, register and (if the gate passes) alias a\n"
    "                                   version; a progress bar, then the result\n"
    "  predict --json '{\"duration\": 12, \"checking_status\": \"<0\", ...}'\n"
    "                                   score one applicant (prints the answer as JSON)\n"
    "  predict --file ROWS.csv [--out SCORES.csv]\n"
    "                                   score a CSV (or ARFF) through PredictBatch; the output\n"
    "                                   keeps the rows' order and adds probability, score,\n"
    "                                   decision, reasons and error\n"
    "  apikey new [--name NAME]         a new gateway API key (shown once) and its NAME:SHA256\n"
    "                                   line for the gateway's key file\n"
    "  apikey hash [--name NAME] < KEY  the key-file line for a key read from stdin\n"
    "  health HOST:PORT [--service S]   exit 0 when a gRPC server's health is SERVING\n"
    "\n"
    "Environment: CREDITO_REGISTRY (default 127.0.0.1:50051), CREDITO_TRAINER (default\n"
    "127.0.0.1:50052), CREDITO_PREDICTOR (default 127.0.0.1:50053).\n";

static const struct {
  const char *name;
  ctl_cmd_fn fn;
} commands[] = {
    {"dataset", ctl_cmd_dataset}, {"runs", ctl_cmd_runs},     {"model", ctl_cmd_model},
    {"lineage", ctl_cmd_lineage}, {"events", ctl_cmd_events},     {"train", ctl_cmd_train},
    {"predict", ctl_cmd_predict}, {"apikey", ctl_cmd_apikey}, {"health", ctl_cmd_health},
};

rpc_channel *ctl_registry(struct ctl *c)
{
  struct rpc_channel_opts o = {0};

  if (!c->registry) {
    o.target = c->registry_addr;
    c->registry = rpc_channel_new(&o, &c->err);
  }
  return c->registry;
}

int ctl_call(struct ctl *c, const char *method, const ProtobufCMessage *req, json_t **resp)
{
  const ProtobufCMethodDescriptor *md =
      protobuf_c_service_descriptor_get_method_by_name(&credito__v1__registry__descriptor, method);
  char path[128];
  cm_arena *a = cm_arena_new(0);
  ProtobufCMessage *out = NULL;
  int rc;

  if (!a || !md || !ctl_registry(c)) {
    cm_arena_free(a);
    return c->err.code ? c->err.code : cm_error_set(&c->err, CM_E_INTERNAL, "no method %s", method);
  }
  snprintf(path, sizeof(path), "/credito.v1.Registry/%s", method);
  rc = rpc_unary(c->registry, path, req, md->output, c->timeout_ms, a, &out, &c->err);
  if (!rc) {
    *resp = pbjson_from_message(out, 0, &c->err);
    rc = *resp ? 0 : c->err.code;
  }
  cm_arena_free(a);
  return rc;
}

int ctl_call_json(struct ctl *c, const char *method, json_t *req, json_t **resp)
{
  const ProtobufCMethodDescriptor *md =
      protobuf_c_service_descriptor_get_method_by_name(&credito__v1__registry__descriptor, method);
  cm_arena *a = cm_arena_new(0);
  ProtobufCMessage *msg = NULL;
  int rc = a && md ? pbjson_to_message(req, md->input, 0, a, &msg, &c->err)
                   : cm_error_set(&c->err, CM_E_INTERNAL, "no method %s", method);

  if (!rc)
    rc = ctl_call(c, method, msg, resp);
  cm_arena_free(a);
  return rc;
}

/* Member at a dotted path, or NULL. */
static const json_t *path_get(const json_t *obj, const char *path)
{
  char buf[128];
  const char *dot = strchr(path, '.');

  if (!dot)
    return json_object_get(obj, path);
  snprintf(buf, sizeof(buf), "%.*s", (int)(dot - path), path);
  return path_get(json_object_get(obj, buf), dot + 1);
}

static void cell(const json_t *v, char *out, size_t n)
{
  if (json_is_string(v))
    snprintf(out, n, "%s", json_string_value(v));
  else if (json_is_integer(v))
    snprintf(out, n, "%lld", (long long)json_integer_value(v));
  else if (json_is_real(v))
    snprintf(out, n, "%.6g", json_real_value(v));
  else if (json_is_boolean(v))
    snprintf(out, n, "%s", json_is_true(v) ? "true" : "false");
  else if (json_is_array(v)) {
    size_t used = 0, i;
    json_t *x;

    out[0] = '\0';
    json_array_foreach(v, i, x) {
      char one[64];

      cell(x, one, sizeof(one));
      used += (size_t)snprintf(out + used, used < n ? n - used : 0, "%s%s", i ? "," : "", one);
    }
  } else
    snprintf(out, n, "-");
}

void ctl_table(const json_t *rows, const char *const *columns, size_t ncolumns)
{
  size_t width[16] = {0}, i, k;
  char text[512];
  json_t *row;

  for (k = 0; k < ncolumns && k < 16; k++)
    width[k] = strcspn(columns[k], "=");
  json_array_foreach(rows, i, row)
    for (k = 0; k < ncolumns && k < 16; k++) {
      cell(path_get(row, strchr(columns[k], '=') + 1), text, sizeof(text));
      if (strlen(text) > width[k])
        width[k] = strlen(text);
    }
  for (k = 0; k < ncolumns && k < 16; k++)
    printf("%-*.*s%s", (int)width[k], (int)strcspn(columns[k], "="), columns[k],
           k + 1 < ncolumns ? "  " : "\n");
  json_array_foreach(rows, i, row)
    for (k = 0; k < ncolumns && k < 16; k++) {
      cell(path_get(row, strchr(columns[k], '=') + 1), text, sizeof(text));
      printf("%-*s%s", (int)width[k], text, k + 1 < ncolumns ? "  " : "\n");
    }
}

void ctl_print_json(const json_t *v)
{
  json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  putchar('\n');
}

int ctl_flags(struct ctl *c, struct cm_opt *opts, size_t n, int argc, char **argv, int *first)
{
  for (size_t i = 0; i < n; i++)
    opts[i].env = NULL;
  return cm_config_parse(opts, n, argc, argv, first, &c->err) == 0 ? 0 : c->err.code ? c->err.code
                                                                                    : CM_E_INVALID;
}

/* Takes the global flags out of argv wherever they stand; returns the new argc. */
static int global_flags(struct ctl *c, int argc, char **argv)
{
  int out = 1;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];

    if (strcmp(a, "--json") == 0 && !(i + 1 < argc && argv[i + 1][0] == '{')) {
      /* "--json {...}" is predict's applicant, not the output switch. */
      c->json = true;
    } else if (strcmp(a, "--predictor") == 0 && i + 1 < argc) {
      c->predictor_addr = argv[++i];
    } else if (strncmp(a, "--predictor=", 12) == 0) {
      c->predictor_addr = a + 12;
    } else if ((strcmp(a, "--registry") == 0 || strcmp(a, "--timeout") == 0 ||
                strcmp(a, "--trainer") == 0) && i + 1 < argc) {
      if (a[2] == 'r')
        c->registry_addr = argv[++i];
      else if (a[3] == 'r')
        c->trainer_addr = argv[++i];
      else
        c->timeout_ms = strtol(argv[++i], NULL, 10);
    } else if (strncmp(a, "--registry=", 11) == 0) {
      c->registry_addr = a + 11;
    } else if (strncmp(a, "--trainer=", 10) == 0) {
      c->trainer_addr = a + 10;
    } else if (strncmp(a, "--timeout=", 10) == 0) {
      c->timeout_ms = strtol(a + 10, NULL, 10);
    } else {
      argv[out++] = argv[i];
    }
  }
  return out;
}

int main(int argc, char **argv)
{
  struct ctl c = {0};
  const char *env = getenv("CREDITO_REGISTRY");
  bool found = false;
  int rc = 0;

  c.registry_addr = env && env[0] ? env : "127.0.0.1:50051";
  env = getenv("CREDITO_TRAINER");
  c.trainer_addr = env && env[0] ? env : "127.0.0.1:50052";
  env = getenv("CREDITO_PREDICTOR");
  c.predictor_addr = env && env[0] ? env : "127.0.0.1:50053";
  c.timeout_ms = 30000;
  argc = global_flags(&c, argc, argv);
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fputs(usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  rpc_init();
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]) && !found; i++) {
    if (strcmp(argv[1], commands[i].name) == 0) {
      found = true;
      rc = commands[i].fn(&c, argc - 1, argv + 1);
    }
  }
  if (!found) {
    fprintf(stderr, "creditoctl: unknown command '%s'\n%s", argv[1], usage);
    rc = 2;
  } else if (rc == CM_E_INVALID && c.err.msg[0] == '\0') {
    fputs(usage, stderr);
    rc = 2;
  } else if (rc) {
    fprintf(stderr, "creditoctl: %s\n", c.err.msg);
    rc = 1;
  }
  rpc_channel_free(c.registry);
  rpc_channel_free(c.predictor);
  rpc_cleanup();
  return rc;
}
