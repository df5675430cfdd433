"""integration.deploy: the image's scripts (deploy/docker) run against the programs built here,
on loopback, as the containers run them, since no Docker engine is needed for that:

- credito-entrypoint starts each program; credito-healthcheck says healthy only when the
  program's gRPC health is SERVING (the gateway: GET /readyz answers 200);
- credito-first-model pushes German Credit and trains credit-default@champion, does nothing
  the second time, and fails when the gate keeps the alias from moving;
- the Dockerfile's bake step (its model stage's RUN line, run as written) pulls a version with
  `creditoctl model pull` and checks it; a predictor started by the entrypoint from that seed,
  with the registry unreachable, serves exactly that version at once;
- the gateway accepts .env.example's example API key.

CREDITO_BUILD_DIR is the CMake build directory. Standard library only.
"""
import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get("CREDITO_BUILD_DIR", os.path.join(ROOT, "build")))
PROGRAMS = {
    "credito-registry": "services/registry",
    "credito-trainer": "services/trainer",
    "credito-predictor": "services/predictor",
    "credito-gateway": "gateway",
    "creditoctl": "services/ctl",
}
SCRIPTS = {
    "credito-entrypoint": "deploy/docker/entrypoint.sh",
    "credito-healthcheck": "deploy/docker/healthcheck.sh",
    "credito-first-model": "deploy/docker/first-model.sh",
}
# The first applicant of credit-g.arff, every feature given: the benchmarks' request body.
with open(os.path.join(ROOT, "bench", "gateway", "applicant.json")) as _f:
    APPLICANT = json.load(_f)


def _die_with_parent():
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_example():
    out = {}
    with open(os.path.join(ROOT, ".env.example"), encoding="utf-8") as f:
        for line in f:
            name, sep, value = line.strip().partition("=")
            if sep and not name.startswith("#"):
                out[name] = value
    return out


