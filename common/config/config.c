/* config: flag parsing over argv (permuted in place, no allocation), the
 * environment fallback, usage text, and strict value parsers. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The value a bare bool flag resolves to. */
static const char cfg_true[] = "true";

/* The option whose name is the namelen bytes at name, or NULL. */
static struct cm_opt *cfg_find(struct cm_opt *opts, size_t nopts, const char *name, size_t namelen)
{
  struct cm_opt *opt = NULL;
  size_t i;

  for (i = 0; i < nopts && !opt; i++) {
    if (strlen(opts[i].name) == namelen && memcmp(opts[i].name, name, namelen) == 0)
      opt = &opts[i];
  }
  return opt;
}

/* Parses 1/true/yes/0/false/no (any case). Returns 0, or -1 if s is none. */
static int cfg_bool_parse(const char *s, bool *out)
{
  static const char *const yes[] = {"1", "true", "yes"};
  static const char *const no[] = {"0", "false", "no"};
  int rc = -1;
  size_t i;

  for (i = 0; i < 3; i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *out = true;
      rc = 0;
    } else if (strcasecmp(s, no[i]) == 0) {
      *out = false;
      rc = 0;
    }
  }
  return rc;
}

/* Moves argv[from] down to argv[to] (to <= from), shifting the rest up. */
static void cfg_rotate(char **argv, int to, int from)
{
  char *tmp = argv[from];

  memmove(&argv[to + 1], &argv[to], (size_t)(from - to) * sizeof(*argv));
  argv[to] = tmp;
}

/* Handles the flag at argv[*i], taking the next slot as its value when
 * needed (then *i moves past it). Returns 0, 1 for help, or CM_E_INVALID. */
static int cfg_flag(struct cm_opt *opts, size_t nopts, int argc, char **argv, int *i,
                    struct cm_error *err)
{
  const char *arg = argv[*i];
  const char *eq = strchr(arg, '=');
  size_t arglen = eq ? (size_t)(eq - arg) : strlen(arg); /* flag without "=value" */
  struct cm_opt *opt = NULL;
  bool b;
  int rc = 0;

  if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
    rc = 1;
    goto out;
  }
  /* Single-dash flags other than -h are not ours: reported as unknown. */
  if (arg[1] == '-')
    opt = cfg_find(opts, nopts, arg + 2, arglen - 2);
  if (!opt) {
    rc = cm_error_set(err, CM_E_INVALID, "unknown flag %.*s", (int)arglen, arg);
    goto out;
  }
  if (opt->is_bool) {
    if (eq && cfg_bool_parse(eq + 1, &b) != 0) {
      rc = cm_error_set(err, CM_E_INVALID, "flag --%s expects 1/true/yes/0/false/no, got \"%.40s\"",
                        opt->name, eq + 1);
      goto out;
    }
    opt->value = eq ? eq + 1 : cfg_true;
  } else if (eq) {
    opt->value = eq + 1;
  } else if (*i + 1 < argc) {
    *i += 1;
    opt->value = argv[*i];
  } else {
    rc = cm_error_set(err, CM_E_INVALID, "flag --%s needs a value", opt->name);
    goto out;
  }
  opt->set = true;
out:
  return rc;
}

/* Fills the options no flag set from the environment, then the defaults. */
static int cfg_resolve(struct cm_opt *opts, size_t nopts, struct cm_error *err)
{
  const char *v;
  size_t i;
  bool b;
  int rc = 0;

  for (i = 0; i < nopts; i++) {
    if (opts[i].set)
      continue;
    v = opts[i].env ? getenv(opts[i].env) : NULL;
    if (v && *v) {
      if (opts[i].is_bool && cfg_bool_parse(v, &b) != 0) {
        rc = cm_error_set(err, CM_E_INVALID, "%s expects 1/true/yes/0/false/no, got \"%.40s\"",
                          opts[i].env, v);
        goto out;
      }
      opts[i].value = v;
      opts[i].set = true;
    } else {
      opts[i].value = opts[i].def;
    }
  }
out:
  return rc;
}

