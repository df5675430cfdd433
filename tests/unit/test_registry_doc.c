/* services/registry/reg_doc.c: a registry document read back from the store is accepted only if
 * its key is of a known kind, it is a JSON object with the key's identity, and it converts to the
 * message it is served as; the fuzz corpus's real documents pass, each refusal names its reason;
 * what loads around a skipped document (a version gap, a skipped event) keeps its numbers taken;
 * and failing the N-th allocation never crashes or leaks. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"
#include "live_blocks.h"
#include "mem.h"
#include "reg_int.h"

#define RUN_ID "0123456789abcdef0123456789abcdef"
#define RUN_KEY "registry/runs/" RUN_ID ".json"
#define MD5 "0daa1fd2afaf51409c493fda2aacaf84"
#define VKEY(n) "registry/models/m/versions/000000000" #n ".json"

/* ---- jansson and cm_mem both through the counting hooks (live_blocks.h), so leaks show ---- */

static int group_setup(void **state)
{
  (void)state;
  cm_mem_set_hooks(&live_hooks);
  json_set_alloc_funcs(cm_malloc, cm_free);
  return 0;
}

static int group_teardown(void **state)
{
  (void)state;
  json_set_alloc_funcs(malloc, free);
  cm_mem_set_hooks(NULL);
  return 0;
}

/* Parses a NUL-terminated document; returns the code, *doc kept for the caller (or NULL). */
static int parse(const char *key, const char *text, json_t **doc, struct cm_error *err)
{
  cm_error_clear(err);
  return reg_doc_parse(key, text, strlen(text), NULL, doc, err);
}

/* ---- the corpus: real documents pass, the refusal seeds fail ---- */

/* A corpus file's store key, as the fuzz target builds it ("4name/0000000002\n..."). */
static void corpus_key(const char *data, size_t len, char *key, size_t cap, size_t *doc_at)
{
  static const char *const fmt[] = {"registry/experiments/%.*s.json", "registry/runs/%.*s.json",
                                    "registry/datasets/%.*s.json",
                                    "registry/models/%.*s/model.json", NULL,
                                    "registry/events/%.*s.json", "%.*s", "%.*s"};
  const char *nl = memchr(data, '\n', len);
  int n;

  assert_non_null(nl);
  n = (int)(nl - data - 1);
  if (fmt[data[0] % 8]) {
    snprintf(key, cap, fmt[data[0] % 8], n, data + 1);
  } else {
    const char *slash = memchr(data + 1, '/', (size_t)n);

    assert_non_null(slash);
    snprintf(key, cap, "registry/models/%.*s/versions/%.*s.json", (int)(slash - data - 1),
             data + 1, (int)(nl - slash - 1), slash + 1);
  }
  *doc_at = (size_t)(nl + 1 - data);
}

static void test_corpus(void **state)
{
  DIR *d = opendir(REGISTRY_DOC_CORPUS);
  struct dirent *e;
  int good = 0, bad = 0;

  (void)state;
  assert_non_null(d);
  while ((e = readdir(d)) != NULL) {
    char path[1024], key[1024];
    size_t len = 0, at = 0;
    char *data;
    json_t *doc = NULL;
    struct cm_error err;
    bool refusal;
    int rc;

    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "%s/%s", REGISTRY_DOC_CORPUS, e->d_name);
    data = harness_file_read(path, &len);
    assert_non_null(data);
    corpus_key(data, len, key, sizeof(key), &at);
    rc = reg_doc_parse(key, data + at, len - at, NULL, &doc, &err);
    refusal = strncmp(e->d_name, "bad_", 4) == 0 || strncmp(e->d_name, "truncated_", 10) == 0 ||
              strncmp(e->d_name, "unknown_", 8) == 0;
    if (refusal && rc != CM_E_CORRUPT)
      fail_msg("%s: accepted, or refused with %d", e->d_name, rc);
    if (!refusal && rc != 0)
      fail_msg("%s (%s): %s", e->d_name, key, err.msg);
    if (refusal)
      assert_null(doc);
    good += !refusal;
    bad += refusal;
    json_decref(doc);
    free(data);
  }
  closedir(d);
  print_message("%d real documents accepted, %d refused\n", good, bad);
  assert_true(good >= 6 && bad >= 3);
}

