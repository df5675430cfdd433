#!/usr/bin/python3
"""Integration: credito-predictor end to end, with the registry's state in a real S3 server (the
pinned @20minutes/s3rver, SigV4 checked) and its models trained by credito-trainer, judged by
peers no one here wrote: Python grpcio calls Predict, PredictBatch and GetModelInfo, Debian's
awscli tampers with an artifact in the bucket, buf curl calls the predictor from JSON through
reflection, and creditoctl pushes the data and moves an alias as a person would.

Covers issue 5's "Done means": the champion served once trained and verified (health
NOT_SERVING and Predict UNAVAILABLE before);
the same probabilities as `credito-trainer fit` with the same seed, bit for bit; the response's
score, decision, reasons, model and request id; a hot swap of the champion under 32 calls in
flight with no failed call and no answer mixing two versions; a tampered artifact refused by its
SHA-256 (the old version kept, GetModelInfo saying why; a pinned predictor never serving it); the
registry down (still serving; a restart serving from the cache at once; the alias followed again
once the registry is back); every kind of bad input as INVALID_ARGUMENT with a BadRequest detail
(each its own case); buf curl from JSON.

Run: /usr/bin/python3 tests/integration/test_predictor.py [BUILD_DIR] [unittest args]
     (or CREDITO_BUILD_DIR=BUILD_DIR; default build/ in the checkout)
Prints the hot-swap figures and a last line "N passed, M failed, K skipped".
"""
import base64
import csv
import importlib
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

# This test starts processes (with a PR_SET_PDEATHSIG preexec_fn, so by fork(), not vfork())
# while grpcio channels are busy. grpcio 1.51's core then runs its fork handlers, which join its
# executor threads and can hang forever (grpc/grpc#31885; it hung a run of this test). The
# children exec at once and never use gRPC, so the handlers are not needed: turn them off before
# grpc is imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

try:
    import grpc
except ImportError as e:
    sys.exit("FAIL: %s needs grpcio and protobuf (Debian: apt-get install python3-grpcio "
             "python3-protobuf): %s" % (sys.executable, e))

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
if len(sys.argv) > 1 and os.path.isdir(sys.argv[1]):
    os.environ["CREDITO_BUILD_DIR"] = os.path.abspath(sys.argv.pop(1))

import registry_harness as H  # noqa: E402
import procs  # noqa: E402  (tests/interop, put on sys.path by registry_harness)
import test_trainer as TT  # noqa: E402  (the Trainer process, TrainClient, train_request)

C = grpc.StatusCode
ROOT = H.ROOT
MODEL = TT.MODEL  # "credit-default"
SEED = 42
CALLER = "test_predictor"
RPC_TIMEOUT = 10.0
TARGET = "class"
N_FEATURES = 20
# The trainer's default scorecard (common.proto's Scorecard).
PDO, BASE_SCORE, BASE_ODDS, THRESHOLD = 20.0, 600.0, 50.0, 0.5
# Hot swap: calls kept in flight, and how long before and after the alias moves.
IN_FLIGHT = 32
SWAP_BEFORE_S = 2.0
SWAP_AFTER_S = 2.0

P = None  # credito.v1.predictor_pb2


def setUpModule():
    global P
    TT.setUpModule()  # protoc: H.pb, H.common, TT.T, TT.MP
    P = importlib.import_module("credito.v1.predictor_pb2")


def tearDownModule():
    TT.tearDownModule()


def cpb():
    return H.common


# ---- German Credit, parsed here (not by the code under test) ----

def read_arff(path):
    """(names, kinds, rows) of a simple ARFF file: kinds "numeric" or "nominal" per attribute;
    row values float (numeric), str (nominal) or None ("?")."""
    names, kinds, rows, in_data = [], [], [], False
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for line in lines:
        s = line.strip()
        if not s or s.startswith("%"):
            continue
        if not in_data:
            low = s.lower()
            if low.startswith("@attribute"):
                name, typ = s[len("@attribute"):].strip().split(None, 1)
                names.append(name.strip("'\""))
                kinds.append("nominal" if typ.lstrip().startswith("{") else "numeric")
            elif low.startswith("@data"):
                in_data = True
            continue
        cells = next(csv.reader([s], quotechar="'", skipinitialspace=True))
        if len(cells) != len(names):
            raise AssertionError("ARFF row of %d cells, want %d: %r" % (len(cells), len(names), s))
        rows.append([None if v == "?" else float(v) if k == "numeric" else v
                     for v, k in zip(cells, kinds)])
    return names, kinds, rows


def fnum(name, x):
    return cpb().Feature(name=name, value=cpb().FeatureValue(number=x))


def ftext(name, s):
    return cpb().Feature(name=name, value=cpb().FeatureValue(text=s))


def fmissing(name):
    return cpb().Feature(name=name, value=cpb().FeatureValue(missing=True))


class Data:
    """credit-g.arff as applicants: features() of a data row (1-based, file order)."""

    def __init__(self, path):
        self.names, self.kinds, self.rows = read_arff(path)
        self.features_names = [n for n in self.names if n != TARGET]
        self.kind = dict(zip(self.names, self.kinds))

    def values(self, row):
        return {n: v for n, v in zip(self.names, self.rows[row - 1]) if n != TARGET}

    def features(self, row, replace=None):
        """The row's features in file order; replace maps a name to a Feature (or None to
        drop it)."""
        out = []
        for n, v in self.values(row).items():
            if replace and n in replace:
                if replace[n] is not None:
                    out.append(replace[n])
                continue
            if v is None:
                out.append(fmissing(n))
            elif self.kind[n] == "numeric":
                out.append(fnum(n, v))
            else:
                out.append(ftext(n, v))
        return out

    def json_features(self, row):
        """The row as a proto3 JSON PredictRequest.features list."""
        out = []
        for n, v in self.values(row).items():
            val = {"number": v} if self.kind[n] == "numeric" else {"text": v}
            out.append({"name": n, "value": val})
        return out


def expected_score(p):
    """common.proto's scorecard with the defaults (p clamped as the C code does)."""
    factor = PDO / math.log(2.0)
    offset = BASE_SCORE - factor * math.log(BASE_ODDS)
    p = min(max(p, 1e-15), 1.0 - 1e-15)
    return offset + factor * math.log((1.0 - p) / p)


# ---- processes and clients ----

def _ser(m):
    return m if isinstance(m, bytes) else m.SerializeToString()