int cm_config_parse(struct cm_opt *opts, size_t nopts, int argc, char **argv, int *first_arg,
                    struct cm_error *err)
{
  int rc = 0;
  int pos = 1; /* argv[1..pos) are handled flags, argv[pos..i) positionals */
  int i, start;

  cm_error_clear(err);
  for (i = 0; (size_t)i < nopts; i++) {
    opts[i].value = NULL;
    opts[i].set = false;
  }
  for (i = 1; i < argc; i++) {
    if (argv[i][0] != '-' || argv[i][1] == '\0')
      continue;
    if (strcmp(argv[i], "--") == 0) {
      /* Everything after it is positional and already in place. */
      cfg_rotate(argv, pos++, i);
      break;
    }
    start = i;
    rc = cfg_flag(opts, nopts, argc, argv, &i, err);
    if (rc)
      goto out;
    for (; start <= i; start++)
      cfg_rotate(argv, pos++, start);
  }
  if (pos < argc && !first_arg) {
    rc = cm_error_set(err, CM_E_INVALID, "unexpected argument \"%.60s\"", argv[pos]);
    goto out;
  }
  if (first_arg)
    *first_arg = pos;
  rc = cfg_resolve(opts, nopts, err);
out:
  return rc;
}

void cm_config_usage(FILE *out, const char *program, const char *summary, const struct cm_opt *opts,
                     size_t nopts)
{
  size_t i;

  fprintf(out, "Usage: %s [flags]\n", program);
  if (summary)
    fprintf(out, "%s\n", summary);
  fprintf(out, "\nFlags:\n");
  for (i = 0; i < nopts; i++) {
    fprintf(out, "  --%s%s\n        %s", opts[i].name, opts[i].is_bool ? "" : " VALUE",
            opts[i].help ? opts[i].help : "");
    if (opts[i].env)
      fprintf(out, " [env: %s]", opts[i].env);
    if (opts[i].def)
      fprintf(out, " [default: %s]", opts[i].def);
    fprintf(out, "\n");
  }
  fprintf(out, "  -h, --help\n        Print this help and exit.\n");
}

const char *cm_opt_get(const struct cm_opt *opts, size_t n, const char *name)
{
  const char *v = NULL;
  size_t i;

  for (i = 0; i < n; i++) {
    if (strcmp(opts[i].name, name) == 0) {
      v = opts[i].value;
      break;
    }
  }
  return v;
}

bool cm_opt_bool(const struct cm_opt *opts, size_t n, const char *name)
{
  const char *v = cm_opt_get(opts, n, name);
  bool b = false;

  if (v && cfg_bool_parse(v, &b) != 0)
    b = false;
  return b;
}

/* Strict base-10 long: optional '-', digits, nothing else. */
static int cfg_long_parse(const char *s, long *out)
{
  const char *digits = s[0] == '-' ? s + 1 : s;
  char *end = NULL;
  long v;
  int rc = CM_E_INVALID;

  /* strtol alone would accept leading spaces and '+'. */
  if (*digits < '0' || *digits > '9')
    goto out;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno != 0 || *end != '\0')
    goto out;
  *out = v;
  rc = 0;
out:
  return rc;
}

int cm_opt_int(const struct cm_opt *opts, size_t n, const char *name, long min, long max, long *out,
               struct cm_error *err)
{
  const char *v = cm_opt_get(opts, n, name);
  const char *env = NULL;
  size_t i;
  long x = 0;
  int rc = 0;