/* ---- each refusal says why ---- */

static void test_refusals(void **state)
{
  static const struct {
    const char *key, *doc, *says;
  } cases[] = {
      {RUN_KEY, "{\"run_id\": \"" RUN_ID "\", \"para", "not JSON: line 1"},
      {RUN_KEY, "[]", "not a JSON object"},
      {RUN_KEY, "{\"run_id\": \"" RUN_ID "\"} {}", "not JSON"},
      {"registry/notes/readme.json", "{}", "not a registry document of a known kind"},
      {"registry/models/m/extra.json", "{}", "known kind"},
      {"registry/models/m/versions/2.json", "{}", "10-digit version number"},
      {"registry/models/m/versions/0000000000.json", "{}", "10-digit version number"},
      {"registry/events/7.json", "{}", "20-digit event number"},
      {"registry/datasets/d/ABC.json", "{}", "lower-case md5"},
      {"registry/models/../model.json", "{}", "bad key: name '..'"},
      {"registry/runs/a\x01.json", "{}", "control character"},
      {"registry/runs/a/b.json", "{}", "known kind"},
      {RUN_KEY, "{}", "missing run_id"},
      {RUN_KEY, "{\"run_id\": \"other\"}", "run_id 'other' does not match the key's"},
      {RUN_KEY, "{\"run_id\": \"" RUN_ID "\", \"metrics\": [\"0.9\"]}",
       "not a credito.v1.Run: expected object, got string at $.metrics[0]"},
      {RUN_KEY, "{\"run_id\": \"" RUN_ID "\", \"start_ms\": \"soon\"}", "$.start_ms"},
      {RUN_KEY, "{\"run_id\": 7}", "$.run_id"},
      {RUN_KEY,
       "{\"run_id\": \"" RUN_ID "\", \"artifacts\": [{\"blob\": {\"key\": \"registry/x.json\"}}]}",
       "artifact 0: blob key 'registry/x.json' is not a files/md5/ key"},
      {VKEY(2), "{\"name\": \"m\", \"version\": \"x\"}", "credito.v1.ModelVersion"},
      {VKEY(2), "{\"name\": \"m\", \"version\": 3}", "version 3 does not match the key's 2"},
      {VKEY(2), "{\"name\": \"m\", \"version\": 2.0}", "version is not an integer"},
      {VKEY(2), "{\"name\": \"m\"}", "missing version"},
      {VKEY(2), "{\"version\": 2}", "missing name"},
      {VKEY(2), "{\"name\": \"n\", \"version\": 2}", "name 'n' does not match"},
      {"registry/models/m/model.json", "{\"name\": \"m\", \"latest_version\": 99999999999}",
       "latest_version 99999999999 is out of range"},
      {"registry/models/m/model.json",
       "{\"name\": \"m\", \"aliases\": [{\"alias\": \"a\", \"version\": -1}]}",
       "an alias's version -1 is out of range"},
      {"registry/models/m/model.json", "{\"name\": \"m\", \"aliases\": {}}", "$.aliases"},
      {"registry/datasets/d/" MD5 ".json", "{\"name\": \"d\"}", "missing blob"},
      {"registry/datasets/d/" MD5 ".json", "{\"name\": \"d\", \"blob\": {\"md5\": \"" MD5 "0\"}}",
       "md5 '" MD5 "0' does not match"},
      {"registry/experiments/e.json", "{\"experiment_id\": \"e\", \"name\": [1]}", "$.name"},
      {"registry/events/00000000000000000007.json", "{\"event_id\": \"7\"}",
       "event_id '7' does not match"},
      {"registry/events/00000000000000000007.json",
       "{\"event_id\": \"00000000000000000007\", \"event_id\": \"x\"}", "duplicate"},
  };
  struct cm_error err;
  json_t *doc;

  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    doc = (json_t *)1;
    if (parse(cases[i].key, cases[i].doc, &doc, &err) != CM_E_CORRUPT)
      fail_msg("case %zu (%s): not refused as corrupt: %d %s", i, cases[i].key, err.code, err.msg);
    assert_null(doc);
    if (!strstr(err.msg, cases[i].says))
      fail_msg("case %zu: '%s' does not say '%s'", i, err.msg, cases[i].says);
  }
}

