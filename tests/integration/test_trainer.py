#!/usr/bin/python3
"""Integration: credito-trainer end to end, with the registry's state in a real S3 server (the
pinned @20minutes/s3rver, SigV4 checked), judged by peers no one here wrote: Python grpcio calls
Train and reads the registry, Debian's awscli reads the artifact straight from the bucket, and
creditoctl pushes the data as a person would.

Covers issue 4's "Done means": German Credit trained, tracked and registered with the champion
alias behind a passing gate; a failing gate that registers without moving the alias; a warm start
from version 1; bad data and bad requests (each a clear status, no version, the run FAILED with
the reason); a cancelled Train (the run KILLED, no version); a second concurrent Train refused as
busy.

Bugs this test found stay pinned by their cases: the target and positive_label params name the
ones used (test_03b); CSV with one class or no rows is FAILED_PRECONDITION (test_15b, test_15c);
a long dataset name leaves the reason readable (test_15d); a cancelled run says why (test_30);
a call made right after another ended is not refused as busy (every call here runs without
retrying a busy answer, except where two trainings overlap on purpose).

Run: /usr/bin/python3 tests/integration/test_trainer.py [BUILD_DIR] [unittest args]
     (or CREDITO_BUILD_DIR=BUILD_DIR; default build/ in the checkout)
Prints a last line "N passed, M failed, K skipped".
"""
import importlib
import os
import shlex
import shutil
import sys
import tempfile
import time
import unittest

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

C = grpc.StatusCode
ROOT = H.ROOT
DATA = os.path.join(HERE, "trainer_data")
SEED = 42
MODEL = "credit-default"
CALLER = "test_trainer"
TRAIN_TIMEOUT = 60.0
# Every metric trainer.proto lists for a training with a hold-out and 5-fold CV.
METRICS = ("test_roc_auc", "test_gini", "test_ks", "test_log_loss", "test_brier", "test_accuracy",
           "test_precision", "test_recall", "test_f1", "test_tp", "test_fp", "test_tn", "test_fn",
           "psi", "train_roc_auc", "train_log_loss", "cv_roc_auc", "cv_roc_auc_mean",
           "cv_roc_auc_std", "loss", "train_rows", "test_rows", "iterations")
PARAMS = ("C", "max_iter", "tol", "solver", "unknown_category", "test_fraction", "cv_folds",
          "seed", "target", "positive_label", "pdo", "base_score", "base_odds", "threshold",
          "parent")

T = None   # credito.v1.trainer_pb2
MP = None  # credito.v1.model_pb2


def setUpModule():
    global T, MP
    H.load_protos()
    T = importlib.import_module("credito.v1.trainer_pb2")
    MP = importlib.import_module("credito.v1.model_pb2")


def tearDownModule():
    H.unload_protos()


def pb():
    return H.pb


def cpb():
    return H.common


