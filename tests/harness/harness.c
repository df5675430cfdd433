/* Child processes for tests: spawn, wait for readiness, signal, reap. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* Children still running, killed at exit so a failed assertion (which longjmps past the test's
 * own cleanup) never leaves a server behind. */
#define LIVE_MAX 64
static pid_t live[LIVE_MAX];

static void live_kill_all(void)
{
  for (int i = 0; i < LIVE_MAX; i++) {
    if (live[i] > 0) {
      int status;

      kill(live[i], SIGKILL);
      waitpid(live[i], &status, 0);
      live[i] = 0;
    }
  }
}

static void live_set(pid_t old, pid_t pid)
{
  static bool registered;

  if (!registered) {
    atexit(live_kill_all);
    registered = true;
  }
  for (int i = 0; i < LIVE_MAX; i++) {
    if (live[i] == old) {
      live[i] = pid;
      return;
    }
  }
}

long long harness_now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void harness_sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* Reads the log and returns the port of the "listening" line, or 0. */
static int log_port(const char *path)
{
  char line[4096];
  int port = 0;
  FILE *f = fopen(path, "r");

  if (!f)
    return 0;
  while (!port && fgets(line, sizeof(line), f)) {
    const char *p = strstr(line, "\"port\":");

    if (strstr(line, "\"msg\":\"listening\"") && p)
      port = (int)strtol(p + 7, NULL, 10);
  }
  fclose(f);
  return port;
}

static void log_dump(const char *path)
{
  char line[4096];
  FILE *f = fopen(path, "r");

  if (!f)
    return;
  fprintf(stderr, "---- %s ----\n", path);
  while (fgets(line, sizeof(line), f))
    fputs(line, stderr);
  fclose(f);
}

int proc_start(struct proc *p, char *const argv[], int timeout_ms)
{
  long long until = harness_now_ms() + timeout_ms;
  int fd;

  memset(p, 0, sizeof(*p));
  snprintf(p->log, sizeof(p->log), "/tmp/credito-test-XXXXXX");
  fd = mkstemp(p->log);
  if (fd < 0)
    return -1;
  p->pid = fork();
  if (p->pid < 0) {
    close(fd);
    p->pid = 0;
    return -1;
  }
  if (p->pid == 0) {
    sigset_t none;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* the test may block signals; the child must not */
    dup2(fd, 2);
    close(fd);
    execv(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(fd);
  live_set(0, p->pid);
  while (harness_now_ms() < until) {
    int status;

    p->port = log_port(p->log);
    if (p->port > 0)
      return 0;
    if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
      live_set(p->pid, 0);
      p->pid = 0;
      break;
    }
    harness_sleep_ms(10);
  }
  fprintf(stderr, "%s did not start listening\n", argv[0]);
  log_dump(p->log);
  proc_stop(p);
  return -1;
}

int proc_signal(const struct proc *p, int sig)
{
  return p->pid > 0 ? kill(p->pid, sig) : -1;
}

int proc_wait(struct proc *p, int timeout_ms)
{
  long long until = harness_now_ms() + timeout_ms;
  int status;

  if (p->pid <= 0)
    return -1;
  while (harness_now_ms() < until) {
    pid_t r = waitpid(p->pid, &status, WNOHANG);

    if (r == p->pid) {
      live_set(p->pid, 0);
      p->pid = 0;
      if (WIFEXITED(status))
        return WEXITSTATUS(status);
      return 128 + WTERMSIG(status);
    }
    harness_sleep_ms(5);
  }
  log_dump(p->log);
  kill(p->pid, SIGKILL);
  waitpid(p->pid, &status, 0);
  live_set(p->pid, 0);
  p->pid = 0;
  return -1;
}

void proc_stop(struct proc *p)
{
  if (p->pid > 0) {
    int status;

    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    live_set(p->pid, 0);
    p->pid = 0;
  }
  if (p->log[0]) {
    unlink(p->log);
    p->log[0] = '\0';
  }
}

bool proc_log_has(const struct proc *p, const char *s)
{
  char line[4096];
  bool hit = false;
  FILE *f = fopen(p->log, "r");

  if (!f)
    return false;
  while (!hit && fgets(line, sizeof(line), f))
    hit = strstr(line, s) != NULL;
  fclose(f);
  return hit;
}

void proc_addr(const struct proc *p, char *out, size_t outlen)
{
  snprintf(out, outlen, "127.0.0.1:%d", p->port);
}

char *harness_file_read(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  char *data = NULL;
  long n;

  if (!f)
    return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
    data = malloc((size_t)n + 1);
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
      free(data);
      data = NULL;
    }
    if (data) {
      data[n] = '\0';
      *len = (size_t)n;
    }
  }
  fclose(f);
  return data;
}
