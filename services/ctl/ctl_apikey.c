/* creditoctl apikey: makes gateway API keys and their key-file lines. `new` prints a fresh key
 * once (for the client) and its `NAME:sha256hex` line (for the gateway's key file); `hash`
 * reads a key from stdin, never from argv where ps would show it, and prints its line. */
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "apikey.h"
#include "ctl.h"

static const char apikey_usage[] =
    "usage: apikey new [--name NAME] | apikey hash [--name NAME] < KEY";

/* The --name flag, or a random "key-xxxxxxxx" when it is absent, into name. */
static int name_pick(struct ctl *c, int argc, char **argv, char name[APIKEY_NAME_MAX + 1])
{
  struct cm_opt opts[] = {
      {"name", NULL, NULL, "the key's name, shown in logs and metrics (default: key-RANDOM)",
       false, NULL, false},
  };
  unsigned char r[4];
  const char *given;
  int rc = ctl_flags(c, opts, 1, argc, argv, NULL);

  if (rc)
    return rc;
  given = cm_opt_get(opts, 1, "name");
  if (given && !apikey_name_valid(given))
    return cm_error_set(&c->err, CM_E_INVALID,
                        "--name must be 1-%d characters of A-Z a-z 0-9 _ . -", APIKEY_NAME_MAX);
  if (given) {
    snprintf(name, APIKEY_NAME_MAX + 1, "%s", given);
    return 0;
  }
  if (RAND_bytes(r, sizeof(r)) != 1)
    return cm_error_set(&c->err, CM_E_INTERNAL, "the random generator failed");
  snprintf(name, APIKEY_NAME_MAX + 1, "key-%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
  return 0;
}

static int apikey_cmd_new(struct ctl *c, int argc, char **argv)
{
  char name[APIKEY_NAME_MAX + 1], key[APIKEY_KEY_SIZE], hash[APIKEY_HASH_HEX_SIZE];
  int rc = name_pick(c, argc, argv, name);

  if (!rc)
    rc = apikey_new(key, hash, &c->err);
  if (rc)
    return rc;
  if (c->json) {
    json_t *out = json_pack("{s:s, s:s, s:s, s:s++}", "name", name, "key", key, "sha256", hash,
                            "line", name, ":", hash);

    ctl_print_json(out);
    json_decref(out);
  } else {
    printf("%s\n%s:%s\n", key, name, hash);
    fprintf(stderr, "# line 1: the key, for the client (x-api-key); it is shown only this once\n"
                    "# line 2: for the gateway's key file (--api-keys / CREDITO_API_KEYS_FILE)\n");
  }
  OPENSSL_cleanse(key, sizeof(key));
  return 0;
}

/* Reads one line from stdin into key (its newline, and a CR before it, dropped; anything else
 * kept, spaces included), with echo off on a terminal. *len gets its length. */
static int key_read(struct ctl *c, char *key, size_t cap, size_t *len)
{
  struct termios saved, quiet;
  bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
  int ch = 0, rc = 0;

  *len = 0;
  if (tty) {
    quiet = saved;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    fputs("API key: ", stderr);
  }
  while (*len < cap && (ch = getchar()) != EOF && ch != '\n')
    key[(*len)++] = (char)ch;
  if (*len == cap && ch != '\n' && getchar() != EOF)
    rc = cm_error_set(&c->err, CM_E_INVALID, "the key is longer than %d bytes",
                      APIKEY_PRESENTED_MAX);
  if (*len > 0 && key[*len - 1] == '\r')
    (*len)--;
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    fputc('\n', stderr);
  }
  return rc;
}

static int apikey_cmd_hash(struct ctl *c, int argc, char **argv)
{
  char name[APIKEY_NAME_MAX + 1], hash[APIKEY_HASH_HEX_SIZE];
  /* One spare byte for a CR before the newline, one to detect an over-long key. */
  char key[APIKEY_PRESENTED_MAX + 2];
  size_t len = 0;
  int rc = name_pick(c, argc, argv, name);

  if (!rc)
    rc = key_read(c, key, sizeof(key), &len);
  if (!rc)
    rc = apikey_hash_hex(key, len, hash, &c->err);
  if (!rc && (key[len - 1] == ' ' || key[len - 1] == '\t'))
    fprintf(stderr, "creditoctl: warning: the key ends with white space, which is part of it\n");
  OPENSSL_cleanse(key, sizeof(key));
  if (rc)
    return rc;
  if (c->json) {
    json_t *out = json_pack("{s:s, s:s, s:s++}", "name", name, "sha256", hash, "line", name, ":",
                            hash);

    ctl_print_json(out);
    json_decref(out);
  } else {
    printf("%s:%s\n", name, hash);
  }
  return 0;
}

int ctl_cmd_apikey(struct ctl *c, int argc, char **argv)
{
  if (argc >= 2 && strcmp(argv[1], "new") == 0)
    return apikey_cmd_new(c, argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "hash") == 0)
    return apikey_cmd_hash(c, argc - 1, argv + 1);
  return cm_error_set(&c->err, CM_E_INVALID, "%s", apikey_usage);
}