/* What is accepted: unknown members and camelCase names (as replies read them), numbers as
 * strings; the lists the registry appends to are made [] when absent or null. */
static void test_accepted(void **state)
{
  struct cm_error err;
  struct reg_doc_key k;
  json_t *doc = NULL;
  const char *text, *run = "{\"run_id\": \"" RUN_ID "\", \"params\": null, \"someday\": 1, "
                           "\"startMs\": \"12\"}";

  (void)state;
  assert_int_equal(reg_doc_parse(RUN_KEY, run, strlen(run), &k, &doc, &err), 0);
  assert_int_equal(k.kind, REG_DOC_RUN);
  assert_string_equal(k.name, RUN_ID);
  for (const char *const *l = (const char *const[]){"params", "metrics", "tags", "inputs",
                                                    "artifacts", NULL};
       *l; l++)
    if (!json_is_array(json_object_get(doc, *l)) || json_array_size(json_object_get(doc, *l)))
      fail_msg("%s is not []", *l);
  json_decref(doc);
  assert_int_equal(parse("registry/models/m/model.json", "{\"name\": \"m\"}", &doc, &err), 0);
  assert_true(json_is_array(json_object_get(doc, "aliases")));
  json_decref(doc);
  text = "{\"name\": \"m\", \"version\": \"2\"}";
  assert_int_equal(reg_doc_parse(VKEY(2), text, strlen(text), &k, &doc, &err), 0);
  assert_int_equal(k.kind, REG_DOC_VERSION);
  assert_int_equal(k.number, 2);
  assert_null(json_object_get(doc, "aliases")); /* only the lists the registry appends to */
  json_decref(doc);
  text = "{\"event_id\": \"00000000000000000042\"}";
  assert_int_equal(reg_doc_parse("registry/events/00000000000000000042.json", text, strlen(text),
                                 &k, &doc, &err), 0);
  assert_int_equal(k.number, 42);
  json_decref(doc);
}

/* ---- loading around skipped documents ---- */

static json_t *call(registry *r, const char *method, json_t *req, int want)
{
  struct cm_error err;
  json_t *resp = NULL;
  int rc = registry_op_find(method)(r, req, "test", &resp, &err);

  if (rc != want)
    fail_msg("%s: %d (%s), want %d", method, rc, err.msg, want);
  if (rc == CM_E_CORRUPT)
    assert_non_null(strstr(err.msg, VKEY(2)));
  json_decref(req);
  return resp;
}

static void load(registry *r, const char *key, const char *text)
{
  struct reg_doc_key k;
  struct cm_error err;
  json_t *doc = NULL;

  if (reg_doc_parse(key, text, strlen(text), &k, &doc, &err) == 0)
    assert_int_equal(reg_load_doc(r, &k, doc, &err), 0);
  else if (reg_doc_key_parse(key, &k, &err) == 0)
    reg_load_skipped(r, &k);
  json_decref(doc);
}

/* Version 2 of 3 is corrupt: 1 and 3 are served, aliases on them too, 2 answers DATA_LOSS by
 * its key, and latest stays 3. A model whose only version is corrupt keeps the number. */
