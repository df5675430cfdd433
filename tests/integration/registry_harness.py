"""Helpers for test_registry.py: the processes (an S3 server, the registry), the generated
protobuf messages, a small Registry client over grpcio, creditoctl and awscli.

Every process is started with PR_SET_PDEATHSIG and tracked by tests/interop/procs.py, so none
outlives the test run.
"""
import glob
import hashlib
import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

# grpcio 1.51's fork handlers can deadlock a process started (with preexec_fn) while channels
# are busy (grpc/grpc#31885); these tests never fork a gRPC client, so they are off.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
import grpc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
import procs  # noqa: E402

S3_KEY = "S3RVER"
S3_SECRET = "S3RVER"
BUCKET = "credito"
RPC_TIMEOUT = 10.0
CALLER = "test_registry"

pb = None        # credito.v1.registry_pb2
common = None    # credito.v1.common_pb2
_gen_dir = None


def load_protos():
    """Generates the credito.v1 message modules with protoc into a temporary directory."""
    global pb, common, _gen_dir
    if pb is not None:
        return
    if not shutil.which("protoc"):
        raise RuntimeError("FAIL: protoc missing (Debian: apt-get install protobuf-compiler)")
    _gen_dir = tempfile.mkdtemp(prefix="credito-registry-pb-")
    protos = sorted(glob.glob(os.path.join(ROOT, "proto", "credito", "v1", "*.proto")))
    subprocess.run(["protoc", "-I", os.path.join(ROOT, "proto"), "--python_out=" + _gen_dir]
                   + protos, check=True)
    sys.path.insert(0, _gen_dir)
    pb = importlib.import_module("credito.v1.registry_pb2")
    common = importlib.import_module("credito.v1.common_pb2")


def unload_protos():
    if _gen_dir:
        shutil.rmtree(_gen_dir, ignore_errors=True)


def free_port():
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def md5_hex(data):
    return hashlib.md5(data).hexdigest()


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def blob_key(md5):
    return "files/md5/%s/%s" % (md5[:2], md5[2:])


# ---- processes ----

class Proc(procs.Server):
    """A process that logs JSON lines on stderr, one of them {"msg":"listening","port":N}.
    Unlike procs.Server it takes a whole argv, and may be started without waiting."""

    def __init__(self, name, argv, env=None, needs_health=True):
        # Deliberately not calling procs.Server.__init__: it derives argv from a binary name.
        self.program = name
        self.argv = [str(a) for a in argv]
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.port = None
        self.lines = []
        self.records = []
        self._cond = threading.Condition()
        self._reader = None
        self._eof = False
        self._serving = not needs_health

    def launch(self):
        """Starts the process without waiting for anything."""
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=self.env, preexec_fn=procs._die_with_parent)
        with procs._live_lock:
            procs._live.add(self)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self


def s3rver_argv(directory, port):
    node = shutil.which("node")
    script = os.path.join(ROOT, "tests", "peers", "s3rver.js")
    if not node or not os.path.isdir(os.path.join(ROOT, "tests", "peers", "node_modules",
                                                  "@20minutes", "s3rver")):
        raise RuntimeError("FAIL: node or @20minutes/s3rver missing (cd tests/peers && npm ci)")
    return [node, "--openssl-legacy-provider", script, "--port", port, "--address",
            "127.0.0.1", "--directory", directory, "--bucket", BUCKET]


