/* Unit tests for common/log: every line is parsed back with jansson to
 * prove it is valid JSON carrying the right values, including escaping,
 * invalid UTF-8, truncation at the line cap, malformed field lists and
 * concurrent writers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "err.h"
#include "log.h"

/* The capture pipe; the fixture lives in *state. */
struct capture {
  int rfd;
  int wfd;
  char line[2 * CM_LOG_LINE_MAX];
  size_t len;
};

static int setup_capture(void **state)
{
  struct capture *c = test_calloc(1, sizeof(*c));
  int fds[2];

  if (pipe(fds) != 0)
    return -1;
  c->rfd = fds[0];
  c->wfd = fds[1];
  fcntl(c->rfd, F_SETFL, O_NONBLOCK);
  cm_log_init("credito-test", CM_LOG_DEBUG);
  cm_log_set_fd(c->wfd);
  *state = c;
  return 0;
}

static int teardown_capture(void **state)
{
  struct capture *c = *state;

  cm_log_set_fd(2);
  close(c->rfd);
  close(c->wfd);
  test_free(c);
  return 0;
}

/* Reads what is in the pipe into c->line; returns the byte count. */
static size_t capture_read(struct capture *c)
{
  ssize_t n = read(c->rfd, c->line, sizeof(c->line) - 1);

  c->len = n > 0 ? (size_t)n : 0;
  c->line[c->len] = '\0';
  return c->len;
}

/* Reads one line and parses it; fails the test unless it is exactly one
 * valid JSON object ending in a newline. The caller json_decref's it. */
static json_t *capture_json(struct capture *c)
{
  json_error_t jerr;
  json_t *obj;

  assert_true(capture_read(c) > 0);
  assert_true(c->len <= CM_LOG_LINE_MAX);
  assert_int_equal(c->line[c->len - 1], '\n');
  assert_null(memchr(c->line, '\n', c->len - 1));
  obj = json_loadb(c->line, c->len, JSON_REJECT_DUPLICATES, &jerr);
  if (!obj)
    fail_msg("invalid JSON (%s at %d): %s", jerr.text, jerr.position, c->line);
  assert_true(json_is_object(obj));
  return obj;
}

static const char *str_field(json_t *obj, const char *key)
{
  json_t *v = json_object_get(obj, key);

  assert_non_null(v);
  assert_true(json_is_string(v));
  return json_string_value(v);
}

static void test_basic_line(void **state)
{
  struct capture *c = *state;
  json_t *obj;
  const char *ts;

  cm_log(CM_LOG_INFO, "listening", "addr=%s port=%d", "127.0.0.1", 50051);
  obj = capture_json(c);
  ts = str_field(obj, "ts");
  /* 2026-11-30T09:30:00.123Z */
  assert_int_equal(strlen(ts), 24);
  assert_int_equal(ts[10], 'T');
  assert_int_equal(ts[19], '.');
  assert_int_equal(ts[23], 'Z');
  assert_string_equal(str_field(obj, "level"), "info");
  assert_string_equal(str_field(obj, "prog"), "credito-test");
  assert_string_equal(str_field(obj, "msg"), "listening");
  assert_string_equal(str_field(obj, "addr"), "127.0.0.1");
  assert_int_equal(json_integer_value(json_object_get(obj, "port")), 50051);
  assert_int_equal(json_object_size(obj), 6);
  /* Field order is the call's order, after the fixed head. */
  assert_non_null(strstr(c->line, "\"msg\":\"listening\",\"addr\":\"127.0.0.1\",\"port\":50051}"));
  json_decref(obj);
}

static void test_no_fields_and_null_msg(void **state)
{
  struct capture *c = *state;
  json_t *obj;

  cm_log(CM_LOG_ERROR, NULL, NULL);
  obj = capture_json(c);
  assert_true(json_is_null(json_object_get(obj, "msg")));
  assert_string_equal(str_field(obj, "level"), "error");
  json_decref(obj);
  cm_log(CM_LOG_WARN, "w", "   ");
  obj = capture_json(c);
  assert_string_equal(str_field(obj, "level"), "warn");
  assert_int_equal(json_object_size(obj), 4);
  json_decref(obj);
}

