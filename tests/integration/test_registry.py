#!/usr/bin/python3
"""Integration: credito-registry with its state in a real object store, judged by peers no one
here wrote: Python grpcio calls it, the pinned @20minutes/s3rver 4.0.4 is the S3 server (SigV4
checked), Debian's awscli reads what it wrote, and creditoctl drives it as a person would.

Covers issue 3's "Done means": the happy path on both backends (s3:// and file://), awscli
reading the bytes and the JSON, restart, kill -9 mid-upload, the store down and wrong
credentials, bad input, 16 concurrent writers, and WatchModel; and a store damaged behind the
registry's back (corrupt documents skipped by key, damaged blobs answering DATA_LOSS).

Run: /usr/bin/python3 tests/integration/test_registry.py [BUILD_DIR] [unittest args]
     (or CREDITO_BUILD_DIR=BUILD_DIR; default build/ in the checkout)
Prints a last line "N passed, M failed".
"""
import hashlib
import json
import math
import os
import queue
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
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

C = grpc.StatusCode
ROOT = H.ROOT
MiB = 1 << 20


def data_file():
    p = os.path.join(ROOT, "data", "raw", "credit-g.arff")
    if os.path.exists(p):
        return p
    raise RuntimeError("FAIL: credit-g.arff not found in data/raw/")


def setUpModule():
    H.load_protos()


def tearDownModule():
    H.unload_protos()


def pb():
    return H.pb


def cpb():
    return H.common


def arff_to_csv(arff_text):
    """The ARFF's data rows as CSV with a header of the attribute names (a 'processed' set)."""
    names, rows, data = [], [], False
    for line in arff_text.splitlines():
        s = line.strip()
        if not s or s.startswith("%"):
            continue
        if data:
            rows.append(s)
        elif s.lower().startswith("@attribute"):
            names.append(s.split()[1].strip("'\""))
        elif s.lower().startswith("@data"):
            data = True
    return ",".join(names) + "\n" + "\n".join(rows) + "\n", len(rows)


def read_text(path):
    with open(path) as f:
        return f.read()


def parse_dvc(text):
    """The single 'outs' entry of a DVC 3 pointer file (a tiny YAML subset)."""
    m = re.fullmatch(r"outs:\n- md5: ([0-9a-f]{32})\n  size: (\d+)\n  hash: (\w+)\n  path: (.+)\n",
                     text)
    if not m:
        raise AssertionError("not a DVC 3 pointer file: %r" % text)
    return {"md5": m.group(1), "size": int(m.group(2)), "hash": m.group(3), "path": m.group(4)}


class RegistryTest(unittest.TestCase):
    """Base: a store (s3rver or a directory) and registries over it, killed whatever happens."""

    backend = "s3"
    maxDiff = 4000

    # -- class-level resources (used by the step-by-step scenario classes) --

    @classmethod
    def make_store(cls, tmp):
        """Starts a store in tmp: returns (url, env, s3 or None)."""
        if cls.backend == "s3":
            s3 = H.S3(os.path.join(tmp, "s3")).start()
            return "s3://" + H.BUCKET, s3.env(), s3
        d = os.path.join(tmp, "store")
        os.makedirs(d, exist_ok=True)
        return "file://" + d, {}, None

    def new_store(self):
        tmp = tempfile.mkdtemp(prefix="credito-reg-test-")
        self.addCleanup(shutil.rmtree, tmp, True)
        url, env, s3 = self.make_store(tmp)
        if s3:
            self.addCleanup(s3.kill)
        return tmp, url, env, s3

    def registry(self, url, env, *extra, tmp_dir=None, cleanup=True):
        r = H.Registry(url, env=env, extra=extra, tmp_dir=tmp_dir)
        if cleanup:
            self.addCleanup(r.kill)
        return r.start()

    def client(self, target):
        c = H.Client(target)
        self.addCleanup(c.close)
        return c

    def assertRpcError(self, code, fn, *a, contains=(), **kw):
        with self.assertRaises(grpc.RpcError) as cm:
            fn(*a, **kw)
        err = cm.exception
        self.assertEqual(err.code(), code, "details: %r" % err.details())
        for s in ([contains] if isinstance(contains, str) else contains):
            self.assertIn(s, err.details() or "", "status message lacks %r" % s)
        return err

    def store_keys(self, store_dir_or_s3, prefix):
        """Every key under prefix, read with a peer: awscli for S3, os.walk for file."""
        if isinstance(store_dir_or_s3, H.S3):
            out = store_dir_or_s3.aws("s3", "ls", "--recursive",
                                      "s3://%s/%s" % (H.BUCKET, prefix), check=False)
            keys = {}
            for line in out.stdout.decode().splitlines():
                parts = line.split(None, 3)
                if len(parts) == 4:
                    keys[parts[3]] = int(parts[2])
            return keys
        keys = {}
        base = store_dir_or_s3
        for dirpath, _, files in os.walk(os.path.join(base, prefix)):
            for f in files:
                p = os.path.join(dirpath, f)
                keys[os.path.relpath(p, base)] = os.path.getsize(p)
        return keys


# ---------------------------------------------------------------------------------------------
# 1-3. The happy path, what awscli reads, and a restart: one scenario, step by step.

