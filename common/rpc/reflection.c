/* Server reflection (grpc.reflection.v1 and v1alpha, identical on the wire): lists the
 * server's services and serves the FileDescriptorProtos of the embedded descriptor sets, each
 * with its transitive imports, so grpcurl and buf curl need no .proto files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "mem.h"
#include "rpc_int.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest refl_req;
typedef Grpc__Reflection__V1__ServerReflectionResponse refl_resp;

struct refl_file {
  char *name;            /* "credito/v1/registry.proto", owned */
  const uint8_t *bytes;  /* serialized FileDescriptorProto, borrowed from the set */
  size_t len;
  size_t *deps;          /* indexes of imported files (resolved lazily), owned */
  char **dep_names;      /* import names, owned */
  size_t ndeps;
};

struct refl_sym {
  char *name;            /* fully qualified, no leading dot, owned */
  size_t file;           /* index into files */
};

struct rpc_reflection {
  struct refl_file *files;
  size_t nfiles, capfiles;
  struct refl_sym *syms; /* sorted by name after each set is added */
  size_t nsyms, capsyms;
  char **services;       /* names for ListServices, owned */
  size_t nservices, capservices;
  struct rpc_service v1, v1alpha;
};

static void refl_start(rpc_call *call, const ProtobufCMessage *req);
static void refl_message(rpc_call *call, const ProtobufCMessage *msg);
static void refl_end(rpc_call *call);
static void refl_cancel(rpc_call *call);

static const struct rpc_method refl_methods[] = {
    {"ServerReflectionInfo", RPC_BIDI, &grpc__reflection__v1__server_reflection_request__descriptor,
     &grpc__reflection__v1__server_reflection_response__descriptor, refl_start, refl_message,
     refl_end, refl_cancel},
};

/* Grows *arr (of elem-sized items) to hold one more. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
  void *p;
  size_t ncap;

  if (n < *cap)
    return 0;
  ncap = *cap ? *cap * 2 : 16;
  p = cm_realloc(*arr, ncap * elem);
  if (!p)
    return CM_E_NOMEM;
  *arr = p;
  *cap = ncap;
  return 0;
}

struct rpc_reflection *rpc_reflection_new(void)
{
  struct rpc_reflection *r = cm_calloc(1, sizeof(*r));
  size_t n = sizeof(refl_methods) / sizeof(refl_methods[0]);

  if (!r)
    return NULL;
  r->v1 = (struct rpc_service){"grpc.reflection.v1.ServerReflection", refl_methods, n, r, NULL};
  r->v1alpha =
      (struct rpc_service){"grpc.reflection.v1alpha.ServerReflection", refl_methods, n, r, NULL};
  return r;
}

void rpc_reflection_free(struct rpc_reflection *r)
{
  if (!r)
    return;
  for (size_t i = 0; i < r->nfiles; i++) {
    cm_free(r->files[i].name);
    for (size_t d = 0; d < r->files[i].ndeps; d++)
      cm_free(r->files[i].dep_names[d]);
    cm_free(r->files[i].dep_names);
    cm_free(r->files[i].deps);
  }
  for (size_t i = 0; i < r->nsyms; i++)
    cm_free(r->syms[i].name);
  for (size_t i = 0; i < r->nservices; i++)
    cm_free(r->services[i]);
  cm_free(r->files);
  cm_free(r->syms);
  cm_free(r->services);
  cm_free(r);
}

const struct rpc_service *rpc_reflection_service_v1(struct rpc_reflection *r)
{
  return &r->v1;
}

const struct rpc_service *rpc_reflection_service_v1alpha(struct rpc_reflection *r)
{
  return &r->v1alpha;
}

int rpc_reflection_add_service(struct rpc_reflection *r, const char *name)
{
  if (grow((void **)&r->services, &r->capservices, r->nservices, sizeof(char *)))
    return CM_E_NOMEM;
  r->services[r->nservices] = cm_strdup(name);
  if (!r->services[r->nservices])
    return CM_E_NOMEM;
  r->nservices++;
  return 0;
}

/* ---- indexing ---- */