static void test_conversions(void **state)
{
  struct capture *c = *state;
  json_t *obj;

  cm_log(CM_LOG_DEBUG, "nums",
         "d=%d u=%u ld=%ld lu=%lu lld=%lld zu=%zu f=%f g=%g third=%g t=%b f0=%b nul=%s", INT_MIN,
         UINT_MAX, LONG_MIN, 12345UL, LLONG_MIN, (size_t)4096, 1.5, 0.1, 1.0 / 3, 7, 0,
         (const char *)NULL);
  obj = capture_json(c);
  assert_int_equal(json_integer_value(json_object_get(obj, "d")), INT_MIN);
  assert_int_equal(json_integer_value(json_object_get(obj, "u")), UINT_MAX);
  assert_true(json_integer_value(json_object_get(obj, "ld")) == LONG_MIN);
  assert_int_equal(json_integer_value(json_object_get(obj, "lu")), 12345);
  assert_true(json_integer_value(json_object_get(obj, "lld")) == LLONG_MIN);
  assert_int_equal(json_integer_value(json_object_get(obj, "zu")), 4096);
  assert_true(json_real_value(json_object_get(obj, "f")) == 1.5);
  assert_true(json_real_value(json_object_get(obj, "g")) == 0.1);
  assert_true(json_real_value(json_object_get(obj, "third")) == 1.0 / 3);
  assert_true(json_is_true(json_object_get(obj, "t")));
  assert_true(json_is_false(json_object_get(obj, "f0")));
  assert_true(json_is_null(json_object_get(obj, "nul")));
  assert_non_null(strstr(c->line, "\"f\":1.500000,\"g\":0.1,"));
  assert_int_equal(json_object_get(obj, "level") != NULL, 1);
  assert_string_equal(str_field(obj, "level"), "debug");
  json_decref(obj);
}

static void test_unsigned_extremes(void **state)
{
  struct capture *c = *state;

  /* jansson cannot hold 2^64-1, so check the text itself. */
  cm_log(CM_LOG_INFO, "big", "a=%llu b=%lu c=%zu", ULLONG_MAX, ULONG_MAX, SIZE_MAX);
  capture_read(c);
  assert_non_null(strstr(c->line, "\"a\":18446744073709551615,\"b\":18446744073709551615,"
                                  "\"c\":18446744073709551615}"));
}

static void test_non_finite_doubles(void **state)
{
  struct capture *c = *state;
  json_t *obj;

  cm_log(CM_LOG_INFO, "nan", "a=%g b=%f c=%g d=%g", NAN, INFINITY, -INFINITY, -0.0);
  obj = capture_json(c);
  assert_true(json_is_null(json_object_get(obj, "a")));
  assert_true(json_is_null(json_object_get(obj, "b")));
  assert_true(json_is_null(json_object_get(obj, "c")));
  assert_true(json_is_number(json_object_get(obj, "d")));
  json_decref(obj);
  cm_log(CM_LOG_INFO, "huge", "max=%f min=%g", 1.7976931348623157e308, 5e-324);
  obj = capture_json(c);
  assert_true(json_number_value(json_object_get(obj, "max")) == 1.7976931348623157e308);
  assert_true(json_number_value(json_object_get(obj, "min")) == 5e-324);
  json_decref(obj);
}

