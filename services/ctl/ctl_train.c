/* ctl_train: `creditoctl train`, one Train call on the trainer: the request from flags, a
 * progress bar while the events stream in, then the result as a table (or JSON). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "credito/v1/trainer.pb-c.h"
#include "ctl.h"
#include "pbjson.h"

enum {
  T_MODEL, T_EXPERIMENT, T_ALIAS, T_MIN_AUC, T_C, T_MAX_ITER, T_TOL, T_UNKNOWN, T_TEST_FRACTION,
  T_CV_FOLDS, T_SEED, T_TARGET, T_POSITIVE, T_PARENT, T_PDO, T_BASE_SCORE, T_BASE_ODDS,
  T_THRESHOLD, T_TAGS, T_N
};

/* "name/N" or "name@alias" as a ModelRef JSON object; NULL when neither. */
static json_t *model_ref(const char *s)
{
  const char *sep = strpbrk(s, "/@");
  if (!sep || sep == s || !sep[1])
    return NULL;
  if (*sep == '/')
    return json_pack("{s:s#, s:s}", "name", s, (int)(sep - s), "version", sep + 1);
  return json_pack("{s:s#, s:s}", "name", s, (int)(sep - s), "alias", sep + 1);
}

static int add_number(struct ctl *c, json_t *obj, const char *key, const char *flag,
                      const char *v)
{
  char *end = NULL;
  double d;
  if (!v)
    return 0;
  d = strtod(v, &end);
  if (!v[0] || *end || !isfinite(d))
    return cm_error_set(&c->err, CM_E_INVALID, "--%s: '%s' is not a number", flag, v);
  json_object_set_new(obj, key, json_real(d));
  return 0;
}

/* Estimator params and tags from flags. */
static void add_params_tags(json_t *req, const struct cm_opt *o)
{
  const int keys[] = {T_C, T_MAX_ITER, T_TOL, T_UNKNOWN};
  const char *names[] = {"C", "max_iter", "tol", "unknown_category"};
  json_t *params = json_array(), *tags = json_array();
  const char *t = o[T_TAGS].value;

  for (size_t i = 0; i < 4; i++)
    if (o[keys[i]].value)
      json_array_append_new(params, json_pack("{s:s, s:s}", "key", names[i], "value",
                                              o[keys[i]].value));
  /* --tags k=v,k2=v2 */
  while (t && *t) {
    size_t n = strcspn(t, ","), eq = strcspn(t, "=");
    if (eq < n)
      json_array_append_new(tags, json_pack("{s:s#, s:s#}", "key", t, (int)eq, "value", t + eq + 1,
                                            (int)(n - eq - 1)));
    t += n + (t[n] == ',');
  }
  json_object_set_new(req, "params", params);
  json_object_set_new(req, "tags", tags);
}

