#!/usr/bin/python3
"""Interop: common/pbjson against a third-party peer, protobuf's own json_format (Debian's
python3-protobuf), on the Credito and echo protos.

- JSON -> wire: hand-written JSON and random messages' json_format output (camelCase names,
  int64 as strings, and snake_case with defaults) must pack to the bytes Python packs.
- wire -> JSON: our JSON of random messages must parse in json_format to the same message.
- Both must refuse the same bad inputs.

Run: /usr/bin/python3 tests/unit/pbjson_interop.py PATH/TO/pbjson_tool
"""
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import unittest

try:
    from google.protobuf import json_format
    from google.protobuf.descriptor import FieldDescriptor as FD
except ImportError as e:
    sys.exit("FAIL: %s needs protobuf (Debian: apt-get install python3-protobuf): %s"
             % (sys.executable, e))

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOOL = sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(
    os.environ.get("CREDITO_BUILD_DIR", os.path.join(ROOT, "build")), "tests/unit/pbjson_tool")
SEED = int(os.environ.get("PBJSON_SEED", "20240501"))
RANDOM_MESSAGES = 60  # per type

EMIT_DEFAULTS, IGNORE_UNKNOWN = 1, 2
pb = {}  # full name -> generated class


class Tool:
    """One pbjson_tool process answering line requests."""

    def __init__(self):
        self.proc = subprocess.Popen([TOOL], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, encoding="utf-8")

    def ask(self, *words):
        self.proc.stdin.write(" ".join(str(w) for w in words) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("pbjson_tool died on %r" % (words,))
        status, _, rest = line.rstrip("\n").partition(" ")
        return status, rest

    def to_pb(self, type_name, text, flags=0):
        assert "\n" not in text
        return self.ask("to-pb", type_name, flags, text)

    def to_json(self, type_name, data, flags=0):
        return self.ask("to-json", type_name, flags, data.hex())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


tool = None
gen_dir = None


def setUpModule():
    global tool, gen_dir
    protoc = shutil.which("protoc")
    if not protoc:
        raise RuntimeError("FAIL: protoc missing (Debian: apt-get install protobuf-compiler)")
    if not os.access(TOOL, os.X_OK):
        raise RuntimeError("FAIL: %s not built (make pbjson_tool)" % TOOL)
    gen_dir = tempfile.mkdtemp(prefix="credito-pbjson-")
    protos = [os.path.join("credito/v1", p)
              for p in sorted(os.listdir(os.path.join(ROOT, "proto/credito/v1")))]
    subprocess.run([protoc, "--python_out=" + gen_dir, "-I" + os.path.join(ROOT, "proto")]
                   + protos, check=True)
    subprocess.run([protoc, "--python_out=" + gen_dir, "-I" + os.path.join(ROOT, "tests/proto"),
                    "credito/test/v1/echo.proto"], check=True)
    sys.path.insert(0, gen_dir)
    import importlib
    for mod in ("credito.v1.common_pb2", "credito.v1.registry_pb2", "credito.v1.model_pb2",
                "credito.v1.predictor_pb2", "credito.v1.trainer_pb2", "credito.test.v1.echo_pb2"):
        m = importlib.import_module(mod)
        for name in m.DESCRIPTOR.message_types_by_name:
            cls = getattr(m, name)
            pb[cls.DESCRIPTOR.full_name] = cls
    tool = Tool()


def tearDownModule():
    if tool:
        tool.close()
    if gen_dir:
        shutil.rmtree(gen_dir, ignore_errors=True)


# Types pbjson_tool knows (tests/unit/pbjson_tool.c).
TYPES = [
    "credito.v1.Metric", "credito.v1.FeatureSpec", "credito.v1.Schema", "credito.v1.ModelRef",
    "credito.v1.ErrorStatus", "credito.v1.BadRequest", "credito.v1.Run",
    "credito.v1.UploadArtifactRequest", "credito.v1.DownloadArtifactResponse",
    "credito.v1.DatasetVersion", "credito.v1.ModelVersion", "credito.v1.ModelEvent",
    "credito.v1.GetLineageResponse", "credito.v1.ListEventsResponse",
    "credito.v1.PredictRequest", "credito.v1.PredictResponse", "credito.v1.PredictBatchRequest",
    "credito.v1.PredictBatchResponse", "credito.v1.GetModelInfoResponse",
    "credito.v1.TrainRequest", "credito.v1.TrainEvent", "credito.v1.ModelArtifact",
    "credito.test.v1.EchoRequest", "credito.test.v1.EchoResponse", "credito.test.v1.SumResponse",
]

INT_RANGES = {
    FD.TYPE_INT32: (-2**31, 2**31 - 1), FD.TYPE_SINT32: (-2**31, 2**31 - 1),
    FD.TYPE_SFIXED32: (-2**31, 2**31 - 1), FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1), FD.TYPE_INT64: (-2**63, 2**63 - 1),
    FD.TYPE_SINT64: (-2**63, 2**63 - 1), FD.TYPE_SFIXED64: (-2**63, 2**63 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1), FD.TYPE_FIXED64: (0, 2**64 - 1),
}