def bad_request_of(err):
    """The credito.v1.BadRequest in an RpcError's grpc-status-details-bin trailer, or None."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = cpb().ErrorStatus.FromString(value)
            for d in status.details:
                if d.type_url == "type.googleapis.com/credito.v1.BadRequest":
                    return cpb().BadRequest.FromString(d.value)
    return None


def data_file():
    p = os.path.join(ROOT, "data", "raw", "credit-g.arff")
    if not os.path.exists(p):
        raise RuntimeError("FAIL: credit-g.arff not found in data/raw/")
    return p


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def line_of(data, needle):
    """1-based line number of the first line of data (bytes) holding needle."""
    for i, line in enumerate(data.decode().split("\n"), 1):
        if needle in line:
            return i
    raise AssertionError("%r not in the data" % needle)


def synthetic_arff(copies):
    """German Credit's rows repeated `copies` times (same header): a set that takes long enough to
    train that a cancel or a second call lands while it runs."""
    text = read_bytes(data_file()).decode()
    head, body = text.split("@data", 1)
    rows = [r for r in body.splitlines() if r.strip() and not r.startswith("%")]
    return (head + "@data\n" + "\n".join(rows * copies) + "\n").encode()


# ---- processes and the Train client ----

class Trainer:
    """credito-trainer on a free loopback port, talking to one registry."""

    def __init__(self, registry_target, *extra):
        wrapper = shlex.split(os.environ.get("CREDITO_SERVER_WRAPPER", ""))
        self.argv = wrapper + [procs.binary("credito-trainer"), "--listen", "127.0.0.1:0",
                               "--registry", registry_target, "--log-level", "info"]
        self.argv += [str(a) for a in extra]
        self.proc = H.Proc("credito-trainer", self.argv)

    def start(self, timeout=20.0):
        self.proc.start(timeout=timeout)
        return self

    @property
    def target(self):
        return self.proc.target

    def kill(self):
        self.proc.kill()


def is_busy(err):
    return err.code() == C.RESOURCE_EXHAUSTED and "busy" in (err.details() or "")


class TrainClient:
    """Train over grpcio with the generated trainer_pb2 messages.

    The trainer runs one training at a time and frees its slot before the previous call's status
    goes out, so sequential calls are never refused as busy: BUSY_WAIT is 0 (a busy answer
    fails the case). Raise it only to debug."""

    BUSY_WAIT = 0.0

    def __init__(self, target):
        self.channel = grpc.insecure_channel(target)
        self._train = self.channel.unary_stream(
            "/credito.v1.Trainer/Train", request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=T.TrainEvent.FromString)

    def close(self):
        self.channel.close()

    def start(self, req, timeout=TRAIN_TIMEOUT):
        """The call (an iterator of TrainEvent that can be cancelled)."""
        return self._train(req, timeout=timeout, metadata=(("x-credito-caller", CALLER),))

    def start_first(self, req, timeout=TRAIN_TIMEOUT):
        """(call, first event) of a call that got going, waiting out a busy trainer."""
        deadline = time.monotonic() + self.BUSY_WAIT
        while True:
            call = self.start(req, timeout)
            try:
                return call, next(call)
            except grpc.RpcError as e:
                if not is_busy(e) or time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def run(self, req, timeout=TRAIN_TIMEOUT, retry_busy=True):
        """(events, error): every event received, and the RpcError that ended the stream or
        None when it ended OK."""
        deadline = time.monotonic() + self.BUSY_WAIT
        while True:
            events = []
            try:
                for ev in self.start(req, timeout):
                    events.append(ev)
            except grpc.RpcError as e:
                if (retry_busy and not events and is_busy(e)
                        and time.monotonic() < deadline):  # never with BUSY_WAIT 0
                    time.sleep(0.05)
                    continue
                return events, e
            return events, None


def train_request(dataset, md5="", model=MODEL, alias="", gates=(), seed=SEED, params=None,
                  **fields):
    """A TrainRequest; gates are (metric, "AT_LEAST" or "AT_MOST", value)."""
    g = [T.Gate(metric=m, comparison=getattr(T, "GATE_COMPARISON_" + cmp), value=v)
         for m, cmp, v in gates]
    p = [cpb().Param(key=k, value=v) for k, v in (params or {}).items()]
    return T.TrainRequest(dataset=cpb().DatasetRef(name=dataset, md5=md5), model_name=model,
                          alias=alias, gates=g, seed=seed, params=p, **fields)


# ---------------------------------------------------------------------------------------------

class TrainerTest(unittest.TestCase):
    """One s3rver, one registry on s3://credito and one trainer for the whole class. Steps run in
    name order and share state; a step whose inputs an earlier step did not produce is skipped,
    so the first failure is the one to read."""

    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="credito-trainer-test-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.s3 = H.S3(os.path.join(cls.tmp, "s3"))
        cls.addClassCleanup(cls.s3.kill)
        cls.s3.start()
        cls.reg = H.Registry("s3://" + H.BUCKET, env=cls.s3.env())
        cls.addClassCleanup(cls.reg.kill)
        cls.reg.start()
        cls.trainer = Trainer(cls.reg.target)
        cls.addClassCleanup(cls.trainer.kill)
        cls.trainer.start()
        cls.c = H.Client(cls.reg.target, caller=CALLER)
        cls.addClassCleanup(cls.c.close)
        cls.tc = TrainClient(cls.trainer.target)
        cls.addClassCleanup(cls.tc.close)
        cls.st = {}
        cls.work = os.path.join(cls.tmp, "work")
        os.makedirs(cls.work)

    def need(self, *keys):
        for k in keys:
            if k not in self.st:
                self.skipTest("an earlier step did not produce %r" % k)
        return [self.st[k] for k in keys]

    # -- registry helpers --

    def version_count(self, model=MODEL):
        try:
            return len(self.c("ListModelVersions", name=model, page_size=1000).versions)
        except grpc.RpcError as e:
            if e.code() == C.NOT_FOUND:
                return 0
            raise

    def run_ids(self):
        out, token = set(), ""
        while True:
            r = self.c("ListRuns", page_size=1000, page_token=token)
            out |= {x.run_id for x in r.runs}
            token = r.next_page_token
            if not token:
                return out

    def put_dataset(self, name, data, fmt):
        """Stores bytes as a dataset version with grpcio (no client-side checks); its md5."""
        md5 = H.md5_hex(data)
        blob = self.c.put_bytes(data, timeout=60)
        self.assertEqual(blob.md5, md5)
        self.c("CreateDatasetVersion", name=name, md5=md5, size=len(data), format=fmt)
        return md5

    def wait_run_ended(self, run_id, timeout=30.0):
        P = pb()
        run = H.wait_until(lambda: (lambda r: r if r.status != P.RUN_STATUS_RUNNING else None)(
            self.c("GetRun", run_id=run_id)), timeout, 0.05)
        self.assertIsNotNone(run, "run %s still RUNNING after %.0f s" % (run_id, timeout))
        return run

    # -- stream checks --

    def check_stream(self, events):
        """Progress events then exactly one result, last; returns (progress list, result)."""
        kinds = [e.WhichOneof("event") for e in events]
        self.assertEqual(kinds.count("result"), 1, "exactly one result: %s" % kinds)
        self.assertEqual(kinds[-1], "result", "the result comes last: %s" % kinds)
        progress = [e.progress for e in events[:-1]]
        result = events[-1].result
        self.assertTrue(progress, "no progress event before the result")
        run_id = progress[0].run_id
        self.assertRegex(run_id, r"^[0-9a-f]{32}$", "the first event carries the run id")
        last_fraction, last_stage = 0.0, 0
        for p in progress:
            self.assertEqual(p.run_id, run_id)
            self.assertTrue(0.0 <= p.fraction <= 1.0, "fraction %r outside [0, 1]" % p.fraction)
            self.assertGreaterEqual(p.fraction, last_fraction, "fraction went back: %r after %r"
                                    % (p.fraction, last_fraction))
            self.assertGreaterEqual(p.stage, last_stage, "stage went back: %s after %s"
                                    % (T.TrainStage.Name(p.stage), T.TrainStage.Name(last_stage)))
            last_fraction, last_stage = p.fraction, p.stage
        stages = []
        for p in progress:
            if not stages or stages[-1] != p.stage:
                stages.append(p.stage)
        self.assertEqual([T.TrainStage.Name(s) for s in stages],
                         ["TRAIN_STAGE_LOAD", "TRAIN_STAGE_PREPARE", "TRAIN_STAGE_FIT",
                          "TRAIN_STAGE_EVALUATE", "TRAIN_STAGE_CROSS_VALIDATE",
                          "TRAIN_STAGE_UPLOAD", "TRAIN_STAGE_REGISTER"],
                         "every stage reports progress, in the order they run")
        self.assertEqual(result.run_id, run_id)
        return progress, result

    def train_ok(self, req, tc=None):
        events, err = (tc or self.tc).run(req)
        if err is not None:
            self.fail("Train failed: %s: %s" % (err.code(), err.details()))
        return self.check_stream(events)

    # -----------------------------------------------------------------------------------------
    # 1. German Credit: push, train with a passing gate, and everything the registry now holds.

    def test_01_push_credit_g(self):
        src = os.path.join(self.work, "credit-g.arff")
        shutil.copyfile(data_file(), src)
        raw = read_bytes(src)
        out = H.ctl_json(self.reg.target, "dataset", "push", src, "--name", "credit-g")
        self.assertEqual(out["blob"]["md5"], H.md5_hex(raw))
        self.st.update(raw=raw, raw_md5=H.md5_hex(raw))

    def test_02_train_champion(self):
        md5, = self.need("raw_md5")
        t0 = time.monotonic()
        progress, res = self.train_ok(train_request(
            "credit-g", alias="champion", gates=[("test_roc_auc", "AT_LEAST", 0.7)]))
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 20, "German Credit took %.1f s to train" % elapsed)
        v = res.model_version
        self.assertEqual((v.name, v.version, v.run_id), (MODEL, 1, res.run_id))
        self.assertEqual(res.alias, "champion")
        self.assertEqual(res.gate_failure_reason, "")
        self.assertEqual(list(v.aliases), ["champion"])
        self.assertEqual(res.processed_dataset.name, "credit-g-processed")
        self.assertRegex(res.processed_dataset.md5, r"^[0-9a-f]{32}$")
        final = {m.key: m.value for m in res.metrics}
        self.assertGreaterEqual(final.get("test_roc_auc", 0), 0.7, final)
        # The per-fold series has no final value: cv_roc_auc_mean and _std stand for it.
        self.assertFalse([k for k in METRICS if k not in final and k != "cv_roc_auc"],
                         "result metrics lack some of trainer.proto's")
        # The metrics in progress events are points already logged to the run.
        sent = [(m.key, m.step) for p in progress for m in p.metrics]
        self.assertIn(("test_roc_auc", 0), sent)
        self.assertEqual(sorted(s for k, s in sent if k == "cv_roc_auc"), [1, 2, 3, 4, 5])
        self.assertTrue(any(p.stage == T.TRAIN_STAGE_FIT and "iteration" in p.message
                            for p in progress), "FIT reports iterations")
        self.assertTrue(any("fold" in p.message for p in progress), "CV reports folds")
        self.st.update(res1=res, final1=final, run1=res.run_id)

    def test_03_run_in_registry(self):
        res, md5 = self.need("res1", "raw_md5")
        P = pb()
        run = self.c("GetRun", run_id=res.run_id, metric_history=True)
        self.assertEqual(P.RunStatus.Name(run.status), "RUN_STATUS_FINISHED")
        self.assertEqual(run.failure_reason, "")
        self.assertGreater(run.end_ms, 0)
        self.assertEqual(self.c("GetExperiment", experiment_id=run.experiment_id).name, MODEL,
                         "the experiment defaults to the model name")
        params = {p.key: p.value for p in run.params}
        self.assertEqual(sorted(params), sorted(PARAMS), "params: every setting trainer.proto "
                         "lists")
        self.assertEqual(float(params["C"]), 1.0)
        self.assertEqual((params["max_iter"], params["cv_folds"], params["seed"]),
                         ("100", "5", str(SEED)))
        self.assertEqual(float(params["tol"]), 1e-4)
        self.assertEqual(float(params["test_fraction"]), 0.2)
        self.assertEqual(params["solver"], "newton-cholesky")
        self.assertEqual(params["unknown_category"], "reject")
        self.assertEqual((float(params["pdo"]), float(params["base_score"]),
                          float(params["base_odds"]), float(params["threshold"])),
                         (20.0, 600.0, 50.0, 0.5))
        self.assertEqual(params["parent"], "")

        hist = {}
        for m in run.metrics:
            hist.setdefault(m.key, []).append((m.step, m.value))
        self.assertFalse([k for k in METRICS if k not in hist],
                         "run metrics lack some of trainer.proto's")
        self.assertEqual([s for s, _ in hist["cv_roc_auc"]], [1, 2, 3, 4, 5],
                         "cv_roc_auc: one point per fold, step = fold")
        iterations = int(hist["iterations"][-1][1])
        self.assertGreaterEqual(iterations, 1)
        self.assertEqual([s for s, _ in hist["loss"]], list(range(iterations + 1)),
                         "loss: one point per iteration (0 is the start)")
        losses = [v for _, v in hist["loss"]]
        self.assertTrue(all(b <= a for a, b in zip(losses, losses[1:])), "loss never rises")
        self.assertEqual(hist["test_roc_auc"], [(0, self.st["final1"]["test_roc_auc"])])
        self.assertEqual((hist["train_rows"][-1][1], hist["test_rows"][-1][1]), (800, 200))

        tags = {t.key: t.value for t in run.tags}
        self.assertTrue(tags.get("credito.trainer_version"), tags)
        self.assertEqual(tags.get("credito.dataset_md5"), md5)
        self.assertEqual(tags.get("credito.processed_md5"), res.processed_dataset.md5)
        self.assertEqual(tags.get("credito.model_name"), MODEL)

        D, R = cpb().DatasetInput, cpb().DatasetRef
        pmd5 = res.processed_dataset.md5
        want_inputs = [D(dataset=R(name="credit-g", md5=md5), context="source"),
                       D(dataset=R(name="credit-g-processed", md5=pmd5), context="training")]
        self.assertEqual(sorted(run.inputs, key=lambda x: x.context),
                         sorted(want_inputs, key=lambda x: x.context))
        arts = {a.path: a for a in run.artifacts}
        self.assertIn("model/model.pb", arts)
        self.assertEqual(arts["model/model.pb"].blob.sha256, res.model_version.artifact_sha256)
        self.assertEqual(arts["model/model.pb"].blob.key, res.model_version.artifact_key)

        # The processed matrix: a child dataset version of the raw one, its bytes as tagged.
        proc = self.c("GetDatasetVersion", dataset=R(name="credit-g-processed", md5=pmd5))
        self.assertEqual((proc.parent.name, proc.parent.md5), ("credit-g", md5))
        self.assertEqual((proc.format, proc.rows), ("csv", 1000))
        _, body = self.c.download("GetDatasetBytes", pb().GetDatasetBytesRequest(md5=pmd5))
        self.assertEqual(H.md5_hex(body), pmd5)
        lines = body.decode().splitlines()
        self.assertEqual(len(lines), 1001, "a header and one line per row")
        self.assertTrue(lines[0].endswith(",class,split"), lines[0][-80:])
        self.assertEqual(sum(1 for x in lines[1:] if x.endswith(",test")), 200)
        self.st["inputs1"] = want_inputs

    def test_03b_params_name_the_target_used(self):
        # Found by this test: the params were logged before loading, so target and
        # positive_label were "". trainer.proto: "every TrainRequest setting with defaults
        # filled in".
        res, = self.need("res1")
        run = self.c("GetRun", run_id=res.run_id)
        params = {p.key: p.value for p in run.params}
        self.assertEqual((params["target"], params["positive_label"]), ("class", "bad"))

    def test_04_version_artifact_and_alias(self):
        res, inputs = self.need("res1", "inputs1")
        v = self.c("GetModelVersion", name=MODEL, version=1)
        self.assertEqual((v.run_id, v.artifact_key, v.artifact_sha256),
                         (res.run_id, res.model_version.artifact_key,
                          res.model_version.artifact_sha256))
        self.assertRegex(v.artifact_sha256, r"^[0-9a-f]{64}$")
        self.assertEqual(sorted(v.datasets, key=lambda x: x.context),
                         sorted(inputs, key=lambda x: x.context))
        self.assertFalse(v.HasField("parent"), "a cold fit has no parent")
        self.assertEqual(list(v.aliases), ["champion"])
        snap = {m.key: m.value for m in v.metrics}
        self.assertEqual(snap, self.st["final1"], "the version's snapshot is the result's")

        # The same bytes three ways: the record's digest, DownloadArtifact, and awscli reading
        # the object straight from the S3 server.
        h, body = self.c.download("DownloadArtifact", pb().DownloadArtifactRequest(
            key=v.artifact_key))
        self.assertEqual(H.sha256_hex(body), v.artifact_sha256, "DownloadArtifact bytes")
        # By key the registry knows the md5 of the bytes (their address), not always the
        # SHA-256 an artifact record holds: check the one it sends.
        self.assertEqual((h.md5, h.size), (H.md5_hex(body), len(body)))
        self.assertEqual(v.artifact_size, len(body))
        s3 = self.s3.aws("s3", "cp", "s3://%s/%s" % (H.BUCKET, v.artifact_key), "-").stdout
        self.assertEqual(H.sha256_hex(s3), v.artifact_sha256, "the object awscli reads")

        art = MP.ModelArtifact.FromString(body)
        self.assertEqual((art.model_name, art.lineage.run_id), (MODEL, res.run_id))
        self.assertEqual(sorted((d.context, d.dataset.name, d.dataset.md5)
                                for d in art.lineage.datasets),
                         sorted((d.context, d.dataset.name, d.dataset.md5) for d in inputs))
        self.assertFalse(art.lineage.HasField("parent"))

        R = cpb().ModelRef
        champ = self.c("ResolveModel", model=R(name=MODEL, alias="champion"))
        self.assertEqual(champ.version, 1)
        lin = self.c("GetLineage", model=R(name=MODEL, version=1))
        self.assertEqual((lin.version.version, lin.run.run_id), (1, res.run_id))
        chains = {d.context: [(x.name, x.blob.md5) for x in d.chain] for d in lin.datasets}
        md5, pmd5 = self.st["raw_md5"], res.processed_dataset.md5
        self.assertEqual(chains, {"source": [("credit-g", md5)],
                                  "training": [("credit-g-processed", pmd5), ("credit-g", md5)]})
        self.assertEqual(len(lin.parent_chain), 0)
        self.st["v1"] = v

    # 2. A gate that fails: the version is registered, the alias stays where it was.

    def test_05_failing_gate_keeps_champion(self):
        v1, = self.need("v1")
        _, res = self.train_ok(train_request(
            "credit-g", alias="champion", gates=[("test_roc_auc", "AT_LEAST", 0.99)]))
        self.assertEqual(res.model_version.version, 2, "a failed gate still registers")
        self.assertEqual(res.alias, "")
        self.assertIn("test_roc_auc", res.gate_failure_reason)
        self.assertIn("0.99", res.gate_failure_reason)
        R = cpb().ModelRef
        self.assertEqual(self.c("ResolveModel", model=R(name=MODEL, alias="champion")).version, 1,
                         "champion did not move")
        self.assertEqual(list(self.c("GetModelVersion", name=MODEL, version=2).aliases), [])
        run = self.c("GetRun", run_id=res.run_id)
        self.assertEqual(pb().RunStatus.Name(run.status), "RUN_STATUS_FINISHED")
        self.st["v2"] = res.model_version

    # 3. Warm start from version 1.

    def test_06_warm_start_from_version_1(self):
        self.need("v1", "res1")
        cold_iters = self.st["final1"]["iterations"]
        _, res = self.train_ok(train_request(
            "credit-g", parent=cpb().ModelRef(name=MODEL, version=1)))
        v = res.model_version
        self.assertEqual(v.version, 3 if "v2" in self.st else v.version)
        self.assertEqual((v.parent.name, v.parent.version), (MODEL, 1))
        got = self.c("GetModelVersion", name=MODEL, version=v.version)
        self.assertEqual((got.parent.name, got.parent.version), (MODEL, 1))
        final = {m.key: m.value for m in res.metrics}
        self.assertLessEqual(final["iterations"], cold_iters,
                             "a warm start from the same data's optimum needs no more iterations")
        run = self.c("GetRun", run_id=res.run_id)
        self.assertEqual({p.key: p.value for p in run.params}["parent"], MODEL + "/1")
        lin = self.c("GetLineage", model=cpb().ModelRef(name=MODEL, version=v.version))
        self.assertEqual([x.version for x in lin.parent_chain], [1])
        _, body = self.c.download("DownloadArtifact", pb().DownloadArtifactRequest(
            key=v.artifact_key))
        art = MP.ModelArtifact.FromString(body)
        self.assertEqual((art.lineage.parent.name, art.lineage.parent.version), (MODEL, 1))
        self.assertEqual(self.c("ResolveModel", model=cpb().ModelRef(
            name=MODEL, alias="champion")).version, 1, "no alias asked: champion stays")

    # -----------------------------------------------------------------------------------------
    # 4. Bad input: a clear status, no new version, and a FAILED run naming the problem when a
    #    run was created (data problems are found after the run exists; request problems and a
    #    missing dataset before).

    def train_fails(self, req, code, contains, run_created, tc=None):
        before_versions, before_runs = self.version_count(), self.run_ids()
        events, err = (tc or self.tc).run(req)
        self.assertIsNotNone(err, "Train succeeded: %s" % (events[-1] if events else None))
        self.assertEqual(err.code(), code, "details: %r" % err.details())
        for s in contains:
            self.assertIn(s, err.details(), "the status message names the problem")
        self.assertFalse([e for e in events if e.WhichOneof("event") == "result"])
        self.assertEqual(self.version_count(), before_versions, "no new model version")
        new_runs = self.run_ids() - before_runs
        if not run_created:
            self.assertEqual(new_runs, set(), "refused before a run was created")
            self.assertEqual(events, [])
            return err, None
        self.assertTrue(events, "the run was created: its id came in a progress event")
        run_id = events[0].progress.run_id
        self.assertEqual(new_runs, {run_id})
        run = self.c("GetRun", run_id=run_id)
        self.assertEqual(pb().RunStatus.Name(run.status), "RUN_STATUS_FAILED")
        self.assertGreater(run.end_ms, 0)
        for s in contains:
            self.assertIn(s, run.failure_reason, "the run's failure_reason names the problem")
        return err, run

    def bad_file(self, name, fmt, code, contains):
        data = read_bytes(os.path.join(DATA, name))
        ds = "bad-" + name.replace("_", "-").replace(".", "-")
        md5 = self.put_dataset(ds, data, fmt)
        return self.train_fails(train_request(ds, md5=md5), code, contains, True)

    def test_10_empty_file(self):
        self.bad_file("empty.arff", "arff", C.INVALID_ARGUMENT, ["empty"])

    def test_11_header_only(self):
        self.bad_file("header_only.arff", "arff", C.FAILED_PRECONDITION, ["no rows"])

    def test_12_one_class(self):
        self.bad_file("one_class.arff", "arff", C.FAILED_PRECONDITION, ["one class"])

    def test_13_target_does_not_exist(self):
        self.need("raw_md5")
        self.train_fails(train_request("credit-g", target="nope"), C.INVALID_ARGUMENT,
                         ["'nope'", "does not exist"], True)

    def test_14_not_a_number(self):
        data = read_bytes(os.path.join(DATA, "bad_number.arff"))
        line = line_of(data, "abc,")
        err, _ = self.bad_file("bad_number.arff", "arff", C.INVALID_ARGUMENT,
                               ["line %d" % line, "duration", "abc"])
        bad = bad_request_of(err)
        self.assertIsNotNone(bad, "INVALID_ARGUMENT carries a BadRequest detail")
        self.assertEqual([v.field for v in bad.violations], ["lines[%d].duration" % line])

    def test_15_ragged_csv_row(self):
        data = read_bytes(os.path.join(DATA, "ragged.csv"))
        line = line_of(data, "12,car")
        self.bad_file("ragged.csv", "csv", C.INVALID_ARGUMENT, ["line %d" % line, "class"])

    # The same faults in CSV, where the parser infers the target's classes from the rows (found
    # by this test: they were INVALID_ARGUMENT with a misleading reason).

    def test_15b_one_class_csv(self):
        self.bad_file("one_class.csv", "csv", C.FAILED_PRECONDITION, ["one class"])

    def test_15c_header_only_csv(self):
        self.bad_file("header_only.csv", "csv", C.FAILED_PRECONDITION, ["no rows"])

    def test_15d_long_dataset_name_keeps_the_reason(self):
        # Found by this test: the dataset's full name and md5 in front of the parser's message
        # left no room in 160 bytes for the line and column.
        data = read_bytes(os.path.join(DATA, "bad_number.arff"))
        md5 = self.put_dataset("n" * 200, data, "arff")
        self.train_fails(train_request("n" * 200, md5=md5), C.INVALID_ARGUMENT,
                         ["line %d" % line_of(data, "abc,"), "duration"], True)

    def test_16_over_the_size_cap(self):
        md5, = self.need("raw_md5")
        small = Trainer(self.reg.target, "--max-dataset", 1000)
        self.addCleanup(small.kill)
        small.start()
        tc = TrainClient(small.target)
        self.addCleanup(tc.close)
        self.train_fails(train_request("credit-g", md5=md5), C.RESOURCE_EXHAUSTED,
                         ["1000", "--max-dataset"], True, tc=tc)

    def test_17_dataset_version_not_found(self):
        self.train_fails(train_request("no-such-dataset"), C.NOT_FOUND, ["no-such-dataset"],
                         False)
        self.need("raw_md5")
        self.train_fails(train_request("credit-g", md5="0" * 32), C.NOT_FOUND, ["0" * 32],
                         False)

    def test_18_parent_not_found(self):
        self.need("raw_md5")
        self.train_fails(train_request("credit-g", parent=cpb().ModelRef(name=MODEL,
                                                                         version=99)),
                         C.NOT_FOUND, ["99"], False)

    def test_19_bad_params(self):
        self.need("raw_md5")
        cases = [({"max_iterations": "5"}, ["unknown param", "max_iterations"]),
                 ({"C": "abc"}, ["param C", "abc"]),
                 ({"C": "-1"}, ["param C"]),
                 ({"max_iter": "0"}, ["max_iter"]),
                 ({"unknown_category": "maybe"}, ["unknown_category", "maybe"])]
        for params, contains in cases:
            with self.subTest(params=params):
                self.train_fails(train_request("credit-g", params=params), C.INVALID_ARGUMENT,
                                 contains, False)

    def test_20_bad_request_fields(self):
        self.need("raw_md5")
        cases = [(dict(test_fraction=1.5), ["test_fraction"]),
                 (dict(test_fraction=-0.1), ["test_fraction"]),
                 (dict(no_holdout=True, test_fraction=0.2), ["test_fraction"]),
                 (dict(cv_folds=21), ["cv_folds"]),
                 (dict(alias="123"), ["alias"]),
                 (dict(gates=[("test_roc_auc", "UNSPECIFIED", 0.5)]), ["gates[0]"])]
        for fields, contains in cases:
            with self.subTest(fields=fields):
                self.train_fails(train_request("credit-g", **fields), C.INVALID_ARGUMENT,
                                 contains, False)
        self.train_fails(train_request(""), C.INVALID_ARGUMENT, ["dataset.name"], False)
        self.train_fails(train_request("credit-g", model=""), C.INVALID_ARGUMENT,
                         ["model_name"], False)

    # -----------------------------------------------------------------------------------------
    # 5-6. A cancelled Train, and a second Train while one runs, on a set large enough to take
    #      a moment (German Credit alone trains in tens of milliseconds).

    def synthetic(self, copies):
        key = "synthetic%d" % copies
        if key not in self.st:
            self.st[key] = self.put_dataset("synthetic-%d" % copies, synthetic_arff(copies),
                                            "arff")
        return "synthetic-%d" % copies, self.st[key]

    def test_30_cancel_marks_the_run_killed(self):
        P, model = pb(), "cancelled"
        outcomes = []
        for copies in (20, 60):
            name, md5 = self.synthetic(copies)
            call, first = self.tc.start_first(train_request(name, md5=md5, model=model))
            call.cancel()
            self.assertEqual(first.WhichOneof("event"), "progress")
            run_id = first.progress.run_id
            self.assertRegex(run_id, r"^[0-9a-f]{32}$", "the first event carries the run id")
            with self.assertRaises(grpc.RpcError) as cm:
                for _ in call:
                    pass
            self.assertEqual(cm.exception.code(), C.CANCELLED)
            run = self.wait_run_ended(run_id)
            outcomes.append((copies, P.RunStatus.Name(run.status), run.failure_reason))
            if run.status == P.RUN_STATUS_KILLED:
                break
            self.assertEqual(run.status, P.RUN_STATUS_FINISHED,
                             "a cancelled run is KILLED, or FINISHED if it completed first: %s"
                             % (outcomes,))
        else:
            self.skipTest("the training completed before the cancel landed every time: %s"
                          % (outcomes,))
        # No version without a FINISHED run.
        try:
            versions = self.c("ListModelVersions", name=model, page_size=1000).versions
        except grpc.RpcError as e:
            self.assertEqual(e.code(), C.NOT_FOUND)
            versions = []
        for v in versions:
            self.assertNotEqual(v.run_id, run_id, "a KILLED run registered a version")
            self.assertEqual(self.c("GetRun", run_id=v.run_id).status, P.RUN_STATUS_FINISHED)
        self.assertIn("cancelled", run.failure_reason, "a KILLED run says why")

    def test_31_second_train_while_busy(self):
        P, model = pb(), "busy"
        name, md5 = self.synthetic(20)  # about half a second: ages for a call to arrive
        first_call, first = self.tc.start_first(train_request(name, md5=md5, model=model))
        run_id = first.progress.run_id
        runs_before = self.run_ids()
        t0 = time.monotonic()
        events, err = self.tc.run(train_request("credit-g", model=model), timeout=10,
                                  retry_busy=False)
        self.assertIsNotNone(err, "a second Train ran while one was running")
        self.assertEqual(err.code(), C.RESOURCE_EXHAUSTED, err.details())
        self.assertIn("busy", err.details())
        self.assertLess(time.monotonic() - t0, 5, "refused at once, not queued")
        self.assertEqual(events, [])
        self.assertEqual(self.run_ids(), runs_before, "the refused call created no run")
        # The first training is undisturbed.
        rest = list(first_call)
        _, res = self.check_stream([first] + rest)
        self.assertEqual(res.run_id, run_id)
        self.assertEqual(P.RunStatus.Name(self.c("GetRun", run_id=run_id).status),
                         "RUN_STATUS_FINISHED")

    # -----------------------------------------------------------------------------------------

    def test_99_sigterm_exits_0(self):
        self.tc.close()  # an idle client connection would hold the exit for the grace period
        rc = self.trainer.proc.stop()
        self.assertEqual(rc, 0, "credito-trainer exited %s\n%s" % (rc, self.trainer.proc.stderr()))
        self.assertTrue(self.trainer.proc.logged("stopped"), self.trainer.proc.stderr())


def main():
    procs.unittest_main("integration.trainer")


if __name__ == "__main__":
    main()
