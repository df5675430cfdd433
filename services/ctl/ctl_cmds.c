/* creditoctl's commands: datasets (push writes the bytes, the version and a DVC 3 pointer
 * file), runs, models and aliases, lineage, the audit log. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "buf.h"

#include <openssl/evp.h>

#include "credito/v1/registry.pb-c.h"
#include "ctl.h"
#include "dataset.h"
#include "mem.h"

#define CHUNK (64 * 1024)

/* ---- dataset push ---- */

struct file_facts {
  char md5[33];
  unsigned long long size;
  long long rows;        /* data rows: ARFF after @data, CSV after the header line */
};

/* Reads path once for its md5, size and row count. */
static int file_scan(const char *path, bool arff, struct file_facts *ff, struct cm_error *err)
{
  FILE *f = fopen(path, "rb");
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned char buf[CHUNK], d[EVP_MAX_MD_SIZE];
  char line[4096];
  unsigned dn = 0;
  bool data = !arff;
  long long lines = 0;
  size_t n;
  int rc = 0;

  if (!f || !md || !EVP_DigestInit_ex(md, EVP_md5(), NULL)) {
    rc = cm_error_set(err, CM_E_IO, "cannot read %s: %s", path, strerror(errno));
    goto out;
  }
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
    EVP_DigestUpdate(md, buf, n);
    ff->size += n;
  }
  EVP_DigestFinal_ex(md, d, &dn);
  for (unsigned i = 0; i < dn; i++)
    snprintf(ff->md5 + 2 * i, 3, "%02x", d[i]);
  rewind(f);
  while (fgets(line, sizeof(line), f)) {
    char *p = line;

    while (isspace((unsigned char)*p))
      p++;
    if (!*p || (arff && *p == '%'))
      continue;
    if (arff && !data) {
      data = strncasecmp(p, "@data", 5) == 0;
      continue;
    }
    if (strchr(line, '\n') || feof(f))
      lines++;
  }
  ff->rows = arff ? lines : (lines > 0 ? lines - 1 : 0);
out:
  if (f)
    fclose(f);
  EVP_MD_CTX_free(md);
  return rc;
}

#define DATASET_MAX (256u * 1024 * 1024)

/* Parses the data set (ARFF or CSV) to check every row and learn its schema: the features with
 * their kinds and categories, the target column and its positive label. *schema is a new
 * Schema as JSON; *rows the row count. */