def rand_text(rng):
    # No U+0000: protobuf-c strings are C strings, so pbjson refuses it.
    alphabet = "abcXYZ019 _-./\"\\\t\u00e9\u20ac\u2603\U0001f600\u007f"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


def rand_double(rng):
    pick = rng.random()
    if pick < 0.05:
        return rng.choice([math.inf, -math.inf, math.nan])
    if pick < 0.3:
        return rng.choice([0.5, 1.0, 0.1, 1e-300, 1.7976931348623157e308, 5e-324, 123456.789])
    while True:
        v = rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-20, 20)
        # protobuf-c never packs -0.0 (it compares with ==); C++ protobuf does.
        if v != 0 or math.copysign(1, v) > 0:
            return v


def rand_scalar(rng, f):
    t = f.type
    if t in INT_RANGES:
        lo, hi = INT_RANGES[t]
        return rng.choice([lo, hi, 0, 1, -1 if lo < 0 else 2, rng.randint(lo, hi)])
    if t == FD.TYPE_DOUBLE:
        return rand_double(rng)
    if t == FD.TYPE_FLOAT:
        return rng.choice([0.5, 1.5, -2.25, 3.0e38])
    if t == FD.TYPE_BOOL:
        return rng.random() < 0.5
    if t == FD.TYPE_STRING:
        return rand_text(rng)
    if t == FD.TYPE_BYTES:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 10)))
    if t == FD.TYPE_ENUM:
        values = [v.number for v in f.enum_type.values]
        return rng.choice(values + [max(values) + 7])  # open enum: an unnamed number too
    raise AssertionError("type %d" % t)


def fill(rng, msg, depth=0):
    """Sets a random subset of msg's fields; one member per oneof at most."""
    chosen_oneofs = {}
    for o in msg.DESCRIPTOR.oneofs:
        chosen_oneofs[o.name] = rng.choice(list(o.fields) + [None])
    for f in msg.DESCRIPTOR.fields:
        if f.containing_oneof is not None:
            if chosen_oneofs[f.containing_oneof.name] is not f:
                continue
        elif rng.random() < 0.35:
            continue
        if f.type == FD.TYPE_MESSAGE:
            if depth > 3:
                continue
            if f.label == FD.LABEL_REPEATED:
                for _ in range(rng.randint(0, 3)):
                    fill(rng, getattr(msg, f.name).add(), depth + 1)
            else:
                getattr(msg, f.name).SetInParent()
                fill(rng, getattr(msg, f.name), depth + 1)
        elif f.label == FD.LABEL_REPEATED:
            getattr(msg, f.name).extend(rand_scalar(rng, f) for _ in range(rng.randint(0, 3)))
        else:
            setattr(msg, f.name, rand_scalar(rng, f))


def wire(msg):
    return msg.SerializeToString(deterministic=True)


