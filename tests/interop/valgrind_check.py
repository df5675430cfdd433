"""Runs credito-echo-server, credito-registry and credito-trainer under valgrind through every
path the RPC layer has (all call shapes, health Watch, reflection, garbage and oversized payloads, an unknown
method, a deadline shorter than the handler, client cancellation, SIGTERM with calls in flight;
for the trainer a whole German Credit training against a registry, and refused requests) and
fails if valgrind reports an error or a definite leak, or the server does not exit 0.

Usage: /usr/bin/python3 tests/interop/valgrind_check.py   (CREDITO_BUILD_DIR, CREDITO_BUF)
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

# grpcio 1.51's fork handlers can deadlock a process started (with preexec_fn) while channels
# are busy (grpc/grpc#31885); these tests never fork a gRPC client, so they are off.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
import grpc  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import procs  # noqa: E402


def echo_req(text=b"", payload=b"", sleep_ms=0):
    """EchoRequest bytes by hand: text=1, payload=2, sleep_ms=3."""
    out = b""
    if text:
        out += b"\x0a" + bytes([len(text)]) + text
    if payload:
        n = len(payload)
        varint = b""
        while True:
            b = n & 0x7F
            n >>= 7
            varint += bytes([b | (0x80 if n else 0)])
            if not n:
                break
        out += b"\x12" + varint + payload
    if sleep_ms:
        out += b"\x18" + bytes([sleep_ms & 0x7F | 0x80, sleep_ms >> 7])
    return out


def expect_code(code, fn, *a, **kw):
    try:
        fn(*a, **kw)
    except grpc.RpcError as e:
        if e.code() != code:
            raise AssertionError("want %s, got %s: %s" % (code, e.code(), e.details()))
        return
    raise AssertionError("want %s, got OK" % code)


def drive_echo(target, buf):
    ch = grpc.insecure_channel(target)
    echo = ch.unary_unary("/credito.test.v1.Echo/Echo")
    health = ch.unary_unary("/grpc.health.v1.Health/Check")
    assert health(b"", timeout=30) == b"\x08\x01"  # SERVING
    assert b"hi" in echo(echo_req(b"hi"), timeout=30)
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, echo, b"\xff\xff\xff", timeout=30)
    expect_code(grpc.StatusCode.RESOURCE_EXHAUSTED, echo, echo_req(payload=b"x" * 100000),
                timeout=30)
    expect_code(grpc.StatusCode.UNIMPLEMENTED, ch.unary_unary("/credito.test.v1.Echo/Nope"),
                b"", timeout=30)
    expect_code(grpc.StatusCode.DEADLINE_EXCEEDED, echo, echo_req(b"slow", sleep_ms=3000),
                timeout=0.5)
    count = ch.unary_stream("/credito.test.v1.Echo/Count")
    assert len(list(count(b"\x08\x05", timeout=30))) == 5
    total = ch.stream_unary("/credito.test.v1.Echo/Sum")
    assert total(iter([echo_req(payload=b"0123456789")] * 3), timeout=30) == b"\x08\x03\x10\x1e"
    chat = ch.stream_stream("/credito.test.v1.Echo/Chat")
    assert len(list(chat(iter([echo_req(b"a"), echo_req(b"b")]), timeout=30))) == 2
    # A Chat and a health Watch the client cancels mid-stream.
    stream = chat(iter([echo_req(b"x")] * 1000), timeout=30)
    next(stream)
    stream.cancel()
    watch = ch.unary_stream("/grpc.health.v1.Health/Watch")(b"", timeout=30)
    next(watch)
    watch.cancel()
    subprocess.run([buf, "curl", "--protocol", "grpc", "--http2-prior-knowledge",
                    "--list-methods", "http://" + target], check=True, timeout=120,
                   stdout=subprocess.DEVNULL)
    return ch, echo


def run(program, drive, buf, args=None):
    log = tempfile.NamedTemporaryFile(prefix="credito-valgrind-", suffix=".log", delete=False)
    os.environ["CREDITO_SERVER_WRAPPER"] = (
        "valgrind --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite "
        "--error-exitcode=99 --log-file=%s" % log.name)
    if args is None:
        args = ["--max-message", "65536", "--workers", "2", "--grace", "30s"] if (
            program == "credito-echo-server") else [
            "--store", "file://" + tempfile.mkdtemp(prefix="credito-store-")]
    srv = procs.Server(program, *args).start(timeout=120)
    try:
        ch, echo = drive(srv.target, buf)
        inflight = []
        if echo:  # SIGTERM with two calls in flight: both must complete
            results = []

            def slow():
                try:
                    results.append(echo(echo_req(b"inflight", sleep_ms=4000), timeout=90))
                except grpc.RpcError as e:
                    print("in-flight call failed: %s %s" % (e.code(), e.details()))
            inflight = [threading.Thread(target=slow) for _ in range(2)]
            for t in inflight:
                t.start()
            # Under valgrind on a loaded machine a call takes a while to reach its handler:
            # signal well inside the handlers' 4 s, with a grace long enough to finish them.
            time.sleep(2.0)
        srv.send_signal(signal.SIGTERM)
        for t in inflight:
            t.join()
        if echo and len(results) != 2:
            raise AssertionError("calls in flight at SIGTERM failed")
        code = srv.wait(timeout=120)
        ch.close()
    finally:
        srv.kill()
    report = open(log.name).read()
    os.unlink(log.name)
    summary = re.search(r"ERROR SUMMARY: (\d+) errors", report)
    definite = re.search(r"definitely lost: ([\d,]+) bytes", report)
    print("%s: exit %s, %s, definitely lost %s bytes"
          % (program, code, summary.group(0) if summary else "no summary",
             definite.group(1) if definite else "0"))
    if code != 0 or not summary or summary.group(1) != "0" or (
            definite and definite.group(1) != "0"):
        print(report)
        return False
    return True


def drive_registry(target, buf):
    ch = grpc.insecure_channel(target)
    assert ch.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=30) == b"\x08\x01"
    # A real round trip through the store, an unknown run, and a refused upload.
    ch.unary_unary("/credito.v1.Registry/CreateExperiment")(b"\x0a\x02e1", timeout=30)
    expect_code(grpc.StatusCode.NOT_FOUND,
                ch.unary_unary("/credito.v1.Registry/GetRun"), b"\x0a\x01x", timeout=30)
    expect_code(grpc.StatusCode.INVALID_ARGUMENT,
                ch.stream_unary("/credito.v1.Registry/UploadArtifact"), iter([b"\x12\x01x"]),
                timeout=30)
    subprocess.run([buf, "curl", "--protocol", "grpc", "--http2-prior-knowledge",
                    "--reflect-protocol", "grpc-v1alpha", "--list-methods", "http://" + target],
                   check=True, timeout=120, stdout=subprocess.DEVNULL)
    return ch, None


def pb_str(field, value):
    """One length-delimited protobuf field (short values only)."""
    assert len(value) < 128
    return bytes([field << 3 | 2, len(value)]) + value


def drive_trainer(target, buf):
    ch = grpc.insecure_channel(target)
    assert ch.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=60) == b"\x08\x01"
    train = ch.unary_stream("/credito.v1.Trainer/Train")
    # TrainRequest: dataset {name} = 1, model_name = 2, cv_folds = 9 (varint).
    ok = pb_str(1, pb_str(1, b"credit-g")) + pb_str(2, b"vg-model") + b"\x48\x02"
    events = list(train(ok, timeout=300))
    assert len(events) > 5 and events[-1][:1] == b"\x12", "progress events, then a result"
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, lambda: list(train(b"", timeout=60)))
    missing = pb_str(1, pb_str(1, b"no-such-data")) + pb_str(2, b"vg-model")
    expect_code(grpc.StatusCode.NOT_FOUND, lambda: list(train(missing, timeout=60)))
    return ch, None


def run_trainer(buf):
    """The trainer under valgrind, with a registry (not under valgrind) holding German Credit."""
    os.environ.pop("CREDITO_SERVER_WRAPPER", None)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    reg = procs.Server("credito-registry", "--store",
                       "file://" + tempfile.mkdtemp(prefix="credito-store-")).start()
    try:
        data = os.path.join(tempfile.mkdtemp(prefix="credito-data-"), "credit-g.arff")
        with open(os.path.join(root, "data", "raw", "credit-g.arff"), "rb") as src, \
                open(data, "wb") as dst:
            dst.write(src.read())
        ctl = os.path.join(procs.build_dir(), "services", "ctl", "creditoctl")
        subprocess.run([ctl, "--registry", reg.target, "dataset", "push", data, "--name",
                        "credit-g"], check=True, timeout=60, stdout=subprocess.DEVNULL)
        return run("credito-trainer", drive_trainer, buf,
                   ["--registry", reg.target, "--grace", "30s"])
    finally:
        reg.stop()


def main():
    buf = os.environ.get("CREDITO_BUF", os.path.join(os.path.dirname(__file__),
                                                     "../peers/node_modules/.bin/buf"))
    if not os.access(buf, os.X_OK):
        print("FAIL: buf not found at %s (cd tests/peers && npm ci)" % buf)
        return 1
    results = [run("credito-echo-server", drive_echo, buf),
               run("credito-registry", drive_registry, buf),
               run_trainer(buf)]
    passed = sum(results)
    print("%d passed, %d failed" % (passed, len(results) - passed))
    return 0 if all(results) else 1


if __name__ == "__main__":
    procs.install_signal_handlers()
    sys.exit(main())
