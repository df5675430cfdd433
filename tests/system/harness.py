"""The system-test harness: the whole of Credito on loopback, every part a real process that a
test can kill (SIGKILL), stop (SIGTERM), pause (SIGSTOP), resume (SIGCONT) and restart on the
same port with the same state directory.

    s3rver (the bucket)  <-  registry  <-  trainer
                                 ^
                                 +--  predictor a, predictor b  <-  gateway  ->  redis-server

Stack.start() brings them up in that order, pushes German Credit, trains credit-default and
points champion at it; the gateway has the API keys of `creditoctl apikey new`. Load runs
keep-alive HTTP clients against the gateway and records every answer.

Every process is started with PR_SET_PDEATHSIG and tracked by tests/interop/procs.py, so none
outlives the test run.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import registry_harness as H  # noqa: E402  (puts tests/interop on sys.path)
import procs  # noqa: E402

MODEL = "credit-default"
DATASET = "credit-g"
# The first applicant of credit-g.arff, every feature given: the benchmarks' request body.
with open(os.path.join(ROOT, "bench", "gateway", "applicant.json")) as _f:
    APPLICANT = json.load(_f)
NO_LIMIT = "1000000/minute"


def build_path(*rel):
    path = os.path.join(procs.build_dir(), *rel)
    if not os.access(path, os.X_OK):
        raise RuntimeError("%s not found (build first, or set CREDITO_BUILD_DIR)" % path)
    return path


class Part:
    """One program of the stack on a fixed loopback port (chosen once, kept across restarts)."""

    def __init__(self, name, argv_fn, env=None, needs_health=True, port=None):
        self.name = name
        self.argv_fn = argv_fn          # port -> argv
        self.env = env or {}
        self.needs_health = needs_health
        self.port = port or H.free_port()
        self.proc = None
        self.starts = 0

    def start(self, timeout=30.0):
        """Starts the program and waits until it logged "listening" (and health SERVING when
        needs_health). A port still held by the previous run is retried for a few seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.proc = H.Proc(self.name, self.argv_fn(self.port), env=self.env,
                               needs_health=self.needs_health)
            try:
                self.proc.start(timeout=max(1.0, deadline - time.monotonic()))
                break
            except procs.ServerError:
                bind = "ddress already in use" in self.proc.stderr() or "bind" in self.proc.stderr()
                if not bind or time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
        if self.proc.port != self.port:
            raise procs.ServerError("%s listens on %s, not %d" % (self.name, self.proc.port,
                                                                  self.port))
        self.starts += 1
        return self

    @property
    def target(self):
        return "127.0.0.1:%d" % self.port

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def kill(self):
        """SIGKILL (after SIGCONT, so a paused process dies too)."""
        if self.proc is not None:
            self.resume()
            self.proc.kill()

    def stop(self):
        """SIGTERM and wait: the exit code."""
        self.resume()
        return self.proc.stop()

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self, timeout=30.0):
        self.kill()
        return self.start(timeout)

    def stderr(self):
        return self.proc.stderr() if self.proc else ""

    def logged(self, msg):
        return self.proc.logged(msg) if self.proc else []


class S3Part(Part):
    """s3rver serving the bucket from a directory that survives restarts."""

    def __init__(self, directory):
        self.directory = directory
        super().__init__("s3rver", lambda port: H.s3rver_argv(directory, port),
                         needs_health=False)

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def store_env(self):
        return {"AWS_ENDPOINT_URL_S3": self.endpoint, "AWS_ACCESS_KEY_ID": H.S3_KEY,
                "AWS_SECRET_ACCESS_KEY": H.S3_SECRET, "AWS_REGION": "us-east-1"}

    def aws(self, *args, check=True):
        """awscli against this S3 server."""
        s3 = H.S3(self.directory, self.port)
        return s3.aws(*args, check=check)


