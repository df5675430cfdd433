#!/usr/bin/python3
"""Interop: Credito's C gRPC servers against a third-party client, Python grpcio (Debian's
python3-grpcio). Health, unimplemented and unknown methods, the built services answering (the
predictor with no model: NOT_SERVING and UNAVAILABLE), bad and oversized requests, deadlines,
concurrency and cancellation, graceful shutdown and grace expiry, the four call shapes,
compression, TLS and mTLS.

Run: /usr/bin/python3 tests/interop/test_grpcio.py [BUILD_DIR] [unittest args]
     (or CREDITO_BUILD_DIR=BUILD_DIR; default build/ in the checkout)
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

# grpcio 1.51's fork handlers can deadlock a process started while channels are busy
# (grpc/grpc#31885); nothing here forks a gRPC client.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
try:
    import grpc
except ImportError as e:
    sys.exit("FAIL: %s needs grpcio and protobuf (Debian: apt-get install python3-grpcio "
             "python3-protobuf): %s" % (sys.executable, e))

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import procs  # noqa: E402

if len(sys.argv) > 1 and os.path.isdir(sys.argv[1]):
    os.environ["CREDITO_BUILD_DIR"] = sys.argv.pop(1)

GRPC_PROTO_DIR = "/usr/share/grpc-proto"
RPC_TIMEOUT = 5.0
C = grpc.StatusCode

health_pb2 = None
echo_pb2 = None
predictor_pb2 = None
_gen_dir = None


def _extend_grpc_namespace(gen_dir):
    # The generated health module sits under the package name "grpc", which the installed grpc
    # package already owns; extend its __path__ so grpc.health.v1 resolves into the temp dir.
    extra = os.path.join(gen_dir, "grpc")
    if extra not in grpc.__path__:
        grpc.__path__.append(extra)


def setUpModule():
    """Generates the message classes (health, echo, the predictor's) with protoc into a temporary
    directory."""
    global health_pb2, echo_pb2, predictor_pb2, _gen_dir
    for tool, path in (("protoc", shutil.which("protoc")),
                       ("grpc-proto", os.path.join(GRPC_PROTO_DIR, "grpc/health/v1/health.proto"))):
        if not path or not os.path.exists(path):
            raise RuntimeError("FAIL: %s missing (Debian: apt-get install protobuf-compiler "
                               "grpc-proto)" % tool)
    _gen_dir = tempfile.mkdtemp(prefix="credito-interop-pb-")
    for inc, proto in ((GRPC_PROTO_DIR, "grpc/health/v1/health.proto"),
                       (os.path.join(ROOT, "tests/proto"), "credito/test/v1/echo.proto"),
                       (os.path.join(ROOT, "proto"), "credito/v1/common.proto"),
                       (os.path.join(ROOT, "proto"), "credito/v1/predictor.proto")):
        subprocess.run(["protoc", "--python_out=" + _gen_dir, "-I" + inc, proto], check=True)
    _extend_grpc_namespace(_gen_dir)
    sys.path.insert(0, _gen_dir)
    import importlib
    health_pb2 = importlib.import_module("grpc.health.v1.health_pb2")
    echo_pb2 = importlib.import_module("credito.test.v1.echo_pb2")
    predictor_pb2 = importlib.import_module("credito.v1.predictor_pb2")


def tearDownModule():
    if _gen_dir:
        shutil.rmtree(_gen_dir, ignore_errors=True)


# ---- call helpers ----

def _ser(m):
    return m if isinstance(m, bytes) else m.SerializeToString()


def _raw(b):
    return b


def unary(ch, path, req, resp_cls=None, timeout=RPC_TIMEOUT, **kw):
    fn = ch.unary_unary(path, request_serializer=_ser,
                        response_deserializer=resp_cls.FromString if resp_cls else _raw)
    return fn(req, timeout=timeout, **kw)


def health_check(ch, service="", timeout=RPC_TIMEOUT):
    return unary(ch, "/grpc.health.v1.Health/Check",
                 health_pb2.HealthCheckRequest(service=service),
                 health_pb2.HealthCheckResponse, timeout=timeout)


def echo(ch, timeout=RPC_TIMEOUT, **fields):
    return unary(ch, "/credito.test.v1.Echo/Echo", echo_pb2.EchoRequest(**fields),
                 echo_pb2.EchoResponse, timeout=timeout)


def status_name(n):
    return health_pb2.HealthCheckResponse.ServingStatus.Name(n)


class ListeningServer(procs.Server):
    """A server that is up once it logs "listening": the predictor without a model never reports
    itself serving (procs.Server.start waits for that unless told it has happened)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._serving = True


class ServerTest(unittest.TestCase):
    """Base: start servers that are killed whatever happens, and open channels closed after."""

    def server(self, program, *args, wait_serving=True):
        s = (procs.Server if wait_serving else ListeningServer)(program, *args)
        self.addCleanup(s.kill)
        s.start()
        return s

    def channel(self, target, creds=None, options=None):
        ch = grpc.secure_channel(target, creds, options or []) if creds else \
            grpc.insecure_channel(target, options or [])
        self.addCleanup(ch.close)
        self.__dict__.setdefault("_channels", []).append(ch)
        return ch

    def close_channels(self):
        """Closes the channels opened so far (an open idle connection delays a server's exit,
        see ShutdownTest.test_sigterm_with_idle_client_connection_exits_promptly)."""
        for ch in self.__dict__.pop("_channels", []):
            ch.close()

    def assertRpcError(self, code, fn, *a, msg_contains=None, **kw):
        with self.assertRaises(grpc.RpcError) as cm:
            fn(*a, **kw)
        err = cm.exception
        self.assertEqual(err.code(), code, "details: %r" % err.details())
        if msg_contains is not None:
            self.assertIn(msg_contains, err.details() or "")
        return err


# ---- health ----

class HealthTest(ServerTest):
    def setUp(self):
        self.reg = self.server("credito-registry")
        self.ch = self.channel(self.reg.target)

    def test_check_overall_serving(self):
        r = health_check(self.ch, "")
        self.assertEqual(status_name(r.status), "SERVING")

    def test_check_registry_service_serving(self):
        r = health_check(self.ch, "credito.v1.Registry")
        self.assertEqual(status_name(r.status), "SERVING")
        for svc in ("grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                    "grpc.reflection.v1alpha.ServerReflection"):
            self.assertEqual(status_name(health_check(self.ch, svc).status), "SERVING", svc)

    def test_check_unknown_service_not_found(self):
        self.assertRpcError(C.NOT_FOUND, health_check, self.ch, "no.such.Service")

    def test_watch_unknown_service_reports_service_unknown(self):
        # The health protocol: Watch of an unknown service answers SERVICE_UNKNOWN, not an error,
        # and keeps the stream open (the service may be registered later).
        call = self.ch.unary_stream(
            "/grpc.health.v1.Health/Watch", request_serializer=_ser,
            response_deserializer=health_pb2.HealthCheckResponse.FromString)(
            health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=RPC_TIMEOUT)
        first = next(call)
        self.assertEqual(status_name(first.status), "SERVICE_UNKNOWN")
        call.cancel()

    def test_watch_then_sigterm(self):
        call = self.ch.unary_stream(
            "/grpc.health.v1.Health/Watch", request_serializer=_ser,
            response_deserializer=health_pb2.HealthCheckResponse.FromString)(
            health_pb2.HealthCheckRequest(service=""), timeout=10)
        got = []
        first = next(call)
        self.assertEqual(status_name(first.status), "SERVING")
        self.reg.send_signal(signal.SIGTERM)
        end_code = None
        t0 = time.monotonic()
        try:
            for m in call:
                got.append(status_name(m.status))
            end_code = C.OK
        except grpc.RpcError as e:
            end_code = e.code()
        self.assertLess(time.monotonic() - t0, 5.0, "the Watch stream did not end promptly")
        self.assertEqual(got, ["NOT_SERVING"], "after SIGTERM the watch must see NOT_SERVING once")
        self.assertIn(end_code, (C.OK, C.UNAVAILABLE))
        self.close_channels()
        self.assertEqual(self.reg.wait(), 0)
        self.assertTrue(self.reg.logged("stopped"), self.reg.stderr())


# ---- unimplemented and unknown methods ----

class UnimplementedTest(ServerTest):
    def test_registry_answers_from_its_store(self):
        # The registry is built (issue #3): its methods answer for real, from a temporary store
        # (procs gives every registry one). Garbage is INVALID_ARGUMENT, an unknown run
        # NOT_FOUND naming it, and a listing of an empty store OK.
        reg = self.server("credito-registry")
        ch = self.channel(reg.target)
        self.assertRpcError(C.INVALID_ARGUMENT, unary, ch, "/credito.v1.Registry/GetRun",
                            b"\xff\xff\xff", msg_contains="credito.v1.GetRunRequest")
        self.assertRpcError(C.NOT_FOUND, unary, ch, "/credito.v1.Registry/GetRun",
                            b"\x0a\x03abc", msg_contains="unknown run 'abc'")
        self.assertEqual(unary(ch, "/credito.v1.Registry/ListExperiments", b""), b"")
        # A client stream whose first message is not a header is refused, not hung.
        up = ch.stream_unary("/credito.v1.Registry/UploadArtifact", request_serializer=_ser,
                             response_deserializer=_raw)
        self.assertRpcError(C.INVALID_ARGUMENT, up, iter([b"\x12\x01x"]), timeout=RPC_TIMEOUT,
                            msg_contains="header")

    def test_trainer_answers(self):
        # The trainer is built (issue #4): Train refuses an empty request before any work (so the
        # registry, a port nobody listens on, is never called) and garbage as undecodable.
        s = self.server("credito-trainer", "--registry", "127.0.0.1:1")
        ch = self.channel(s.target)
        fn = ch.unary_stream("/credito.v1.Trainer/Train", request_serializer=_ser,
                             response_deserializer=_raw)
        err = self.assertRpcError(C.INVALID_ARGUMENT, lambda: list(fn(b"", timeout=RPC_TIMEOUT)),
                                  msg_contains="model_name and dataset.name are required")
        self.assertNotRegex(err.details(), r"issue #\d+")
        self.assertRpcError(C.INVALID_ARGUMENT,
                            lambda: list(fn(b"\xff\xff\xff", timeout=RPC_TIMEOUT)),
                            msg_contains="credito.v1.TrainRequest")
        for svc in ("", "credito.v1.Trainer"):
            self.assertEqual(status_name(health_check(ch, svc).status), "SERVING", svc)

    def test_predictor_without_a_model(self):
        # The predictor is built (issue #5). With no registry to reach (a port nobody listens on)
        # and no cache it has no model: it listens, but its health is NOT_SERVING, Predict and
        # PredictBatch answer UNAVAILABLE, garbage is INVALID_ARGUMENT naming the message type,
        # and GetModelInfo answers serving false with the --model setting.
        s = self.server("credito-predictor", "--registry", "127.0.0.1:1", "--cache-dir", "off",
                        "--model", "credit-default@champion", wait_serving=False)
        ch = self.channel(s.target)
        for svc in ("", "credito.v1.Predictor"):
            self.assertEqual(status_name(health_check(ch, svc).status), "NOT_SERVING", svc)
        for method, req in (("Predict", predictor_pb2.PredictRequest(request_id="r1")),
                            ("PredictBatch", predictor_pb2.PredictBatchRequest(
                                rows=[predictor_pb2.Applicant()]))):
            with self.subTest(method=method):
                err = self.assertRpcError(C.UNAVAILABLE, unary, ch,
                                          "/credito.v1.Predictor/" + method, req,
                                          msg_contains="no verified model")
                self.assertNotRegex(err.details(), r"issue #\d+")
        self.assertRpcError(C.INVALID_ARGUMENT, unary, ch, "/credito.v1.Predictor/Predict",
                            b"\xff\xff\xff", msg_contains="credito.v1.PredictRequest")
        self.assertRpcError(C.INVALID_ARGUMENT, unary, ch, "/credito.v1.Predictor/PredictBatch",
                            b"\x0a\x05ab", msg_contains="credito.v1.PredictBatchRequest")
        info = unary(ch, "/credito.v1.Predictor/GetModelInfo",
                     predictor_pb2.GetModelInfoRequest(), predictor_pb2.GetModelInfoResponse)
        self.assertEqual((info.model_ref, info.serving, info.name, info.version),
                         ("credit-default@champion", False, "", 0))
        self.assertFalse(info.HasField("schema"))
        # Stopping it interrupts the registry retries: it exits 0 at once.
        self.close_channels()
        t0 = time.monotonic()
        self.assertEqual(s.stop(), 0, s.stderr())
        self.assertLess(time.monotonic() - t0, 3.0)

    def test_unknown_methods(self):
        reg = self.server("credito-registry")
        ch = self.channel(reg.target)
        for path in ("/credito.v1.Registry/NoSuch", "/no.Such/Thing"):
            with self.subTest(path=path):
                self.assertRpcError(C.UNIMPLEMENTED, unary, ch, path, b"", msg_contains=path)
        # The server still answers afterwards.
        self.assertEqual(status_name(health_check(ch).status), "SERVING")


# ---- the echo service: bad input, size caps, deadlines, codes, call shapes ----

class EchoTest(ServerTest):
    """Each test gets its own echo server (4 workers, a 64 KiB message cap), so a test that
    breaks the server cannot fail the others."""

    def setUp(self):
        self.srv = self.server("credito-echo-server", "--max-message", "65536", "--workers", "4")
        self.ch = self.channel(self.srv.target)

    def tearDown(self):
        if self.srv.alive():
            self.close_channels()
            rc = self.srv.stop()
            self.assertEqual(rc, 0, "echo server exited %s\n%s" % (rc, self.srv.stderr()))

    def test_echo_roundtrip(self):
        r = echo(self.ch, text="héllo", payload=b"\x00\x01\xfe")
        self.assertEqual(r.text, "héllo")
        self.assertEqual(r.payload, b"\x00\x01\xfe")
        self.assertEqual(r.seq, 1)
        self.assertEqual(r.server_pid, self.srv.pid)

    def test_many_sequential_calls(self):
        # More calls than workers x per-method slots: the server must keep requesting calls.
        for i in range(40):
            self.assertEqual(echo(self.ch, text="n%d" % i, timeout=2).text, "n%d" % i)
        for i in range(20):
            self.assertRpcError(C.NOT_FOUND, echo, self.ch, fail_code=5, timeout=2)
        for i in range(20):
            self.assertRpcError(C.UNIMPLEMENTED, unary, self.ch, "/no.Such/Thing", b"",
                                timeout=2)
        fn = self.ch.unary_stream("/credito.test.v1.Echo/Count", request_serializer=_ser,
                                  response_deserializer=echo_pb2.EchoResponse.FromString)
        for i in range(20):
            self.assertEqual(len(list(fn(echo_pb2.CountRequest(n=2), timeout=2))), 2)

    def test_garbage_request_invalid_argument(self):
        for garbage in (b"\xff\xff\xff",   # truncated varint tag
                        b"\x0f",           # field 1 with wire type 7 (invalid)
                        b"\x0a\x05ab"):    # length-delimited field longer than the message
            with self.subTest(garbage=garbage):
                err = self.assertRpcError(C.INVALID_ARGUMENT, unary, self.ch,
                                          "/credito.test.v1.Echo/Echo", garbage)
                self.assertIn("credito.test.v1.EchoRequest", err.details())
                self.assertIn("decode", err.details())
        self.assertEqual(echo(self.ch, text="still here").text, "still here")

    def test_garbage_in_client_stream_invalid_argument(self):
        fn = self.ch.stream_unary("/credito.test.v1.Echo/Sum", request_serializer=_ser,
                                  response_deserializer=echo_pb2.SumResponse.FromString)
        good = echo_pb2.EchoRequest(payload=b"x").SerializeToString()
        err = self.assertRpcError(C.INVALID_ARGUMENT, fn, iter([good, b"\xff\xff\xff"]),
                                  timeout=RPC_TIMEOUT)
        self.assertIn("EchoRequest", err.details())
        self.assertEqual(echo(self.ch, text="ok").text, "ok")

    def test_oversized_request_resource_exhausted(self):
        self.assertRpcError(C.RESOURCE_EXHAUSTED, echo, self.ch, payload=b"x" * 100000)
        # Just under the cap still works, and so does a small call.
        r = echo(self.ch, payload=b"y" * 60000)
        self.assertEqual(len(r.payload), 60000)
        self.assertEqual(echo(self.ch, text="small").text, "small")

    def test_oversized_stream_message_resource_exhausted(self):
        fn = self.ch.stream_unary("/credito.test.v1.Echo/Sum", request_serializer=_ser,
                                  response_deserializer=echo_pb2.SumResponse.FromString)
        self.assertRpcError(C.RESOURCE_EXHAUSTED, fn,
                            iter([echo_pb2.EchoRequest(payload=b"z" * 100000)]),
                            timeout=RPC_TIMEOUT)
        self.assertEqual(echo(self.ch, text="small").text, "small")

    def test_deadline_shorter_than_handler(self):
        t0 = time.monotonic()
        self.assertRpcError(C.DEADLINE_EXCEEDED, echo, self.ch, timeout=0.2, sleep_ms=2000)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(echo(self.ch, text="after").text, "after")

    def test_fail_code_passes_through(self):
        for code in C:
            if code == C.OK:
                continue
            with self.subTest(code=code):
                err = self.assertRpcError(code, echo, self.ch, fail_code=code.value[0], timeout=2)
                self.assertEqual(err.details(), "failed as asked")

    def test_server_stream_count(self):
        fn = self.ch.unary_stream("/credito.test.v1.Echo/Count", request_serializer=_ser,
                                  response_deserializer=echo_pb2.EchoResponse.FromString)
        msgs = list(fn(echo_pb2.CountRequest(n=5), timeout=RPC_TIMEOUT))
        self.assertEqual([m.seq for m in msgs], [1, 2, 3, 4, 5])
        self.assertEqual([m.text for m in msgs], ["1", "2", "3", "4", "5"])
        # n = 0: an empty stream that ends OK.
        call = fn(echo_pb2.CountRequest(n=0), timeout=RPC_TIMEOUT)
        self.assertEqual(list(call), [])
        self.assertEqual(call.code(), C.OK)

    def test_server_stream_arrives_incrementally(self):
        # Count paces its messages 300 ms apart: each must reach the client when written, not
        # all together when the handler returns.
        fn = self.ch.unary_stream("/credito.test.v1.Echo/Count", request_serializer=_ser,
                                  response_deserializer=echo_pb2.EchoResponse.FromString)
        t0 = time.monotonic()
        arrivals = []
        for m in fn(echo_pb2.CountRequest(n=4, interval_ms=300), timeout=RPC_TIMEOUT):
            arrivals.append((m.seq, round(time.monotonic() - t0, 2)))
        self.assertEqual([a[0] for a in arrivals], [1, 2, 3, 4])
        for seq, at in arrivals:
            self.assertLess(at, 0.3 * seq + 0.4, "message %d arrived at %.2f s, want about "
                            "%.1f s; arrivals: %s" % (seq, at, 0.3 * seq, arrivals))
        self.assertGreater(arrivals[-1][1], 1.1)

    def test_client_stream_sum(self):
        fn = self.ch.stream_unary("/credito.test.v1.Echo/Sum", request_serializer=_ser,
                                  response_deserializer=echo_pb2.SumResponse.FromString)
        r = fn(iter([echo_pb2.EchoRequest(payload=bytes(10)) for _ in range(3)]),
               timeout=RPC_TIMEOUT)
        self.assertEqual((r.count, r.bytes), (3, 30))
        r = fn(iter([]), timeout=RPC_TIMEOUT)
        self.assertEqual((r.count, r.bytes), (0, 0))

    def test_bidi_chat_in_order(self):
        fn = self.ch.stream_stream("/credito.test.v1.Echo/Chat", request_serializer=_ser,
                                   response_deserializer=echo_pb2.EchoResponse.FromString)
        texts = ["one", "two", "three"]
        out = list(fn(iter([echo_pb2.EchoRequest(text=t) for t in texts]), timeout=RPC_TIMEOUT))
        self.assertEqual([m.text for m in out], texts)

    def test_bidi_chat_ping_pong(self):
        # Each answer must arrive before the client sends the next message (true bidi).
        import queue
        q = queue.Queue()

        def gen():
            while True:
                item = q.get()
                if item is None:
                    return
                yield echo_pb2.EchoRequest(text=item)

        fn = self.ch.stream_stream("/credito.test.v1.Echo/Chat", request_serializer=_ser,
                                   response_deserializer=echo_pb2.EchoResponse.FromString)
        call = fn(gen(), timeout=RPC_TIMEOUT)
        try:
            for t in ("a", "b", "c"):
                q.put(t)
                self.assertEqual(next(call).text, t)
        finally:
            q.put(None)
        self.assertEqual(list(call), [])
        self.assertEqual(call.code(), C.OK)

    def test_compressed_requests(self):
        # gzip-compressed messages (grpc-encoding: gzip) in a unary call and a client stream.
        r = unary(self.ch, "/credito.test.v1.Echo/Echo",
                  echo_pb2.EchoRequest(text="zipped", payload=b"a" * 5000),
                  echo_pb2.EchoResponse, compression=grpc.Compression.Gzip)
        self.assertEqual((r.text, r.payload), ("zipped", b"a" * 5000))
        fn = self.ch.stream_unary("/credito.test.v1.Echo/Sum", request_serializer=_ser,
                                  response_deserializer=echo_pb2.SumResponse.FromString)
        r = fn(iter([echo_pb2.EchoRequest(payload=b"b" * 1000) for _ in range(4)]),
               timeout=RPC_TIMEOUT, compression=grpc.Compression.Gzip)
        self.assertEqual((r.count, r.bytes), (4, 4000))


class LargeMessageTest(ServerTest):
    def test_default_cap_allows_3mib_and_refuses_5mib(self):
        s = self.server("credito-echo-server")
        ch = self.channel(s.target, options=[("grpc.max_receive_message_length", 16 << 20)])
        big = os.urandom(3 << 20)
        self.assertEqual(echo(ch, payload=big).payload, big)
        self.assertRpcError(C.RESOURCE_EXHAUSTED, echo, ch, payload=b"q" * (5 << 20))
        self.assertEqual(echo(ch, text="ok").text, "ok")


# ---- concurrency: slow handlers must not hold up other calls ----

class ConcurrencyTest(ServerTest):
    def _slow_future(self, ch, ms, text="slow", timeout=20):
        fn = ch.unary_unary("/credito.test.v1.Echo/Echo", request_serializer=_ser,
                            response_deserializer=echo_pb2.EchoResponse.FromString)
        return fn.future(echo_pb2.EchoRequest(text=text, sleep_ms=ms), timeout=timeout)

    def test_concurrent_slow_calls_run_in_parallel(self):
        s = self.server("credito-echo-server", "--workers", "4")
        ch = self.channel(s.target)
        echo(ch, text="warm")
        t0 = time.monotonic()
        futs = [self._slow_future(ch, 1000, "c%d" % i) for i in range(4)]
        self.assertEqual([f.result().text for f in futs], ["c0", "c1", "c2", "c3"])
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 1.8, "4 concurrent 1 s calls over one connection on 4 workers "
                        "took %.2f s: they ran one after another" % elapsed)

    def test_fast_calls_not_blocked_by_a_slow_call(self):
        s = self.server("credito-echo-server", "--workers", "4")
        ch = self.channel(s.target)
        echo(ch, text="warm")
        slow = self._slow_future(ch, 2000)
        time.sleep(0.2)
        t0 = time.monotonic()
        self.assertEqual(echo(ch, text="fast", timeout=5).text, "fast")
        self.assertEqual(status_name(health_check(ch, timeout=5).status), "SERVING")
        elapsed = time.monotonic() - t0
        self.assertEqual(slow.result().text, "slow")
        self.assertLess(elapsed, 0.5, "an Echo and a Health/Check on the same connection waited "
                        "%.2f s behind one slow call with 3 workers idle" % elapsed)

    def test_cancelled_call_stops_its_handler(self):
        # The echo handler "stops early if cancelled": after the client cancels, the worker is
        # free again at once, so the next call is answered promptly even with one worker.
        s = self.server("credito-echo-server", "--workers", "1")
        ch = self.channel(s.target)
        echo(ch, text="warm")
        slow = self._slow_future(ch, 3000, timeout=None)
        time.sleep(0.3)
        slow.cancel()
        t0 = time.monotonic()
        self.assertEqual(echo(ch, text="next", timeout=5).text, "next")
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 1.0, "the next call waited %.2f s: the cancelled handler kept "
                        "sleeping" % elapsed)


