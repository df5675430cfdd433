/* Unit tests for common/config: flag forms, precedence flag > env >
 * default, positional handling, errors, usage text, and table-driven cases
 * for the integer, duration and HOST:PORT parsers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"

enum { OPT_LISTEN, OPT_PORT, OPT_VERBOSE, OPT_MODEL, NOPTS };

/* Per-test fixture: a fresh option table and error. */
struct fixture {
  struct cm_opt opts[NOPTS];
  struct cm_error err;
};

static const char *const env_names[] = {"CT_LISTEN", "CT_PORT", "CT_VERBOSE"};

static int setup_opts(void **state)
{
  static const struct cm_opt defaults[NOPTS] = {
      {"listen", "CT_LISTEN", "0.0.0.0:50051", "Address to listen on.", false, NULL, false},
      {"port", "CT_PORT", NULL, "A number.", false, NULL, false},
      {"verbose", "CT_VERBOSE", NULL, "Say more.", true, NULL, false},
      {"model", NULL, "credit@champion", "Model to serve.", false, NULL, false},
  };
  struct fixture *f = test_malloc(sizeof(*f));
  size_t i;

  memcpy(f->opts, defaults, sizeof(defaults));
  cm_error_clear(&f->err);
  for (i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
    unsetenv(env_names[i]);
  *state = f;
  return 0;
}

static int teardown_opts(void **state)
{
  size_t i;

  for (i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
    unsetenv(env_names[i]);
  test_free(*state);
  return 0;
}

/* Runs cm_config_parse over a NULL-terminated list of words. */
#define PARSE(f, first, ...) parse_words((f), (first), (char *[]){"prog", __VA_ARGS__, NULL})

static int parse_words(struct fixture *f, int *first, char **argv)
{
  int argc = 0;

  while (argv[argc])
    argc++;
  return cm_config_parse(f->opts, NOPTS, argc, argv, first, &f->err);
}

static void test_defaults(void **state)
{
  struct fixture *f = *state;
  int first = -1;

  assert_int_equal(parse_words(f, &first, (char *[]){"prog", NULL}), 0);
  assert_int_equal(first, 1);
  assert_string_equal(cm_opt_get(f->opts, NOPTS, "listen"), "0.0.0.0:50051");
  assert_false(f->opts[OPT_LISTEN].set);
  assert_null(cm_opt_get(f->opts, NOPTS, "port"));
  assert_null(cm_opt_get(f->opts, NOPTS, "nosuch"));
  assert_false(cm_opt_bool(f->opts, NOPTS, "verbose"));
  assert_int_equal(f->err.code, CM_OK);
}

static void test_flag_forms(void **state)
{
  struct fixture *f = *state;

  assert_int_equal(PARSE(f, NULL, "--listen", "127.0.0.1:1", "--port=8", "--verbose"), 0);
  assert_string_equal(cm_opt_get(f->opts, NOPTS, "listen"), "127.0.0.1:1");
  assert_true(f->opts[OPT_LISTEN].set);
  assert_string_equal(cm_opt_get(f->opts, NOPTS, "port"), "8");
  assert_true(cm_opt_bool(f->opts, NOPTS, "verbose"));
  /* Values may start with '-' and may be empty. */
  assert_int_equal(PARSE(f, NULL, "--port", "-5", "--listen="), 0);
  assert_string_equal(cm_opt_get(f->opts, NOPTS, "port"), "-5");
  assert_string_equal(cm_opt_get(f->opts, NOPTS, "listen"), "");
  /* A repeated flag keeps the last value. */
  assert_int_equal(PARSE(f, NULL, "--port=1", "--port=2"), 0);
  assert_string_equal(cm_opt_get(f->opts, NOPTS, "port"), "2");
}

static void test_bool_forms(void **state)
{
  struct fixture *f = *state;

  assert_int_equal(PARSE(f, NULL, "--verbose=no"), 0);
  assert_true(f->opts[OPT_VERBOSE].set);
  assert_false(cm_opt_bool(f->opts, NOPTS, "verbose"));
  assert_int_equal(PARSE(f, NULL, "--verbose=YES"), 0);
  assert_true(cm_opt_bool(f->opts, NOPTS, "verbose"));
  assert_int_equal(PARSE(f, NULL, "--verbose=maybe"), CM_E_INVALID);
  assert_non_null(strstr(f->err.msg, "--verbose"));
  /* A bool flag never eats the next word. */
  assert_int_equal(PARSE(f, NULL, "--verbose", "--port", "3"), 0);
  assert_string_equal(cm_opt_get(f->opts, NOPTS, "port"), "3");
}

static void test_env_precedence(void **state)
{
  struct fixture *f = *state;

  setenv("CT_LISTEN", "10.0.0.1:9", 1);
  setenv("CT_PORT", "77", 1);
  assert_int_equal(PARSE(f, NULL, "--port", "88"), 0);
  assert_string_equal(cm_opt_get(f->opts, NOPTS, "listen"), "10.0.0.1:9"); /* env > def */
  assert_true(f->opts[OPT_LISTEN].set);
  assert_string_equal(cm_opt_get(f->opts, NOPTS, "port"), "88"); /* flag > env */
  /* An empty variable counts as unset. */
  setenv("CT_LISTEN", "", 1);
  assert_int_equal(parse_words(f, NULL, (char *[]){"prog", NULL}), 0);
  assert_string_equal(cm_opt_get(f->opts, NOPTS, "listen"), "0.0.0.0:50051");
  assert_false(f->opts[OPT_LISTEN].set);
}

static void test_env_bools(void **state)
{
  struct fixture *f = *state;
  static const struct {
    const char *value;
    int rc;
    bool on;
  } cases[] = {
      {"1", 0, true},
      {"true", 0, true},
      {"yes", 0, true},
      {"TRUE", 0, true},
      {"0", 0, false},
      {"false", 0, false},
      {"no", 0, false},
      {"on", CM_E_INVALID, false},
      {"2", CM_E_INVALID, false},
  };
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    setenv("CT_VERBOSE", cases[i].value, 1);
    assert_int_equal(parse_words(f, NULL, (char *[]){"prog", NULL}), cases[i].rc);
    if (cases[i].rc == 0)
      assert_int_equal(cm_opt_bool(f->opts, NOPTS, "verbose"), cases[i].on);
    else
      assert_non_null(strstr(f->err.msg, "CT_VERBOSE"));
  }
}

static void test_positionals_permuted(void **state)
{
  struct fixture *f = *state;
  char *argv[] = {"prog", "push", "--port", "1", "FILE", "-", "--verbose", "last", NULL};
  int first = 0;

  assert_int_equal(cm_config_parse(f->opts, NOPTS, 8, argv, &first, &f->err), 0);
  assert_int_equal(first, 4);
  assert_string_equal(argv[4], "push");
  assert_string_equal(argv[5], "FILE");
  assert_string_equal(argv[6], "-");
  assert_string_equal(argv[7], "last");
  assert_string_equal(cm_opt_get(f->opts, NOPTS, "port"), "1");
  assert_true(cm_opt_bool(f->opts, NOPTS, "verbose"));
}

static void test_double_dash_ends_flags(void **state)
{
  struct fixture *f = *state;
  char *argv[] = {"prog", "a", "--port=2", "--", "--verbose", "b", NULL};
  int first = 0;

  assert_int_equal(cm_config_parse(f->opts, NOPTS, 6, argv, &first, &f->err), 0);
  assert_int_equal(first, 3);
  assert_string_equal(argv[3], "a");
  assert_string_equal(argv[4], "--verbose");
  assert_string_equal(argv[5], "b");
  assert_false(cm_opt_bool(f->opts, NOPTS, "verbose"));
  /* "--" alone leaves nothing positional. */
  assert_int_equal(PARSE(f, &first, "--"), 0);
  assert_int_equal(first, 2);
}

static void test_errors(void **state)
{
  struct fixture *f = *state;

  assert_int_equal(PARSE(f, NULL, "--x"), CM_E_INVALID);
  assert_int_equal(f->err.code, CM_E_INVALID);
  assert_string_equal(f->err.msg, "unknown flag --x");
  assert_int_equal(PARSE(f, NULL, "--x=3"), CM_E_INVALID);
  assert_string_equal(f->err.msg, "unknown flag --x");
  assert_int_equal(PARSE(f, NULL, "-p"), CM_E_INVALID);
  assert_string_equal(f->err.msg, "unknown flag -p");
  assert_int_equal(PARSE(f, NULL, "--listenx=1"), CM_E_INVALID);
  assert_int_equal(PARSE(f, NULL, "--port"), CM_E_INVALID);
  assert_string_equal(f->err.msg, "flag --port needs a value");
  assert_int_equal(PARSE(f, NULL, "stray"), CM_E_INVALID);
  assert_non_null(strstr(f->err.msg, "stray"));
  assert_int_equal(PARSE(f, NULL, "--", "stray"), CM_E_INVALID);
  assert_int_equal(cm_config_parse(f->opts, NOPTS, 2, (char *[]){"p", "--x", NULL}, NULL, NULL),
                   CM_E_INVALID); /* err may be NULL */
}

static void test_help(void **state)
{
  struct fixture *f = *state;

  assert_int_equal(PARSE(f, NULL, "--help"), 1);
  assert_int_equal(PARSE(f, NULL, "--port", "1", "-h", "--bogus"), 1);
  assert_int_equal(PARSE(f, NULL, "--bogus", "-h"), CM_E_INVALID);
}

static void test_usage(void **state)
{
  struct fixture *f = *state;
  char text[2048];
  FILE *out = tmpfile();
  size_t n;

  assert_non_null(out);
  cm_config_usage(out, "credito-test", "Does tests.", f->opts, NOPTS);
  rewind(out);
  n = fread(text, 1, sizeof(text) - 1, out);
  text[n] = '\0';
  fclose(out);
  assert_non_null(strstr(text, "Usage: credito-test [flags]\nDoes tests.\n"));
  assert_non_null(strstr(text, "  --listen VALUE\n        Address to listen on. "
                               "[env: CT_LISTEN] [default: 0.0.0.0:50051]\n"));
  assert_non_null(strstr(text, "  --verbose\n        Say more. [env: CT_VERBOSE]\n"));
  assert_non_null(strstr(text, "  --model VALUE\n        Model to serve. "
                               "[default: credit@champion]\n"));
  assert_non_null(strstr(text, "--help"));
}

static void test_opt_int(void **state)
{
  struct fixture *f = *state;
  static const struct {
    const char *value;
    int rc;
    long want;
    const char *msg;
  } cases[] = {
      {"8080", 0, 8080, NULL},
      {"0", 0, 0, NULL},
      {"65535", 0, 65535, NULL},
      {"-0", 0, 0, NULL},
      {"65536", CM_E_INVALID, 0, "--port (CT_PORT): 65536 is out of range 0..65535"},
      {"-1", CM_E_INVALID, 0, "--port (CT_PORT): -1 is out of range 0..65535"},
      {"12a", CM_E_INVALID, 0, "--port (CT_PORT): \"12a\" is not an integer"},
      {"", CM_E_INVALID, 0, "--port (CT_PORT): \"\" is not an integer"},
      {" 5", CM_E_INVALID, 0, NULL},
      {"+5", CM_E_INVALID, 0, NULL},
      {"5 ", CM_E_INVALID, 0, NULL},
      {"0x10", CM_E_INVALID, 0, NULL},
      {"99999999999999999999", CM_E_INVALID, 0, NULL},
  };
  size_t i;
  long out;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char flag[64];

    snprintf(flag, sizeof(flag), "--port=%s", cases[i].value);
    assert_int_equal(parse_words(f, NULL, (char *[]){"prog", flag, NULL}), 0);
    out = -42;
    assert_int_equal(cm_opt_int(f->opts, NOPTS, "port", 0, 65535, &out, &f->err), cases[i].rc);
    if (cases[i].rc == 0) {
      assert_int_equal(out, cases[i].want);
    } else {
      assert_int_equal(out, -42);
      assert_non_null(strstr(f->err.msg, "--port"));
      if (cases[i].msg)
        assert_string_equal(f->err.msg, cases[i].msg);
    }
  }
  assert_int_equal(parse_words(f, NULL, (char *[]){"prog", NULL}), 0);
  assert_int_equal(cm_opt_int(f->opts, NOPTS, "port", 0, 9, &out, &f->err), CM_E_INVALID);
  assert_string_equal(f->err.msg, "--port (CT_PORT): a value is required");
  assert_int_equal(cm_opt_int(f->opts, NOPTS, "port", LONG_MIN, LONG_MAX, &out, NULL),
                   CM_E_INVALID);
}