/* The TrainRequest as JSON from DATASET[@MD5] and the flags. */
static int train_request(struct ctl *c, const char *dataset, struct cm_opt *o, json_t **out)
{
  const char *at = strchr(dataset, '@');
  json_t *req = json_object(), *card = json_object();
  int rc = 0;

  json_object_set_new(req, "dataset", at ? json_pack("{s:s#, s:s}", "name", dataset,
                                                     (int)(at - dataset), "md5", at + 1)
                                         : json_pack("{s:s}", "name", dataset));
  json_object_set_new(req, "model_name", json_string(o[T_MODEL].value));
  if (o[T_EXPERIMENT].value)
    json_object_set_new(req, "experiment_name", json_string(o[T_EXPERIMENT].value));
  if (o[T_ALIAS].value)
    json_object_set_new(req, "alias", json_string(o[T_ALIAS].value));
  if (o[T_TARGET].value)
    json_object_set_new(req, "target", json_string(o[T_TARGET].value));
  if (o[T_POSITIVE].value)
    json_object_set_new(req, "positive_label", json_string(o[T_POSITIVE].value));
  add_params_tags(req, o);
  rc = add_number(c, req, "test_fraction", "test-fraction", o[T_TEST_FRACTION].value);
  if (!rc && json_real_value(json_object_get(req, "test_fraction")) == 0 &&
      o[T_TEST_FRACTION].value)
    json_object_set_new(req, "no_holdout", json_true());
  /* Integers as decimal text: the request's parser checks them exactly (a seed is 64-bit). */
  if (o[T_CV_FOLDS].value)
    json_object_set_new(req, "cv_folds", json_string(o[T_CV_FOLDS].value));
  if (o[T_SEED].value)
    json_object_set_new(req, "seed", json_string(o[T_SEED].value));
  rc = rc ? rc : add_number(c, card, "pdo", "pdo", o[T_PDO].value);
  rc = rc ? rc : add_number(c, card, "base_score", "base-score", o[T_BASE_SCORE].value);
  rc = rc ? rc : add_number(c, card, "base_odds", "base-odds", o[T_BASE_ODDS].value);
  rc = rc ? rc : add_number(c, card, "threshold", "threshold", o[T_THRESHOLD].value);
  json_object_set(req, "scorecard", card);
  if (!rc && o[T_MIN_AUC].value) {
    json_t *g = json_pack("{s:s, s:s}", "metric", o[T_TEST_FRACTION].value &&
                          json_is_true(json_object_get(req, "no_holdout")) ? "cv_roc_auc_mean"
                                                                          : "test_roc_auc",
                          "comparison", "GATE_COMPARISON_AT_LEAST");
    rc = add_number(c, g, "value", "min-auc", o[T_MIN_AUC].value);
    json_object_set_new(req, "gates", json_pack("[o]", g));
  }
  if (!rc && o[T_PARENT].value) {
    json_t *p = model_ref(o[T_PARENT].value);
    if (!p)
      rc = cm_error_set(&c->err, CM_E_INVALID, "--parent: want NAME/N or NAME@ALIAS");
    json_object_set_new(req, "parent", p);
  }
  json_decref(card);
  if (rc) {
    json_decref(req);
    return rc;
  }
  *out = req;
  return 0;
}

static const char *stage_name(int stage)
{
  static const char *const names[] = {"", "load", "prepare", "fit", "evaluate",
                                      "cross-validate", "upload", "register"};
  return stage > 0 && stage < 8 ? names[stage] : "";
}

/* One progress event: a redrawn bar on a terminal, else one line per event. */
static void show_progress(const Credito__V1__TrainProgress *p, bool tty)
{
  int filled = (int)(p->fraction * 30 + 0.5);
  if (!tty) {
    fprintf(stderr, "%3d%% %-14s %s\n", (int)(p->fraction * 100 + 0.5), stage_name(p->stage),
            p->message);
    return;
  }
  fprintf(stderr, "\r[%.*s%*s] %3d%% %-14s %-40.40s", filled,
          "##############################", 30 - filled, "", (int)(p->fraction * 100 + 0.5),
          stage_name(p->stage), p->message);
}

/* The result for people: the version, then its metrics. */
static void show_result(json_t *res)
{
  const char *cols[] = {"MODEL=model_version.name", "VERSION=model_version.version",
                        "RUN=run_id", "ALIAS=alias", "SHA256=model_version.artifact_sha256"};
  const char *mcols[] = {"METRIC=key", "VALUE=value"};
  const char *why = json_string_value(json_object_get(res, "gate_failure_reason"));
  json_t *rows = json_pack("[O]", res), *metrics = json_object_get(res, "metrics");

  ctl_table(rows, cols, 5);
  json_decref(rows);
  if (why && why[0])
    printf("alias not moved: %s\n", why);
  if (metrics) {
    putchar('\n');
    ctl_table(metrics, mcols, 2);
  }
}