class Proc:
    """A program started through credito-entrypoint; its stderr lines are kept."""

    def __init__(self, env, *args):
        self.lines = []
        self.proc = subprocess.Popen(["credito-entrypoint"] + list(args), env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, preexec_fn=_die_with_parent)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def logged(self, msg, timeout=10.0):
        """The first JSON log record whose msg is msg, waiting up to timeout."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in list(self.lines):
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("msg") == msg:
                    return rec
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError("no %r in the log:\n%s" % (msg, "".join(self.lines)))

    def port(self):
        return self.logged("listening")["port"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class DeployScripts(unittest.TestCase):
    """One registry and one trainer for the class; the numbered tests run in order and build on
    each other (test_2 trains the version test_3 bakes)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="credito-deploy-")
        t = cls.tmp.name
        bin_dir = os.path.join(t, "bin")
        os.makedirs(bin_dir)
        for name, rel in PROGRAMS.items():
            src = os.path.join(BUILD, rel, name)
            if not os.access(src, os.X_OK):
                raise AssertionError("%s not built in %s (build first, or set "
                                     "CREDITO_BUILD_DIR)" % (name, BUILD))
            os.symlink(src, os.path.join(bin_dir, name))
        for name, rel in SCRIPTS.items():
            os.symlink(os.path.join(ROOT, rel), os.path.join(bin_dir, name))
        cls.env = {
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.path.join(t, "home"),
            "CREDITO_LOG_LEVEL": "info",
            "CREDITO_MODEL_SEED": os.path.join(t, "no-seed"),
            "CREDITO_LISTEN": "127.0.0.1:0",
            "GRPC_VERBOSITY": "NONE",
        }
        # Sanitizer settings reach the programs (tests/run.sh's ASan pass).
        cls.env.update({k: v for k, v in os.environ.items() if k.endswith("SAN_OPTIONS")})
        cls.procs = []
        cls.registry = cls.start(CREDITO_STORE="file://" + os.path.join(t, "store"),
                                 args=["registry"])
        cls.reg_addr = "127.0.0.1:%d" % cls.registry.port()
        cls.trainer = cls.start(CREDITO_REGISTRY=cls.reg_addr, args=["trainer"])
        cls.tr_addr = "127.0.0.1:%d" % cls.trainer.port()

    @classmethod
    def tearDownClass(cls):
        for p in reversed(cls.procs):
            p.stop()
        cls.tmp.cleanup()

    @classmethod
    def start(cls, args, **env):
        p = Proc(dict(cls.env, **env), *args)
        cls.procs.append(p)
        return p

    def run_env(self, args, timeout=60, **env):
        return subprocess.run(args, env=dict(self.env, **env), capture_output=True, text=True,
                              timeout=timeout)

    def healthy(self, prog, port, timeout=10.0):
        end = time.monotonic() + timeout
        while True:
            rc = self.run_env(["credito-healthcheck", prog, str(port)]).returncode
            if rc == 0 or time.monotonic() > end:
                return rc == 0
            time.sleep(0.1)

    def first_model(self, **env):
        return self.run_env(["credito-entrypoint", "first-model"], timeout=120,
                            CREDITO_REGISTRY=self.reg_addr, CREDITO_TRAINER=self.tr_addr,
                            CREDITO_FIRST_DATA=os.path.join(ROOT, "data/raw/credit-g.arff"),
                            **env)

    def bake(self, ref, seed):
        """Runs the Dockerfile's model-stage RUN line as written, into seed."""
        with open(os.path.join(ROOT, "deploy/docker/Dockerfile"), encoding="utf-8") as f:
            text = f.read()
        stage = re.search(r"^FROM \S+ AS model$(.*?)^FROM ", text, re.M | re.S).group(1)
        run = re.search(r"^RUN (.*?)(?<!\\)\n", stage, re.M | re.S).group(1)
        run = run.replace("/stage/usr/local/bin/creditoctl", "creditoctl").replace("/seed", seed)
        return subprocess.run(["bash", "-o", "pipefail", "-c", run], capture_output=True,
                              text=True, timeout=60,
                              env=dict(self.env, MODEL=ref, REGISTRY=self.reg_addr))

    def test_1_health(self):
        self.assertTrue(self.healthy("registry", self.reg_addr.split(":")[1]))
        self.assertTrue(self.healthy("trainer", self.tr_addr.split(":")[1]))
        self.assertFalse(self.healthy("predictor", closed_port(), timeout=0))
        self.assertFalse(self.healthy("gateway", closed_port(), timeout=0))

    def test_2_first_model(self):
        r = self.first_model()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("champion", r.stdout)
        again = self.first_model()
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("exists; nothing to train", again.stdout)
        gated = self.first_model(CREDITO_FIRST_MODEL="gated", CREDITO_FIRST_MIN_AUC="0.999")
        self.assertEqual(gated.returncode, 1, gated.stdout + gated.stderr)
        self.assertIn("gated@champion is not set", gated.stderr)

    def test_3_baked_model_serves_with_registry_down(self):
        seed = os.path.join(self.tmp.name, "seed")
        r = self.bake("credit-default/1", seed)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(seed, "MODEL")) as f:
            self.assertEqual(f.read().strip(), "credit-default/1")
        # An empty CREDITO_MODEL means the baked ref; the registry address answers nothing.
        pred = self.start(["predictor"], CREDITO_MODEL="", CREDITO_MODEL_SEED=seed,
                          CREDITO_CACHE_DIR=os.path.join(self.tmp.name, "cache"),
                          CREDITO_REGISTRY="127.0.0.1:%d" % closed_port())
        port = pred.port()
        self.assertTrue(self.healthy("predictor", port))
        served = pred.logged("serving model")
        self.assertEqual((served["model"], served["version"]), ("credit-default", 1))
        pred.logged("baked model copied into the predictor cache")

        keys = env_example()
        gw = self.start(["gateway"], CREDITO_PREDICTORS="127.0.0.1:%d" % port,
                        CREDITO_API_KEYS=keys["CREDITO_API_KEYS"])
        gw_port = gw.port()
        self.assertTrue(self.healthy("gateway", gw_port))
        req = urllib.request.Request(
            "http://127.0.0.1:%d/predict" % gw_port, data=json.dumps(APPLICANT).encode(),
            headers={"content-type": "application/json",
                     "x-api-key": keys["CREDITO_UI_API_KEY"]})
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = json.load(resp)
        self.assertEqual(body["model"]["version"], 1)

    def test_4_baked_ref_must_match(self):
        seed = os.path.join(self.tmp.name, "seed")
        if not os.path.exists(os.path.join(seed, "MODEL")):
            self.assertEqual(self.bake("credit-default/1", seed).returncode, 0)
        pred = self.start(["predictor"], CREDITO_MODEL="credit-default@other",
                          CREDITO_MODEL_SEED=seed,
                          CREDITO_CACHE_DIR=os.path.join(self.tmp.name, "cache-2"),
                          CREDITO_REGISTRY=self.reg_addr)
        warn = pred.logged("CREDITO_MODEL is not the baked ref: the baked model is not used")
        self.assertEqual(warn["baked"], "credit-default/1")
        cache = os.path.join(self.tmp.name, "cache-2")
        copied = [f for f in os.listdir(cache) if f.endswith(".ref")] if os.path.isdir(cache) \
            else []
        self.assertEqual(copied, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