static void test_duration(void **state)
{
  static const struct {
    const char *s;
    int rc;
    long ms;
  } cases[] = {
      {"250ms", 0, 250},
      {"5s", 0, 5000},
      {"2m", 0, 120000},
      {"1h", 0, 3600000},
      {"100", 0, 100},
      {"0", 0, 0},
      {"0s", 0, 0},
      {"", CM_E_INVALID, 0},
      {"s", CM_E_INVALID, 0},
      {"-5s", CM_E_INVALID, 0},
      {"5x", CM_E_INVALID, 0},
      {"5 s", CM_E_INVALID, 0},
      {"1.5s", CM_E_INVALID, 0},
      {"5S", CM_E_INVALID, 0},
      {"5sec", CM_E_INVALID, 0},
      {" 5", CM_E_INVALID, 0},
      {"9223372036854775807", 0, LONG_MAX},
      {"9223372036854775808", CM_E_INVALID, 0},
      {"9223372036854775807s", CM_E_INVALID, 0},
      {"99999999999999999999ms", CM_E_INVALID, 0},
  };
  size_t i;
  long ms;

  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    ms = -1;
    assert_int_equal(cm_parse_duration_ms(cases[i].s, &ms), cases[i].rc);
    assert_int_equal(ms, cases[i].rc == 0 ? cases[i].ms : -1);
  }
  assert_int_equal(cm_parse_duration_ms(NULL, &ms), CM_E_INVALID);
}