class Redis(Part):
    """A redis-server of our own, nothing saved to disk (state lives as long as the process)."""

    def __init__(self, directory):
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        super().__init__("redis-server", lambda port: [
            exe, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", directory, "--daemonize", "no", "--loglevel", "warning"],
            needs_health=False)

    def start(self, timeout=10.0):
        self.proc = H.Proc(self.name, self.argv_fn(self.port), needs_health=False).launch()
        if not H.wait_until(lambda: self.command("PING") == b"+PONG", timeout, 0.05):
            raise procs.ServerError("redis-server did not answer PING on %d" % self.port)
        self.starts += 1
        return self

    def command(self, *words):
        req = b"*%d\r\n" % len(words) + b"".join(
            b"$%d\r\n%s\r\n" % (len(w.encode()), w.encode()) for w in words)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(req)
                f = s.makefile("rb")
                line = f.readline().rstrip(b"\r\n")
                if line[:1] == b"$":
                    n = int(line[1:])
                    return None if n < 0 else f.read(n + 2)[:n]
                if line[:1] == b":":
                    return int(line[1:])
                return line
        except OSError:
            return None


class HTTPPart(Part):
    """A program that logs quietly (the gateway at warn: no line per request); ready when
    GET /healthz answers 200."""

    def start(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        self.proc = H.Proc(self.name, self.argv_fn(self.port), env=self.env,
                           needs_health=False).launch()

        def healthy():
            if not self.proc.alive():
                return True
            try:
                return http_request(self.port, "/healthz", method="GET", timeout=1)[0] == 200
            except OSError:
                return False
        H.wait_until(healthy, max(1.0, deadline - time.monotonic()), 0.05)
        if not self.proc.alive():
            raise procs.ServerError("%s exited %s:\n%s" % (self.name, self.proc.proc.poll(),
                                                           self.proc.stderr()))
        if http_request(self.port, "/healthz", method="GET", timeout=2)[0] != 200:
            raise procs.ServerError("%s: /healthz not 200 on %d" % (self.name, self.port))
        self.starts += 1
        return self


class Stack:
    """The whole system in a temporary directory. Parts are attributes: s3, registry, trainer,
    predictors (a list of two), redis, gateway; keys maps a key name to its API key."""

    def __init__(self, tmp, gateway_flags=()):
        self.tmp = tmp
        self.s3 = S3Part(os.path.join(tmp, "s3"))
        self.registry = Part("credito-registry", lambda port: [
            build_path("services", "registry", "credito-registry"), "--listen",
            "127.0.0.1:%d" % port, "--store", "s3://" + H.BUCKET, "--tmp-dir", tmp,
            "--log-level", "info"], env=self.s3.store_env())
        self.trainer = Part("credito-trainer", lambda port: [
            build_path("services", "trainer", "credito-trainer"), "--listen",
            "127.0.0.1:%d" % port, "--registry", self.registry.target, "--log-level", "info"])
        self.predictors = [self._predictor(n) for n in ("a", "b")]
        self.redis = Redis(tmp)
        self.gateway_flags = list(gateway_flags)
        self.gateway = self.make_gateway()
        self.keys = {}
        self.keyfile = os.path.join(tmp, "api-keys")

    def _predictor(self, n):
        cache = os.path.join(self.tmp, "cache-" + n)
        return Part("credito-predictor", lambda port: [
            build_path("services", "predictor", "credito-predictor"), "--listen",
            "127.0.0.1:%d" % port, "--registry", self.registry.target, "--model",
            MODEL + "@champion", "--cache-dir", cache, "--log-level", "info"])

    def make_gateway(self, key_limit=NO_LIMIT, ip_limit=NO_LIMIT, flags=()):
        """A gateway Part in front of both predictors sharing the stack's redis (not started)."""
        return HTTPPart("credito-gateway", lambda port: [
            build_path("gateway", "credito-gateway"), "--listen", "127.0.0.1:%d" % port,
            "--predictors", ",".join(p.target for p in self.predictors),
            "--api-keys-file", self.keyfile, "--rate-limit-key", key_limit,
            "--rate-limit-ip", ip_limit, "--ratelimit-store", "redis://" + self.redis.target,
            "--log-level", "warn"] + self.gateway_flags + list(flags))

    def ctl(self, *args, **kw):
        return H.ctl(self.registry.target, *args, **kw)

    def train(self, *args, timeout=120):
        """creditoctl --json train credit-g --alias champion [args]: the new version."""
        p = self.ctl("--json", "--trainer", self.trainer.target, "train", DATASET, "--alias",
                     "champion", *args, timeout=timeout)
        return int(json.loads(p.stdout)["model_version"]["version"])

    def versions(self):
        """The registered versions: {number: version document}."""
        try:
            doc = H.ctl_json(self.registry.target, "model", "show", MODEL)
        except AssertionError:
            return {}
        return {int(v["version"]): v for v in doc.get("versions", [])}

    def champion(self):
        """The version champion points at (None when none)."""
        for n, v in self.versions().items():
            if "champion" in v.get("aliases", []):
                return n
        return None

    def start(self):
        self.s3.start()
        self.registry.start()
        self.trainer.start()
        arff = os.path.join(self.tmp, "credit-g.arff")
        shutil.copyfile(os.path.join(ROOT, "data", "raw", "credit-g.arff"), arff)
        self.ctl("dataset", "push", arff, "--name", DATASET)
        self.train()
        lines = []
        for name in ("load", "limited"):
            out = self.ctl("apikey", "new", "--name", name).stdout.splitlines()
            self.keys[name] = out[0].strip()
            lines.append(out[1].strip())
        with open(self.keyfile, "w") as f:
            f.write("\n".join(lines) + "\n")
        for p in self.predictors:
            p.start()
        self.redis.start()
        self.gateway.start()
        return self

    def parts(self):
        return [self.gateway, self.redis] + self.predictors + [self.trainer, self.registry,
                                                               self.s3]

    def kill(self):
        for p in self.parts():
            try:
                p.kill()
            except Exception:  # noqa: BLE001 (cleanup goes on)
                pass

    def wait_predictors_on(self, version, timeout=30.0):
        """Waits until every predictor answers with version; returns the seconds taken."""
        t0 = time.monotonic()
        for p in self.predictors:
            ok = H.wait_until(lambda: predictor_version(p) == version, timeout, 0.1)
            if not ok:
                raise AssertionError("%s did not serve version %d within %.0f s (it serves %r)\n"
                                     "%s" % (p.target, version, timeout, predictor_version(p),
                                             "\n".join(p.stderr().splitlines()[-30:])))
        return time.monotonic() - t0


def predictor_version(part):
    """The model version a predictor serves, by creditoctl predict (None when it cannot say)."""
    p = subprocess.run([build_path("services", "ctl", "creditoctl"), "--predictor", part.target,
                        "--json", "predict", "--json", json.dumps(APPLICANT)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    if p.returncode != 0:
        return None
    try:
        doc = json.loads(p.stdout)
    except ValueError:
        return None
    m = doc.get("model") or {}
    v = m.get("version", doc.get("model_version"))
    return int(v) if v is not None else None


# ---- load through the gateway ----

class Answer:
    __slots__ = ("t", "status", "latency", "version", "error")

    def __init__(self, t, status, latency, version, error):
        self.t, self.status, self.latency, self.version, self.error = (t, status, latency,
                                                                       version, error)

    def __repr__(self):
        return "<%.3f s HTTP %s %.1f ms v%s %s>" % (self.t, self.status, self.latency * 1e3,
                                                      self.version, self.error or "")


class Load:
    """`clients` threads, each POSTing /predict on its own keep-alive connection as fast as
    answers come (a new connection after an error). Every answer is kept: status 0 means the
    connection failed before an HTTP answer."""

    def __init__(self, port, key, clients=8, timeout=10.0):
        self.port, self.key, self.clients, self.timeout = port, key, clients, timeout
        self.answers = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self.t0 = None
        self.body = json.dumps(APPLICANT).encode()

    def __enter__(self):
        self.t0 = time.monotonic()
        for _ in range(self.clients):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        self._threads = []

    def _run(self):
        conn = None
        headers = {"Content-Type": "application/json", "x-api-key": self.key}
        while not self._stop.is_set():
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            t = time.monotonic()
            status, version, error = 0, None, None
            try:
                conn.request("POST", "/predict", body=self.body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                status = r.status
                if status == 200:
                    version = json.loads(data)["model"]["version"]
                else:
                    error = data[:200].decode(errors="replace")
            except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
                error = "%s: %s" % (type(e).__name__, e)
                conn.close()
                conn = None
                time.sleep(0.01)
            done = time.monotonic()
            with self._lock:
                self.answers.append(Answer(t - self.t0, status, done - t, version, error))
        if conn is not None:
            conn.close()

    def now(self):
        return time.monotonic() - self.t0

    def snapshot(self):
        with self._lock:
            return list(self.answers)

    def wait_answers(self, n, timeout=30.0):
        """Waits until n more answers than now have come."""
        base = len(self.snapshot())
        H.wait_until(lambda: len(self.snapshot()) >= base + n, timeout, 0.01)

    def failed(self, since=0.0):
        return [a for a in self.snapshot() if a.status != 200 and a.t >= since]

    def summary(self):
        a = self.snapshot()
        by = {}
        for x in a:
            by[x.status] = by.get(x.status, 0) + 1
        lat = sorted(x.latency for x in a if x.status == 200)
        p99 = lat[int(len(lat) * 0.99) - 1] * 1e3 if lat else 0.0
        return "%d answers %s, p99 %.1f ms" % (len(a), by, p99)


def http_request(port, path, key=None, body=None, method="POST", timeout=10.0):
    """One request on a new connection: (status, headers dict lower-cased, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["x-api-key"] = key
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                     headers=headers)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def version_of(answers):
    return sorted({a.version for a in answers if a.status == 200})


def tail(text, n=40):
    return "\n".join(text.splitlines()[-n:])


__all__ = ["H", "procs", "Stack", "Part", "Load", "Answer", "http_request", "predictor_version",
           "version_of", "tail", "APPLICANT", "MODEL", "DATASET", "re"]