class S3:
    """An s3rver on a loopback port, serving one bucket from a directory."""

    def __init__(self, directory, port=0):
        self.directory = directory
        self.port = port
        self.proc = None

    def start(self, timeout=15.0):
        self.proc = Proc("s3rver", s3rver_argv(self.directory, self.port), needs_health=False)
        self.proc.start(timeout=timeout)
        self.port = self.proc.port
        return self

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def kill(self):
        if self.proc:
            self.proc.kill()

    def stop(self):
        if self.proc and self.proc.alive():
            self.proc.stop()

    def env(self, secret=S3_SECRET):
        return {"AWS_ENDPOINT_URL_S3": self.endpoint, "AWS_ACCESS_KEY_ID": S3_KEY,
                "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": "us-east-1"}

    # awscli (Debian's), a peer no one here wrote
    def aws(self, *args, check=True, binary=True):
        env = dict(os.environ, AWS_ACCESS_KEY_ID=S3_KEY, AWS_SECRET_ACCESS_KEY=S3_SECRET,
                   AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE="/dev/null",
                   AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_PAGER="")
        for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_REGION",
                  "AWS_SESSION_TOKEN"):
            env.pop(k, None)
        aws = "/usr/bin/aws" if os.path.exists("/usr/bin/aws") else shutil.which("aws")
        if not aws:
            raise RuntimeError("FAIL: awscli missing (Debian: apt-get install awscli)")
        p = subprocess.run([aws, "--endpoint-url", self.endpoint] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError("aws %s failed (%d): %s" % (" ".join(args), p.returncode,
                                                             p.stderr.decode(errors="replace")))
        return p


def registry_argv(store_url, listen="127.0.0.1:0", extra=()):
    wrapper = os.environ.get("CREDITO_SERVER_WRAPPER", "").split()
    return wrapper + [procs.binary("credito-registry"), "--listen", listen, "--store", store_url,
                      "--log-level", "info"] + [str(a) for a in extra]


class Registry:
    """credito-registry over a store (s3://credito with an S3 peer, or file:///dir)."""

    def __init__(self, store_url, env=None, extra=(), tmp_dir=None):
        self.store_url = store_url
        self.env = dict(env or {})
        self.extra = list(extra)
        if tmp_dir:
            self.extra += ["--tmp-dir", tmp_dir]
        self.proc = None
        self.port = None

    def start(self, timeout=20.0):
        self.proc = Proc("credito-registry", registry_argv(self.store_url, extra=self.extra),
                         env=self.env)
        self.proc.start(timeout=timeout)
        self.port = self.proc.port
        return self

    def launch_on(self, port):
        """Starts it on a chosen port without waiting (for a store that is not there)."""
        self.port = port
        self.proc = Proc("credito-registry",
                         registry_argv(self.store_url, "127.0.0.1:%d" % port, self.extra),
                         env=self.env)
        self.proc.launch()
        # Wait until the port accepts connections (the registry binds it before loading).
        ok = wait_until(lambda: _port_open(port) or not self.proc.alive(), 10, 0.05)
        if not ok or not self.proc.alive():
            raise procs.ServerError("credito-registry did not open port %d:\n%s"
                                    % (port, self.proc.stderr()))
        return self

    @property
    def target(self):
        return "127.0.0.1:%d" % self.port

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, sig=None):
        return self.proc.stop() if sig is None else self.proc.stop(sig)

    def kill(self):
        if self.proc:
            self.proc.kill()

    def alive(self):
        return self.proc is not None and self.proc.alive()


# ---- a Registry client over grpcio ----

def _ser(m):
    return m.SerializeToString()