static void test_hostport(void **state)
{
  static const struct {
    const char *s;
    int rc;
    const char *host;
    int port;
  } cases[] = {
      {"127.0.0.1:50051", 0, "127.0.0.1", 50051},
      {"[::1]:50051", 0, "::1", 50051},
      {"[::]:0", 0, "::", 0},
      {":50051", 0, "0.0.0.0", 50051},
      {"localhost:0", 0, "localhost", 0},
      {"registry.internal:65535", 0, "registry.internal", 65535},
      {"host", CM_E_INVALID, NULL, 0},
      {"host:", CM_E_INVALID, NULL, 0},
      {"host:65536", CM_E_INVALID, NULL, 0},
      {"host:-1", CM_E_INVALID, NULL, 0},
      {"host:+1", CM_E_INVALID, NULL, 0},
      {"host:80x", CM_E_INVALID, NULL, 0},
      {"host:000080", CM_E_INVALID, NULL, 0},
      {"::1:80", CM_E_INVALID, NULL, 0},
      {"[::1]", CM_E_INVALID, NULL, 0},
      {"[::1]50051", CM_E_INVALID, NULL, 0},
      {"[::1:50051", CM_E_INVALID, NULL, 0},
      {"[]:80", CM_E_INVALID, NULL, 0},
      {"a b:80", CM_E_INVALID, NULL, 0},
      {"a/b:80", CM_E_INVALID, NULL, 0},
      {"", CM_E_INVALID, NULL, 0},
      {"averyveryverylonghostname.example:1", CM_E_INVALID, NULL, 0},
  };
  struct cm_error err;
  char host[32];
  size_t i;
  int port;

  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    port = -1;
    cm_error_clear(&err);
    assert_int_equal(cm_parse_hostport(cases[i].s, host, sizeof(host), &port, &err), cases[i].rc);
    if (cases[i].rc == 0) {
      assert_string_equal(host, cases[i].host);
      assert_int_equal(port, cases[i].port);
    } else {
      assert_int_equal(err.code, cases[i].rc);
      assert_true(strlen(err.msg) > 0);
    }
  }
  assert_int_equal(cm_parse_hostport(NULL, host, sizeof(host), &port, NULL), CM_E_INVALID);
  /* The host buffer must hold the terminating NUL too. */
  assert_int_equal(cm_parse_hostport("abcd:1", host, 4, &port, NULL), CM_E_INVALID);
  assert_int_equal(cm_parse_hostport("abc:1", host, 4, &port, NULL), 0);
}

