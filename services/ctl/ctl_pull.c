/* ctl_pull: `creditoctl model pull NAME/N|NAME@ALIAS --out DIR` fetches a version's artifact,
 * refuses it unless its SHA-256 matches the version record and it loads as a model, and writes
 * it in the predictor's cache layout (<sha256>.pb and <md5 of the ref>.ref, the record), so a
 * predictor started with --model REF --cache-dir DIR serves exactly that version even with the
 * registry unreachable (container images bake models this way). Also `creditoctl health`. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "ctl.h"
#include "grpc/health/v1/health.pb-c.h"
#include "model.h"
#include "regclient.h"

/* Largest artifact pulled. */
#define PULL_MAX ((size_t)64 << 20)

static int write_file(struct ctl *c, const char *dir, const char *name, const void *p, size_t n)
{
  char path[4096];
  FILE *f;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
    return cm_error_set(&c->err, CM_E_IO, "cannot write %s", path);
  return 0;
}

/* The version record for "name/N" or "name@alias" (in a). */
static int resolve(struct ctl *c, const struct regc *r, const char *ref, cm_arena *a,
                   Credito__V1__ModelVersion **v)
{
  Credito__V1__ResolveModelRequest req = CREDITO__V1__RESOLVE_MODEL_REQUEST__INIT;
  Credito__V1__ModelRef mr = CREDITO__V1__MODEL_REF__INIT;
  const char *sep = strpbrk(ref, "/@");
  char *end = NULL;

  if (!sep || sep == ref || !sep[1])
    return cm_error_set(&c->err, CM_E_INVALID, "want NAME/N or NAME@ALIAS, not '%s'", ref);
  mr.name = cm_arena_strndup(a, ref, (size_t)(sep - ref));
  if (*sep == '/') {
    mr.selector_case = CREDITO__V1__MODEL_REF__SELECTOR_VERSION;
    mr.version = strtoll(sep + 1, &end, 10);
    if (*end || mr.version < 1)
      return cm_error_set(&c->err, CM_E_INVALID, "'%s': the version must be a number", ref);
  } else {
    mr.selector_case = CREDITO__V1__MODEL_REF__SELECTOR_ALIAS;
    mr.alias = (char *)sep + 1;
  }
  req.model = &mr;
  return regc_call(r, "ResolveModel", &req.base, &credito__v1__model_version__descriptor, a, v,
                   &c->err);
}

static int model_pull(struct ctl *c, const char *ref, const char *dir)
{
  struct regc r = {ctl_registry(c), c->timeout_ms};
  Credito__V1__ModelVersion *v = NULL;
  cm_arena *a = cm_arena_new(0);
  struct cm_buf art;
  md_model *m = NULL;
  uint8_t *rec = NULL;
  char sha[65] = "", md5[33], name[100];
  size_t rlen;
  int rc = a && r.ch ? 0 : c->err.code ? c->err.code : CM_E_NOMEM;

  cm_buf_init(&art, PULL_MAX);
  rc = rc ? rc : resolve(c, &r, ref, a, &v);
  rc = rc ? rc : regc_artifact_get(&r, v->artifact_key, PULL_MAX, &art, &c->err);
  if (!rc && (md_artifact_sha256((const uint8_t *)(art.data ? art.data : ""), art.len, sha) ||
              strcmp(sha, v->artifact_sha256) != 0))
    rc = cm_error_set(&c->err, CM_E_CORRUPT, "%s: artifact sha256 %s does not match the version "
                      "record's %s; not written", ref, sha, v->artifact_sha256);
  rc = rc ? rc : md_model_load((const uint8_t *)art.data, art.len, &m, &c->err);
  md_model_free(m);
  if (!rc && mkdir(dir, 0755) && errno != EEXIST)
    rc = cm_error_set(&c->err, CM_E_IO, "cannot create %s: %s", dir, strerror(errno));
  snprintf(name, sizeof name, "%s.pb", sha);
  rc = rc ? rc : write_file(c, dir, name, art.data, art.len);
  rlen = rc ? 0 : credito__v1__model_version__get_packed_size(v);
  rec = rc ? NULL : cm_arena_alloc(a, rlen + 1);
  if (!rc && !rec)
    rc = cm_error_set(&c->err, CM_E_NOMEM, "out of memory");
  if (!rc) {
    credito__v1__model_version__pack(v, rec);
    regc_md5_hex(ref, strlen(ref), md5);
    snprintf(name, sizeof name, "%s.ref", md5);
    rc = write_file(c, dir, name, rec, rlen);
  }
  if (!rc)
    printf("%s/%lld sha256 %s -> %s (predictor: --model %s --cache-dir %s)\n", v->name,
           (long long)v->version, sha, dir, ref, dir);
  cm_buf_cleanup(&art);
  cm_arena_free(a);
  return rc;
}

int ctl_cmd_model_pull(struct ctl *c, int argc, char **argv)
{
  struct cm_opt o[] = {{"out", NULL, NULL, "", false, NULL, false}};
  int first = 0, rc = ctl_flags(c, o, 1, argc, argv, &first);
  if (rc)
    return rc;
  if (first != argc - 1 || !o[0].value)
    return cm_error_set(&c->err, CM_E_INVALID, "usage: model pull NAME/N|NAME@ALIAS --out DIR");
  return model_pull(c, argv[first], o[0].value);
}

/* `creditoctl health HOST:PORT [--service NAME]`: exit 0 when the server's health says SERVING
 * (for container health checks; Debian has no grpc_health_probe). */
int ctl_cmd_health(struct ctl *c, int argc, char **argv)
{
  struct cm_opt o[] = {{"service", NULL, "", "", false, NULL, false}};
  struct rpc_channel_opts co = {0};
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  Grpc__Health__V1__HealthCheckResponse *resp = NULL;
  rpc_channel *ch = NULL;
  cm_arena *a = NULL;
  int first = 0, rc = ctl_flags(c, o, 1, argc, argv, &first);

  if (rc)
    return rc;
  if (first != argc - 1)
    return cm_error_set(&c->err, CM_E_INVALID, "usage: health HOST:PORT [--service NAME]");
  req.service = (char *)o[0].value;
  co.target = argv[first];
  ch = rpc_channel_new(&co, &c->err);
  a = cm_arena_new(0);
  rc = ch && a ? rpc_unary(ch, "/grpc.health.v1.Health/Check", &req.base,
                           &grpc__health__v1__health_check_response__descriptor, c->timeout_ms, a,
                           (ProtobufCMessage **)&resp, &c->err)
               : c->err.code ? c->err.code : CM_E_NOMEM;
  if (!rc && resp->status != GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING)
    rc = cm_error_set(&c->err, CM_E_UNAVAILABLE, "%s: not serving", argv[first]);
  if (!rc)
    printf("SERVING\n");
  rpc_channel_free(ch);
  cm_arena_free(a);
  return rc;
}