# ---- shutdown ----

def _port_refuses(port, timeout=2.0):
    """Waits until nothing accepts TCP connections on the port; True when that happened."""
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return True
        time.sleep(0.02)
    return False


class ShutdownTest(ServerTest):
    def test_sigterm_lets_inflight_calls_finish(self):
        s = self.server("credito-echo-server", "--workers", "4", "--grace", "5s")
        ch = self.channel(s.target)
        echo(ch, text="warm")  # connect first, so every call below is in flight at SIGTERM
        results = [None] * 4

        def one(i):
            try:
                results[i] = ("ok", echo(ch, text="call-%d" % i, sleep_ms=1000, timeout=10).text)
            except grpc.RpcError as e:
                results[i] = ("err", e.code(), e.details())

        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.2)
        s.send_signal(signal.SIGTERM)
        self.assertIsNotNone(s.wait_log("shutting down", 3), s.stderr())
        # While the in-flight calls finish, the listener is closed: a new call fails UNAVAILABLE.
        self.assertTrue(_port_refuses(s.port), "the port still accepts connections after SIGTERM")
        self.assertTrue(s.alive(), "the server exited before its in-flight calls finished")
        # A separate subchannel pool: a fresh connection, not the draining one shared with ch.
        ch2 = self.channel(s.target, options=[("grpc.use_local_subchannel_pool", 1)])
        self.assertRpcError(C.UNAVAILABLE, echo, ch2, text="late", timeout=3)
        for t in threads:
            t.join(15)
        self.assertEqual(results, [("ok", "call-%d" % i) for i in range(4)])
        self.close_channels()
        self.assertEqual(s.wait(), 0, s.stderr())
        self.assertTrue(s.logged("stopped"))
        self.assertFalse(s.logged("grace period over, cancelling calls"))
        self.assertRpcError(C.UNAVAILABLE, echo, self.channel(s.target), text="after", timeout=2)

    def test_grace_expiry_ends_calls(self):
        s = self.server("credito-echo-server", "--grace", "300ms", "--workers", "2")
        ch = self.channel(s.target)
        echo(ch, text="warm")
        fn = ch.unary_unary("/credito.test.v1.Echo/Echo", request_serializer=_ser,
                            response_deserializer=echo_pb2.EchoResponse.FromString)
        fut = fn.future(echo_pb2.EchoRequest(text="slow", sleep_ms=5000), timeout=10)
        time.sleep(0.2)
        t0 = time.monotonic()
        s.send_signal(signal.SIGTERM)
        exc = None
        try:
            fut.result(timeout=4)
        except grpc.FutureTimeoutError:
            fut.cancel()
            self.fail("the call was still running 4 s after SIGTERM with --grace 300ms")
        except grpc.RpcError as e:
            exc = e
        call_end = time.monotonic() - t0
        self.assertIsNotNone(exc, "the call succeeded although the grace period was 300 ms")
        self.assertNotEqual(exc.code(), C.OK)
        self.assertLess(call_end, 2.0)
        rc = s.wait(10)
        exit_after = time.monotonic() - t0
        self.assertEqual(rc, 0, "exit code %s (negative: killed by that signal)\n%s"
                         % (rc, s.stderr()))
        self.assertTrue(s.logged("grace period over, cancelling calls"), s.stderr())
        self.assertLess(exit_after, 2.0,
                        "server exited %.1f s after SIGTERM with --grace 300ms" % exit_after)

    def test_sigterm_with_idle_client_connection_exits_promptly(self):
        # No call in flight, but a client keeps its connection open (as the gateway, a load
        # balancer or a probe would): the grace period is for calls, so exit must be prompt.
        s = self.server("credito-registry", "--grace", "5s")
        ch = self.channel(s.target)
        self.assertEqual(status_name(health_check(ch).status), "SERVING")
        t0 = time.monotonic()
        rc = s.stop()
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 0, s.stderr())
        self.assertFalse(s.logged("grace period over, cancelling calls"),
                         "no call was in flight, yet the server waited out the grace period "
                         "(%.1f s) and cancelled calls" % elapsed)
        self.assertLess(elapsed, 2.0, "no call in flight, but with one idle client connection "
                        "open the server took %.1f s to exit after SIGTERM" % elapsed)