  for (i = 0; i < n; i++) {
    if (strcmp(opts[i].name, name) == 0)
      env = opts[i].env;
  }
  if (!v) {
    rc = cm_error_set(err, CM_E_INVALID, "--%s%s%s%s: a value is required", name, env ? " (" : "",
                      env ? env : "", env ? ")" : "");
  } else if (cfg_long_parse(v, &x) != 0) {
    rc = cm_error_set(err, CM_E_INVALID, "--%s%s%s%s: \"%.40s\" is not an integer", name,
                      env ? " (" : "", env ? env : "", env ? ")" : "", v);
  } else if (x < min || x > max) {
    rc = cm_error_set(err, CM_E_INVALID, "--%s%s%s%s: %ld is out of range %ld..%ld", name,
                      env ? " (" : "", env ? env : "", env ? ")" : "", x, min, max);
  } else {
    *out = x;
  }
  return rc;
}

int cm_parse_duration_ms(const char *s, long *out_ms)
{
  static const struct {
    const char *unit;
    long ms;
  } units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
  long v = 0;
  size_t i;
  int rc = CM_E_INVALID;

  if (!s || *s < '0' || *s > '9')
    goto out;
  for (; *s >= '0' && *s <= '9'; s++) {
    if (v > (LONG_MAX - (*s - '0')) / 10)
      goto out;
    v = v * 10 + (*s - '0');
  }
  for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
    if (strcmp(s, units[i].unit) == 0 && v <= LONG_MAX / units[i].ms) {
      *out_ms = v * units[i].ms;
      rc = 0;
      break;
    }
  }
out:
  return rc;
}

/* Parses a decimal port 0..65535 (1 to 5 digits, nothing else). */
static int cfg_port_parse(const char *s, int *port)
{
  int v = 0;
  size_t n = 0;
  int rc = CM_E_INVALID;

  for (; s[n] >= '0' && s[n] <= '9' && n < 6; n++)
    v = v * 10 + (s[n] - '0');
  if (n == 0 || n > 5 || s[n] != '\0' || v > 65535)
    goto out;
  *port = v;
  rc = 0;
out:
  return rc;
}

int cm_parse_hostport(const char *s, char *host, size_t hostlen, int *port, struct cm_error *err)
{
  const char *h = s;
  const char *p = NULL;
  const char *close;
  size_t len = 0;
  size_t i;
  int rc = 0;

  if (s && s[0] == '[') {
    close = strchr(s, ']');
    h = s + 1;
    len = close ? (size_t)(close - h) : 0;
    p = (close && close[1] == ':' && len > 0) ? close + 2 : NULL;
  } else if (s) {
    p = strrchr(s, ':');
    len = p ? (size_t)(p - s) : 0;
    /* An unbracketed IPv6 address would be ambiguous: "::1:80". */
    if (p && memchr(s, ':', len))
      p = NULL;
    else if (p)
      p++;
  }
  for (i = 0; p && i < len; i++) {
    if ((unsigned char)h[i] <= ' ' || h[i] == 0x7f || strchr("[]/", h[i]))
      p = NULL;
  }
  if (!p) {
    rc = cm_error_set(err, CM_E_INVALID,
                      "bad address \"%.64s\": expected HOST:PORT, [IPV6]:PORT or :PORT",
                      s ? s : "(null)");
    goto out;
  }
  if (cfg_port_parse(p, port) != 0) {
    rc = cm_error_set(err, CM_E_INVALID, "bad address \"%.64s\": port must be 0..65535", s);
    goto out;
  }
  if (len == 0) {
    h = "0.0.0.0";
    len = strlen(h);
  }
  if (len >= hostlen) {
    rc = cm_error_set(err, CM_E_INVALID, "bad address \"%.64s\": host too long", s);
    goto out;
  }
  memcpy(host, h, len);
  host[len] = '\0';
out:
  return rc;
}

int cm_format_hostport(char *out, size_t outlen, const char *host, int port)
{
  bool v6 = strchr(host, ':') != NULL;
  int n;

  n = snprintf(out, outlen, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
  return (n < 0 || (size_t)n >= outlen) ? CM_E_TOOLARGE : 0;
}