class HappyPathBase(RegistryTest):
    """Steps run in name order and share the class's registry; a step whose inputs an earlier
    step did not produce is skipped, so the first failure is the one to read."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="credito-reg-happy-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.url, cls.env, cls.s3 = cls.make_store(cls.tmp)
        if cls.s3:
            cls.addClassCleanup(cls.s3.kill)
        cls.reg = H.Registry(cls.url, env=cls.env)
        cls.addClassCleanup(lambda: cls.reg.kill())
        cls.reg.start()
        cls.c = H.Client(cls.reg.target)
        cls.addClassCleanup(lambda: cls.c.close())
        cls.st = {}
        cls.work = os.path.join(cls.tmp, "work")
        os.makedirs(cls.work)

    def need(self, *keys):
        for k in keys:
            if k not in self.st:
                self.skipTest("an earlier step did not produce %r" % k)
        return [self.st[k] for k in keys]

    @property
    def store_handle(self):
        return self.s3 if self.s3 else self.url[len("file://"):]

    # -- 1. the API, step by step --

    def test_01_experiments(self):
        c = self.c
        e = c("CreateExperiment", name="credit-default")
        self.assertEqual(e.name, "credit-default")
        self.assertTrue(e.experiment_id)
        self.assertGreater(e.created_ms, 0)
        self.assertRpcError(C.ALREADY_EXISTS, c, "CreateExperiment", name="credit-default",
                            contains=["credit-default", "already exists"])
        again = c("CreateExperiment", name="credit-default", exist_ok=True)
        self.assertEqual(again, e)
        self.assertEqual(c("GetExperiment", name="credit-default"), e)
        self.assertEqual(c("GetExperiment", experiment_id=e.experiment_id), e)
        self.assertRpcError(C.NOT_FOUND, c, "GetExperiment", name="nope", contains="nope")
        time.sleep(0.01)  # created_ms has 1 ms resolution: make "oldest first" decidable
        other = c("CreateExperiment", name="scratch")
        listed = c("ListExperiments").experiments
        self.assertEqual([x.name for x in listed], ["credit-default", "scratch"])
        # Paging: one per page, the token leads to the second.
        p1 = c("ListExperiments", page_size=1)
        self.assertEqual([x.name for x in p1.experiments], ["credit-default"])
        self.assertTrue(p1.next_page_token)
        p2 = c("ListExperiments", page_size=1, page_token=p1.next_page_token)
        self.assertEqual([x.experiment_id for x in p2.experiments], [other.experiment_id])
        self.assertEqual(p2.next_page_token, "")
        self.st["exp"] = e.experiment_id
        self.st["exp2"] = other.experiment_id

    def test_02_runs_and_params(self):
        exp, = self.need("exp")
        c, P = self.c, pb()
        now = int(time.time() * 1000)
        # run-2 is created first but started later: lists go by start time, newest first.
        r2 = c("CreateRun", experiment_id=exp, run_name="run-2", start_ms=now - 30000)
        r1 = c("CreateRun", experiment_id=exp, run_name="run-1", start_ms=now - 60000,
               tags=[cpb().Tag(key="stage", value="dev")])
        self.assertRegex(r1.run_id, r"^[0-9a-f]{32}$")
        self.assertEqual(r1.experiment_id, exp)
        self.assertEqual(r1.run_name, "run-1")
        self.assertEqual(r1.status, P.RUN_STATUS_RUNNING)
        self.assertEqual(r1.start_ms, now - 60000)
        self.assertEqual(r1.end_ms, 0)
        self.assertEqual({t.key: t.value for t in r1.tags}, {"stage": "dev"})
        r3 = c("CreateRun")  # no experiment: the default one
        self.assertNotEqual(r3.experiment_id, exp)
        self.assertRpcError(C.NOT_FOUND, c, "CreateRun", experiment_id="no-such-exp",
                            contains="no-such-exp")

        c("LogParams", run_id=r1.run_id, params=[cpb().Param(key="C", value="1"),
                                                  cpb().Param(key="max_iter", value="100")])
        c("LogParams", run_id=r1.run_id, params=[cpb().Param(key="C", value="1")])  # same: fine
        got = c("GetRun", run_id=r1.run_id)
        self.assertEqual({p.key: p.value for p in got.params}, {"C": "1", "max_iter": "100"})

        runs = c("ListRuns", experiment_id=exp).runs
        self.assertEqual([r.run_id for r in runs], [r2.run_id, r1.run_id],
                         "ListRuns: the experiment's runs, newest first")
        self.assertEqual([r.run_id for r in c("ListRuns").runs],
                         [r3.run_id, r2.run_id, r1.run_id], "ListRuns: all, newest first")
        self.st.update(run1=r1.run_id, run2=r2.run_id, run3=r3.run_id)

    def test_03_metrics_history(self):
        run, = self.need("run1")
        c, M = self.c, cpb().Metric
        t0 = int(time.time() * 1000) - 10000
        # Out of order on purpose: the history comes back by key, step, time.
        c("LogMetrics", run_id=run, metrics=[
            M(key="loss", value=0.3, step=3, timestamp_ms=t0 + 3),
            M(key="loss", value=0.1, step=1, timestamp_ms=t0 + 1),
            M(key="auc", value=0.80, step=0),  # timestamp 0: the registry stamps it
            M(key="loss", value=0.2, step=2, timestamp_ms=t0 + 2)])
        c("LogMetrics", run_id=run, metrics=[
            M(key="loss", value=0.05, step=4, timestamp_ms=t0 + 4),
            M(key="auc", value=0.81, step=0, timestamp_ms=int(time.time() * 1000) + 5000),
            M(key="odd", value=float("nan"), step=0, timestamp_ms=t0)])

        latest = {m.key: m for m in c("GetRun", run_id=run).metrics}
        self.assertEqual(sorted(latest), ["auc", "loss", "odd"])
        self.assertEqual((latest["loss"].step, latest["loss"].value), (4, 0.05))
        self.assertEqual(latest["auc"].value, 0.81)
        self.assertTrue(math.isnan(latest["odd"].value), "NaN is allowed and kept")

        hist = c("GetRun", run_id=run, metric_history=True).metrics
        self.assertEqual([(m.key, m.step, m.value) for m in hist if m.key != "odd"],
                         [("auc", 0, 0.80), ("auc", 0, 0.81), ("loss", 1, 0.1),
                          ("loss", 2, 0.2), ("loss", 3, 0.3), ("loss", 4, 0.05)],
                         "metric_history: every point, by key, then step, then time")
        self.assertTrue(all(m.timestamp_ms > 0 for m in hist), "the registry stamps time 0")
        self.assertEqual(len(hist), 7)
        self.st["metrics_logged"] = True

    def test_04_tags(self):
        run, = self.need("run1")
        T = cpb().Tag
        self.c("SetTags", run_id=run,
               tags=[T(key="stage", value="prod"), T(key="team", value="risk")])
        got = self.c("GetRun", run_id=run)
        self.assertEqual({t.key: t.value for t in got.tags}, {"stage": "prod", "team": "risk"})
        self.st["tagged"] = True

    def test_05_dataset_push_with_creditoctl(self):
        target = self.reg.target
        src = os.path.join(self.work, "credit-g.arff")
        shutil.copyfile(data_file(), src)
        with open(src, "rb") as f:
            raw = f.read()
        p = H.ctl(target, "dataset", "push", src, "--name", "german-credit")
        self.assertIn("german-credit", p.stdout)
        dvc = parse_dvc(read_text(src + ".dvc"))
        self.assertEqual(dvc, {"md5": H.md5_hex(raw), "size": len(raw), "hash": "md5",
                               "path": "credit-g.arff"})
        md5 = dvc["md5"]

        listed = H.ctl_json(target, "dataset", "list")
        self.assertEqual(len(listed["versions"]), 1)
        v = listed["versions"][0]
        self.assertEqual((v["name"], v["blob"]["md5"], int(v["blob"]["size"]), int(v["rows"]),
                          v["format"], v["blob"]["key"]),
                         ("german-credit", md5, len(raw), 1000, "arff", H.blob_key(md5)))
        shown = H.ctl_json(target, "dataset", "show", "german-credit")
        self.assertEqual(shown["blob"]["md5"], md5)
        self.assertEqual(H.ctl_json(target, "dataset", "show", "german-credit@" + md5)["name"],
                         "german-credit")

        got = self.c("GetDatasetVersion", dataset=cpb().DatasetRef(name="german-credit"))
        self.assertEqual((got.blob.key, got.blob.md5, got.blob.size, got.rows),
                         (H.blob_key(md5), md5, len(raw), 1000))
        self.assertEqual(got.source_path, "credit-g.arff")
        header, body = self.c.download("GetDatasetBytes", pb().GetDatasetBytesRequest(md5=md5))
        self.assertEqual(body, raw)
        self.assertEqual((header.size, header.key), (len(raw), H.blob_key(md5)))

        # The same bytes again: the same version, not a new one.
        H.ctl(target, "dataset", "push", src, "--name", "german-credit")
        again = self.c("GetDatasetVersion",
                       dataset=cpb().DatasetRef(name="german-credit", md5=md5))
        self.assertEqual(again, got)

        # A processed set derived from it, with --parent.
        csv, rows = arff_to_csv(raw.decode())
        proc = os.path.join(self.work, "german-credit-processed.csv")
        with open(proc, "w") as f:
            f.write(csv)
        out = H.ctl_json(target, "dataset", "push", proc, "--name", "german-credit-processed",
                         "--parent", "german-credit@" + md5)
        pmd5 = H.md5_hex(csv.encode())
        self.assertEqual(out["blob"]["md5"], pmd5)
        self.assertEqual((out["parent"]["name"], out["parent"]["md5"]), ("german-credit", md5))
        self.assertEqual((int(out["rows"]), out["format"]), (rows, "csv"))
        self.assertEqual(parse_dvc(read_text(proc + ".dvc"))["md5"], pmd5)

        table = H.ctl(target, "dataset", "list").stdout
        self.assertRegex(table.splitlines()[0], r"^NAME\s+MD5")
        self.assertIn(md5, table)
        self.assertIn(pmd5, table)
        names = [v["name"] for v in H.ctl_json(target, "dataset", "list")["versions"]]
        self.assertEqual(names, ["german-credit-processed", "german-credit"], "newest first")
        self.st.update(raw=raw, raw_md5=md5, proc_bytes=csv.encode(), proc_md5=pmd5)

    def test_06_log_inputs(self):
        run, md5, pmd5 = self.need("run1", "raw_md5", "proc_md5")
        D, R = cpb().DatasetInput, cpb().DatasetRef
        inputs = [D(dataset=R(name="german-credit", md5=md5), context="source"),
                  D(dataset=R(name="german-credit-processed", md5=pmd5), context="training")]
        self.c("LogInputs", run_id=run, inputs=inputs)
        got = self.c("GetRun", run_id=run)
        self.assertEqual(list(got.inputs), inputs)
        self.assertRpcError(C.NOT_FOUND, self.c, "LogInputs", run_id=run,
                            inputs=[D(dataset=R(name="german-credit", md5="0" * 32))],
                            contains="german-credit")
        self.assertEqual(list(self.c("GetRun", run_id=run).inputs), inputs,
                         "a failed LogInputs adds nothing")
        self.st["inputs"] = inputs

    def test_07_upload_artifact(self):
        run, = self.need("run1")
        c = self.c
        data1 = random.Random(1).randbytes(3 * MiB + 12345)
        a = c.upload_artifact(run, "model/model.pb", data1,
                              content_type="application/x-protobuf")
        self.assertEqual((a.run_id, a.path, a.content_type),
                         (run, "model/model.pb", "application/x-protobuf"))
        self.assertEqual((a.blob.sha256, a.blob.md5, a.blob.size, a.blob.key),
                         (H.sha256_hex(data1), H.md5_hex(data1), len(data1),
                          H.blob_key(H.md5_hex(data1))))
        self.assertGreater(a.created_ms, 0)
        arts = {x.path: x for x in c("GetRun", run_id=run).artifacts}
        self.assertEqual(arts["model/model.pb"].blob, a.blob)

        h, body = c.download("DownloadArtifact", pb().DownloadArtifactRequest(
            run_id=run, path="model/model.pb"))
        self.assertEqual((h.size, h.key, h.sha256), (len(data1), a.blob.key, a.blob.sha256))
        self.assertTrue(body == data1, "DownloadArtifact by run and path: the same bytes")
        h, body = c.download("DownloadArtifact", pb().DownloadArtifactRequest(key=a.blob.key))
        self.assertEqual((h.size, h.key, h.md5), (len(data1), a.blob.key, a.blob.md5))
        self.assertTrue(body == data1, "DownloadArtifact by key: the same bytes")

        data2 = b"second model " * 1000
        b = c.upload_artifact(run, "model/model-2.pb", data2, chunk=4096)
        self.assertEqual(b.blob.sha256, H.sha256_hex(data2))
        self.assertRpcError(C.ALREADY_EXISTS, c.upload_artifact, run, "model/model.pb", data2,
                            contains="model/model.pb")
        arts = {x.path: x for x in c("GetRun", run_id=run).artifacts}
        self.assertEqual(sorted(arts), ["model/model-2.pb", "model/model.pb"])
        self.assertEqual(arts["model/model.pb"].blob.sha256, H.sha256_hex(data1),
                         "a refused upload leaves the first artifact as it was")
        self.st.update(art1=a, art2=b, data1=data1, data2=data2)

    def test_08_model_versions_and_aliases(self):
        run, a, b, inputs = self.need("run1", "art1", "art2", "inputs")
        c = self.c
        m = c("CreateRegisteredModel", name="credit-default", description="German credit PD")
        self.assertEqual((m.name, m.description, m.latest_version), ("credit-default",
                                                                      "German credit PD", 0))
        self.assertRpcError(C.ALREADY_EXISTS, c, "CreateRegisteredModel", name="credit-default",
                            contains="credit-default")
        self.assertEqual(c("CreateRegisteredModel", name="credit-default", exist_ok=True).name,
                         "credit-default")
        snap = [cpb().Metric(key="auc", value=0.81)]
        v1 = c("CreateModelVersion", name="credit-default", run_id=run, artifact_key=a.blob.key,
               artifact_sha256=a.blob.sha256, datasets=inputs, metrics=snap)
        self.assertEqual((v1.name, v1.version, v1.run_id, v1.artifact_key, v1.artifact_sha256,
                          v1.artifact_size),
                         ("credit-default", 1, run, a.blob.key, a.blob.sha256, a.blob.size))
        self.assertEqual(list(v1.datasets), inputs)
        self.assertEqual([(x.key, x.value) for x in v1.metrics], [("auc", 0.81)])
        v2 = c("CreateModelVersion", name="credit-default", run_id=run, artifact_key=b.blob.key,
               artifact_sha256=b.blob.sha256, datasets=inputs[1:],
               parent=cpb().ModelRef(name="credit-default", version=1))
        self.assertEqual(v2.version, 2)
        self.assertEqual((v2.parent.name, v2.parent.version), ("credit-default", 1))
        listed = c("ListModelVersions", name="credit-default").versions
        self.assertEqual([v.version for v in listed], [2, 1])

        s = c("SetAlias", name="credit-default", alias="champion", version=1)
        self.assertEqual((s.version.version, s.previous_version), (1, 0))
        self.assertEqual(list(s.version.aliases), ["champion"])
        s = c("SetAlias", name="credit-default", alias="challenger", version=2)
        self.assertEqual((s.version.version, s.previous_version), (2, 0))

        R = cpb().ModelRef
        champ = c("ResolveModel", model=R(name="credit-default", alias="champion"))
        self.assertEqual((champ.version, champ.artifact_sha256, list(champ.aliases)),
                         (1, a.blob.sha256, ["champion"]))
        self.assertEqual(c("ResolveModel", model=R(name="credit-default", version=1)).version, 1)
        self.assertEqual(c("ResolveModel", model=R(name="credit-default", version=2)).artifact_key,
                         b.blob.key)
        self.assertEqual(c("ResolveModel", model=R(name="credit-default")).version, 2, "latest")
        self.assertEqual(c("GetModelVersion", name="credit-default", version=2).aliases,
                         ["challenger"])
        rm = c("GetRegisteredModel", name="credit-default")
        self.assertEqual(rm.latest_version, 2)
        self.assertEqual(sorted((x.alias, x.version) for x in rm.aliases),
                         [("challenger", 2), ("champion", 1)])
        self.assertGreaterEqual(rm.updated_ms, rm.created_ms)
        self.st.update(v1=v1, v2=v2)

    def test_09_lineage(self):
        run, md5, pmd5, v1 = self.need("run1", "raw_md5", "proc_md5", "v1")
        self.need("metrics_logged")
        R = cpb().ModelRef
        lin = self.c("GetLineage", model=R(name="credit-default", alias="champion"))
        self.assertEqual(lin.version.version, 1)
        self.assertEqual(lin.run.run_id, run)
        self.assertEqual({p.key: p.value for p in lin.run.params}, {"C": "1", "max_iter": "100"})
        loss = [(m.step, m.value) for m in lin.run.metrics if m.key == "loss"]
        self.assertEqual(loss, [(4, 0.05)], "lineage carries the run's latest metrics")
        chains = {d.context: [x.blob.md5 for x in d.chain] for d in lin.datasets}
        self.assertEqual(chains, {"source": [md5], "training": [pmd5, md5]},
                         "each dataset with its parent chain")
        self.assertEqual(len(lin.parent_chain), 0)
        lin2 = self.c("GetLineage", model=R(name="credit-default", version=2))
        self.assertEqual([v.version for v in lin2.parent_chain], [1])
        self.assertEqual([[x.name for x in d.chain] for d in lin2.datasets],
                         [["german-credit-processed", "german-credit"]])
        out = H.ctl_json(self.reg.target, "lineage", "credit-default/2")
        self.assertEqual(int(out["version"]["version"]), 2)
        self.assertEqual(out["run"]["run_id"], run)
        self.assertEqual([int(p["version"]) for p in out["parent_chain"]], [1])
        out = json.loads(H.ctl(self.reg.target, "lineage", "credit-default@champion").stdout)
        self.assertEqual(int(out["version"]["version"]), 1)
        self.st["lineage"] = True

    def test_10_update_run(self):
        run1, run2 = self.need("run1", "run2")
        c, P = self.c, pb()
        done = c("UpdateRun", run_id=run1, status=P.RUN_STATUS_FINISHED)
        self.assertEqual(done.status, P.RUN_STATUS_FINISHED)
        self.assertGreater(done.end_ms, 0)
        self.assertEqual(len(done.params), 2, "UpdateRun answers the whole run")
        self.assertRpcError(C.FAILED_PRECONDITION, c, "UpdateRun", run_id=run1,
                            status=P.RUN_STATUS_RUNNING, contains="FINISHED")
        failed = c("UpdateRun", run_id=run2, status=P.RUN_STATUS_FAILED, end_ms=123456,
                   failure_reason="diverged")
        self.assertEqual((failed.status, failed.end_ms, failed.failure_reason),
                         (P.RUN_STATUS_FAILED, 123456, "diverged"))
        self.assertEqual([r.run_id for r in c("ListRuns", status=P.RUN_STATUS_FINISHED).runs],
                         [run1])
        self.assertEqual([r.run_id for r in c("ListRuns", status=P.RUN_STATUS_RUNNING).runs],
                         [self.st["run3"]])
        self.st["updated"] = True

    def test_11_creditoctl(self):
        run1, run2, _ = self.need("run1", "run2", "v2")
        t = self.reg.target
        table = H.ctl(t, "runs", "list").stdout.splitlines()
        self.assertRegex(table[0], r"^RUN\s+EXPERIMENT\s+NAME\s+STATUS")
        self.assertEqual(len(table), 4, "a header and three runs")
        self.assertTrue(any(run1 in line and "FINISHED" in line for line in table[1:]))
        runs = H.ctl_json(t, "runs", "list", "--experiment", self.st["exp"])["runs"]
        self.assertEqual([r["run_id"] for r in runs], [run2, run1])
        fin = H.ctl_json(t, "runs", "list", "--status", "finished")["runs"]
        self.assertEqual([r["run_id"] for r in fin], [run1])
        shown = H.ctl_json(t, "runs", "show", run1, "--history")
        self.assertEqual(len(shown["metrics"]), 7)

        self.assertIn("credit-default", H.ctl(t, "model", "list").stdout)
        models = H.ctl_json(t, "model", "list")["models"]
        self.assertEqual([(m["name"], int(m["latest_version"])) for m in models],
                         [("credit-default", 2)])
        show = H.ctl(t, "model", "show", "credit-default").stdout.splitlines()
        self.assertRegex(show[0], r"^VERSION\s+RUN\s+SHA256\s+ALIASES")
        self.assertEqual(len(show), 3)
        self.assertTrue(show[1].split()[0] == "2" and "challenger" in show[1], show)
        self.assertTrue(show[2].split()[0] == "1" and "champion" in show[2], show)
        versions = H.ctl_json(t, "model", "show", "credit-default")["versions"]
        self.assertEqual([int(v["version"]) for v in versions], [2, 1])

        out = H.ctl(t, "model", "alias", "credit-default", "champion", "2").stdout
        self.assertIn("credit-default@champion: 1 -> 2", out)
        R = cpb().ModelRef
        self.assertEqual(self.c("ResolveModel", model=R(name="credit-default",
                                                         alias="champion")).version, 2)
        back = H.ctl_json(t, "model", "alias", "credit-default", "champion", "1")
        self.assertEqual((int(back["version"]["version"]), int(back["previous_version"])), (1, 2))
        H.ctl(t, "model", "alias", "credit-default", "challenger", "--delete")
        rm = self.c("GetRegisteredModel", name="credit-default")
        self.assertEqual([(a.alias, a.version) for a in rm.aliases], [("champion", 1)])

        bad = H.ctl(t, "model", "alias", "credit-default", "champion", "9", check=False)
        self.assertEqual(bad.returncode, 1)
        self.assertEqual(len(bad.stderr.strip().splitlines()), 1, bad.stderr)
        self.assertIn("NOT_FOUND", bad.stderr)
        bad = H.ctl(t, "runs", "show", "f" * 32, check=False)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("f" * 32, bad.stderr)
        self.assertRegex(H.ctl(t, "events").stdout.splitlines()[0], r"^ID\s+TIME\s+CALLER")
        events = H.ctl_json(t, "events")["events"]
        self.assertGreater(len(events), 10)
        self.st["ctl"] = True

    def test_12_events(self):
        self.need("ctl", "updated", "lineage", "tagged")
        st = self.st
        run1, run2, run3, md5, pmd5 = (st[k] for k in ("run1", "run2", "run3", "raw_md5",
                                                       "proc_md5"))
        events = self.c.all_events()
        ids = [e.event_id for e in events]
        self.assertTrue(all(re.fullmatch(r"\d{20}", i) for i in ids), ids[:3])
        self.assertEqual(ids, sorted(ids))
        self.assertEqual([int(i) for i in ids], list(range(1, len(ids) + 1)),
                         "ids are consecutive from 1: no change left out")
        for e in events:
            self.assertGreater(e.time_ms, 0)
            if e.detail_json:
                self.assertIsInstance(json.loads(e.detail_json), dict, e)
        acts = [(e.action, e.subject) for e in events]

        def has(action, subject, n=1):
            self.assertEqual(acts.count((action, subject)), n,
                             "%s %s expected %d time(s) in the audit log:\n%s"
                             % (action, subject, n, "\n".join(map(str, acts))))

        has("experiment.create", "experiments/" + st["exp"])
        has("experiment.create", "experiments/" + st["exp2"])
        for r in (run1, run2, run3):
            has("run.create", "runs/" + r)
        has("params.log", "runs/" + run1)  # the same value again is a no-op
        has("metrics.log", "runs/" + run1, 2)
        has("tags.set", "runs/" + run1)
        has("inputs.log", "runs/" + run1)
        has("artifact.upload", "runs/%s/artifacts/model/model.pb" % run1)
        has("artifact.upload", "runs/%s/artifacts/model/model-2.pb" % run1)
        has("run.update", "runs/" + run1)
        has("run.update", "runs/" + run2)
        has("dataset.create", "datasets/german-credit/" + md5)
        has("dataset.create", "datasets/german-credit-processed/" + pmd5)
        has("model.create", "models/credit-default")
        has("version.create", "models/credit-default/1")
        has("version.create", "models/credit-default/2")
        has("alias.set", "models/credit-default/aliases/champion", 3)
        has("alias.set", "models/credit-default/aliases/challenger")
        has("alias.delete", "models/credit-default/aliases/challenger")
        # Who: this client names itself; creditoctl's calls carry a caller too.
        mine = [e for e in events if e.action == "run.create"]
        self.assertTrue(all(e.caller == H.CALLER for e in mine), [e.caller for e in mine])
        self.assertTrue(all(e.caller for e in events))
        # The alias detail says what changed.
        sets = [json.loads(e.detail_json) for e in events
                if e.action == "alias.set" and e.subject.endswith("/champion")]
        self.assertEqual([(d["version"], d["previous_version"]) for d in sets],
                         [(1, 0), (2, 1), (1, 2)])
        # subject_prefix filters.
        only = self.c.all_events("runs/" + run2)
        self.assertEqual([e.action for e in only], ["run.create", "run.update"])
        models = self.c.all_events("models/credit-default")
        self.assertTrue(models and all(e.subject.startswith("models/credit-default")
                                       for e in models))
        # Paging over the log.
        p = self.c("ListEvents", page_size=5)
        self.assertEqual([e.event_id for e in p.events], ids[:5])
        q = self.c("ListEvents", page_size=5, page_token=p.next_page_token)
        self.assertEqual([e.event_id for e in q.events], ids[5:10])
        st["events"] = events

    # -- 2. what the store holds, read by a peer --

    def test_20_store_readable_by_peers(self):
        raw, md5, pmd5, data1 = self.need("raw", "raw_md5", "proc_md5", "data1")
        key = H.blob_key(md5)
        if self.s3:
            got = self.s3.aws("s3", "cp", "s3://%s/%s" % (H.BUCKET, key), "-").stdout
        else:
            with open(os.path.join(self.store_handle, key), "rb") as f:
                got = f.read()
        self.assertTrue(got == raw, "the bytes at the DVC path are the pushed file's")
        self.assertEqual(hashlib.md5(got).hexdigest(), key[len("files/md5/"):].replace("/", ""))

        blobs = self.store_keys(self.store_handle, "files/")
        self.assertEqual(blobs.get(key), len(raw))
        self.assertEqual(blobs.get(H.blob_key(pmd5)), len(self.st["proc_bytes"]))
        self.assertEqual(blobs.get(H.blob_key(H.md5_hex(data1))), len(data1))
        for k in blobs:
            self.assertRegex(k, r"^files/md5/[0-9a-f]{2}/[0-9a-f]{30}$")

        docs = self.store_keys(self.store_handle, "registry/")
        self.assertTrue(docs)
        if self.s3:
            local = os.path.join(self.tmp, "registry-copy")
            self.s3.aws("s3", "cp", "--recursive", "--only-show-errors",
                        "s3://%s/registry/" % H.BUCKET, local)
            base = os.path.dirname(local)
            read = {os.path.join("registry", os.path.relpath(os.path.join(d, f), local))
                    for d, _, fs in os.walk(local) for f in fs}
        else:
            base = self.store_handle
            read = set(docs)
        self.assertEqual(read, set(docs))
        kinds = {}
        for k in sorted(docs):
            self.assertTrue(k.endswith(".json"), k)
            path = os.path.join(local if self.s3 else base,
                                os.path.relpath(k, "registry") if self.s3 else k)
            with open(path, "rb") as f:
                try:
                    doc = json.loads(f.read())
                except ValueError as e:
                    self.fail("%s is not JSON: %s" % (k, e))
            self.assertIsInstance(doc, dict, k)
            kinds.setdefault(k.split("/")[1], []).append(doc)
        self.assertEqual(sorted(kinds), ["datasets", "events", "experiments", "models", "runs"])
        self.assertEqual(len(kinds["runs"]), 3)
        self.assertEqual(len(kinds["events"]), len(self.c.all_events()))
        run_doc = [d for d in kinds["runs"] if d.get("run_id") == self.st["run1"]][0]
        self.assertEqual({p["key"]: p["value"] for p in run_doc["params"]},
                         {"C": "1", "max_iter": "100"}, "proto field names, readable")
        self.st["peers"] = True

    # -- 3. a restart loses nothing --

    def snapshot(self, c):
        R = cpb().ModelRef
        snap = {"experiments": c("ListExperiments").experiments,
                "runs": [c("GetRun", run_id=r.run_id, metric_history=True)
                         for r in c("ListRuns").runs],
                "datasets": c("ListDatasetVersions").versions,
                "models": c("ListRegisteredModels").models,
                "events": c.all_events()}
        for m in snap["models"]:
            snap["versions/" + m.name] = c("ListModelVersions", name=m.name).versions
            for a in m.aliases:
                snap["alias/%s@%s" % (m.name, a.alias)] = c(
                    "ResolveModel", model=R(name=m.name, alias=a.alias))
        out = {}
        for k, v in snap.items():
            if hasattr(v, "SerializeToString"):
                out[k] = v.SerializeToString(deterministic=True)
            else:
                out[k] = [x.SerializeToString(deterministic=True) for x in v]
        return out

    def test_30_restart_loses_nothing(self):
        self.need("events", "v2")
        cls = type(self)
        before = self.snapshot(self.c)
        self.assertEqual(cls.reg.stop(), 0, "SIGTERM: exit 0")
        cls.c.close()
        cls.reg = H.Registry(self.url, env=self.env).start()
        cls.c = H.Client(cls.reg.target)
        after = self.snapshot(cls.c)
        self.assertEqual(sorted(after), sorted(before))
        for k in before:
            self.assertEqual(after[k], before[k], "after a restart, %s differs" % k)
        c = cls.c
        hist = c("GetRun", run_id=self.st["run1"], metric_history=True).metrics
        self.assertEqual(len(hist), 7)
        self.assertEqual(c("ResolveModel", model=cpb().ModelRef(
            name="credit-default", alias="champion")).version, 1)
        # Params are still immutable, and the log goes on after its last id.
        self.assertRpcError(C.INVALID_ARGUMENT, c, "LogParams", run_id=self.st["run1"],
                            params=[cpb().Param(key="C", value="2")], contains="C")
        n = len(before["events"])
        c("SetTags", run_id=self.st["run1"], tags=[cpb().Tag(key="restarted", value="yes")])
        events = c.all_events()
        self.assertEqual(len(events), n + 1, "the new event follows the old ones")
        self.assertEqual((int(events[-1].event_id), events[-1].action), (n + 1, "tags.set"))


class S3HappyPath(HappyPathBase):
    backend = "s3"


class FileHappyPath(HappyPathBase):
    backend = "file"


# ---------------------------------------------------------------------------------------------
# 4. kill -9 in the middle of an upload

class KillMidUploadBase(RegistryTest):
    def test_kill_9_mid_upload(self):
        tmp, url, env, s3 = self.new_store()
        spool = os.path.join(tmp, "spool")
        os.makedirs(spool)
        reg = self.registry(url, env, tmp_dir=spool)
        c = self.client(reg.target)
        # Committed before the crash: an experiment, a run, a dataset, an artifact, a version
        # with an alias.
        run = c("CreateRun", run_name="before-crash").run_id
        c("LogParams", run_id=run, params=[cpb().Param(key="C", value="0.5")])
        ds = b"a,b,class\n1,2,good\n3,4,bad\n"
        c.put_bytes(ds)
        c("CreateDatasetVersion", name="tiny", md5=H.md5_hex(ds), size=len(ds), format="csv",
          rows=2)
        small = random.Random(2).randbytes(200 * 1024)
        art = c.upload_artifact(run, "model/a.pb", small)
        c("CreateModelVersion", name="m", run_id=run, artifact_key=art.blob.key,
          artifact_sha256=art.blob.sha256)
        c("SetAlias", name="m", alias="champion", version=1)
        events_before = c.all_events()

        # The upload that dies: 8 MiB announced, 2 MiB sent, then the registry is killed.
        big = random.Random(3).randbytes(8 * MiB)
        gate = threading.Event()

        def messages():
            yield pb().UploadArtifactRequest(header=pb().UploadArtifactHeader(
                run_id=run, path="model/big.pb", expected_size=len(big),
                expected_sha256=H.sha256_hex(big)))
            for i in range(2):
                yield pb().UploadArtifactRequest(chunk=big[i * MiB:(i + 1) * MiB])
            gate.wait(30)
            for i in range(2, 8):
                yield pb().UploadArtifactRequest(chunk=big[i * MiB:(i + 1) * MiB])

        fut = c.upload("UploadArtifact", messages(), timeout=60, future=True)
        self.addCleanup(gate.set)

        def spooled():
            # The registry's spool file (unlinked at creation) holds what it received.
            fd_dir = "/proc/%d/fd" % reg.pid
            try:
                for fd in os.listdir(fd_dir):
                    p = os.path.join(fd_dir, fd)
                    try:
                        if "credito-upload-" in os.readlink(p):
                            return os.stat(p).st_size
                    except OSError:
                        pass
            except OSError:
                return None
            return 0
        got = H.wait_until(lambda: (spooled() or 0) >= 2 * MiB, 10)
        self.assertTrue(got, "the registry did not receive 2 MiB of the upload (spooled %r)"
                        % spooled())
        self.assertFalse(fut.done(), "the upload must still be in flight")
        reg.proc.send_signal(signal.SIGKILL)
        self.assertEqual(reg.proc.wait(10), -signal.SIGKILL)
        gate.set()
        with self.assertRaises(grpc.RpcError) as cm:
            fut.result(timeout=20)
        self.assertIn(cm.exception.code(), (C.UNAVAILABLE, C.CANCELLED, C.INTERNAL))
        self.assertEqual(os.listdir(spool), [], "nothing of the upload is left in --tmp-dir")

        reg2 = self.registry(url, env, tmp_dir=spool)
        c2 = self.client(reg2.target)
        got = c2("GetRun", run_id=run)
        self.assertEqual([a.path for a in got.artifacts], ["model/a.pb"],
                         "no run lists the unfinished artifact")
        for r in c2("ListRuns").runs:
            self.assertNotIn("model/big.pb", [a.path for a in r.artifacts])
        self.assertEqual({p.key: p.value for p in got.params}, {"C": "0.5"})
        self.assertEqual(c2.all_events(), events_before, "the audit log is as it was")
        self.assertEqual(c2("GetDatasetVersion", dataset=cpb().DatasetRef(name="tiny")).rows, 2)
        self.assertEqual(c2("ResolveModel", model=cpb().ModelRef(name="m", alias="champion"))
                         .version, 1)
        # Every version's artifact is there, whole, with its digest.
        for m in c2("ListRegisteredModels").models:
            for v in c2("ListModelVersions", name=m.name).versions:
                h, body = c2.download("DownloadArtifact",
                                      pb().DownloadArtifactRequest(key=v.artifact_key))
                self.assertEqual(len(body), v.artifact_size)
                self.assertEqual(H.sha256_hex(body), v.artifact_sha256)
        # Nothing partial in the store: each content-addressed object's md5 is its key.
        handle = s3 if s3 else url[len("file://"):]
        blobs = self.store_keys(handle, "files/")
        self.assertEqual(sorted(blobs.values()), sorted([len(ds), len(small)]))
        for key in blobs:
            md5 = key[len("files/md5/"):].replace("/", "")
            _, body = c2.download("GetDatasetBytes", pb().GetDatasetBytesRequest(md5=md5))
            self.assertEqual(H.md5_hex(body), md5, key)
        # The path is free: the upload can be made again and completes.
        again = c2.upload_artifact(run, "model/big.pb", big)
        self.assertEqual(again.blob.sha256, H.sha256_hex(big))


class S3KillMidUpload(KillMidUploadBase):
    backend = "s3"


class FileKillMidUpload(KillMidUploadBase):
    backend = "file"


# ---------------------------------------------------------------------------------------------
# 5. The store down, unreachable, or refusing the credentials

class StoreFailureTest(RegistryTest):
    backend = "s3"
    FAST_S = 6.0   # "fail fast": the store's retries included

    def timed_error(self, code, fn, *a, contains=(), **kw):
        t = time.monotonic()
        err = self.assertRpcError(code, fn, *a, contains=contains, **kw)
        took = time.monotonic() - t
        self.assertLess(took, self.FAST_S, "failed, but only after %.1f s" % took)
        return err

    def test_store_down_then_back(self):
        tmp, url, env, s3 = self.new_store()
        reg = self.registry(url, env)
        c = self.client(reg.target)
        run = c("CreateRun").run_id
        ds = b"x,class\n1,good\n"
        c.put_bytes(ds)
        art = c.upload_artifact(run, "a.bin", b"artifact bytes")
        events = len(c.all_events())
        endpoint = s3.endpoint

        s3.kill()
        P = cpb().Param
        self.timed_error(C.UNAVAILABLE, c, "LogParams", run_id=run,
                         params=[P(key="k", value="v")], contains=endpoint)
        self.timed_error(C.UNAVAILABLE, c.download, "GetDatasetBytes",
                         pb().GetDatasetBytesRequest(md5=H.md5_hex(ds)), contains=endpoint)
        self.timed_error(C.UNAVAILABLE, c.download, "DownloadArtifact",
                         pb().DownloadArtifactRequest(run_id=run, path="a.bin"),
                         contains=endpoint)
        self.timed_error(C.UNAVAILABLE, c, "CreateExperiment", name="while-down",
                         contains=endpoint)
        self.timed_error(C.UNAVAILABLE, c.put_bytes, b"new bytes", contains=endpoint)
        self.assertTrue(reg.alive(), "the registry survives its store going away")
        # A failed write changed nothing.
        self.assertEqual(len(c("GetRun", run_id=run).params), 0)
        self.assertRpcError(C.NOT_FOUND, c, "GetExperiment", name="while-down")
        self.assertEqual(len(c.all_events()), events)

        s3b = H.S3(s3.directory, port=s3.port).start()
        self.addCleanup(s3b.kill)
        c("LogParams", run_id=run, params=[P(key="k", value="v")])
        self.assertEqual({p.key: p.value for p in c("GetRun", run_id=run).params}, {"k": "v"})
        _, body = c.download("GetDatasetBytes", pb().GetDatasetBytesRequest(md5=H.md5_hex(ds)))
        self.assertEqual(body, ds)
        _, body = c.download("DownloadArtifact",
                             pb().DownloadArtifactRequest(run_id=run, path="a.bin"))
        self.assertEqual(body, b"artifact bytes")
        c("CreateExperiment", name="while-down")
        self.assertEqual(len(c.all_events()), events + 2)
        self.assertEqual(art.blob.size, len(b"artifact bytes"))
        self.assertEqual(reg.stop(), 0)

    def test_wrong_credentials(self):
        tmp, url, env, s3 = self.new_store()
        env = dict(env, AWS_SECRET_ACCESS_KEY="wrong")
        reg = H.Registry(url, env=env)
        self.addCleanup(reg.kill)
        reg.launch_on(H.free_port())
        c = self.client(reg.target)
        errs = []

        def refused():
            try:
                c("ListExperiments", timeout=2)
            except grpc.RpcError as e:
                errs.append(e)
                return e.code() == C.PERMISSION_DENIED
            return False
        self.assertTrue(H.wait_until(refused, 8),
                        "no PERMISSION_DENIED: %s" % [(e.code(), e.details()) for e in errs[-3:]])
        err = errs[-1]
        self.assertIn("s3://credito", err.details())
        self.assertIn("403", err.details())
        # Every call says the same, fast, and the process neither crashes nor hangs.
        self.timed_error(C.PERMISSION_DENIED, c, "CreateExperiment", name="x",
                         contains="s3://credito")
        self.timed_error(C.PERMISSION_DENIED, c.upload_artifact, "r", "p", b"bytes",
                         contains="s3://credito")
        time.sleep(1.0)
        self.assertTrue(reg.alive())
        self.assertFalse(reg.proc.logged("listening"), "not ready with a store it cannot read")
        t = time.monotonic()
        self.assertEqual(reg.stop(), 0, "SIGTERM while retrying the load: exit 0")
        self.assertLess(time.monotonic() - t, 5.0)

    def test_store_unreachable_at_start_then_up(self):
        port = H.free_port()
        tmp = tempfile.mkdtemp(prefix="credito-reg-test-")
        self.addCleanup(shutil.rmtree, tmp, True)
        s3 = H.S3(os.path.join(tmp, "s3"), port=port)
        reg = H.Registry("s3://" + H.BUCKET, env=s3.env())
        self.addCleanup(reg.kill)
        reg.launch_on(H.free_port())
        c = self.client(reg.target)
        errs = []

        def named():
            try:
                c("ListRuns", timeout=2)
            except grpc.RpcError as e:
                errs.append(e)
                return e.code() == C.UNAVAILABLE and s3.endpoint in (e.details() or "")
            return False
        self.assertTrue(H.wait_until(named, 8),
                        "no UNAVAILABLE naming %s: %s" % (
                            s3.endpoint, [(e.code(), e.details()) for e in errs[-3:]]))
        self.assertTrue(reg.alive())
        s3.start()
        self.addCleanup(s3.kill)
        self.assertTrue(reg.proc.wait_log("listening", timeout=20),
                        "the registry did not load once the store came up:\n"
                        + reg.proc.stderr()[-2000:])
        self.assertEqual(len(c("ListRuns").runs), 0)
        self.assertEqual(c("CreateExperiment", name="late").name, "late")


class FileStoreStartTest(RegistryTest):
    backend = "file"

    def test_missing_store_directory(self):
        """The embedded default store (file://$HOME/.credito/store) starts out missing."""
        tmp = tempfile.mkdtemp(prefix="credito-reg-test-")
        self.addCleanup(shutil.rmtree, tmp, True)
        d = os.path.join(tmp, "not", "yet")
        reg = self.registry("file://" + d, {})
        c = self.client(reg.target)
        self.assertEqual(c("CreateExperiment", name="first").name, "first")
        self.assertTrue(os.path.isdir(os.path.join(d, "registry")))


class ListingOrderTest(RegistryTest):
    """Lists keep their documented order, ties included, and the same order after a restart
    (which rebuilds the index in the store's key order, not in creation order)."""
    backend = "file"

    def test_orders_survive_restart(self):
        tmp, url, env, _ = self.new_store()
        reg = self.registry(url, env)
        c = self.client(reg.target)
        for name in ("zeta", "alpha", "mid"):
            c("CreateExperiment", name=name)
        runs = [c("CreateRun", start_ms=1000).run_id for _ in range(4)]
        late = c("CreateRun", start_ms=2000).run_id
        for i in range(4):
            data = b"n,class\n%d,good\n" % i
            c.put_bytes(data)
            c("CreateDatasetVersion", name="d%d" % (i % 2), md5=H.md5_hex(data), size=len(data))
        art = c.upload_artifact(late, "m.pb", b"m")
        for name in ("zeta", "alpha", "mid"):
            c("CreateModelVersion", name=name, run_id=late, artifact_key=art.blob.key)

        def lists(cl):
            return {"experiments": [e.name for e in cl("ListExperiments").experiments],
                    "runs": [r.run_id for r in cl("ListRuns").runs],
                    "datasets": [(v.name, v.blob.md5) for v in cl("ListDatasetVersions").versions],
                    "latest": [cl("GetDatasetVersion", dataset=cpb().DatasetRef(name=n)).blob.md5
                               for n in ("d0", "d1")],
                    "models": [m.name for m in cl("ListRegisteredModels").models]}
        before = lists(c)
        self.assertEqual(before["models"], ["alpha", "mid", "zeta"], "models by name")
        self.assertEqual(before["runs"][0], late, "runs newest first")
        self.assertEqual(sorted(before["runs"][1:]), sorted(runs))
        self.assertEqual(sorted(before["experiments"]), ["alpha", "default", "mid", "zeta"])
        self.assertEqual(before["latest"], [next(m for n, m in before["datasets"] if n == d)
                                            for d in ("d0", "d1")],
                         "the latest version of a name is the first listed")
        self.assertEqual(H.ctl_json(reg.target, "model", "list")["models"][0]["name"], "alpha")
        self.assertEqual(reg.stop(), 0)
        reg2 = self.registry(url, env)
        self.assertEqual(lists(self.client(reg2.target)), before)


# ---------------------------------------------------------------------------------------------
# 6. Bad input

BAD_NAMES = [("", "empty"), ("..", "'..'"), (".", "'.'"), ("a/b", "'/'"),
             ("a\x01b", "control"), ("x" * 256, "255")]


class BadInputBase(RegistryTest):
    CAP = 1 * MiB

    def setUp(self):
        tmp, url, env, self.s3 = self.new_store()
        self.reg = self.registry(url, env, "--max-upload", self.CAP)
        self.c = self.client(self.reg.target)
        c = self.c
        self.run_id = c("CreateRun").run_id
        self.ds = b"a,class\n1,good\n"
        c.put_bytes(self.ds)
        c("CreateDatasetVersion", name="d", md5=H.md5_hex(self.ds), size=len(self.ds))
        art = c.upload_artifact(self.run_id, "m.pb", b"model")
        self.art = art
        c("CreateModelVersion", name="m", run_id=self.run_id, artifact_key=art.blob.key,
          artifact_sha256=art.blob.sha256)
        c("SetAlias", name="m", alias="champion", version=1)
        self.events = len(c.all_events())

    def tearDown(self):
        # No refused call changed anything.
        if hasattr(self, "c") and self.reg.alive():
            self.assertEqual(len(self.c.all_events()), self.events + self.allowed_events,
                             "refused calls must not write audit events")

    allowed_events = 0

    def test_push_refuses_a_bad_row_by_line_and_column(self):
        """creditoctl checks every row before any byte leaves: a bad value is named by line and
        column, exit 1, and nothing reaches the store."""
        with open(data_file(), "r", encoding="ascii") as f:
            base = f.read()
        lines = base.split("\n")
        first = next(i for i, l in enumerate(lines) if l.lower().startswith("@data")) + 1
        fields = lines[first].split(",")
        fields[1] = "six"  # duration is numeric
        lines[first] = ",".join(fields)
        tmp = tempfile.mkdtemp(prefix="credito-badrow-")
        path = os.path.join(tmp, "bad.arff")
        with open(path, "w", encoding="ascii") as f:
            f.write("\n".join(lines))
        p = H.ctl(self.reg.target, "dataset", "push", path, "--name", "bad", check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("line %d" % (first + 1), p.stderr)
        self.assertIn("duration", p.stderr)
        self.assertFalse(os.path.exists(path + ".dvc"))
        shutil.rmtree(tmp)
        self.assertRpcError(C.NOT_FOUND, self.c, "GetDatasetVersion",
                            dataset=cpb().DatasetRef(name="bad"))

    def test_unknown_run(self):
        c, P, unknown = self.c, cpb(), "0123456789abcdef0123456789abcdef"
        for method, fields in (("GetRun", {}), ("UpdateRun", {"status": 2}),
                               ("LogParams", {"params": [P.Param(key="a", value="1")]}),
                               ("LogMetrics", {"metrics": [P.Metric(key="a", value=1)]}),
                               ("SetTags", {"tags": [P.Tag(key="a", value="1")]}),
                               ("LogInputs", {})):
            with self.subTest(method=method):
                self.assertRpcError(C.NOT_FOUND, c, method, run_id=unknown, **fields,
                                    contains=["unknown run", unknown])
        self.assertRpcError(C.NOT_FOUND, c.upload_artifact, unknown, "x", b"abc",
                            contains=unknown)
        self.assertRpcError(C.NOT_FOUND, c.download, "DownloadArtifact",
                            pb().DownloadArtifactRequest(run_id=unknown, path="x"),
                            contains=unknown)
        self.assertRpcError(C.NOT_FOUND, c, "CreateModelVersion", name="m", run_id=unknown,
                            artifact_key=self.art.blob.key, contains=unknown)
        # A refused first version does not leave its model behind.
        self.assertRpcError(C.NOT_FOUND, c, "CreateModelVersion", name="fresh", run_id=unknown,
                            artifact_key=self.art.blob.key, contains=unknown)
        self.assertRpcError(C.NOT_FOUND, c, "GetRegisteredModel", name="fresh", contains="fresh")
        self.assertEqual([m.name for m in c("ListRegisteredModels").models], ["m"])

    def test_params_are_immutable(self):
        c, P = self.c, cpb().Param
        c("LogParams", run_id=self.run_id, params=[P(key="C", value="1.0")])
        self.assertRpcError(C.INVALID_ARGUMENT, c, "LogParams", run_id=self.run_id,
                            params=[P(key="C", value="2.0")],
                            contains=["'C'", "1.0", "immutable"])
        # A batch with one bad param changes nothing, not even its good ones.
        self.assertRpcError(C.INVALID_ARGUMENT, c, "LogParams", run_id=self.run_id,
                            params=[P(key="new", value="x"), P(key="C", value="3")])
        c("LogParams", run_id=self.run_id, params=[P(key="C", value="1.0")])
        self.assertEqual({p.key: p.value for p in c("GetRun", run_id=self.run_id).params},
                         {"C": "1.0"})
        self.assertRpcError(C.INVALID_ARGUMENT, c, "LogParams", run_id=self.run_id,
                            params=[P(key="", value="x")], contains="param key")
        self.allowed_events = 1  # the first LogParams (the same value again is a no-op)

    def test_invalid_names(self):
        c = self.c
        for name, why in BAD_NAMES:
            with self.subTest(name=name[:20], why=why):
                self.assertRpcError(C.INVALID_ARGUMENT, c, "CreateExperiment", name=name,
                                    contains="experiment name")
                self.assertRpcError(C.INVALID_ARGUMENT, c, "CreateRegisteredModel", name=name,
                                    contains="model name")
                self.assertRpcError(C.INVALID_ARGUMENT, c, "CreateDatasetVersion", name=name,
                                    md5=H.md5_hex(self.ds), size=len(self.ds),
                                    contains="dataset name")
                self.assertRpcError(C.INVALID_ARGUMENT, c, "SetAlias", name="m", alias=name,
                                    version=1, contains="alias")
        # 255 bytes is the longest name allowed (an experiment's name is not in its key).
        self.assertEqual(c("CreateExperiment", name="x" * 255).name, "x" * 255)
        self.allowed_events = 1

    def test_invalid_keys(self):
        c, P = self.c, cpb()
        for name, why in BAD_NAMES:
            with self.subTest(key=name[:20], why=why):
                self.assertRpcError(C.INVALID_ARGUMENT, c, "LogParams", run_id=self.run_id,
                                    params=[P.Param(key=name, value="1")], contains="param key")
                self.assertRpcError(C.INVALID_ARGUMENT, c, "LogMetrics", run_id=self.run_id,
                                    metrics=[P.Metric(key=name, value=1)],
                                    contains="metric key")
                self.assertRpcError(C.INVALID_ARGUMENT, c, "SetTags", run_id=self.run_id,
                                    tags=[P.Tag(key=name, value="1")], contains="tag key")
                self.assertRpcError(C.INVALID_ARGUMENT, c, "CreateRun",
                                    tags=[P.Tag(key=name, value="1")], contains="tag key")
        got = c("GetRun", run_id=self.run_id)
        self.assertEqual((len(got.params), len(got.metrics), len(got.tags)), (0, 0, 0))
        self.assertEqual(len(c("ListRuns").runs), 1)

    def test_longest_names_are_storable(self):
        """common.proto allows names of 255 bytes (a key segment on every store); model and
        dataset names are key segments."""
        c = self.c
        name = "é" * 127 + "x"  # 255 bytes of UTF-8
        self.assertEqual(c("CreateRegisteredModel", name=name).name, name)
        self.assertEqual(c("CreateDatasetVersion", name="d" * 255, md5=H.md5_hex(self.ds),
                           size=len(self.ds)).name, "d" * 255)
        self.allowed_events = 2

    def test_aliases(self):
        c = self.c
        self.assertRpcError(C.NOT_FOUND, c, "SetAlias", name="m", alias="champion", version=2,
                            contains=["'m'", "version 2"])
        self.assertRpcError(C.NOT_FOUND, c, "SetAlias", name="nope", alias="champion",
                            version=1, contains="nope")
        self.assertRpcError(C.INVALID_ARGUMENT, c, "SetAlias", name="m", alias="champion",
                            version=0)
        self.assertRpcError(C.INVALID_ARGUMENT, c, "SetAlias", name="m", alias="123",
                            version=1, contains="alias")
        self.assertRpcError(C.NOT_FOUND, c, "DeleteAlias", name="m", alias="challenger",
                            contains="challenger")
        self.assertRpcError(C.NOT_FOUND, c, "ResolveModel",
                            model=cpb().ModelRef(name="m", alias="challenger"),
                            contains="challenger")
        self.assertRpcError(C.NOT_FOUND, c, "ResolveModel",
                            model=cpb().ModelRef(name="m", version=7), contains="7")
        self.assertEqual(c("ResolveModel", model=cpb().ModelRef(name="m", alias="champion"))
                         .version, 1, "the alias did not move")

    def test_artifact_over_the_cap(self):
        c = self.c
        big = random.Random(4).randbytes(self.CAP + 1)
        self.assertRpcError(C.INVALID_ARGUMENT, c.upload_artifact, self.run_id, "big.pb", big,
                            chunk=256 * 1024, contains=str(self.CAP))
        self.assertRpcError(C.INVALID_ARGUMENT, c.put_bytes, big, chunk=256 * 1024,
                            contains=str(self.CAP))
        self.assertEqual([a.path for a in c("GetRun", run_id=self.run_id).artifacts], ["m.pb"])
        self.assertRpcError(C.NOT_FOUND, c.download, "GetDatasetBytes",
                            pb().GetDatasetBytesRequest(md5=H.md5_hex(big)))
        # Exactly the cap is fine.
        ok = c.upload_artifact(self.run_id, "cap.pb", big[:self.CAP], chunk=256 * 1024)
        self.assertEqual(ok.blob.size, self.CAP)
        self.allowed_events = 1

    def test_digest_mismatch(self):
        c = self.c
        data = b"the real bytes" * 100
        self.assertRpcError(C.INVALID_ARGUMENT, c.upload_artifact, self.run_id, "x.pb", data,
                            expected_sha256="0" * 64, contains=["sha256", H.sha256_hex(data)])
        self.assertRpcError(C.INVALID_ARGUMENT, c.upload_artifact, self.run_id, "x.pb", data,
                            expected_size=len(data) + 1, contains=str(len(data)))
        self.assertRpcError(C.INVALID_ARGUMENT, c.put_bytes, data, expected_md5="f" * 32,
                            contains=["md5", H.md5_hex(data)])
        self.assertEqual([a.path for a in c("GetRun", run_id=self.run_id).artifacts], ["m.pb"])
        for md5 in (H.md5_hex(data), "f" * 32):
            self.assertRpcError(C.NOT_FOUND, c.download, "GetDatasetBytes",
                                pb().GetDatasetBytesRequest(md5=md5))
        self.assertRpcError(C.INVALID_ARGUMENT, c, "CreateModelVersion", name="m",
                            run_id=self.run_id, artifact_key=self.art.blob.key,
                            artifact_sha256="1" * 64, contains=["sha256", self.art.blob.sha256])
        # Bytes that are not an artifact of the run cannot become a version on the caller's
        # word for their digest.
        ds_key = H.blob_key(H.md5_hex(self.ds))
        self.assertRpcError(C.NOT_FOUND, c, "CreateModelVersion", name="m", run_id=self.run_id,
                            artifact_key=ds_key, artifact_sha256=H.sha256_hex(self.ds),
                            contains=["no artifact", ds_key])
        self.assertEqual([v.version for v in c("ListModelVersions", name="m").versions], [1])
        for key in ("files/md5/zz/" + "0" * 30, "registry/runs/x.json", "files/md5/00/../../x"):
            self.assertRpcError(C.INVALID_ARGUMENT, c.download, "DownloadArtifact",
                                pb().DownloadArtifactRequest(key=key), contains="key")

    def test_dataset_versions(self):
        c = self.c
        never = H.md5_hex(b"never uploaded")
        self.assertRpcError(C.FAILED_PRECONDITION, c, "CreateDatasetVersion", name="d2",
                            md5=never, size=14, contains=[never, "PutDatasetBytes"])
        self.assertRpcError(C.INVALID_ARGUMENT, c, "CreateDatasetVersion", name="d2",
                            md5="xyz", contains="md5")
        self.assertRpcError(C.INVALID_ARGUMENT, c, "CreateDatasetVersion", name="d2",
                            md5=H.md5_hex(self.ds).upper(), contains="md5")
        self.assertRpcError(C.INVALID_ARGUMENT, c, "CreateDatasetVersion", name="d2",
                            md5=H.md5_hex(self.ds), size=len(self.ds) + 1, contains="size")
        self.assertRpcError(C.NOT_FOUND, c, "CreateDatasetVersion", name="d2",
                            md5=H.md5_hex(self.ds), size=len(self.ds),
                            parent=cpb().DatasetRef(name="d", md5="0" * 32), contains="parent")
        self.assertRpcError(C.NOT_FOUND, c, "GetDatasetVersion",
                            dataset=cpb().DatasetRef(name="d2"), contains="d2")
        self.assertRpcError(C.INVALID_ARGUMENT, c.download, "GetDatasetBytes",
                            pb().GetDatasetBytesRequest(md5="../../etc"))
        self.assertRpcError(C.NOT_FOUND, c, "LogInputs", run_id=self.run_id,
                            inputs=[cpb().DatasetInput(dataset=cpb().DatasetRef(name="zz",
                                                                                md5="0" * 32))])

    def test_stream_without_header(self):
        c, P = self.c, pb()
        self.assertRpcError(C.INVALID_ARGUMENT, c.upload, "UploadArtifact",
                            [P.UploadArtifactRequest(chunk=b"abc"),
                             P.UploadArtifactRequest(chunk=b"def")], contains="header")
        self.assertRpcError(C.INVALID_ARGUMENT, c.upload, "PutDatasetBytes",
                            [P.PutDatasetBytesRequest(chunk=b"abc")], contains="header")
        self.assertRpcError(C.INVALID_ARGUMENT, c.upload, "UploadArtifact", [],
                            contains="header")
        self.assertRpcError(C.INVALID_ARGUMENT, c.upload, "UploadArtifact",
                            [P.UploadArtifactRequest(header=P.UploadArtifactHeader(
                                run_id=self.run_id, path="../escape"))], contains="path")
        self.assertRpcError(C.INVALID_ARGUMENT, c.upload, "UploadArtifact",
                            [P.UploadArtifactRequest(header=P.UploadArtifactHeader(
                                run_id=self.run_id, path="/abs"))], contains="path")

    def test_bad_page_token(self):
        self.assertRpcError(C.INVALID_ARGUMENT, self.c, "ListEvents", page_token="x",
                            contains="page_token")
        self.assertRpcError(C.INVALID_ARGUMENT, self.c, "ListRuns", page_token="999999",
                            contains="page_token")


class S3BadInput(BadInputBase):
    backend = "s3"


class FileBadInput(BadInputBase):
    backend = "file"


# ---------------------------------------------------------------------------------------------
# 7. Concurrent writers lose nothing

class ConcurrencyBase(RegistryTest):
    THREADS, POINTS = 16, 50

    def test_16_threads_log_metrics(self):
        tmp, url, env, _ = self.new_store()
        reg = self.registry(url, env)
        c = self.client(reg.target)
        run = c("CreateRun", run_name="busy").run_id
        errors, start = [], threading.Barrier(self.THREADS)

        def worker(t):
            mine = H.Client(reg.target)
            try:
                start.wait(10)
                for i in range(self.POINTS):
                    mine("LogMetrics", run_id=run, metrics=[cpb().Metric(
                        key="loss", value=t + i / 1000.0, step=t * self.POINTS + i,
                        timestamp_ms=1000 + i)], timeout=60)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append("thread %d: %r" % (t, e))
            finally:
                mine.close()
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(self.THREADS)]
        t0 = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        took = time.monotonic() - t0
        self.assertEqual(errors, [])
        total = self.THREADS * self.POINTS

        def check(cl, when):
            hist = cl("GetRun", run_id=run, metric_history=True, timeout=30).metrics
            self.assertEqual(len(hist), total, "%s: %d of %d points" % (when, len(hist), total))
            self.assertEqual(sorted(m.step for m in hist), list(range(total)), when)
            for m in hist:
                t, i = divmod(m.step, self.POINTS)
                self.assertAlmostEqual(m.value, t + i / 1000.0, msg=when)
            latest = cl("GetRun", run_id=run).metrics
            self.assertEqual([(m.key, m.step) for m in latest], [("loss", total - 1)])
        check(c, "after %.1f s of concurrent writes" % took)
        events = c.all_events()
        self.assertEqual(len([e for e in events if e.action == "metrics.log"]), total)
        self.assertEqual(reg.stop(), 0)
        reg2 = self.registry(url, env)
        c2 = self.client(reg2.target)
        check(c2, "after a restart")
        self.assertEqual(c2.all_events(), events, "the audit log, in order, after a restart")


class S3Concurrency(ConcurrencyBase):
    backend = "s3"


class FileConcurrency(ConcurrencyBase):
    backend = "file"


# ---------------------------------------------------------------------------------------------
# 8. WatchModel

class Watch:
    """Collects a WatchModel stream's events on a thread."""

    def __init__(self, client, name, alias=""):
        self.q = queue.Queue()
        self.call = client.stream("WatchModel", pb().WatchModelRequest(name=name, alias=alias),
                                  timeout=120)
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for ev in self.call:
                self.q.put(ev)
        except grpc.RpcError as e:
            self.error = e
        self.q.put(None)

    def next(self, timeout=5.0):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no WatchModel event within %.0f s" % timeout)

    def quiet(self, wait=0.5):
        try:
            ev = self.q.get(timeout=wait)
        except queue.Empty:
            return True
        raise AssertionError("unexpected event: %s" % ev)

    def cancel(self):
        self.call.cancel()


class WatchModelTest(RegistryTest):
    backend = "s3"

    def test_watch_alias(self):
        tmp, url, env, _ = self.new_store()
        reg = self.registry(url, env)
        c = self.client(reg.target)
        P = pb()
        run = c("CreateRun").run_id
        for i in range(1, 4):
            a = c.upload_artifact(run, "v%d.pb" % i, b"model %d" % i)
            c("CreateModelVersion", name="m", run_id=run, artifact_key=a.blob.key,
              artifact_sha256=a.blob.sha256)
        c("SetAlias", name="m", alias="champion", version=1)

        w = Watch(c, "m", "champion")
        self.addCleanup(w.cancel)
        everything = Watch(c, "m")
        self.addCleanup(everything.cancel)
        unset = Watch(c, "m", "shadow")
        self.addCleanup(unset.cancel)

        ev = w.next()
        self.assertEqual((ev.type, ev.name, ev.alias, ev.version.version, ev.event_id),
                         (P.MODEL_EVENT_TYPE_SNAPSHOT, "m", "champion", 1, ""))
        self.assertEqual(list(ev.version.aliases), ["champion"])
        self.assertGreater(ev.time_ms, 0)
        ev = everything.next()
        self.assertEqual((ev.type, ev.version.version), (P.MODEL_EVENT_TYPE_SNAPSHOT, 3),
                         "a model watch's snapshot holds the latest version")
        ev = unset.next()
        self.assertEqual((ev.type, ev.alias), (P.MODEL_EVENT_TYPE_SNAPSHOT, "shadow"))
        self.assertFalse(ev.HasField("version"), "an alias not set: no version")

        c("SetAlias", name="m", alias="champion", version=2)
        ev = w.next()
        self.assertEqual((ev.type, ev.alias, ev.version.version, ev.previous_version),
                         (P.MODEL_EVENT_TYPE_ALIAS_SET, "champion", 2, 1))
        self.assertEqual(ev.version.artifact_key, c("GetModelVersion", name="m",
                                                    version=2).artifact_key)
        last = c.all_events()[-1]
        self.assertEqual(ev.event_id, last.event_id, "the event names its audit record")
        self.assertEqual(everything.next().type, P.MODEL_EVENT_TYPE_ALIAS_SET)

        # Another alias and a new version: not for the champion watcher.
        c("SetAlias", name="m", alias="challenger", version=3)
        a = c.upload_artifact(run, "v4.pb", b"model 4")
        c("CreateModelVersion", name="m", run_id=run, artifact_key=a.blob.key)
        ev = everything.next()
        self.assertEqual((ev.type, ev.alias, ev.version.version),
                         (P.MODEL_EVENT_TYPE_ALIAS_SET, "challenger", 3))
        ev = everything.next()
        self.assertEqual((ev.type, ev.version.version),
                         (P.MODEL_EVENT_TYPE_VERSION_CREATED, 4))
        w.quiet()
        unset.quiet(0.1)

        c("DeleteAlias", name="m", alias="champion")
        ev = w.next()
        self.assertEqual((ev.type, ev.alias, ev.previous_version),
                         (P.MODEL_EVENT_TYPE_ALIAS_REMOVED, "champion", 2))
        self.assertEqual(ev.version.version, 2, "ALIAS_REMOVED: version is the one it pointed at")
        self.assertTrue(ev.event_id)

        # The registry stopping ends every stream with UNAVAILABLE, and exits 0.
        t = time.monotonic()
        self.assertEqual(reg.stop(), 0)
        self.assertLess(time.monotonic() - t, 8.0)
        for watch in (w, everything, unset):
            while watch.next() is not None:
                pass
            self.assertIsNotNone(watch.error)
            self.assertEqual(watch.error.code(), C.UNAVAILABLE, watch.error.details())


# ---------------------------------------------------------------------------------------------
# 8. A corrupt store: bad metadata documents and damaged blobs, put there behind the registry's
#    back with awscli. The registry starts, names each bad one, and serves everything else.

class CorruptStoreBase(RegistryTest):
    backend = "s3"

    def put_object(self, key, data):
        """Writes data at key in the bucket with awscli, as someone editing the store would."""
        path = os.path.join(self.tmp, "upload.bin")
        with open(path, "wb") as f:
            f.write(data)
        self.s3.aws("s3", "cp", "--only-show-errors", path, "s3://%s/%s" % (H.BUCKET, key))

    def get_object(self, key):
        return self.s3.aws("s3", "cp", "s3://%s/%s" % (H.BUCKET, key), "-").stdout

    def version_key(self, name, n):
        return "registry/models/%s/versions/%010d.json" % (name, n)

    def stream_until_error(self, method, req):
        """(messages received, the RpcError) of a download that must fail."""
        got = 0
        try:
            for _ in self.c.stream(method, req):
                got += 1
        except grpc.RpcError as e:
            return got, e
        self.fail("%s ended with OK" % method)


class CorruptDocumentsTest(CorruptStoreBase):
    def test_bad_documents_are_skipped_by_key(self):
        self.tmp, url, env, self.s3 = self.new_store()
        reg = self.registry(url, env)
        c = H.Client(reg.target)
        R = cpb().ModelRef
        exp = c("CreateExperiment", name="kept").experiment_id
        good_run = c("CreateRun", experiment_id=exp, run_name="good").run_id
        c("LogMetrics", run_id=good_run, metrics=[cpb().Metric(key="auc", value=0.8)])
        doomed = c("CreateRun", run_name="doomed").run_id
        typo = c("CreateRun", run_name="typo").run_id
        ds = b"a,class\n1,good\n"
        c.put_bytes(ds)
        c("CreateDatasetVersion", name="d", md5=H.md5_hex(ds), size=len(ds))
        arts = [c.upload_artifact(good_run, "m%d.pb" % i, b"model %d" % i) for i in (1, 2, 3)]
        for a in arts:
            c("CreateModelVersion", name="m", run_id=good_run, artifact_key=a.blob.key)
        c("CreateModelVersion", name="other", run_id=good_run, artifact_key=arts[0].blob.key)
        c("SetAlias", name="m", alias="champion", version=3)
        c("SetAlias", name="m", alias="old", version=1)
        c("SetAlias", name="m", alias="broken", version=2)
        v3_doc = self.get_object(self.version_key("m", 3))
        events = len(c.all_events())
        c.close()
        self.assertEqual(reg.stop(), 0)

        # Behind the registry's back: a run that is not JSON, a version whose number is text, a
        # run whose metric is a string (it loaded before, then failed every ListRuns), and two
        # documents under keys of no known kind.
        v2 = json.loads(self.get_object(self.version_key("m", 2)))
        v2["version"] = "x"
        run = json.loads(self.get_object("registry/runs/%s.json" % typo))
        run["metrics"] = ["0.9"]
        bad = {"registry/runs/%s.json" % doomed: b'{"run_id": "' + doomed.encode() + b'", "para',
               self.version_key("m", 2): json.dumps(v2).encode(),
               "registry/runs/%s.json" % typo: json.dumps(run).encode(),
               "registry/notes/readme.json": b'{"note": "not the registry\'s"}',
               "registry/models/m/extra.json": b"{}"}
        for key, data in bad.items():
            self.put_object(key, data)

        reg = self.registry(url, env)
        c = self.client(reg.target)
        # Each bad document is logged by key with its reason; the summary names them all.
        skipped = {r["key"]: r["error"] for r in reg.proc.logged("skipping a registry document")}
        self.assertEqual(sorted(skipped), sorted(bad), reg.proc.stderr())
        self.assertIn("not JSON", skipped["registry/runs/%s.json" % doomed])
        self.assertIn("credito.v1.ModelVersion", skipped[self.version_key("m", 2)])
        self.assertIn("$.version", skipped[self.version_key("m", 2)])
        self.assertIn("$.metrics[0]", skipped["registry/runs/%s.json" % typo])
        self.assertIn("known kind", skipped["registry/notes/readme.json"])
        summary = reg.proc.logged("registry documents skipped")
        self.assertEqual(len(summary), 1, reg.proc.stderr())
        self.assertEqual((summary[0]["count"], summary[0]["more"]), (len(bad), 0))
        self.assertEqual(sorted(summary[0]["keys"].split()), sorted(bad))
        self.assertEqual(reg.proc.logged("registry loaded")[0]["skipped"], len(bad))

        # Everything else is served, lists included.
        self.assertEqual([r.run_id for r in c("ListRuns").runs], [good_run])
        self.assertEqual([(m.key, m.value) for m in c("GetRun", run_id=good_run).metrics],
                         [("auc", 0.8)])
        for gone in (doomed, typo):
            self.assertRpcError(C.NOT_FOUND, c, "GetRun", run_id=gone, contains=gone)
        self.assertEqual(sorted(e.name for e in c("ListExperiments").experiments),
                         ["default", "kept"])
        self.assertEqual([v.blob.md5 for v in c("ListDatasetVersions").versions], [H.md5_hex(ds)])
        self.assertEqual([m.name for m in c("ListRegisteredModels").models], ["m", "other"])
        self.assertEqual(len(c.all_events()), events)

        # Version 2 is a gap, not an end: version 3 and the aliases on it are still served.
        m = c("GetRegisteredModel", name="m")
        self.assertEqual(m.latest_version, 3)
        self.assertEqual(sorted((a.alias, a.version) for a in m.aliases),
                         [("broken", 2), ("champion", 3), ("old", 1)])
        self.assertEqual([v.version for v in c("ListModelVersions", name="m").versions], [3, 1])
        self.assertEqual(c("ResolveModel", model=R(name="m", alias="champion")).artifact_key,
                         arts[2].blob.key)
        self.assertEqual(c("ResolveModel", model=R(name="m")).version, 3, "latest")
        self.assertEqual(c("GetModelVersion", name="m", version=1).aliases, ["old"])
        for call in (lambda: c("GetModelVersion", name="m", version=2),
                     lambda: c("ResolveModel", model=R(name="m", alias="broken"))):
            self.assertRpcError(C.DATA_LOSS, call, contains=self.version_key("m", 2))
        self.assertRpcError(C.NOT_FOUND, c, "GetModelVersion", name="m", version=4)

        # A new version never takes a number that is in the store, good or bad.
        v4 = c("CreateModelVersion", name="m", run_id=good_run, artifact_key=arts[0].blob.key)
        self.assertEqual(v4.version, 4)
        self.assertEqual(self.get_object(self.version_key("m", 3)), v3_doc)
        self.assertEqual(self.get_object(self.version_key("m", 2)), bad[self.version_key("m", 2)])
        self.assertEqual(int(c.all_events()[-1].event_id), events + 1)


class CorruptBlobTest(CorruptStoreBase):
    def test_damaged_blobs_answer_data_loss(self):
        self.tmp, url, env, self.s3 = self.new_store()
        reg = self.registry(url, env)
        c = self.c = self.client(reg.target)
        run = c("CreateRun").run_id
        rng = random.Random(7)
        data = {name: rng.randbytes(n) for name, n in
                (("cut.pb", 200000), ("flipped.pb", 150000), ("fine.pb", 100000))}
        arts = {name: c.upload_artifact(run, name, b) for name, b in data.items()}
        ds = b"a,class\n" + b"".join(b"%d,good\n" % i for i in range(1000))
        c.put_bytes(ds)
        c("CreateDatasetVersion", name="d", md5=H.md5_hex(ds), size=len(ds))
        Req = pb().DownloadArtifactRequest

        # Truncated: the size in the store differs from the recorded one, refused before a byte.
        cut = arts["cut.pb"].blob.key
        self.put_object(cut, data["cut.pb"][:1000])
        got, err = self.stream_until_error("DownloadArtifact", Req(run_id=run, path="cut.pb"))
        self.assertEqual((err.code(), got), (C.DATA_LOSS, 0), err.details())
        for s in (cut, "truncated", "(run %s)" % run, "1000 bytes in the store, 200000 recorded"):
            self.assertIn(s, err.details())
        self.assertRpcError(C.DATA_LOSS, c.download, "DownloadArtifact", Req(key=cut),
                            contains=(cut, "truncated"))
        # Altered in place, same size: the md5 of what was streamed is not the content address,
        # so the stream ends with DATA_LOSS instead of OK.
        flipped = arts["flipped.pb"].blob.key
        bad = bytearray(data["flipped.pb"])
        bad[70000] ^= 1
        self.put_object(flipped, bytes(bad))
        got, err = self.stream_until_error("DownloadArtifact", Req(run_id=run, path="flipped.pb"))
        self.assertEqual(err.code(), C.DATA_LOSS, err.details())
        self.assertGreater(got, 1, "the header and the chunks went out before the check")
        self.assertIn(flipped, err.details())
        self.assertIn("corrupt", err.details())
        self.assertRpcError(C.DATA_LOSS, c.download, "DownloadArtifact", Req(key=flipped),
                            contains=flipped)
        dkey = H.blob_key(H.md5_hex(ds))
        self.put_object(dkey, ds.replace(b"good", b"bad!", 1))
        self.assertRpcError(C.DATA_LOSS, c.download, "GetDatasetBytes",
                            pb().GetDatasetBytesRequest(md5=H.md5_hex(ds)), contains=dkey)
        want = {(cut, "cut.pb"), (cut, ""), (flipped, "flipped.pb"), (flipped, ""), (dkey, "")}

        def logged():  # the status may arrive before the line is read from the pipe
            return {(r["key"], r["path"]) for r in reg.proc.logged("corrupt blob in the store")}
        H.wait_until(lambda: logged() == want, 5)
        self.assertEqual(logged(), want)

        # Everything else still works.
        h, body = c.download("DownloadArtifact", Req(run_id=run, path="fine.pb"))
        self.assertTrue(body == data["fine.pb"])
        self.assertEqual(h.size, len(data["fine.pb"]))
        self.assertEqual(sorted(a.path for a in c("GetRun", run_id=run).artifacts),
                         sorted(data))
        ok = b"fresh bytes"
        c.put_bytes(ok)
        self.assertEqual(c.download("GetDatasetBytes",
                                    pb().GetDatasetBytesRequest(md5=H.md5_hex(ok)))[1], ok)


# ---------------------------------------------------------------------------------------------

def load_tests(loader, tests, pattern):
    """The concrete classes only: a *Base class is run through its backend subclasses."""
    suite = unittest.TestSuite()
    for name, obj in sorted(globals().items()):
        if (isinstance(obj, type) and issubclass(obj, unittest.TestCase)
                and obj is not RegistryTest and not name.endswith("Base")):
            suite.addTests(loader.loadTestsFromTestCase(obj))
    return suite


def main():
    import procs
    procs.unittest_main("integration.registry")


if __name__ == "__main__":
    main()