# ---- TLS ----

def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_pki(d):
    """A throwaway CA, a server certificate for 127.0.0.1/localhost, a client certificate, and a
    client certificate from a second, untrusted CA."""
    def ca(name):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-keyout", name + ".key", "-out", name + ".pem", "-subj", "/CN=" + name,
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)

    def leaf(name, cn, signer, ext):
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext)
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
                 "-out", name + ".csr", "-subj", "/CN=" + cn, cwd=d)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", signer + ".pem",
                 "-CAkey", signer + ".key", "-CAcreateserial", "-days", "2",
                 "-out", name + ".pem", "-extfile", name + ".ext", cwd=d)

    ca("ca")
    ca("otherca")
    leaf("server", "localhost", "ca",
         "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
         "basicConstraints=CA:FALSE\n")
    leaf("client", "credito-test-client", "ca",
         "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
    leaf("rogue", "rogue-client", "otherca",
         "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")

    def rd(n):
        with open(os.path.join(d, n), "rb") as f:
            return f.read()
    return {n: rd(n) for n in ("ca.pem", "server.pem", "server.key", "client.pem",
                               "client.key", "rogue.pem", "rogue.key")}


class TlsTest(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="credito-interop-tls-")
        cls.pki = make_pki(cls.dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def path(self, n):
        return os.path.join(self.dir, n)

    def test_tls(self):
        s = self.server("credito-registry", "--tls-cert", self.path("server.pem"),
                        "--tls-key", self.path("server.key"))
        rec = s.logged("listening")[0]
        self.assertIs(rec.get("tls"), True)
        self.assertIs(rec.get("mtls"), False)
        creds = grpc.ssl_channel_credentials(root_certificates=self.pki["ca.pem"])
        for target in (s.target, "localhost:%d" % s.port):
            with self.subTest(target=target):
                ch = self.channel(target, creds)
                self.assertEqual(status_name(health_check(ch).status), "SERVING")
        # Plaintext to a TLS port fails.
        self.assertRpcError(C.UNAVAILABLE, health_check, self.channel(s.target), timeout=3)
        # TLS with a CA that did not sign the server certificate fails.
        other = grpc.ssl_channel_credentials(root_certificates=self.pki["rogue.pem"])
        self.assertRpcError(C.UNAVAILABLE, health_check, self.channel(s.target, other), timeout=3)
        self.close_channels()
        self.assertEqual(s.stop(), 0)

    def test_mtls(self):
        s = self.server("credito-registry", "--tls-cert", self.path("server.pem"),
                        "--tls-key", self.path("server.key"),
                        "--tls-client-ca", self.path("ca.pem"))
        self.assertIs(s.logged("listening")[0].get("mtls"), True)
        no_cert = grpc.ssl_channel_credentials(root_certificates=self.pki["ca.pem"])
        self.assertRpcError(C.UNAVAILABLE, health_check, self.channel(s.target, no_cert),
                            timeout=3)
        rogue = grpc.ssl_channel_credentials(root_certificates=self.pki["ca.pem"],
                                             private_key=self.pki["rogue.key"],
                                             certificate_chain=self.pki["rogue.pem"])
        self.assertRpcError(C.UNAVAILABLE, health_check, self.channel(s.target, rogue),
                            timeout=3)
        good = grpc.ssl_channel_credentials(root_certificates=self.pki["ca.pem"],
                                            private_key=self.pki["client.key"],
                                            certificate_chain=self.pki["client.pem"])
        self.assertEqual(status_name(health_check(self.channel(s.target, good)).status),
                         "SERVING")
        self.assertRpcError(C.UNAVAILABLE, health_check, self.channel(s.target), timeout=3)
        self.close_channels()
        self.assertEqual(s.stop(), 0)

    def test_tls_bad_files_fail_to_start(self):
        s = procs.Server("credito-registry", "--tls-cert", self.path("missing.pem"),
                         "--tls-key", self.path("server.key"))
        self.addCleanup(s.kill)
        with self.assertRaises(procs.ServerError):
            s.start(timeout=5)
        self.assertNotEqual(s.proc.returncode, 0)


if __name__ == "__main__":
    procs.install_signal_handlers()
    unittest.main(verbosity=2)