class Client:
    """Calls credito.v1.Registry methods by name with messages (or keyword fields)."""

    def __init__(self, target, caller=CALLER):
        self.target = target
        self.channel = grpc.insecure_channel(target)
        self.md = (("x-credito-caller", caller),) if caller else ()
        self._svc = pb.DESCRIPTOR.services_by_name["Registry"]

    def close(self):
        self.channel.close()

    def _types(self, method):
        m = self._svc.methods_by_name[method]
        return getattr(pb, m.input_type.name), getattr(pb, m.output_type.name)

    def _path(self, method):
        return "/credito.v1.Registry/" + method

    def __call__(self, method, req=None, timeout=RPC_TIMEOUT, **fields):
        in_cls, out_cls = self._types(method)
        if req is None:
            req = in_cls(**fields)
        fn = self.channel.unary_unary(self._path(method), request_serializer=_ser,
                                      response_deserializer=out_cls.FromString)
        return fn(req, timeout=timeout, metadata=self.md)

    def upload(self, method, messages, timeout=RPC_TIMEOUT, future=False):
        """A client-streaming call (UploadArtifact, PutDatasetBytes) from an iterable."""
        _, out_cls = self._types(method)
        fn = self.channel.stream_unary(self._path(method), request_serializer=_ser,
                                       response_deserializer=out_cls.FromString)
        if future:
            return fn.future(iter(messages), timeout=timeout, metadata=self.md)
        return fn(iter(messages), timeout=timeout, metadata=self.md)

    def stream(self, method, req, timeout=RPC_TIMEOUT):
        """A server-streaming call; returns the call iterator."""
        _, out_cls = self._types(method)
        fn = self.channel.unary_stream(self._path(method), request_serializer=_ser,
                                       response_deserializer=out_cls.FromString)
        return fn(req, timeout=timeout, metadata=self.md)

    # -- convenience --

    def upload_artifact(self, run_id, path, data, chunk=1 << 20, expected_sha256=None,
                        expected_size=None, content_type="application/octet-stream", **kw):
        msgs = [pb.UploadArtifactRequest(header=pb.UploadArtifactHeader(
            run_id=run_id, path=path, content_type=content_type,
            expected_size=len(data) if expected_size is None else expected_size,
            expected_sha256=sha256_hex(data) if expected_sha256 is None else expected_sha256))]
        msgs += [pb.UploadArtifactRequest(chunk=data[i:i + chunk])
                 for i in range(0, len(data), chunk)]
        return self.upload("UploadArtifact", msgs, **kw)

    def put_bytes(self, data, expected_md5=None, chunk=1 << 20, **kw):
        msgs = [pb.PutDatasetBytesRequest(header=pb.PutDatasetBytesHeader(
            expected_size=len(data),
            expected_md5=md5_hex(data) if expected_md5 is None else expected_md5))]
        msgs += [pb.PutDatasetBytesRequest(chunk=data[i:i + chunk])
                 for i in range(0, len(data), chunk)]
        return self.upload("PutDatasetBytes", msgs, **kw)

    def download(self, method, req, timeout=RPC_TIMEOUT):
        """(header Blob, bytes) of a DownloadArtifact or GetDatasetBytes stream."""
        header, parts = None, []
        for i, msg in enumerate(self.stream(method, req, timeout=timeout)):
            if i == 0:
                if msg.WhichOneof("part") != "header":
                    raise AssertionError("%s: first message is not the header" % method)
                header = msg.header
            else:
                if msg.WhichOneof("part") != "chunk":
                    raise AssertionError("%s: message %d is not a chunk" % (method, i))
                parts.append(msg.chunk)
        return header, b"".join(parts)

    def all_events(self, prefix=""):
        out, token = [], ""
        while True:
            r = self("ListEvents", subject_prefix=prefix, page_size=1000, page_token=token)
            out += list(r.events)
            token = r.next_page_token
            if not token:
                return out


# ---- creditoctl ----

def ctl(target, *args, cwd=None, check=True, timeout=60):
    """Runs creditoctl against a registry; returns the CompletedProcess (text)."""
    path = os.path.join(procs.build_dir(), "services", "ctl", "creditoctl")
    if not os.access(path, os.X_OK):
        raise RuntimeError("creditoctl not found at %s (build first)" % path)
    p = subprocess.run([path, "--registry", target] + [str(a) for a in args], cwd=cwd,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("creditoctl %s exited %d: %s" % (" ".join(map(str, args)),
                                                               p.returncode, p.stderr))
    return p


def ctl_json(target, *args, **kw):
    p = ctl(target, "--json", *args, **kw)
    try:
        return json.loads(p.stdout)
    except ValueError as e:
        raise AssertionError("creditoctl --json %s printed no JSON (%s): %r"
                             % (" ".join(map(str, args)), e, p.stdout[:500]))


def established_to(port):
    """How many ESTABLISHED TCP connections on this host have remote port `port` (gRPC's
    sockets are dual-stack: IPv4 peers show in tcp6 as ::ffff:a.b.c.d)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.readlines()[1:]
        except OSError:
            continue
        for line in rows:
            cols = line.split()
            if cols[3] == "01" and int(cols[2].split(":")[1], 16) == port:
                n += 1
    return n


def wait_until(fn, timeout, interval=0.1):
    """Calls fn until it returns a true value or timeout passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)