class HandWritten(unittest.TestCase):
    """JSON a client would send, packed by both."""

    CASES = [
        ("credito.v1.PredictRequest",
         '{"features":[{"name":"age","value":{"number":30}},{"name":"job","value":{"text":""}},'
         '{"name":"x","value":{"missing":true}}],"requestId":"q"}'),
        ("credito.v1.TrainRequest",
         '{"dataset":{"name":"german-credit"},"modelName":"m","seed":"18446744073709551615",'
         '"testFraction":0.2,"cvFolds":5,"gates":[{"metric":"test_roc_auc",'
         '"comparison":"GATE_COMPARISON_AT_LEAST","value":0.75}],"params":[{"key":"C",'
         '"value":"1.0"}]}'),
        ("credito.v1.Metric", '{"key":"psi","value":"NaN","step":"-5","timestampMs":"0"}'),
        ("credito.v1.Metric", '{"value":"-Infinity","step":1e3}'),
        ("credito.v1.UploadArtifactRequest", '{"chunk":"-_8A"}'),
        ("credito.v1.UploadArtifactRequest", '{"chunk":""}'),
        ("credito.v1.ModelRef", '{"name":"m","version":"0"}'),
        ("credito.v1.Run", '{"status":"RUN_STATUS_FAILED","inputs":[{"dataset":{}}]}'),
        ("credito.v1.Run", '{"status":3,"metrics":[]}'),
        ("credito.v1.FeatureSpec", '{"kind":1,"categories":["a","\\u00e9",""],"required":true}'),
        ("credito.test.v1.EchoRequest", '{"text":"\\ud83d\\ude00","payload":"AAEC/w","failCode":-3}'),
        ("credito.test.v1.SumResponse", '{"count":-2147483648,"bytes":"-9223372036854775808"}'),
        ("credito.v1.ModelArtifact", '{"formatVersion":4294967295,"createdMs":1.7e12}'),
    ]

    def test_same_bytes(self):
        for type_name, text in self.CASES:
            with self.subTest(text=text):
                want = wire(json_format.Parse(text, pb[type_name]())).hex()
                self.assertEqual(tool.to_pb(type_name, text), ("ok", want))


class Refused(unittest.TestCase):
    """Inputs both converters must refuse."""

    CASES = [
        ("credito.v1.Metric", '{"bogus":1}'),
        ("credito.v1.Metric", '{"value":"abc"}'),
        ("credito.v1.Metric", '{"step":1.5}'),
        ("credito.v1.Metric", '{"key":5}'),
        ("credito.v1.Metric", '{"step":"9223372036854775808"}'),
        ("credito.test.v1.SumResponse", '{"count":2147483648}'),
        ("credito.v1.ModelArtifact", '{"formatVersion":-1}'),
        ("credito.v1.TrainRequest", '{"noHoldout":"true"}'),
        ("credito.v1.TrainRequest", '{"seed":-1}'),
        ("credito.v1.Run", '{"status":"RUN_STATUS_NOPE"}'),
        ("credito.v1.Run", '{"params":{}}'),
        ("credito.v1.FeatureSpec", '{"categories":["a",null]}'),
        ("credito.v1.PredictRequest", '{"features":[{"value":{"number":1,"text":"a"}}]}'),
        ("credito.v1.UploadArtifactRequest", '{"header":{},"chunk":""}'),
    ]

    def test_both_refuse(self):
        for type_name, text in self.CASES:
            with self.subTest(text=text):
                with self.assertRaises(json_format.ParseError):
                    json_format.Parse(text, pb[type_name]())
                status, why = tool.to_pb(type_name, text)
                self.assertEqual(status, "err", why)
                self.assertTrue(why.startswith("CM_E_INVALID "), why)


class RandomMessages(unittest.TestCase):
    """Random messages of every type through both converters, both ways."""

    def each(self):
        rng = random.Random(SEED)
        for type_name in TYPES:
            for i in range(RANDOM_MESSAGES):
                msg = pb[type_name]()
                fill(rng, msg)
                yield type_name, i, msg

    def test_python_json_to_our_bytes(self):
        for type_name, i, msg in self.each():
            data = wire(msg).hex()
            for kwargs in ({}, {"preserving_proto_field_name": True,
                                "including_default_value_fields": True}):
                text = json_format.MessageToJson(msg, indent=None, **kwargs)
                with self.subTest(type=type_name, i=i, text=text):
                    self.assertEqual(tool.to_pb(type_name, text), ("ok", data))

    def test_our_json_to_python_bytes(self):
        for type_name, i, msg in self.each():
            data = wire(msg)
            for flags in (0, EMIT_DEFAULTS):
                status, text = tool.to_json(type_name, data, flags)
                with self.subTest(type=type_name, i=i, flags=flags, text=text):
                    self.assertEqual(status, "ok", text)
                    back = json_format.Parse(text, pb[type_name]())
                    self.assertEqual(wire(back), data)


if __name__ == "__main__":
    unittest.main()