static int file_schema(struct ctl *c, const char *path, const char *format, const char *target,
                       const char *positive, json_t **schema, long long *rows)
{
  struct cm_buf text;
  ds_table *t = NULL;
  json_t *features;
  int tcol = -1, pos = -1, rc;
  FILE *f = fopen(path, "rb");
  size_t n;
  char chunk[CHUNK];

  cm_buf_init(&text, DATASET_MAX);
  if (!f)
    return cm_error_set(&c->err, CM_E_IO, "cannot read %s: %s", path, strerror(errno));
  rc = 0;
  while (!rc && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    rc = cm_buf_add(&text, chunk, n);
  fclose(f);
  if (rc)
    rc = cm_error_set(&c->err, rc, "%s is larger than %u bytes", path, DATASET_MAX);
  if (!rc)
    rc = ds_parse(text.data, text.len, format, NULL, &t, &c->err);
  if (!rc)
    rc = ds_schema_infer_target(t, target, positive, &tcol, &pos, &c->err);
  if (rc)
    goto out;
  features = json_array();
  for (size_t i = 0; i < ds_columns(t); i++) {
    const struct ds_column *col = ds_column_at(t, i);
    json_t *cats;

    if ((int)i == tcol)
      continue;
    cats = json_array();
    for (size_t k = 0; k < col->n_categories; k++)
      json_array_append_new(cats, json_string(col->categories[k]));
    json_array_append_new(features,
                          json_pack("{s:s, s:s, s:o, s:b}", "name", col->name, "kind",
                                    col->kind == DS_NUMERIC ? "FEATURE_KIND_NUMERIC"
                                                            : "FEATURE_KIND_CATEGORICAL",
                                    "categories", cats, "required", 1));
  }
  *schema = json_pack("{s:o, s:s, s:s}", "features", features, "target",
                      ds_column_at(t, (size_t)tcol)->name, "positive_label",
                      ds_column_at(t, (size_t)tcol)->categories[pos]);
  *rows = (long long)ds_rows(t);
out:
  ds_table_free(t);
  cm_buf_cleanup(&text);
  return rc;
}

/* Streams the file to PutDatasetBytes. */
static int bytes_put(struct ctl *c, const char *path, const struct file_facts *ff)
{
  Credito__V1__PutDatasetBytesRequest req = CREDITO__V1__PUT_DATASET_BYTES_REQUEST__INIT;
  Credito__V1__PutDatasetBytesHeader h = CREDITO__V1__PUT_DATASET_BYTES_HEADER__INIT;
  static unsigned char buf[CHUNK];
  rpc_stream *st = ctl_registry(c) ? rpc_stream_open(c->registry,
                                                     "/credito.v1.Registry/PutDatasetBytes",
                                                     c->timeout_ms * 10, &c->err)
                                   : NULL;
  FILE *f = fopen(path, "rb");
  cm_arena *a = cm_arena_new(0);
  ProtobufCMessage *blob = NULL;
  size_t n;
  int rc = st && f && a ? 0 : c->err.code ? c->err.code : cm_error_set(&c->err, CM_E_IO, "cannot read %s", path);

  h.expected_size = (int64_t)ff->size;
  h.expected_md5 = (char *)ff->md5;
  req.part_case = CREDITO__V1__PUT_DATASET_BYTES_REQUEST__PART_HEADER;
  req.header = &h;
  if (!rc)
    rc = rpc_stream_send(st, &req.base, &c->err);
  req.part_case = CREDITO__V1__PUT_DATASET_BYTES_REQUEST__PART_CHUNK;
  while (!rc && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
    req.chunk = (ProtobufCBinaryData){n, buf};
    rc = rpc_stream_send(st, &req.base, &c->err);
  }
  if (!rc)
    rc = rpc_stream_close_send(st, &c->err);
  if (!rc)
    rc = rpc_stream_recv(st, &credito__v1__blob__descriptor, a, &blob, &c->err);
  if (!rc)
    rc = rpc_stream_finish(st, &c->err);
  if (f)
    fclose(f);
  rpc_stream_free(st);
  cm_arena_free(a);
  return rc;
}

/* Writes FILE.dvc, DVC 3's pointer file, so `dvc pull` with the s3://credito remote finds the
 * bytes at files/md5/<2>/<30>. */
static int dvc_write(struct ctl *c, const char *path, const struct file_facts *ff)
{
  char dvc[4096];
  const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  FILE *f;

  snprintf(dvc, sizeof(dvc), "%s.dvc", path);
  f = fopen(dvc, "w");
  if (!f)
    return cm_error_set(&c->err, CM_E_IO, "cannot write %s: %s", dvc, strerror(errno));
  fprintf(f, "outs:\n- md5: %s\n  size: %llu\n  hash: md5\n  path: %s\n", ff->md5, ff->size,
          base);
  return fclose(f) == 0 ? 0 : cm_error_set(&c->err, CM_E_IO, "cannot write %s", dvc);
}

static int dataset_push(struct ctl *c, int argc, char **argv)
{
  struct cm_opt opts[] = {
      {"name", NULL, NULL, "dataset name", false, NULL, false},
      {"format", NULL, NULL, "arff or csv (default: from the file's extension)", false, NULL,
       false},
      {"parent", NULL, NULL, "NAME@MD5 of the dataset this one was derived from", false, NULL,
       false},
      {"target", NULL, NULL, "the target column (default: class, else the last)", false, NULL,
       false},
      {"positive", NULL, NULL, "the positive (predicted) label of the target (default: bad)",
       false, NULL, false},
  };
  struct file_facts ff = {{0}, 0, 0};
  const char *file, *name, *format, *parent;
  json_t *req, *resp = NULL, *schema = NULL;
  int first = 0, rc = ctl_flags(c, opts, 5, argc, argv, &first);

  if (rc)
    return rc;
  if (first >= argc || !(name = cm_opt_get(opts, 5, "name")))
    return cm_error_set(&c->err, CM_E_INVALID, "usage: dataset push FILE --name NAME");
  file = argv[first];
  format = cm_opt_get(opts, 5, "format");
  if (!format)
    format = strlen(file) > 5 && strcasecmp(file + strlen(file) - 5, ".arff") == 0 ? "arff"
                                                                                    : "csv";
  /* Every row is checked before any byte leaves: a bad value is reported by line and column. */
  rc = file_scan(file, strcmp(format, "arff") == 0, &ff, &c->err);
  if (!rc)
    rc = file_schema(c, file, format, cm_opt_get(opts, 5, "target"),
                     cm_opt_get(opts, 5, "positive"), &schema, &ff.rows);
  if (!rc)
    rc = bytes_put(c, file, &ff);
  if (rc) {
    json_decref(schema);
    return rc;
  }
  req = json_pack("{s:s, s:s, s:I, s:s, s:I, s:s, s:o}", "name", name, "md5", ff.md5, "size",
                  (json_int_t)ff.size, "format", format, "rows", (json_int_t)ff.rows,
                  "source_path", strrchr(file, '/') ? strrchr(file, '/') + 1 : file, "schema",
                  schema);
  parent = cm_opt_get(opts, 5, "parent");
  if (parent && strchr(parent, '@'))
    json_object_set_new(req, "parent",
                        json_pack("{s:s#, s:s}", "name", parent, (int)(strchr(parent, '@') - parent),
                                  "md5", strchr(parent, '@') + 1));
  rc = ctl_call_json(c, "CreateDatasetVersion", req, &resp);
  json_decref(req);
  if (!rc)
    rc = dvc_write(c, file, &ff);
  if (!rc && c->json) {
    ctl_print_json(resp);
  } else if (!rc) {
    json_t *rows = json_pack("[O]", resp);
    const char *cols[] = {"NAME=name", "MD5=blob.md5", "SIZE=blob.size", "ROWS=rows",
                          "FORMAT=format", "TARGET=schema.target",
                          "POSITIVE=schema.positive_label"};

    ctl_table(rows, cols, 7);
    printf("wrote %s.dvc\n", file);
    json_decref(rows);
  }
  json_decref(resp);
  return rc;
}

/* Prints a list response's member as a table, or the whole response as JSON. */
static void show_list(struct ctl *c, const json_t *resp, const char *member,
                      const char *const *cols, size_t n)
{
  json_t *rows = json_object_get(resp, member);

  if (c->json) {
    ctl_print_json(resp);
    return;
  }
  rows = rows ? rows : json_array();
  ctl_table(rows, cols, n);
  if (!json_object_get(resp, member))
    json_decref(rows);
}

int ctl_cmd_dataset(struct ctl *c, int argc, char **argv)
{
  static const char *const cols[] = {"NAME=name", "MD5=blob.md5", "SIZE=blob.size", "ROWS=rows",
                                     "FORMAT=format", "PARENT=parent.md5", "CREATED=created_ms"};
  json_t *req, *resp = NULL;
  int rc;

  if (argc >= 2 && strcmp(argv[1], "push") == 0)
    return dataset_push(c, argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "list") == 0) {
    struct cm_opt opts[] = {{"name", NULL, NULL, "only this dataset", false, NULL, false}};

    if ((rc = ctl_flags(c, opts, 1, argc - 1, argv + 1, NULL)))
      return rc;
    req = json_pack("{s:s, s:i}", "name", cm_opt_get(opts, 1, "name") ? cm_opt_get(opts, 1, "name") : "",
                    "page_size", 1000);
    rc = ctl_call_json(c, "ListDatasetVersions", req, &resp);
    if (!rc)
      show_list(c, resp, "versions", cols, 7);
  } else if (argc == 3 && strcmp(argv[1], "show") == 0) {
    const char *at = strchr(argv[2], '@');

    req = json_pack("{s:{s:s#, s:s}}", "dataset", "name", argv[2],
                    (int)(at ? (size_t)(at - argv[2]) : strlen(argv[2])), "md5", at ? at + 1 : "");
    rc = ctl_call_json(c, "GetDatasetVersion", req, &resp);
    if (!rc)
      ctl_print_json(resp);
  } else {
    return cm_error_set(&c->err, CM_E_INVALID, "usage: dataset push|list|show");
  }
  json_decref(req);
  json_decref(resp);
  return rc;
}