static void test_escaping(void **state)
{
  struct capture *c = *state;
  json_t *obj;

  cm_log(CM_LOG_INFO, "esc \"q\"", "s=%s utf=%s",
         "quote\" back\\ nl\n cr\r tab\t bs\b ff\f one\x01 us\x1f del\x7f /",
         "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  obj = capture_json(c);
  assert_string_equal(str_field(obj, "msg"), "esc \"q\"");
  assert_string_equal(str_field(obj, "s"),
                      "quote\" back\\ nl\n cr\r tab\t bs\b ff\f one\x01 us\x1f del\x7f /");
  assert_string_equal(str_field(obj, "utf"), "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  assert_non_null(strstr(c->line, "one\\u0001 us\\u001f"));
  assert_non_null(strstr(c->line, "nl\\n cr\\r tab\\t bs\\b ff\\f"));
  json_decref(obj);
}

static void test_invalid_utf8_replaced(void **state)
{
  static const struct {
    const char *in;
    const char *out;
  } cases[] = {
      {"a\xFF"
       "b",
       "a\xEF\xBF\xBD"
       "b"},                                                    /* never valid */
      {"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD"},                 /* overlong '/' */
      {"\xE0\x80\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* overlong */
      {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* surrogate */
      {"\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"end\xE2\x82", "end\xEF\xBF\xBD\xEF\xBF\xBD"}, /* cut short */
      {"\x80x", "\xEF\xBF\xBDx"},                     /* lone continuation */
      {"\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF"},       /* U+10FFFF is fine */
  };
  struct capture *c = *state;
  json_t *obj;
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    cm_log(CM_LOG_INFO, "utf8", "v=%s", cases[i].in);
    obj = capture_json(c);
    assert_string_equal(str_field(obj, "v"), cases[i].out);
    json_decref(obj);
  }
}

/* Checks a line that hit the cap: valid, flagged, and the cut value ends in
 * the ellipsis. */
static void check_truncated(struct capture *c, const char *key, const char *fill, size_t min_len)
{
  json_t *obj = capture_json(c);
  const char *v = str_field(obj, key);
  size_t n = strlen(v);

  assert_true(c->len > CM_LOG_LINE_MAX - 200);
  assert_true(json_is_true(json_object_get(obj, "truncated")));
  assert_true(n >= min_len);
  assert_memory_equal(v + n - 3, "\xE2\x80\xA6", 3);
  assert_memory_equal(v, fill, strlen(fill));
  json_decref(obj);
}

static void test_truncation(void **state)
{
  struct capture *c = *state;
  static char big[20000];
  size_t i;

  memset(big, 'x', sizeof(big) - 1);
  cm_log(CM_LOG_INFO, "long", "v=%s after=%d", big, 1);
  check_truncated(c, "v", "xxx", 7900);
  assert_null(strstr(c->line, "after")); /* no room left for it */

  /* Multi-byte characters are never split. */
  for (i = 0; i + 3 < sizeof(big); i += 3)
    memcpy(big + i, "\xE2\x82\xAC", 3);
  big[i] = '\0';
  cm_log(CM_LOG_INFO, "euros", "v=%s", big);
  check_truncated(c, "v", "\xE2\x82\xAC", 7900);

  /* Escapes (6 bytes each) are never split either. */
  memset(big, '\x01', sizeof(big) - 1);
  cm_log(CM_LOG_INFO, big, NULL);
  check_truncated(c, "msg", "\x01", 7900 / 6);
}

static void test_many_fields_dropped(void **state)
{
  struct capture *c = *state;
  char fields[2000];
  char value[300];
  json_t *obj;
  size_t n = 0;
  int i;

  memset(value, 'v', sizeof(value) - 1);
  value[sizeof(value) - 1] = '\0';
  for (i = 0; i < 40; i++)
    n += (size_t)snprintf(fields + n, sizeof(fields) - n, "k%02d=%%s ", i);
  cm_log(CM_LOG_INFO, "wide", fields, value, value, value, value, value, value, value, value, value,
         value, value, value, value, value, value, value, value, value, value, value, value, value,
         value, value, value, value, value, value, value, value, value, value, value, value, value,
         value, value, value, value, value);
  obj = capture_json(c);
  assert_true(json_is_true(json_object_get(obj, "truncated")));
  assert_non_null(json_object_get(obj, "k00"));
  assert_null(json_object_get(obj, "k39"));
  assert_true(json_object_size(obj) > 20);
  json_decref(obj);
}

static void test_malformed_fields(void **state)
{
  static const struct {
    const char *fields;
    int kept; /* fields before the bad token */
  } cases[] = {
      {"a=%s b=%q c=%d", 1}, {"a=%s noequals", 1}, {"=%d", 0},  {"a=%", 0},
      {"a=%s%d", 0},         {"a=%s b=%d2", 1},    {"a=5", 0},  {"k\"ey=%s", 0},
      {"a=%s b=%lx", 1},     {"a=%ss", 0},         {"a:%s", 0},
  };
  struct capture *c = *state;
  json_t *obj;
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    cm_log(CM_LOG_INFO, "bad", cases[i].fields, "x", 2, 3);
    obj = capture_json(c);
    assert_true(strlen(str_field(obj, "log_error")) > 0);
    assert_int_equal(json_object_get(obj, "a") != NULL, cases[i].kept);
    assert_null(json_object_get(obj, "b"));
    json_decref(obj);
  }
}

static void test_level_filter(void **state)
{
  struct capture *c = *state;

  cm_log_init(NULL, CM_LOG_WARN);
  assert_false(cm_log_enabled(CM_LOG_DEBUG));
  assert_false(cm_log_enabled(CM_LOG_INFO));
  assert_true(cm_log_enabled(CM_LOG_WARN));
  assert_true(cm_log_enabled(CM_LOG_ERROR));
  assert_false(cm_log_enabled(CM_LOG_OFF));
  cm_log(CM_LOG_INFO, "hidden", NULL);
  assert_int_equal(capture_read(c), 0);
  cm_log(CM_LOG_ERROR, "shown", NULL);
  assert_true(capture_read(c) > 0);
  assert_non_null(strstr(c->line, "\"prog\":\"credito-test\"")); /* NULL kept it */
  cm_log_init(NULL, CM_LOG_OFF);
  cm_log(CM_LOG_ERROR, "hidden", NULL);
  cm_log(CM_LOG_OFF, "hidden", NULL);
  assert_int_equal(capture_read(c), 0);
  cm_log_init(NULL, CM_LOG_DEBUG);
  cm_log((enum cm_log_level)42, "hidden", NULL);
  assert_int_equal(capture_read(c), 0);
}

static void test_level_parse(void **state)
{
  static const struct {
    const char *s;
    int rc;
    enum cm_log_level level;
  } cases[] = {
      {"debug", 0, CM_LOG_DEBUG},
      {"info", 0, CM_LOG_INFO},
      {"warn", 0, CM_LOG_WARN},
      {"warning", 0, CM_LOG_WARN},
      {"error", 0, CM_LOG_ERROR},
      {"off", 0, CM_LOG_OFF},
      {"INFO", 0, CM_LOG_INFO},
      {"", CM_E_INVALID, CM_LOG_ERROR},
      {"verbose", CM_E_INVALID, CM_LOG_ERROR},
      {"info ", CM_E_INVALID, CM_LOG_ERROR},
  };
  enum cm_log_level level;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    level = CM_LOG_ERROR;
    assert_int_equal(cm_log_level_parse(cases[i].s, &level), cases[i].rc);
    assert_int_equal(level, cases[i].level);
  }
  assert_int_equal(cm_log_level_parse(NULL, &level), CM_E_INVALID);
}

static void test_errno_preserved(void **state)
{
  struct capture *c = *state;

  errno = ENOENT;
  cm_log(CM_LOG_INFO, "keeps errno", "e=%d", errno);
  assert_int_equal(errno, ENOENT);
  capture_read(c);
}

static void test_long_program_name(void **state)
{
  struct capture *c = *state;
  char name[200];
  json_t *obj;

  memset(name, 'p', sizeof(name) - 1);
  name[sizeof(name) - 1] = '\0';
  cm_log_init(name, CM_LOG_DEBUG);
  cm_log(CM_LOG_INFO, "m", NULL);
  obj = capture_json(c);
  assert_int_equal(strlen(str_field(obj, "prog")), 63);
  json_decref(obj);
  cm_log_init("credito-test", CM_LOG_DEBUG);
}

#define WRITERS 4
#define LINES   200

static void *log_writer(void *arg)
{
  static char value[6000];
  int id = (int)(intptr_t)arg;
  int i;

  memset(value, 'w', sizeof(value) - 1); /* same bytes from every thread */
  for (i = 0; i < LINES; i++)
    cm_log(CM_LOG_INFO, "thread", "id=%d i=%d v=%s", id, i, value);
  return NULL;
}

static void test_threads_do_not_interleave(void **state)
{
  char path[] = "/tmp/test_log_XXXXXX";
  pthread_t t[WRITERS];
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  int counts[WRITERS] = {0};
  int fd = mkstemp(path);
  FILE *in;
  json_error_t jerr;
  json_t *obj;
  json_int_t id;
  int i;

  (void)state;
  assert_true(fd >= 0);
  unlink(path);
  cm_log_set_fd(fd);
  for (i = 0; i < WRITERS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, log_writer, (void *)(intptr_t)i), 0);
  for (i = 0; i < WRITERS; i++)
    pthread_join(t[i], NULL);
  in = fdopen(fd, "r");
  assert_non_null(in);
  rewind(in);
  for (;;) {
    n = getline(&line, &cap, in);
    if (n <= 0)
      break;
    obj = json_loadb(line, (size_t)n, 0, &jerr);
    if (!obj)
      fail_msg("interleaved or invalid line: %s", jerr.text);
    id = json_integer_value(json_object_get(obj, "id"));
    assert_true(id >= 0 && id < WRITERS);
    counts[id]++;
    json_decref(obj);
  }
  free(line);
  fclose(in);
  for (i = 0; i < WRITERS; i++)
    assert_int_equal(counts[i], LINES);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_basic_line, setup_capture, teardown_capture),
      cmocka_unit_test_setup_teardown(test_no_fields_and_null_msg, setup_capture, teardown_capture),
      cmocka_unit_test_setup_teardown(test_conversions, setup_capture, teardown_capture),
      cmocka_unit_test_setup_teardown(test_unsigned_extremes, setup_capture, teardown_capture),
      cmocka_unit_test_setup_teardown(test_non_finite_doubles, setup_capture, teardown_capture),
      cmocka_unit_test_setup_teardown(test_escaping, setup_capture, teardown_capture),
      cmocka_unit_test_setup_teardown(test_invalid_utf8_replaced, setup_capture, teardown_capture),
      cmocka_unit_test_setup_teardown(test_truncation, setup_capture, teardown_capture),
      cmocka_unit_test_setup_teardown(test_many_fields_dropped, setup_capture, teardown_capture),
      cmocka_unit_test_setup_teardown(test_malformed_fields, setup_capture, teardown_capture),
      cmocka_unit_test_setup_teardown(test_level_filter, setup_capture, teardown_capture),
      cmocka_unit_test(test_level_parse),
      cmocka_unit_test_setup_teardown(test_errno_preserved, setup_capture, teardown_capture),
      cmocka_unit_test_setup_teardown(test_long_program_name, setup_capture, teardown_capture),
      cmocka_unit_test_setup_teardown(test_threads_do_not_interleave, setup_capture,
                                      teardown_capture),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