class PredClient:
    """credito.v1.Predictor and grpc.health.v1.Health over grpcio."""

    OUT = {"Predict": "PredictResponse", "PredictBatch": "PredictBatchResponse",
           "GetModelInfo": "GetModelInfoResponse"}

    def __init__(self, target):
        self.channel = grpc.insecure_channel(target)
        self.md = (("x-credito-caller", CALLER),)
        self.fns = {m: self.channel.unary_unary(
            "/credito.v1.Predictor/" + m, request_serializer=_ser,
            response_deserializer=getattr(P, out).FromString) for m, out in self.OUT.items()}
        self._health = self.channel.unary_unary("/grpc.health.v1.Health/Check",
                                                request_serializer=_ser,
                                                response_deserializer=lambda b: b)

    def close(self):
        self.channel.close()

    def __call__(self, method, req, timeout=RPC_TIMEOUT):
        return self.fns[method](req, timeout=timeout, metadata=self.md)

    def predict(self, features, request_id="", timeout=RPC_TIMEOUT):
        return self("Predict", P.PredictRequest(features=features, request_id=request_id),
                    timeout)

    def batch(self, rows, request_id="", timeout=RPC_TIMEOUT):
        return self("PredictBatch", P.PredictBatchRequest(
            rows=[P.Applicant(features=f) for f in rows], request_id=request_id), timeout)

    def columns(self, cols, n_rows, request_id="", timeout=RPC_TIMEOUT):
        return self("PredictBatch", P.PredictBatchRequest(
            columns=P.ApplicantColumns(n_rows=n_rows, features=cols), request_id=request_id),
            timeout)

    def info(self, timeout=RPC_TIMEOUT):
        return self("GetModelInfo", P.GetModelInfoRequest(), timeout)

    def health(self, service="", timeout=RPC_TIMEOUT):
        """"SERVING", "NOT_SERVING" or "UNKNOWN" (grpc.health.v1, decoded by hand: field 1)."""
        name = service.encode()
        req = b"\x0a" + bytes([len(name)]) + name if name else b""
        raw = self._health(req, timeout=timeout)
        status = raw[1] if len(raw) >= 2 and raw[0] == 0x08 else 0
        return {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING"}.get(status, str(status))


class Predictor:
    """credito-predictor on a free loopback port. Started, it has logged "listening"; it serves
    (health SERVING) only once a verified model is loaded: wait_serving()."""

    def __init__(self, registry_target, model_ref, cache_dir, *extra):
        wrapper = shlex.split(os.environ.get("CREDITO_SERVER_WRAPPER", ""))
        self.model_ref = model_ref
        self.cache_dir = cache_dir
        self.argv = wrapper + [procs.binary("credito-predictor"), "--listen", "127.0.0.1:0",
                               "--registry", registry_target, "--model", model_ref,
                               "--cache-dir", cache_dir, "--log-level", "info"]
        self.argv += [str(a) for a in extra]
        self.proc = H.Proc("credito-predictor", self.argv, needs_health=False)
        self.client = None

    def start(self, timeout=20.0):
        self.proc.start(timeout=timeout)
        self.client = PredClient(self.proc.target)
        return self

    @property
    def target(self):
        return self.proc.target

    def wait_serving(self, timeout=10.0):
        """Seconds until health said SERVING; fails the test after timeout."""
        t0 = time.monotonic()
        ok = H.wait_until(lambda: self.client.health() == "SERVING", timeout, 0.02)
        if not ok:
            raise AssertionError("%s not SERVING after %.0f s\n%s"
                                 % (self.model_ref, timeout, self.proc.stderr()))
        return time.monotonic() - t0

    def wait_info(self, pred, timeout=10.0):
        """The first GetModelInfo answer for which pred is true, or None after timeout."""
        last = [None]

        def probe():
            last[0] = self.client.info()
            return pred(last[0])
        return last[0] if H.wait_until(probe, timeout, 0.05) else None

    def stop(self):
        if self.client:
            self.client.close()  # an idle connection would hold the exit for the grace period
        return self.proc.stop()

    def kill(self):
        if self.client:
            self.client.close()
        self.proc.kill()


# ---------------------------------------------------------------------------------------------

class PredictorTest(unittest.TestCase):
    """One s3rver, one registry on s3://credito, one trainer and the champion's predictor for the
    whole class. Steps run in name order and share state; a step whose inputs an earlier step did
    not produce is skipped, so the first failure is the one to read."""

    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="credito-predictor-test-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.s3 = H.S3(os.path.join(cls.tmp, "s3"))
        cls.addClassCleanup(cls.s3.kill)
        cls.s3.start()
        cls.reg = H.Registry("s3://" + H.BUCKET, env=cls.s3.env())
        cls.addClassCleanup(lambda: cls.reg.kill())
        cls.reg.start()
        cls.reg_port = cls.reg.port
        cls.trainer = TT.Trainer(cls.reg.target)
        cls.addClassCleanup(cls.trainer.kill)
        cls.trainer.start()
        cls.c = H.Client(cls.reg.target, caller=CALLER)
        cls.addClassCleanup(lambda: cls.c.close())
        cls.tc = TT.TrainClient(cls.trainer.target)
        cls.addClassCleanup(cls.tc.close)
        cls.data = Data(TT.data_file())
        cls.st = {}
        cls.work = os.path.join(cls.tmp, "work")
        os.makedirs(cls.work)

    def need(self, *keys):
        for k in keys:
            if k not in self.st:
                self.skipTest("an earlier step did not produce %r" % k)
        return [self.st[k] for k in keys]

    # -- helpers --

    @classmethod
    def predictor(cls, ref, cache=None, *extra, wait=True):
        """A predictor for ref with its own (or the given) cache folder, killed at the end of
        the class; waits until it serves unless wait is false."""
        if cache is None:
            cache = tempfile.mkdtemp(prefix="cache-", dir=cls.tmp)
        p = Predictor(cls.reg.target, ref, cache, *extra)
        cls.addClassCleanup(p.kill)
        p.start()
        if wait:
            p.wait_serving()
        return p

    def train(self, **kw):
        """Trains on german-credit through the trainer; the TrainResult."""
        events, err = self.tc.run(TT.train_request("german-credit", **kw))
        if err is not None:
            self.fail("Train failed: %s: %s" % (err.code(), err.details()))
        self.assertEqual(events[-1].WhichOneof("event"), "result")
        return events[-1].result

    def set_alias(self, version, client=None):
        (client or self.c)("SetAlias", name=MODEL, alias="champion", version=version)

    def assertBadRequest(self, fn, *a, **kw):
        """Calls fn expecting INVALID_ARGUMENT with an ErrorStatus trailer holding exactly one
        BadRequest; returns (RpcError, BadRequest)."""
        with self.assertRaises(grpc.RpcError) as cm:
            fn(*a, **kw)
        e = cm.exception
        self.assertEqual(e.code(), C.INVALID_ARGUMENT, e.details())
        md = dict(e.trailing_metadata() or ())
        raw = md.get("grpc-status-details-bin")
        self.assertIsNotNone(raw, "no grpc-status-details-bin trailer: %r" % (md,))
        st = cpb().ErrorStatus.FromString(raw)
        self.assertEqual(st.code, C.INVALID_ARGUMENT.value[0])
        self.assertEqual(st.message, e.details())
        self.assertEqual(len(st.details), 1, st)
        self.assertEqual(st.details[0].type_url, "type.googleapis.com/credito.v1.BadRequest")
        return e, cpb().BadRequest.FromString(st.details[0].value)

    def violations(self, br):
        return [(v.field, v.type) for v in br.violations]

    def check_prediction(self, pred, where=""):
        """Score, decision and reasons consistent with the probability."""
        p = pred.probability
        self.assertTrue(0.0 <= p <= 1.0, "%sprobability %r" % (where, p))
        self.assertAlmostEqual(pred.score, expected_score(p), delta=1e-9 * max(1, abs(pred.score)))
        self.assertEqual(P.Decision.Name(pred.decision),
                         "DECISION_DECLINE" if p >= THRESHOLD else "DECISION_APPROVE",
                         "%sprobability %r" % (where, p))
        self.assertLessEqual(len(pred.reasons), 4)
        impacts = [r.impact for r in pred.reasons]
        self.assertTrue(all(x > 0 for x in impacts), "%sonly positive impacts: %r"
                        % (where, impacts))
        self.assertEqual(impacts, sorted(impacts, reverse=True), "largest impact first")
        names = set(self.data.features_names)
        for r in pred.reasons:
            self.assertIn(r.feature, names, "a reason names an original feature")
            self.assertIn(r.feature, r.text)

    # -----------------------------------------------------------------------------------------
    # 1. Setup: the champion's predictor started before there is a model (not serving), German
    #    Credit pushed, version 1 trained as champion, the predictor serving it.

    def test_00_no_model_yet_not_serving(self):
        p = self.predictor(MODEL + "@champion", os.path.join(self.tmp, "cache-main"), wait=False)
        self.assertIsNotNone(p.proc.wait_log("the alias points at no version yet", 10),
                             p.proc.stderr())
        for svc in ("", "credito.v1.Predictor"):
            self.assertEqual(p.client.health(svc), "NOT_SERVING", svc)
        for call in (lambda: p.client.predict(self.data.features(1)),
                     lambda: p.client.batch([self.data.features(1)])):
            with self.assertRaises(grpc.RpcError) as cm:
                call()
            self.assertEqual(cm.exception.code(), C.UNAVAILABLE, cm.exception.details())
            self.assertIn("no verified model", cm.exception.details())
        info = p.client.info()
        self.assertEqual((info.model_ref, info.serving, info.version), (MODEL + "@champion",
                                                                        False, 0))
        self.st["waiting"] = p

    def test_01_push_and_train_champion(self):
        src = os.path.join(self.work, "credit-g.arff")
        shutil.copyfile(TT.data_file(), src)
        H.ctl_json(self.reg.target, "dataset", "push", src, "--name", "german-credit")
        res = self.train(alias="champion", seed=SEED)
        self.st["trained_at"] = time.monotonic()
        v = res.model_version
        self.assertEqual((v.name, v.version, res.alias), (MODEL, 1, "champion"))
        self.st.update(run1=res.run_id, v1=self.c("GetModelVersion", name=MODEL, version=1))

    def test_02_predictor_serves_the_champion(self):
        p, v1, run1, trained_at = self.need("waiting", "v1", "run1", "trained_at")
        cache = p.cache_dir
        p.wait_serving()
        took = time.monotonic() - trained_at
        self.assertLess(took, 5.0, "the champion was served %.1f s after Train ended" % took)
        self.assertEqual(p.client.health("credito.v1.Predictor"), "SERVING")
        info = p.client.info()
        self.assertEqual((info.model_ref, info.serving, info.name, info.version, info.alias),
                         (MODEL + "@champion", True, MODEL, 1, "champion"))
        self.assertEqual(info.sha256, v1.artifact_sha256)
        self.assertEqual(info.run_id, run1)
        self.assertEqual([f.name for f in info.schema.features], self.data.features_names)
        self.assertTrue(all(f.required for f in info.schema.features),
                        "German Credit has no missing value: every feature is required")
        self.assertEqual((info.schema.target, info.schema.positive_label), (TARGET, "bad"))
        metrics = {m.key: m.value for m in info.metrics}
        self.assertGreater(metrics.get("test_roc_auc", 0), 0.7, metrics)
        self.assertEqual((info.scorecard.pdo, info.scorecard.base_score, info.scorecard.base_odds,
                          info.scorecard.threshold), (PDO, BASE_SCORE, BASE_ODDS, THRESHOLD))
        now = time.time() * 1000
        self.assertTrue(0 < info.trained_at_ms <= info.loaded_at_ms <= now + 1000, info)
        self.assertFalse(info.HasField("last_load_error"), info.last_load_error)
        self.assertTrue(os.path.exists(os.path.join(cache, v1.artifact_sha256 + ".pb")),
                        "the verified artifact is cached under its SHA-256")
        self.st["main"] = p

    # 2. Parity: `credito-trainer fit` with the same seed scores the hold-out rows exactly as the
    #    predictor serving the service-trained version 1.

    def test_03_parity_with_trainer_fit(self):
        p, v1 = self.need("main", "v1")
        out = os.path.join(self.tmp, "fit")
        subprocess.run([procs.binary("credito-trainer"), "fit", TT.data_file(), "--seed",
                        str(SEED), "--cv-folds", "5", "--out", out], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        # The same model (the artifacts' bytes differ: lineage and time).
        _, body = self.c.download("DownloadArtifact", H.pb.DownloadArtifactRequest(
            key=v1.artifact_key))
        served = TT.MP.ModelArtifact.FromString(body)
        with open(os.path.join(out, "model.pb"), "rb") as f:
            local = TT.MP.ModelArtifact.FromString(f.read())
        self.assertEqual(local.logistic_regression, served.logistic_regression,
                         "fit and the trainer service gave different coefficients")
        self.assertEqual(list(local.preparation), list(served.preparation))
        with open(os.path.join(out, "test_scores.csv"), newline="") as f:
            scores = [(int(r["row"]), float(r["probability"])) for r in csv.DictReader(f)]
        self.assertEqual(len(scores), 200, "a 20% hold-out of 1000 rows")
        worst, differ = 0.0, []
        for row, want in scores:
            got = p.client.predict(self.data.features(row)).prediction.probability
            worst = max(worst, abs(got - want))
            if got != want:
                differ.append((row, want, got))
        self.assertLessEqual(worst, 1e-12, "largest difference %.3g" % worst)
        self.assertEqual(differ, [], "not bit-identical")
        # PredictBatch scores the same rows the same way.
        rows = [r for r, _ in scores]
        b = p.client.batch([self.data.features(r) for r in rows])
        self.assertEqual([x.prediction.probability for x in b.results], [s for _, s in scores])
        print("\nparity: %d hold-out rows, Predict and PredictBatch bit-identical to "
              "credito-trainer fit --seed %d" % (len(scores), SEED))

    def test_04_response_fields(self):
        p, = self.need("main")
        declines = approves = 0
        for row in range(1, 101):
            r = p.client.predict(self.data.features(row), request_id="req-%d" % row)
            self.check_prediction(r.prediction, "row %d: " % row)
            self.assertEqual((r.model_name, r.model_version, r.model_alias, r.request_id),
                             (MODEL, 1, "champion", "req-%d" % row))
            if r.prediction.decision == P.DECISION_DECLINE:
                declines += 1
            else:
                approves += 1
        self.assertTrue(declines and approves, "both decisions among 100 rows (%d declined)"
                        % declines)
        # Reasons: the worst applicant has four, worded with the value given.
        best = max((p.client.predict(self.data.features(r)) for r in range(1, 101)),
                   key=lambda r: r.prediction.probability)
        self.assertEqual(len(best.prediction.reasons), 4, best)
        for rs in best.prediction.reasons:
            self.assertRegex(rs.text, r"^%s = .+ raised the risk" % rs.feature)
        # No request id sent: the predictor makes a fresh one per call.
        ids = {p.client.predict(self.data.features(1)).request_id for _ in range(5)}
        self.assertEqual(len(ids), 5, ids)
        for i in ids:
            self.assertRegex(i, r"^[0-9a-f]{16}$")
        b = p.client.batch([self.data.features(1)], request_id="batch-1")
        self.assertEqual((b.request_id, b.model_version, b.model_alias), ("batch-1", 1,
                                                                          "champion"))
        self.assertRegex(p.client.batch([self.data.features(1)]).request_id, r"^[0-9a-f]{16}$")

    # -----------------------------------------------------------------------------------------
    # 6. Bad input: INVALID_ARGUMENT with a BadRequest detail naming every problem, each kind
    #    its own case.

    def test_10_empty_request(self):
        p, = self.need("main")
        e, br = self.assertBadRequest(p.client.predict, [])
        self.assertEqual(self.violations(br),
                         [(n, "missing") for n in self.data.features_names])
        self.assertEqual({v.message for v in br.violations}, {"Field required"})
        self.assertIn("%d invalid fields" % N_FEATURES, e.details())

    def test_11_every_field_missing(self):
        p, = self.need("main")
        names = self.data.features_names
        explicit = [fmissing(n) for n in names]
        unset = [cpb().Feature(name=n, value=cpb().FeatureValue()) for n in names]
        for label, feats in (("missing: true", explicit), ("no value set", unset)):
            with self.subTest(label):
                _, br = self.assertBadRequest(p.client.predict, feats)
                self.assertEqual(self.violations(br), [(n, "missing") for n in names])

    def test_12_unknown_field(self):
        p, = self.need("main")
        _, br = self.assertBadRequest(p.client.predict,
                                      self.data.features(1) + [fnum("shoe_size", 44)])
        self.assertEqual(self.violations(br), [("shoe_size", "extra_forbidden")])
        self.assertEqual(br.violations[0].message, "Extra inputs are not permitted")
        # A feature given twice is refused the same way (the second one).
        _, br = self.assertBadRequest(p.client.predict,
                                      self.data.features(1) + [fnum("duration", 12)])
        self.assertEqual(self.violations(br), [("duration", "extra_forbidden")])

    def test_13_string_for_a_number(self):
        p, = self.need("main")
        _, br = self.assertBadRequest(p.client.predict, self.data.features(
            1, {"duration": ftext("duration", "12")}))
        self.assertEqual(self.violations(br), [("duration", "float_type")])

    def test_14_number_for_a_category(self):
        p, = self.need("main")
        _, br = self.assertBadRequest(p.client.predict, self.data.features(
            1, {"checking_status": fnum("checking_status", 1)}))
        self.assertEqual(self.violations(br), [("checking_status", "string_type")])

    def test_15_nan_and_infinities(self):
        p, = self.need("main")
        _, br = self.assertBadRequest(p.client.predict, self.data.features(1, {
            "duration": fnum("duration", float("nan")),
            "credit_amount": fnum("credit_amount", float("inf")),
            "age": fnum("age", float("-inf"))}))
        self.assertEqual(self.violations(br), [("duration", "finite_number"),
                                               ("credit_amount", "finite_number"),
                                               ("age", "finite_number")])
        self.assertEqual({v.message for v in br.violations}, {"Input should be a finite number"})

    def test_16_huge_finite_number_is_scored(self):
        p, = self.need("main")
        for name in ("credit_amount", "duration", "age"):
            with self.subTest(name):
                r = p.client.predict(self.data.features(1, {name: fnum(name, 1e308)}))
                self.assertTrue(0.0 <= r.prediction.probability <= 1.0, r)
                self.assertTrue(math.isfinite(r.prediction.score), r)
                self.check_prediction(r.prediction)

    def test_17_unknown_category(self):
        p, = self.need("main")
        _, br = self.assertBadRequest(p.client.predict, self.data.features(
            1, {"checking_status": ftext("checking_status", "maybe")}))
        self.assertEqual(self.violations(br), [("checking_status", "enum")])
        self.assertEqual(br.violations[0].message,
                         "Input should be '<0', '0<=X<200', '>=200' or 'no checking'")

    def test_18_several_problems_at_once(self):
        p, = self.need("main")
        _, br = self.assertBadRequest(p.client.predict, self.data.features(1, {
            "duration": ftext("duration", "long"), "purpose": None,
            "housing": ftext("housing", "castle")}) + [fnum("zodiac", 3)])
        self.assertEqual(self.violations(br), [("duration", "float_type"), ("housing", "enum"),
                                               ("zodiac", "extra_forbidden"),
                                               ("purpose", "missing")])

    def test_19_ten_thousand_features(self):
        p, = self.need("main")
        many = self.data.features(1) + [fnum("f%05d" % i, 1) for i in range(10000 - N_FEATURES)]
        # Over the default cap of 1000: refused as a whole, naming the cap.
        with self.assertRaises(grpc.RpcError) as cm:
            p.client.predict(many)
        self.assertEqual(cm.exception.code(), C.INVALID_ARGUMENT)
        self.assertIn("10000 features", cm.exception.details())
        self.assertIn("at most 1000", cm.exception.details())
        # Under a raised cap each unknown name is a violation; the detail keeps the first ones
        # that fit 4,000 bytes (at most 100: grpcio refuses trailers over 8 KiB) and the message
        # says how many it holds.
        big = self.caps_predictor()
        e, br = self.assertBadRequest(big.client.predict, many)
        self.assertTrue(1 <= len(br.violations) <= 100, len(br.violations))
        self.assertLess(br.ByteSize(), 4500)
        self.assertEqual(self.violations(br)[:2], [("f00000", "extra_forbidden"),
                                                   ("f00001", "extra_forbidden")])
        self.assertIn("9980 invalid fields", e.details())
        self.assertIn("the first %d in the details" % len(br.violations), e.details())

    def test_19b_long_names_keep_the_detail_readable(self):
        # Found by this test: 100 violations with 32-byte names made a trailer over grpcio's
        # 8 KiB metadata cap, so the client got RESOURCE_EXHAUSTED and no detail.
        p, = self.need("main")
        many = self.data.features(1) + [fnum("x" * 40 + "%05d" % i, 1) for i in range(500)]
        e, br = self.assertBadRequest(self.caps_predictor().client.predict, many)
        self.assertGreater(len(br.violations), 10)
        self.assertIn("500 invalid fields", e.details())

    def caps_predictor(self):
        if "caps" not in self.st:
            self.st["caps"] = self.predictor(MODEL + "/1", None, "--max-features", 20000,
                                             "--max-batch", 5)
        return self.st["caps"]

    def test_20_batch_over_the_cap(self):
        self.need("main")
        p = self.caps_predictor()
        ok = p.client.batch([self.data.features(r) for r in range(1, 6)])
        self.assertEqual(len(ok.results), 5)
        with self.assertRaises(grpc.RpcError) as cm:
            p.client.batch([self.data.features(r) for r in range(1, 7)])
        self.assertEqual(cm.exception.code(), C.INVALID_ARGUMENT)
        self.assertIn("6 rows", cm.exception.details())
        self.assertIn("at most 5", cm.exception.details())

    def test_21_batch_with_one_bad_row(self):
        p, = self.need("main")
        rows = [self.data.features(1),
                self.data.features(2, {"age": ftext("age", "old"), "job": None}),
                self.data.features(3)]
        b = p.client.batch(rows, request_id="mixed")
        self.assertEqual([r.WhichOneof("outcome") for r in b.results],
                         ["prediction", "error", "prediction"])
        self.assertEqual(self.violations(b.results[1].error),
                         [("age", "float_type"), ("job", "missing")])
        for i in (0, 2):
            single = p.client.predict(rows[i]).prediction
            self.assertEqual(b.results[i].prediction, single)
        self.assertEqual((b.model_version, b.request_id), (1, "mixed"))

    def to_columns(self, rows):
        """Value dicts (name -> float, str or None) as FeatureColumns in schema order: numbers
        or codes into each text once, None as a missing row."""
        cols = []
        for n in self.data.features_names:
            vals = [r.get(n) for r in rows]
            missing = [i for i, x in enumerate(vals) if x is None]
            if self.data.kind[n] == "numeric":
                cols.append(P.FeatureColumn(name=n, numbers=[0.0 if x is None else x
                                                             for x in vals], missing=missing))
            else:
                cats = sorted({x for x in vals if x is not None})
                cols.append(P.FeatureColumn(name=n, categories=cats, missing=missing, codes=[
                    0 if x is None else cats.index(x) for x in vals]))
        return cols

    def test_22_columns_score_as_rows_do(self):
        """3,000 rows by columns on 3 threads (their ranges split the rows at 1,000 and 2,000)
        against the same rows in the row form: the same probabilities to the bit, scores,
        decisions, reasons; each invalid row with the row form's violations, at its index."""
        p, = self.need("main")
        three = self.predictor(MODEL + "/1", None, "--batch-threads", 3)
        rows = [self.data.values(1 + i % 1000) for i in range(3000)]
        bad = {10: ("age", None), 999: ("duration", float("nan")),
               1000: ("checking_status", "maybe"), 2001: ("credit_amount", float("inf")),
               2999: ("housing", None)}
        for i, (name, x) in bad.items():
            rows[i] = dict(rows[i], **{name: x})
        feats = []
        for r in rows:
            f = []
            for n, x in r.items():
                f.append(fmissing(n) if x is None else fnum(n, x) if isinstance(x, float)
                         else ftext(n, x))
            feats.append(f)
        want = p.client.batch(feats)
        got = three.client.columns(self.to_columns(rows), len(rows), request_id="cols")
        self.assertEqual(len(want.results), 3000)
        self.assertEqual((got.model_version, got.request_id, len(got.results)), (1, "cols", 0))
        c = got.columns
        self.assertEqual(list(c.feature_names), self.data.features_names)
        self.assertEqual((len(c.probability), len(c.score), len(c.decision),
                          len(c.reason_count)), (3000, 3000, 3000, 3000))
        self.assertEqual(len(c.reason_feature), sum(c.reason_count))
        self.assertEqual(len(c.reason_impact), sum(c.reason_count))
        self.assertEqual([e.row for e in c.errors], sorted(bad))
        errors = {e.row: e.error for e in c.errors}
        k = 0
        for i, w in enumerate(want.results):
            n = c.reason_count[i]
            if i in bad:
                self.assertEqual(w.WhichOneof("outcome"), "error")
                self.assertEqual(errors[i], w.error, "row %d" % i)
                self.assertEqual((c.probability[i], c.score[i], c.decision[i], n), (0, 0, 0, 0))
                continue
            wp = w.prediction
            self.assertEqual((c.probability[i], c.score[i], c.decision[i]),
                             (wp.probability, wp.score, wp.decision), "row %d" % i)
            self.assertEqual([(c.feature_names[c.reason_feature[k + j]], c.reason_impact[k + j])
                              for j in range(n)],
                             [(r.feature, r.impact) for r in wp.reasons], "row %d" % i)
            k += n
        self.assertEqual(errors[999].violations[0].type, "finite_number")
        self.assertEqual(errors[1000].violations[0].type, "enum")
        self.assertEqual(errors[2999].violations[0].type, "missing")

    def test_23_columns_a_row_problem_stays_in_its_row(self):
        """An unknown column, numbers for a categorical feature and a feature without a column
        are every row's problem, named as in the row form; no row is lost or scored."""
        p, = self.need("main")
        rows = [self.data.values(r) for r in (1, 2)]
        cols = self.to_columns(rows)
        cols = [c for c in cols if c.name != "job"]
        for c in cols:
            if c.name == "housing":
                del c.categories[:]
                del c.codes[:]
                c.numbers.extend([1.0, 2.0])
        cols.append(P.FeatureColumn(name="zodiac", numbers=[3.0, 4.0]))
        got = p.client.columns(cols, 2).columns
        self.assertEqual([e.row for e in got.errors], [0, 1])
        for e in got.errors:
            self.assertEqual(self.violations(e.error), [("housing", "string_type"),
                                                        ("zodiac", "extra_forbidden"),
                                                        ("job", "missing")])
        self.assertEqual(list(got.decision), [0, 0])
        empty = p.client.columns([], 0).columns
        self.assertEqual((len(empty.probability), len(empty.errors)), (0, 0))

    def test_24_columns_malformed_fail_the_call(self):
        """A column of the wrong shape fails the whole call with INVALID_ARGUMENT naming it."""
        p, = self.need("main")
        rows = [self.data.values(r) for r in (1, 2, 3)]

        def broken(name, change):
            cols = self.to_columns(rows)
            for c in cols:
                if c.name == name:
                    change(c)
            return cols
        cases = [
            ("duration", lambda c: c.numbers.pop(), "'duration': 2 numbers for 3 rows"),
            ("job", lambda c: c.codes.append(0), "'job': 4 codes for 3 rows"),
            ("job", lambda c: c.codes.__setitem__(1, 7), "'job': codes[1] = 7 but"),
            ("age", lambda c: c.missing.extend([2, 1]), "'age': missing[1] = 1 is out of"),
            ("age", lambda c: c.missing.append(3), "'age': missing[0] = 3 is out of range"),
            ("age", lambda c: c.codes.extend([0, 0, 0]), "'age': both numbers and codes"),
            ("job", lambda c: c.codes.__delitem__(slice(None)),
             "'job': categories without codes"),
        ]
        for name, change, msg in cases:
            with self.subTest(msg):
                with self.assertRaises(grpc.RpcError) as cm:
                    p.client.columns(broken(name, change), 3)
                self.assertEqual(cm.exception.code(), C.INVALID_ARGUMENT)
                self.assertIn(msg, cm.exception.details())
        # A missing row's code is never read, so it may be anything.
        ok = broken("job", lambda c: (c.codes.__setitem__(1, 99), c.missing.append(1)))
        got = p.client.columns(ok, 3).columns
        self.assertEqual([(e.row, self.violations(e.error)) for e in got.errors],
                         [(1, [("job", "missing")])])
        with self.assertRaises(grpc.RpcError) as cm:
            p.client("PredictBatch", P.PredictBatchRequest(
                rows=[P.Applicant(features=self.data.features(1))],
                columns=P.ApplicantColumns(n_rows=3, features=self.to_columns(rows))))
        self.assertEqual(cm.exception.code(), C.INVALID_ARGUMENT)
        self.assertIn("rows and columns are both set", cm.exception.details())
        caps = self.caps_predictor()
        with self.assertRaises(grpc.RpcError) as cm:
            caps.client.columns(self.to_columns([self.data.values(1)] * 6), 6)
        self.assertEqual(cm.exception.code(), C.INVALID_ARGUMENT)
        self.assertIn("6 rows; at most 5", cm.exception.details())

    # -----------------------------------------------------------------------------------------
    # 7. buf curl (Go gRPC, request and answer in JSON through the server's reflection).

    def buf(self, target, method, body):
        """(exit code, output) of buf curl calling credito.v1.Predictor/method with JSON."""
        buf = os.environ.get("CREDITO_BUF",
                             os.path.join(ROOT, "tests", "peers", "node_modules", ".bin", "buf"))
        if not os.access(buf, os.X_OK):
            raise RuntimeError("FAIL: buf missing at %s (cd tests/peers && npm ci)" % buf)
        r = subprocess.run([buf, "curl", "--protocol", "grpc", "--http2-prior-knowledge",
                            "--timeout", "10s", "-d", json.dumps(body),
                            "http://%s/credito.v1.Predictor/%s" % (target, method)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=60)
        return r.returncode, r.stdout

    def test_25_buf_curl(self):
        p, = self.need("main")
        rc, out = self.buf(p.target, "Predict", {"features": self.data.json_features(2),
                                                 "requestId": "buf-1"})
        self.assertEqual(rc, 0, out)
        got = json.loads(out)
        want = p.client.predict(self.data.features(2))
        self.assertEqual(got["prediction"]["probability"], want.prediction.probability)
        self.assertEqual((got["modelName"], got["modelVersion"], got["modelAlias"],
                          got["requestId"]), (MODEL, "1", "champion", "buf-1"))
        self.assertEqual(got["prediction"]["decision"], P.Decision.Name(want.prediction.decision))
        self.assertEqual([r["feature"] for r in got["prediction"].get("reasons", [])],
                         [r.feature for r in want.prediction.reasons])

        rc, out = self.buf(p.target, "GetModelInfo", {})
        self.assertEqual(rc, 0, out)
        info = json.loads(out)
        self.assertEqual((info["modelRef"], info["serving"], info["version"]),
                         (MODEL + "@champion", True, "1"))
        self.assertEqual(len(info["schema"]["features"]), N_FEATURES)

        bad = self.data.json_features(2)
        bad[1]["value"] = {"text": "forty"}
        rc, out = self.buf(p.target, "Predict", {"features": bad})
        self.assertNotEqual(rc, 0, out)
        err = json.loads(out[out.index("{"):])
        self.assertEqual(err["code"], "invalid_argument", out)
        self.assertEqual([d["type"] for d in err["details"]], ["credito.v1.BadRequest"], out)
        # buf prints the detail's bytes (unpadded base64); decoded, the one violation.
        value = err["details"][0]["value"]
        br = cpb().BadRequest.FromString(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        self.assertEqual([(v.field, v.type, v.message) for v in br.violations],
                         [("duration", "float_type", "Input should be a valid number")])
        self.assertIn("duration", err["message"])

    # -----------------------------------------------------------------------------------------
    # 3. Hot swap: the champion moves from version 1 to 2 under 32 calls in flight.

    def test_30_hot_swap_under_load(self):
        p, = self.need("main")
        res = self.train(seed=SEED, params={"C": "0.01"})
        self.assertEqual(res.model_version.version, 2)
        self.assertEqual(p.client.info().version, 1, "no alias asked: champion stays at 1")
        pins = {1: self.predictor(MODEL + "/1"), 2: self.predictor(MODEL + "/2")}
        for v, pin in pins.items():
            info = pin.client.info()
            self.assertEqual((info.version, info.alias, info.model_ref), (v, "", MODEL + "/%d" % v))
        rows = list(range(1, 17))
        reqs = [P.PredictRequest(features=self.data.features(r)).SerializeToString()
                for r in rows]
        want = {v: [pin.client.predict(self.data.features(r)).prediction.probability
                    for r in rows] for v, pin in pins.items()}
        for i, r in enumerate(rows):
            self.assertNotEqual(want[1][i], want[2][i], "row %d scores the same in both "
                                "versions: a mix would go unseen" % r)
        self.assertEqual([p.client.predict(self.data.features(r)).prediction.probability
                          for r in rows], want[1], "the champion's predictor agrees with /1")

        fn = p.client.fns["Predict"]
        stop = threading.Event()
        log = []  # (sent, received, row index, version, probability, error)

        def worker(k):
            i = k
            while not stop.is_set():
                a = i % len(rows)
                i += 1
                t0 = time.monotonic()
                try:
                    r = fn(reqs[a], timeout=10)
                    log.append((t0, time.monotonic(), a, r.model_version,
                                r.prediction.probability, None))
                except grpc.RpcError as e:
                    log.append((t0, time.monotonic(), a, 0, 0.0, (e.code(), e.details())))

        threads = [threading.Thread(target=worker, args=(k,), daemon=True)
                   for k in range(IN_FLIGHT)]
        t_start = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(SWAP_BEFORE_S)
        t_swap = time.monotonic()
        self.set_alias(2)
        t_set = time.monotonic()
        saw_v2 = H.wait_until(lambda: any(x[3] == 2 for x in list(log)), 10, 0.005)
        time.sleep(SWAP_AFTER_S if saw_v2 else 0)
        stop.set()
        for t in threads:
            t.join(15)
        t_end = time.monotonic()

        failed = [x for x in log if x[5] is not None]
        self.assertEqual(failed[:5], [], "%d of %d calls failed" % (len(failed), len(log)))
        self.assertTrue(saw_v2, "no answer from version 2 within 10 s of SetAlias")
        wrong = [x for x in log if x[3] not in want or x[4] != want[x[3]][x[2]]]
        self.assertEqual(wrong[:5], [], "%d answers whose probability is not the named "
                         "version's (a mix of versions)" % len(wrong))
        first_v2 = min(x[1] for x in log if x[3] == 2)
        last_v1 = max(x[1] for x in log if x[3] == 1)
        late_v1 = [x for x in log if x[3] == 1 and x[0] > first_v2]
        self.assertEqual(late_v1[:5], [], "version 1 answered calls sent after a version 2 "
                         "answer arrived: the swap is not one atomic exchange")
        n1 = sum(1 for x in log if x[3] == 1)
        n2 = len(log) - n1
        self.assertGreater(n1, 100)
        self.assertGreater(n2, 100)
        info = p.client.info()
        self.assertEqual((info.version, info.sha256), (2, res.model_version.artifact_sha256))
        figures = ("hot swap: %d calls in %.1f s (%.0f/s) with %d in flight, 0 failed, %d by "
                   "version 1 then %d by version 2, none mixed; SetAlias took %.0f ms; first "
                   "version 2 answer %.0f ms after SetAlias was sent; last version 1 answer "
                   "%.0f ms after it (calls already in flight)"
                   % (len(log), t_end - t_start, len(log) / (t_end - t_start), IN_FLIGHT, n1, n2,
                      (t_set - t_swap) * 1e3, (first_v2 - t_swap) * 1e3,
                      (last_v1 - t_swap) * 1e3))
        print("\n" + figures)
        self.st["v2"] = self.c("GetModelVersion", name=MODEL, version=2)

    # -----------------------------------------------------------------------------------------
    # 4. A tampered artifact: version 3's bytes changed in the bucket, then champion moved to it.

    def test_40_tampered_artifact_is_refused(self):
        p, v2 = self.need("main", "v2")
        res = self.train(seed=7)
        v3 = self.c("GetModelVersion", name=MODEL, version=res.model_version.version)
        self.assertEqual(v3.version, 3)
        local = os.path.join(self.tmp, "v3.pb")
        url = "s3://%s/%s" % (H.BUCKET, v3.artifact_key)
        self.s3.aws("s3", "cp", url, local)
        with open(local, "rb") as f:
            body = bytearray(f.read())
        self.assertEqual(H.sha256_hex(bytes(body)), v3.artifact_sha256)
        body[len(body) // 2] ^= 0x01  # one bit of one byte
        with open(local, "wb") as f:
            f.write(body)
        self.s3.aws("s3", "cp", local, url)
        self.assertNotEqual(H.sha256_hex(self.s3.aws("s3", "cp", url, "-").stdout),
                            v3.artifact_sha256, "awscli reads the tampered bytes back")

        H.ctl(self.reg.target, "model", "alias", MODEL, "champion", "3")
        info = p.wait_info(lambda i: i.last_load_error.version == 3)
        self.assertIsNotNone(info, "GetModelInfo never reported version 3's failure:\n%s"
                             % p.proc.stderr()[-3000:])
        # Refused twice over: the registry ends the download DATA_LOSS (the bytes do not match
        # their md5 key), and were they passed on, the predictor's SHA-256 check would refuse
        # them.
        self.assertRegex(info.last_load_error.message, r"sha256|corrupt")
        self.assertGreater(info.last_load_error.time_ms, 0)
        self.assertEqual((info.serving, info.version, info.sha256), (True, 2, v2.artifact_sha256))
        self.assertEqual(p.client.health(), "SERVING")
        r = p.client.predict(self.data.features(1))
        self.assertEqual(r.model_version, 2)
        warned = [x for x in p.proc.logged("model version not loaded; serving what was served "
                                           "before") if x.get("version") in (3, "3")]
        self.assertTrue(warned, "the refusal is logged")
        self.assertFalse(os.path.exists(os.path.join(p.cache_dir, v3.artifact_sha256 + ".pb")),
                         "tampered bytes are never cached")
        self.st["v3"] = v3

    def test_41_pinned_tampered_version_never_serves(self):
        v3, = self.need("v3")
        pin = self.predictor(MODEL + "/3", None, wait=False)
        info = pin.wait_info(lambda i: i.last_load_error.version == 3)
        self.assertIsNotNone(info, pin.proc.stderr())
        self.assertRegex(info.last_load_error.message, r"sha256|corrupt")
        self.assertEqual((info.model_ref, info.serving, info.version), (MODEL + "/3", False, 0))
        # It keeps trying (with backoff) and keeps refusing.
        time.sleep(1.0)
        self.assertEqual(pin.client.health(), "NOT_SERVING")
        self.assertEqual(pin.client.health("credito.v1.Predictor"), "NOT_SERVING")
        for call in (lambda: pin.client.predict(self.data.features(1)),
                     lambda: pin.client.batch([self.data.features(1)])):
            with self.assertRaises(grpc.RpcError) as cm:
                call()
            self.assertEqual(cm.exception.code(), C.UNAVAILABLE, cm.exception.details())
        self.assertEqual(os.listdir(pin.cache_dir), [], "nothing cached")

    def test_42_alias_that_points_nowhere_never_serves(self):
        self.need("v1")
        p = self.predictor(MODEL + "@nowhere", None, wait=False)
        self.assertIsNotNone(p.proc.wait_log("the alias points at no version yet", 10),
                             p.proc.stderr())
        self.assertEqual(p.client.health(), "NOT_SERVING")
        with self.assertRaises(grpc.RpcError) as cm:
            p.client.predict(self.data.features(1))
        self.assertEqual(cm.exception.code(), C.UNAVAILABLE)
        info = p.client.info()
        self.assertEqual((info.model_ref, info.serving), (MODEL + "@nowhere", False))
        self.assertFalse(info.HasField("last_load_error"))

    # -----------------------------------------------------------------------------------------
    # 5. The registry down: still serving; a restart serves from the cache; back, followed.

    def test_50_registry_down_keeps_serving(self):
        p, _ = self.need("main", "v3")
        self.reg.kill()
        for r in range(1, 21):
            self.assertEqual(p.client.predict(self.data.features(r)).model_version, 2)
        self.assertEqual(p.client.health(), "SERVING")
        self.assertIsNotNone(p.proc.wait_log("the model watch broke; subscribing again", 5),
                             "the predictor noticed the registry went away")
        self.assertEqual(p.client.predict(self.data.features(1)).model_version, 2)
        self.st["reg_down"] = True

    def test_51_restart_with_the_registry_down_serves_the_cache(self):
        p, v2, _ = self.need("main", "v2", "reg_down")
        rc = p.stop()
        self.assertEqual(rc, 0, "credito-predictor exited %s\n%s" % (rc, p.proc.stderr()))
        q = Predictor(self.reg.target, MODEL + "@champion", p.cache_dir)
        self.addClassCleanup(q.kill)
        t0 = time.monotonic()
        q.start()
        took = q.wait_serving(5)
        took_total = time.monotonic() - t0
        self.assertLess(took, 1.0, "from the cache, serving at once (took %.2f s)" % took)
        self.assertTrue(q.proc.logged("serving the cached model until the registry answers"),
                        q.proc.stderr())
        r = q.client.predict(self.data.features(1))
        self.assertEqual((r.model_version, r.model_alias), (2, "champion"))
        info = q.client.info()
        self.assertEqual((info.version, info.sha256, info.serving), (2, v2.artifact_sha256, True))
        print("\nrestart from the cache with the registry down: serving %.2f s after exec"
              % took_total)
        self.st["main"] = q

    def test_52_registry_back_the_alias_is_followed(self):
        q, _ = self.need("main", "reg_down")
        reg = H.Registry("s3://" + H.BUCKET, env=self.s3.env())
        type(self).reg = reg
        t0 = time.monotonic()
        reg.launch_on(self.reg_port)
        c = H.Client(reg.target, caller=CALLER)
        self.addCleanup(c.close)
        H.wait_until(lambda: self._resolves(c), 15, 0.05)
        # The snapshot on resubscription points at 3 (still tampered): refused again.
        self.set_alias(1, c)
        info = q.wait_info(lambda i: i.version == 1, 15)
        took = time.monotonic() - t0
        self.assertIsNotNone(info, "the alias moved to 1 was not followed within 15 s\n%s"
                             % q.proc.stderr()[-3000:])
        self.assertLess(took, 8.0, "following again took %.1f s after the registry came back"
                        % took)
        self.assertEqual(q.client.predict(self.data.features(1)).model_version, 1)
        print("\nregistry back: alias move followed %.2f s after the registry restarted" % took)

    def _resolves(self, c):
        try:
            return c("ResolveModel", model=cpb().ModelRef(name=MODEL, alias="champion"),
                     timeout=2).version > 0
        except grpc.RpcError:
            return False

    # -----------------------------------------------------------------------------------------

    def test_99_sigterm_exits_0(self):
        q, = self.need("main")
        rc = q.stop()
        self.assertEqual(rc, 0, "credito-predictor exited %s\n%s" % (rc, q.proc.stderr()))
        self.assertTrue(q.proc.logged("stopped"), q.proc.stderr())


def main():
    procs.unittest_main("integration.predictor")


if __name__ == "__main__":
    main()