static int sym_add(struct rpc_reflection *r, const char *prefix, const char *name, size_t file)
{
  size_t n = strlen(prefix) + strlen(name) + 2;
  char *full;

  if (grow((void **)&r->syms, &r->capsyms, r->nsyms, sizeof(*r->syms)))
    return CM_E_NOMEM;
  full = cm_malloc(n);
  if (!full)
    return CM_E_NOMEM;
  if (prefix[0])
    snprintf(full, n, "%s.%s", prefix, name);
  else
    snprintf(full, n, "%s", name);
  r->syms[r->nsyms].name = full;
  r->syms[r->nsyms].file = file;
  r->nsyms++;
  return 0;
}

static int index_message(struct rpc_reflection *r, const char *prefix,
                         const Google__Protobuf__DescriptorProto *m, size_t file)
{
  char *full;
  int rc = sym_add(r, prefix, m->name, file);

  if (rc)
    return rc;
  full = r->syms[r->nsyms - 1].name;
  for (size_t i = 0; i < m->n_nested_type && !rc; i++)
    rc = index_message(r, full, m->nested_type[i], file);
  for (size_t i = 0; i < m->n_enum_type && !rc; i++)
    rc = sym_add(r, full, m->enum_type[i]->name, file);
  return rc;
}

static int index_file(struct rpc_reflection *r, const Google__Protobuf__FileDescriptorProto *fd,
                      size_t file)
{
  const char *pkg = fd->package ? fd->package : "";
  int rc = 0;

  for (size_t i = 0; i < fd->n_message_type && !rc; i++)
    rc = index_message(r, pkg, fd->message_type[i], file);
  for (size_t i = 0; i < fd->n_enum_type && !rc; i++)
    rc = sym_add(r, pkg, fd->enum_type[i]->name, file);
  for (size_t i = 0; i < fd->n_service && !rc; i++) {
    const Google__Protobuf__ServiceDescriptorProto *s = fd->service[i];

    rc = sym_add(r, pkg, s->name, file);
    for (size_t k = 0; k < s->n_method && !rc; k++)
      rc = sym_add(r, r->syms[r->nsyms - 1 - k].name, s->method[k]->name, file);
  }
  return rc;
}

static int file_find(const struct rpc_reflection *r, const char *name)
{
  for (size_t i = 0; i < r->nfiles; i++)
    if (strcmp(r->files[i].name, name) == 0)
      return (int)i;
  return -1;
}