static void test_format_hostport(void **state)
{
  char out[32];

  (void)state;
  assert_int_equal(cm_format_hostport(out, sizeof(out), "127.0.0.1", 80), 0);
  assert_string_equal(out, "127.0.0.1:80");
  assert_int_equal(cm_format_hostport(out, sizeof(out), "::1", 50051), 0);
  assert_string_equal(out, "[::1]:50051");
  assert_int_equal(cm_format_hostport(out, 8, "localhost", 1), CM_E_TOOLARGE);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_defaults, setup_opts, teardown_opts),
      cmocka_unit_test_setup_teardown(test_flag_forms, setup_opts, teardown_opts),
      cmocka_unit_test_setup_teardown(test_bool_forms, setup_opts, teardown_opts),
      cmocka_unit_test_setup_teardown(test_env_precedence, setup_opts, teardown_opts),
      cmocka_unit_test_setup_teardown(test_env_bools, setup_opts, teardown_opts),
      cmocka_unit_test_setup_teardown(test_positionals_permuted, setup_opts, teardown_opts),
      cmocka_unit_test_setup_teardown(test_double_dash_ends_flags, setup_opts, teardown_opts),
      cmocka_unit_test_setup_teardown(test_errors, setup_opts, teardown_opts),
      cmocka_unit_test_setup_teardown(test_help, setup_opts, teardown_opts),
      cmocka_unit_test_setup_teardown(test_usage, setup_opts, teardown_opts),
      cmocka_unit_test_setup_teardown(test_opt_int, setup_opts, teardown_opts),
      cmocka_unit_test(test_duration),
      cmocka_unit_test(test_hostport),
      cmocka_unit_test(test_format_hostport),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