/* Streams the Train call: progress to stderr, the result into *result (JSON). */
static int train_stream(struct ctl *c, rpc_channel *ch, const ProtobufCMessage *req,
                        json_t **result)
{
  rpc_stream *st = rpc_stream_open(ch, "/credito.v1.Trainer/Train", c->timeout_ms * 20, &c->err);
  bool tty = isatty(2);
  int rc = st ? rpc_stream_send(st, req, &c->err) : c->err.code;

  rc = rc ? rc : rpc_stream_close_send(st, &c->err);
  while (!rc) {
    cm_arena *a = cm_arena_new(0);
    Credito__V1__TrainEvent *ev = NULL;
    rc = a ? rpc_stream_recv(st, &credito__v1__train_event__descriptor, a,
                             (ProtobufCMessage **)&ev, &c->err)
           : cm_error_set(&c->err, CM_E_NOMEM, "out of memory");
    if (!rc && ev && ev->event_case == CREDITO__V1__TRAIN_EVENT__EVENT_PROGRESS && !c->json)
      show_progress(ev->progress, tty);
    if (!rc && ev && ev->event_case == CREDITO__V1__TRAIN_EVENT__EVENT_RESULT) {
      json_decref(*result);
      *result = pbjson_from_message(&ev->result->base, 0, &c->err);
      rc = *result ? 0 : c->err.code;
    }
    cm_arena_free(a);
    if (!rc && !ev)
      break;
  }
  if (tty && !c->json)
    fputc('\n', stderr);
  rc = rc ? rc : rpc_stream_finish(st, &c->err);
  if (!rc && !*result)
    rc = cm_error_set(&c->err, CM_E_INTERNAL, "the trainer ended without a result");
  rpc_stream_free(st);
  return rc;
}

int ctl_cmd_train(struct ctl *c, int argc, char **argv)
{
  struct cm_opt o[T_N] = {
      [T_MODEL] = {"model", NULL, "credit-default", "registered model", false, NULL, false},
      [T_EXPERIMENT] = {"experiment", NULL, NULL, "", false, NULL, false},
      [T_ALIAS] = {"alias", NULL, NULL, "", false, NULL, false},
      [T_MIN_AUC] = {"min-auc", NULL, NULL, "", false, NULL, false},
      [T_C] = {"C", NULL, NULL, "", false, NULL, false},
      [T_MAX_ITER] = {"max-iter", NULL, NULL, "", false, NULL, false},
      [T_TOL] = {"tol", NULL, NULL, "", false, NULL, false},
      [T_UNKNOWN] = {"unknown-category", NULL, NULL, "", false, NULL, false},
      [T_TEST_FRACTION] = {"test-fraction", NULL, NULL, "", false, NULL, false},
      [T_CV_FOLDS] = {"cv-folds", NULL, NULL, "", false, NULL, false},
      [T_SEED] = {"seed", NULL, NULL, "", false, NULL, false},
      [T_TARGET] = {"target", NULL, NULL, "", false, NULL, false},
      [T_POSITIVE] = {"positive", NULL, NULL, "", false, NULL, false},
      [T_PARENT] = {"parent", NULL, NULL, "", false, NULL, false},
      [T_PDO] = {"pdo", NULL, NULL, "", false, NULL, false},
      [T_BASE_SCORE] = {"base-score", NULL, NULL, "", false, NULL, false},
      [T_BASE_ODDS] = {"base-odds", NULL, NULL, "", false, NULL, false},
      [T_THRESHOLD] = {"threshold", NULL, NULL, "", false, NULL, false},
      [T_TAGS] = {"tags", NULL, NULL, "", false, NULL, false},
  };
  struct rpc_channel_opts co = {0};
  rpc_channel *ch = NULL;
  json_t *req = NULL, *result = NULL;
  cm_arena *a = cm_arena_new(0);
  ProtobufCMessage *msg = NULL;
  int first = 0, rc = ctl_flags(c, o, T_N, argc, argv, &first);

  if (!rc && first != argc - 1)
    rc = cm_error_set(&c->err, CM_E_INVALID, "usage: train DATASET[@MD5] [--model NAME] ...");
  rc = rc ? rc : train_request(c, argv[first], o, &req);
  rc = rc ? rc : a ? pbjson_to_message(req, &credito__v1__train_request__descriptor, 0, a, &msg,
                                       &c->err)
                   : cm_error_set(&c->err, CM_E_NOMEM, "out of memory");
  co.target = c->trainer_addr;
  ch = rc ? NULL : rpc_channel_new(&co, &c->err);
  rc = rc ? rc : ch ? train_stream(c, ch, msg, &result) : c->err.code;
  if (!rc && c->json)
    ctl_print_json(result);
  else if (!rc)
    show_result(result);
  json_decref(req);
  json_decref(result);
  rpc_channel_free(ch);
  cm_arena_free(a);
  return rc;
}