static void test_gap(void **state)
{
  struct registry_opts opts = {0};
  struct cm_error err;
  registry *r = registry_new(NULL, &opts, &err);
  json_t *resp;

  (void)state;
  assert_non_null(r);
  load(r, VKEY(3), "{\"name\": \"m\", \"version\": 3}");
  load(r, VKEY(1), "{\"name\": \"m\", \"version\": 1}");
  load(r, VKEY(2), "{\"name\": \"m\", \"version\": \"x\"}");
  load(r, "registry/models/m/model.json",
       "{\"name\": \"m\", \"latest_version\": 2, \"aliases\": [{\"alias\": \"champion\", "
       "\"version\": 3}, {\"alias\": \"broken\", \"version\": 2}]}");
  load(r, "registry/models/lost/versions/0000000004.json", "{");
  load(r, "registry/events/00000000000000000009.json", "{");
  load(r, "registry/events/00000000000000000003.json", "{\"event_id\": \"00000000000000000003\"}");
  assert_int_equal(reg_load_finish(r, &err), 0);

  resp = call(r, "GetRegisteredModel", json_pack("{s:s}", "name", "m"), 0);
  assert_int_equal(reg_int(resp, "latest_version"), 3);
  json_decref(resp);
  resp = call(r, "ListModelVersions", json_pack("{s:s}", "name", "m"), 0);
  assert_int_equal(json_array_size(json_object_get(resp, "versions")), 2);
  assert_int_equal(reg_int(json_array_get(json_object_get(resp, "versions"), 0), "version"), 3);
  assert_int_equal(reg_int(json_array_get(json_object_get(resp, "versions"), 1), "version"), 1);
  json_decref(resp);
  resp = call(r, "ResolveModel", json_pack("{s:{s:s, s:s}}", "model", "name", "m", "alias",
                                           "champion"), 0);
  assert_int_equal(reg_int(resp, "version"), 3);
  json_decref(resp);
  resp = call(r, "ResolveModel", json_pack("{s:{s:s}}", "model", "name", "m"), 0);
  assert_int_equal(reg_int(resp, "version"), 3);
  json_decref(resp);
  call(r, "GetModelVersion", json_pack("{s:s, s:i}", "name", "m", "version", 2), CM_E_CORRUPT);
  call(r, "ResolveModel", json_pack("{s:{s:s, s:s}}", "model", "name", "m", "alias", "broken"),
       CM_E_CORRUPT);
  call(r, "GetModelVersion", json_pack("{s:s, s:i}", "name", "m", "version", 4), CM_E_NOTFOUND);

  resp = call(r, "GetRegisteredModel", json_pack("{s:s}", "name", "lost"), 0);
  assert_int_equal(reg_int(resp, "latest_version"), 4);
  json_decref(resp);
  assert_int_equal(r->event_seq, 9); /* the next event is 10, never a skipped one's number */
  registry_free(r);
}

/* ---- allocation failures ---- */

/* Fails the N-th allocation for every N until the parse succeeds: each attempt ends in success,
 * CM_E_NOMEM, or (jansson 2.14 reports a failed string copy as a syntax error) "not JSON" inside
 * jansson's own allocations; never a crash or a leaked block. */
static void oom_loop(const char *key, const char *text, size_t len)
{
  struct cm_error err;
  json_t *doc = NULL;
  long n, jansson, before = live_blocks;
  int rc = -1;

  jansson = cm_mem_count();
  doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
  jansson = cm_mem_count() - jansson;
  json_decref(doc);
  for (n = 0; rc != 0; n++) {
    assert_true(n < 100000);
    cm_mem_fail_after(n);
    rc = reg_doc_parse(key, text, len, NULL, &doc, &err);
    cm_mem_fail_after(-1);
    if (rc && !(rc == CM_E_NOMEM ||
                (rc == CM_E_CORRUPT && n < jansson && strncmp(err.msg, "not JSON", 8) == 0)))
      fail_msg("%s: allocation %ld failing gives %d: %s", key, n, rc, err.msg);
    if (rc) {
      assert_null(doc);
      assert_int_equal(live_blocks, before);
    }
  }
  assert_non_null(doc);
  json_decref(doc);
  assert_int_equal(live_blocks, before);
  print_message("%s: succeeded after %ld failures (%ld in jansson)\n", key, n - 1, jansson);
  assert_true(n > jansson);
}

static void test_alloc_failures(void **state)
{
  static const char *const files[] = {"run.doc", "model.doc", "version_1.doc",
                                      "dataset_processed.doc", "event_alias_set.doc"};
  const char *run = "{\"run_id\": \"" RUN_ID "\"}"; /* every list filled in */

  (void)state;
  oom_loop(RUN_KEY, run, strlen(run));
  for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
    char path[1024], key[1024];
    size_t len = 0, at = 0;
    char *data;

    snprintf(path, sizeof(path), "%s/%s", REGISTRY_DOC_CORPUS, files[i]);
    data = harness_file_read(path, &len);
    assert_non_null(data);
    corpus_key(data, len, key, sizeof(key), &at);
    oom_loop(key, data + at, len - at);
    free(data);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_corpus),   cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_accepted), cmocka_unit_test(test_gap),
      cmocka_unit_test(test_alloc_failures),
  };

  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