int ctl_cmd_runs(struct ctl *c, int argc, char **argv)
{
  static const char *const cols[] = {"RUN=run_id", "EXPERIMENT=experiment_id", "NAME=run_name",
                                     "STATUS=status", "START=start_ms", "END=end_ms"};
  json_t *req, *resp = NULL;
  int rc;

  if (argc >= 2 && strcmp(argv[1], "list") == 0) {
    struct cm_opt opts[] = {{"experiment", NULL, NULL, "experiment id", false, NULL, false},
                            {"status", NULL, NULL, "running|finished|failed|killed", false, NULL,
                             false}};
    char status[64] = "";

    if ((rc = ctl_flags(c, opts, 2, argc - 1, argv + 1, NULL)))
      return rc;
    if (cm_opt_get(opts, 2, "status")) {
      snprintf(status, sizeof(status), "RUN_STATUS_%s", cm_opt_get(opts, 2, "status"));
      for (char *p = status; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    }
    req = json_pack("{s:s, s:s, s:i}", "experiment_id",
                    cm_opt_get(opts, 2, "experiment") ? cm_opt_get(opts, 2, "experiment") : "",
                    "status", status[0] ? status : "RUN_STATUS_UNSPECIFIED", "page_size", 1000);
    rc = ctl_call_json(c, "ListRuns", req, &resp);
    if (!rc)
      show_list(c, resp, "runs", cols, 6);
  } else if (argc >= 3 && strcmp(argv[1], "show") == 0) {
    bool history = argc >= 4 && strcmp(argv[3], "--history") == 0;

    req = json_pack("{s:s, s:b}", "run_id", argv[2], "metric_history", history);
    rc = ctl_call_json(c, "GetRun", req, &resp);
    if (!rc)
      ctl_print_json(resp);
  } else {
    return cm_error_set(&c->err, CM_E_INVALID, "usage: runs list|show RUN_ID");
  }
  json_decref(req);
  json_decref(resp);
  return rc;
}

static int model_alias(struct ctl *c, int argc, char **argv)
{
  json_t *req, *resp = NULL;
  char *end = NULL;
  long long v;
  int rc;

  if (argc == 5 && strcmp(argv[4], "--delete") == 0) {
    req = json_pack("{s:s, s:s}", "name", argv[2], "alias", argv[3]);
    rc = ctl_call_json(c, "DeleteAlias", req, &resp);
  } else if (argc == 5) {
    v = strtoll(argv[4], &end, 10);
    if (*end || v <= 0)
      return cm_error_set(&c->err, CM_E_INVALID, "version '%s' is not a positive number", argv[4]);
    req = json_pack("{s:s, s:s, s:I}", "name", argv[2], "alias", argv[3], "version",
                    (json_int_t)v);
    rc = ctl_call_json(c, "SetAlias", req, &resp);
  } else {
    return cm_error_set(&c->err, CM_E_INVALID, "usage: model alias NAME ALIAS VERSION|--delete");
  }
  if (!rc && c->json)
    ctl_print_json(resp);
  else if (!rc)
    printf("%s@%s: %lld -> %s\n", argv[2], argv[3],
           (long long)json_integer_value(json_object_get(resp, "previous_version")),
           strcmp(argv[4], "--delete") == 0 ? "none" : argv[4]);
  json_decref(req);
  json_decref(resp);
  return rc;
}

int ctl_cmd_model(struct ctl *c, int argc, char **argv)
{
  static const char *const mcols[] = {"NAME=name", "LATEST=latest_version", "UPDATED=updated_ms"};
  static const char *const vcols[] = {"VERSION=version", "RUN=run_id", "SHA256=artifact_sha256",
                                      "ALIASES=aliases", "CREATED=created_ms"};
  json_t *req, *resp = NULL, *vresp = NULL;
  int rc;

  if (argc >= 2 && strcmp(argv[1], "alias") == 0)
    return model_alias(c, argc, argv);
  if (argc >= 2 && strcmp(argv[1], "pull") == 0)
    return ctl_cmd_model_pull(c, argc - 1, argv + 1);
  if (argc == 2 && strcmp(argv[1], "list") == 0) {
    req = json_pack("{s:i}", "page_size", 1000);
    rc = ctl_call_json(c, "ListRegisteredModels", req, &resp);
    if (!rc)
      show_list(c, resp, "models", mcols, 3);
  } else if (argc == 3 && strcmp(argv[1], "show") == 0) {
    req = json_pack("{s:s, s:i}", "name", argv[2], "page_size", 1000);
    rc = ctl_call_json(c, "ListModelVersions", req, &vresp);
    if (!rc)
      show_list(c, vresp, "versions", vcols, 5);
  } else {
    return cm_error_set(&c->err, CM_E_INVALID, "usage: model list|show NAME|alias|pull");
  }
  json_decref(req);
  json_decref(resp);
  json_decref(vresp);
  return rc;
}

/* NAME/N or NAME@ALIAS as a ModelRef. */
static json_t *model_ref(const char *s)
{
  const char *slash = strrchr(s, '/'), *at = strrchr(s, '@');

  if (at)
    return json_pack("{s:s#, s:s}", "name", s, (int)(at - s), "alias", at + 1);
  if (slash)
    return json_pack("{s:s#, s:I}", "name", s, (int)(slash - s), "version",
                     (json_int_t)strtoll(slash + 1, NULL, 10));
  return json_pack("{s:s}", "name", s);
}

int ctl_cmd_lineage(struct ctl *c, int argc, char **argv)
{
  json_t *req, *resp = NULL;
  int rc;

  if (argc != 2)
    return cm_error_set(&c->err, CM_E_INVALID, "usage: lineage NAME/N|NAME@ALIAS");
  req = json_pack("{s:o}", "model", model_ref(argv[1]));
  rc = ctl_call_json(c, "GetLineage", req, &resp);
  if (!rc)
    ctl_print_json(resp);
  json_decref(req);
  json_decref(resp);
  return rc;
}

int ctl_cmd_events(struct ctl *c, int argc, char **argv)
{
  static const char *const cols[] = {"ID=event_id", "TIME=time_ms", "CALLER=caller",
                                     "ACTION=action", "SUBJECT=subject"};
  struct cm_opt opts[] = {{"subject", NULL, NULL, "subject prefix", false, NULL, false}};
  json_t *req, *resp = NULL;
  int rc = ctl_flags(c, opts, 1, argc, argv, NULL);

  if (rc)
    return rc;
  req = json_pack("{s:s, s:i}", "subject_prefix",
                  cm_opt_get(opts, 1, "subject") ? cm_opt_get(opts, 1, "subject") : "", "page_size",
                  1000);
  rc = ctl_call_json(c, "ListEvents", req, &resp);
  if (!rc)
    show_list(c, resp, "events", cols, 5);
  json_decref(req);
  json_decref(resp);
  return rc;
}
