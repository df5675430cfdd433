"""The services the UI tests talk to, as real processes on loopback: a registry on a file://
store, a trainer that trains German Credit into credit-default@champion (pushed and trained with
creditoctl), a predictor serving that champion, and gateways in front of it with an API key
made by `creditoctl apikey new --name ui`.

Standard library only (plus tests/interop/procs.py, which tracks the processes so none outlives
the test run). The build directory comes from CREDITO_BUILD_DIR (default build/ in the checkout).
"""
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
import procs  # noqa: E402

MODEL = "credit-default"
KEY_NAME = "ui"
# Generous limits for gateways whose case is not about limits.
NO_LIMIT = "1000000/minute"


def free_port():
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(fn, timeout, interval=0.1):
    """Calls fn until it returns a true value or timeout passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def built(rel):
    """A program in the build directory, by its path there."""
    path = os.path.join(procs.build_dir(), rel)
    if not os.access(path, os.X_OK):
        raise RuntimeError("%s not found (build first, or set CREDITO_BUILD_DIR)" % path)
    return path


class Proc(procs.Server):
    """A Credito program logging JSON lines on stderr, one of them {"msg":"listening","port":N}.
    Unlike procs.Server it takes a whole argv (the gateway is not in procs' table) and may skip
    the wait for a serving health line (the gateway has no gRPC health)."""

    def __init__(self, name, argv, needs_health=True):
        # procs.Server.__init__ derives argv from a program name; set its fields ourselves.
        wrapper = shlex.split(os.environ.get("CREDITO_SERVER_WRAPPER", ""))
        self.program = name
        self.argv = wrapper + [str(a) for a in argv]
        self.env = dict(os.environ)
        self.proc = None
        self.port = None
        self.lines = []
        self.records = []
        self._cond = threading.Condition()
        self._reader = None
        self._eof = False
        self._serving = not needs_health


class Stack:
    """The whole chain in one temporary directory. start() trains the champion and starts one
    predictor; gateway() starts a gateway in front of it. stop() kills everything."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="credito-ui-test-")
        self.procs = []
        self.key = None          # the API key the gateways accept (from creditoctl apikey new)
        self.keyfile = None
        self.registry = None
        self.predictor = None

    def _start(self, name, argv, needs_health=True, timeout=20):
        p = Proc(name, argv, needs_health)
        self.procs.append(p)
        p.start(timeout=timeout)
        return p

    def ctl(self, *args, timeout=60):
        """Runs creditoctl against the registry; returns its stdout, raising on failure."""
        argv = [built("services/ctl/creditoctl"), "--registry", self.registry.target]
        p = subprocess.run(argv + [str(a) for a in args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        if p.returncode != 0:
            raise AssertionError("creditoctl %s exited %d: %s"
                                 % (" ".join(map(str, args)), p.returncode, p.stderr))
        return p.stdout

    def start(self):
        """Registry, trainer (German Credit trained to MODEL@champion, then stopped), API key,
        predictor serving the champion."""
        store = "file://" + os.path.join(self.tmp, "store")
        self.registry = self._start("credito-registry", [
            built("services/registry/credito-registry"), "--listen", "127.0.0.1:0",
            "--store", store, "--log-level", "info"])
        trainer = self._start("credito-trainer", [
            built("services/trainer/credito-trainer"), "--listen", "127.0.0.1:0",
            "--registry", self.registry.target, "--log-level", "info"])
        # push writes credit-g.arff.dvc beside the file: a copy, so none lands in data/raw.
        arff = os.path.join(self.tmp, "credit-g.arff")
        shutil.copyfile(os.path.join(ROOT, "data", "raw", "credit-g.arff"), arff)
        self.ctl("dataset", "push", arff, "--name", "credit-g")
        self.ctl("--trainer", trainer.target, "train", "credit-g", "--model", MODEL,
                 "--alias", "champion", timeout=120)
        trainer.kill()
        out = self.ctl("apikey", "new", "--name", KEY_NAME).splitlines()
        self.key, line = out[0].strip(), out[1].strip()
        if not line.startswith(KEY_NAME + ":"):
            raise AssertionError("creditoctl apikey new printed %r" % out)
        self.keyfile = os.path.join(self.tmp, "api-keys")
        with open(self.keyfile, "w") as f:
            f.write(line + "\n")
        self.predictor = self._start("credito-predictor", [
            built("services/predictor/credito-predictor"), "--listen", "127.0.0.1:0",
            "--registry", self.registry.target, "--model", MODEL + "@champion",
            "--cache-dir", "off", "--log-level", "info"])
        return self

    def retrain(self, path, name):
        """Pushes the data file at path as dataset name, trains MODEL on it and points champion
        at the new version (with a trainer started for it); returns creditoctl's JSON answer.
        The predictor follows the alias on its own, a moment later."""
        trainer = self._start("credito-trainer", [
            built("services/trainer/credito-trainer"), "--listen", "127.0.0.1:0",
            "--registry", self.registry.target, "--log-level", "info"])
        try:
            self.ctl("dataset", "push", path, "--name", name)
            out = self.ctl("--json", "--trainer", trainer.target, "train", name, "--model",
                           MODEL, "--alias", "champion", timeout=120)
        finally:
            trainer.kill()
        return json.loads(out)

    def gateway(self, rate_limit_key=NO_LIMIT, predictors=None):
        """A gateway in front of the predictor (or of `predictors`, "HOST:PORT"); returns its
        base URL."""
        g = self._start("credito-gateway", [
            built("gateway/credito-gateway"), "--listen", "127.0.0.1:0",
            "--predictors", predictors or self.predictor.target,
            "--api-keys-file", self.keyfile, "--rate-limit-key", rate_limit_key,
            "--rate-limit-ip", NO_LIMIT, "--log-level", "info"], needs_health=False, timeout=15)
        return "http://127.0.0.1:%d" % g.port

    def stop(self):
        for p in reversed(self.procs):
            p.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def logs(self):
        """Every process's stderr, for a failure message."""
        return "\n".join("== %s ==\n%s" % (p.program, p.stderr()[-3000:]) for p in self.procs)
