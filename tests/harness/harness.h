/* Test harness: start the real programs as child processes on loopback, learn the port they
 * picked from their "listening" log line, signal them and collect their exit status. Shared by
 * the integration tests and the benchmarks. */
#ifndef CREDITO_HARNESS_H
#define CREDITO_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct proc {
  pid_t pid;            /* 0 when not running */
  int port;             /* from the "listening" line */
  char log[256];        /* file holding the child's stderr */
};

/* Starts argv (argv[0] a path) with stderr to a temporary log file, and waits up to timeout_ms
 * for its "listening" line. Returns 0, or -1 (the child is killed and its log printed). */
int proc_start(struct proc *p, char *const argv[], int timeout_ms);

/* Sends sig to the child. */
int proc_signal(const struct proc *p, int sig);

/* Waits up to timeout_ms for the child to exit; returns its exit code, 128+signal if a signal
 * killed it, or -1 on time-out (the child is then killed). */
int proc_wait(struct proc *p, int timeout_ms);

/* Kills the child if it still runs and removes its log. Safe to call twice. */
void proc_stop(struct proc *p);

/* True if the child's log holds s. */
bool proc_log_has(const struct proc *p, const char *s);

/* "127.0.0.1:PORT" of the child, in a static per-call buffer of the caller's. */
void proc_addr(const struct proc *p, char *out, size_t outlen);

/* Reads a whole file into a NUL-terminated buffer from libc's malloc (outside any test's checked
 * allocator); the caller frees it with free(). NULL if it cannot be read. */
char *harness_file_read(const char *path, size_t *len);

/* Milliseconds on the monotonic clock. */
long long harness_now_ms(void);

/* Sleeps ms milliseconds. */
void harness_sleep_ms(int ms);

#endif