/* Adds one serialized FileDescriptorProto. */
static int add_file(struct rpc_reflection *r, const uint8_t *p, size_t len, struct cm_error *err)
{
  Google__Protobuf__FileDescriptorProto *fd =
      google__protobuf__file_descriptor_proto__unpack(NULL, len, p);
  struct refl_file *f;
  int rc = 0;

  if (!fd || !fd->name)
    rc = cm_error_set(err, CM_E_CORRUPT, "descriptor set holds an undecodable file");
  else if (file_find(r, fd->name) >= 0)
    goto out;
  else if (grow((void **)&r->files, &r->capfiles, r->nfiles, sizeof(*r->files)))
    rc = cm_error_set(err, CM_E_NOMEM, "out of memory");
  if (rc)
    goto out;
  f = &r->files[r->nfiles];
  memset(f, 0, sizeof(*f));
  f->bytes = p;
  f->len = len;
  f->name = cm_strdup(fd->name);
  f->dep_names = cm_calloc(fd->n_dependency + 1, sizeof(char *));
  f->deps = cm_calloc(fd->n_dependency + 1, sizeof(size_t));
  r->nfiles++; /* counted now so free releases what was allocated */
  if (!f->name || !f->dep_names || !f->deps) {
    rc = cm_error_set(err, CM_E_NOMEM, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < fd->n_dependency; i++) {
    f->dep_names[i] = cm_strdup(fd->dependency[i]);
    if (!f->dep_names[i]) {
      rc = cm_error_set(err, CM_E_NOMEM, "out of memory");
      goto out;
    }
    f->ndeps++;
  }
  if (index_file(r, fd, r->nfiles - 1))
    rc = cm_error_set(err, CM_E_NOMEM, "out of memory");
out:
  if (fd)
    google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
  return rc;
}

/* Reads a base-128 varint; returns bytes used or 0 on malformed input. */
static size_t varint(const uint8_t *p, size_t len, uint64_t *out)
{
  uint64_t v = 0;

  for (size_t i = 0; i < len && i < 10; i++) {
    v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    if (!(p[i] & 0x80)) {
      *out = v;
      return i + 1;
    }
  }
  return 0;
}

static int sym_cmp(const void *a, const void *b)
{
  return strcmp(((const struct refl_sym *)a)->name, ((const struct refl_sym *)b)->name);
}

int rpc_reflection_add_set(struct rpc_reflection *r, const uint8_t *set, size_t len,
                           struct cm_error *err)
{
  size_t off = 0;

  /* FileDescriptorSet is `repeated FileDescriptorProto file = 1`: walk it by hand to keep each
   * file's original bytes, which is what reflection must send. */
  while (off < len) {
    uint64_t tag, flen;
    size_t n = varint(set + off, len - off, &tag);
    size_t m = n ? varint(set + off + n, len - off - n, &flen) : 0;
    int rc;

    if (!n || !m || tag != ((1 << 3) | 2) || flen > len - off - n - m)
      return cm_error_set(err, CM_E_CORRUPT, "malformed descriptor set at byte %zu", off);
    off += n + m;
    rc = add_file(r, set + off, (size_t)flen, err);
    if (rc)
      return rc;
    off += (size_t)flen;
  }
  qsort(r->syms, r->nsyms, sizeof(*r->syms), sym_cmp);
  return 0;
}

/* ---- answering ---- */

static int sym_file(const struct rpc_reflection *r, const char *name)
{
  struct refl_sym key = {(char *)name, 0};
  const struct refl_sym *hit = bsearch(&key, r->syms, r->nsyms, sizeof(*r->syms), sym_cmp);

  return hit ? (int)hit->file : -1;
}

/* Appends file i and, depth first, everything it imports, each once. */
static void collect(const struct rpc_reflection *r, int i, bool *seen, ProtobufCBinaryData *out,
                    size_t *n)
{
  const struct refl_file *f = &r->files[i];

  if (seen[i])
    return;
  seen[i] = true;
  out[(*n)++] = (ProtobufCBinaryData){f->len, (uint8_t *)f->bytes};
  for (size_t d = 0; d < f->ndeps; d++) {
    int k = file_find(r, f->dep_names[d]);

    if (k >= 0)
      collect(r, k, seen, out, n);
  }
}

static void answer_files(const struct rpc_reflection *r, int file, cm_arena *a, refl_resp *resp,
                         Grpc__Reflection__V1__FileDescriptorResponse *fdr)
{
  bool *seen = cm_arena_calloc(a, r->nfiles, sizeof(bool));
  ProtobufCBinaryData *out = cm_arena_calloc(a, r->nfiles, sizeof(*out));

  if (!seen || !out)
    return;
  fdr->file_descriptor_proto = out;
  collect(r, file, seen, out, &fdr->n_file_descriptor_proto);
  resp->message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
  resp->file_descriptor_response = fdr;
}

static void answer_error(refl_resp *resp, Grpc__Reflection__V1__ErrorResponse *er, int code,
                         const char *msg)
{
  er->error_code = cm_code_to_grpc(code);
  er->error_message = (char *)msg;
  resp->message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
  resp->error_response = er;
}

static void answer_services(const struct rpc_reflection *r, cm_arena *a, refl_resp *resp,
                            Grpc__Reflection__V1__ListServiceResponse *ls)
{
  Grpc__Reflection__V1__ServiceResponse *items =
      cm_arena_calloc(a, r->nservices, sizeof(*items));
  Grpc__Reflection__V1__ServiceResponse **ptrs = cm_arena_calloc(a, r->nservices, sizeof(*ptrs));

  if (!items || !ptrs)
    return;
  for (size_t i = 0; i < r->nservices; i++) {
    grpc__reflection__v1__service_response__init(&items[i]);
    items[i].name = r->services[i];
    ptrs[i] = &items[i];
  }
  ls->service = ptrs;
  ls->n_service = r->nservices;
  resp->message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
  resp->list_services_response = ls;
}

static void answer(const struct rpc_reflection *r, const refl_req *q, cm_arena *a,
                   refl_resp *resp)
{
  static Grpc__Reflection__V1__ErrorResponse er0 = GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
  Grpc__Reflection__V1__FileDescriptorResponse fdr0 =
      GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
  Grpc__Reflection__V1__ListServiceResponse ls0 = GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
  Grpc__Reflection__V1__ExtensionNumberResponse en0 =
      GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT;
  Grpc__Reflection__V1__ErrorResponse *er = cm_arena_alloc(a, sizeof(*er));
  Grpc__Reflection__V1__FileDescriptorResponse *fdr = cm_arena_alloc(a, sizeof(*fdr));
  Grpc__Reflection__V1__ListServiceResponse *ls = cm_arena_alloc(a, sizeof(*ls));
  Grpc__Reflection__V1__ExtensionNumberResponse *en = cm_arena_alloc(a, sizeof(*en));
  int file;

  if (!er || !fdr || !ls || !en)
    return;
  *er = er0;
  *fdr = fdr0;
  *ls = ls0;
  *en = en0;
  switch (q->message_request_case) {
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
    answer_services(r, a, resp, ls);
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
    file = file_find(r, q->file_by_filename);
    if (file < 0)
      answer_error(resp, er, CM_E_NOTFOUND, "file not found");
    else
      answer_files(r, file, a, resp, fdr);
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
    file = sym_file(r, q->file_containing_symbol);
    if (file < 0)
      answer_error(resp, er, CM_E_NOTFOUND, "symbol not found");
    else
      answer_files(r, file, a, resp, fdr);
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
    if (sym_file(r, q->all_extension_numbers_of_type) < 0) {
      answer_error(resp, er, CM_E_NOTFOUND, "type not found");
      break;
    }
    en->base_type_name = q->all_extension_numbers_of_type; /* no extensions are declared */
    resp->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
    resp->all_extension_numbers_response = en;
    break;
  case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
    answer_error(resp, er, CM_E_NOTFOUND, "extension not found");
    break;
  default:
    answer_error(resp, er, CM_E_INVALID, "empty reflection request");
    break;
  }
}

static void refl_start(rpc_call *call, const ProtobufCMessage *req)
{
  (void)call;
  (void)req;
}

static void refl_message(rpc_call *call, const ProtobufCMessage *msg)
{
  const struct rpc_reflection *r = rpc_call_service(call);
  const refl_req *q = (const refl_req *)msg;
  refl_resp resp = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
  cm_arena *a = cm_arena_new(0);
  int rc;

  if (!a) {
    rpc_call_finish(call, CM_E_NOMEM, "out of memory");
    return;
  }
  resp.valid_host = q->host;
  resp.original_request = (refl_req *)q;
  answer(r, q, a, &resp);
  rc = resp.message_response_case ? rpc_call_write(call, &resp.base) : CM_E_NOMEM;
  cm_arena_free(a);
  if (rc)
    rpc_call_finish(call, rc, cm_code_text(rc));
}

static void refl_end(rpc_call *call)
{
  rpc_call_finish(call, CM_OK, NULL);
}

static void refl_cancel(rpc_call *call)
{
  rpc_call_finish(call, CM_E_CANCELLED, "cancelled");
}
