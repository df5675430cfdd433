"""Server processes for the interop tests: start a Credito server on a free loopback port, learn
the port from its JSON "listening" log line (each stderr line is parsed as JSON), wait until it
reports itself serving, and stop it with a signal (returning the exit code).

Processes never outlive the test run: each is tracked and killed at interpreter exit, started
with PR_SET_PDEATHSIG so it dies if the test process is killed outright, and a Server used as a
context manager (or registered with unittest's addCleanup(server.kill)) is killed on failure.
"""
import atexit
import ctypes
import json
import os
import tempfile
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 15.0

_live = set()
_live_lock = threading.Lock()


def build_dir():
    """The CMake build directory holding the server binaries."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.abspath(os.environ.get("CREDITO_BUILD_DIR", os.path.join(root, "build")))


def binary(name):
    """Path of a server binary in the build dir, by program name."""
    rel = {
        "credito-registry": "services/registry/credito-registry",
        "credito-trainer": "services/trainer/credito-trainer",
        "credito-predictor": "services/predictor/credito-predictor",
        "credito-echo-server": "tests/integration/credito-echo-server",
    }[name]
    path = os.path.join(build_dir(), rel)
    if not os.access(path, os.X_OK):
        raise RuntimeError("%s not found at %s (build first, or set CREDITO_BUILD_DIR)"
                           % (name, path))
    return path


def _die_with_parent():
    # Runs in the child between fork and exec: SIGKILL it when the parent thread dies.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class ServerError(AssertionError):
    """A server did not start or stop as expected (an AssertionError, so tests fail, not error)."""


class Server:
    """One running server program. Use as a context manager, or call kill() in a cleanup."""

    def __init__(self, program, *args, env=None):
        self.program = program
        # CREDITO_SERVER_WRAPPER runs each server under a tool, e.g. valgrind.
        wrapper = shlex.split(os.environ.get("CREDITO_SERVER_WRAPPER", ""))
        self.argv = wrapper + [binary(program), "--listen", "127.0.0.1:0", "--log-level", "info"]
        self.argv += [str(a) for a in args]
        self.env = dict(os.environ, **(env or {}))
        if program == "credito-registry" and "CREDITO_STORE" not in (env or {}):
            # Never the user's default store: a fresh temporary one per server.
            self._store_dir = tempfile.mkdtemp(prefix="credito-store-")
            self.env["CREDITO_STORE"] = "file://" + self._store_dir
        self.proc = None
        self.port = None
        self.lines = []          # raw stderr lines
        self.records = []        # the lines that parsed as JSON objects
        self._cond = threading.Condition()
        self._reader = None
        self._eof = False
        self._serving = False

    # -- lifecycle --

    def start(self, timeout=START_TIMEOUT_S):
        """Starts the program and returns once it is ready: it logged
        {"msg":"health","service":"","serving":true} and "listening" (the port)."""
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=self.env, preexec_fn=_die_with_parent)
        with _live_lock:
            _live.add(self)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.port is None or not self._serving:
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    break
                self._cond.wait(left)
        if self.port is None or not self._serving:
            why = ("exited with %s" % self.proc.poll()) if self._eof else (
                "no \"listening\" and serving \"health\" log lines within %.0f s" % timeout)
            self.kill()
            raise ServerError("%s did not start: %s\ncommand: %s\nstderr:\n%s"
                              % (self.program, why, " ".join(self.argv), self.stderr()))
        return self

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            rec = None
            try:
                rec = json.loads(line)
            except ValueError:
                pass
            with self._cond:
                self.lines.append(line)
                if isinstance(rec, dict):
                    self.records.append(rec)
                    if rec.get("msg") == "listening" and self.port is None:
                        self.port = int(rec["port"])
                    if (rec.get("msg") == "health" and rec.get("service") == ""
                            and rec.get("serving") is True):
                        self._serving = True
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def pid(self):
        return self.proc.pid

    @property
    def target(self):
        return "127.0.0.1:%d" % self.port

    def send_signal(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT_S):
        """Waits for the exit and returns the code (negative: killed by that signal). A process
        still alive after timeout is killed and the test fails."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ServerError("%s (pid %d) still running %.1f s after the signal\nstderr:\n%s"
                              % (self.program, self.proc.pid, timeout, self.stderr()))
        self._finish()
        return rc

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT_S):
        """Sends sig (SIGTERM), waits, returns the exit code."""
        self.send_signal(sig)
        return self.wait(timeout)

    def kill(self):
        """Kills the process if it is alive; always safe to call."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._finish()

    def _finish(self):
        if self._reader is not None:
            self._reader.join(2)
        if self.proc.stderr and not self.proc.stderr.closed and (
                self._reader is None or not self._reader.is_alive()):
            self.proc.stderr.close()
        with _live_lock:
            _live.discard(self)
        if getattr(self, "_store_dir", None):
            shutil.rmtree(self._store_dir, ignore_errors=True)
            self._store_dir = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- logs --

    def stderr(self):
        with self._cond:
            return "\n".join(self.lines)

    def logged(self, msg):
        """The JSON log records whose "msg" is msg."""
        with self._cond:
            return [r for r in self.records if r.get("msg") == msg]

    def wait_log(self, msg, timeout=5.0):
        """Waits until a record with this msg appears; returns it or None."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for r in self.records:
                    if r.get("msg") == msg:
                        return r
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    return None
                self._cond.wait(left)

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.kill()
        return False


def start(program, *args, **kw):
    """Starts a server and returns it once it listens."""
    return Server(program, *args, **kw).start()


@atexit.register
def _kill_all():
    with _live_lock:
        servers = list(_live)
    for s in servers:
        s.kill()


def _on_signal(signum, frame):
    _kill_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def install_signal_handlers():
    """Kill servers when the test run itself is interrupted or terminated (ctest timeout)."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def unittest_main(name, figures=()):
    """Runs the calling module's unittest cases verbosely with the signal handlers installed,
    prints `figures` (lines a test collected), the run time and "N passed, M failed, K skipped",
    and exits 1 when anything failed or nothing ran."""
    import time
    import unittest
    install_signal_handlers()
    t0 = time.monotonic()
    prog = unittest.main(module="__main__", verbosity=2, exit=False)
    r = prog.result
    failed = len(r.failures) + len(r.errors) + len(r.unexpectedSuccesses)
    skipped = len(r.skipped)
    passed = r.testsRun - failed - skipped
    sys.stdout.flush()
    for line in (figures() if callable(figures) else figures):
        print(line)
    print("%s: %.1f s" % (name, time.monotonic() - t0))
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.exit(1 if failed or r.testsRun == 0 else 0)
