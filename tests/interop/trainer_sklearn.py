#!/usr/bin/env python3
"""Parity of `credito-trainer fit` with scikit-learn (Debian python3-sklearn, python3-numpy).

The trainer fits German Credit once per C (1 and 1e6) into a temporary folder; scikit-learn's
LogisticRegression (newton-cg, tol 1e-12) then fits the SAME train rows of the SAME prepared
matrix (processed.csv). Coefficients and intercept must agree to 1e-4 and the hold-out AUC to
1e-3 (issue 4), hold-out probabilities to 1e-4. Also checked: the split is stratified, the
preparation is fitted on the train rows only (recomputed from the raw ARFF), and model.pb (decoded
with Debian protoc's Python output) carries exactly coefficients.csv and metrics.json.
Usage: trainer_sklearn.py TRAINER_BINARY CREDIT_G_ARFF
"""
import csv
import glob
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COEF_TOL = 1e-4   # issue 4: coefficients within 1e-4 of scikit-learn
AUC_TOL = 1e-3    # issue 4: AUC within 1e-3
PROB_TOL = 1e-4   # hold-out probabilities
PREP_TOL = 1e-9   # standardisation recomputed from the raw file


def read_arff(path):
    """(names, kinds, rows): kinds[j] is "numeric" or the list of categories; rows of strings."""
    names, kinds, rows, data = [], [], [], False
    with open(path, encoding="utf-8") as f:
        for line in f:
            s = line.strip()
            if not s or s.startswith("%"):
                continue
            if data:
                rows.append(next(csv.reader([s], quotechar="'", skipinitialspace=True)))
            elif s.lower().startswith("@attribute"):
                rest = s.split(None, 1)[1]
                name, spec = rest.split(None, 1)
                names.append(name.strip("'"))
                if spec.strip().startswith("{"):
                    inner = spec.strip()[1:-1]
                    kinds.append(next(csv.reader([inner], quotechar="'", skipinitialspace=True)))
                else:
                    kinds.append("numeric")
            elif s.lower().startswith("@data"):
                data = True
    return names, kinds, rows


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        r = list(csv.reader(f))
    return r[0], r[1:]


def load_protos(tmp):
    """Generates the credito.v1 message modules with protoc into tmp; returns model_pb2."""
    if not shutil.which("protoc"):
        raise SystemExit("FAIL: protoc missing (Debian: apt-get install protobuf-compiler)")
    os.makedirs(tmp)
    protos = sorted(glob.glob(os.path.join(ROOT, "proto", "credito", "v1", "*.proto")))
    subprocess.run(["protoc", "-I", os.path.join(ROOT, "proto"), "--python_out=" + tmp] + protos,
                   check=True)
    sys.path.insert(0, tmp)
    return importlib.import_module("credito.v1.model_pb2")


def check_split(label, split, C):
    """Stratified 80/20: test holds 20% of each class, to within one row."""
    n = len(split)
    test = split == "test"
    assert set(np.unique(split)) == {"train", "test"}, f"C={C}: split values {np.unique(split)}"
    assert abs(test.sum() - 0.2 * n) <= 1, f"C={C}: {test.sum()} test rows of {n}, not 20%"
    for cls in (0, 1):
        want = 0.2 * (label == cls).sum()
        got = (test & (label == cls)).sum()
        assert abs(got - want) <= 1, f"C={C}: class {cls}: {got} test rows, want {want:.1f}"
    return test


def check_preparation(header, X, train, arff, C):
    """Numeric columns standardised with the train rows' mean and std (ddof 0) and one-hot
    columns equal to the raw category, on every row: recomputed from the raw ARFF."""
    names, kinds, rows = arff
    raw = {names[j]: [r[j] for r in rows] for j in range(len(names))}
    numeric = [h for h in header if "=" not in h]
    want = [nm for nm, k in zip(names, kinds) if k == "numeric"]
    assert numeric == want, f"C={C}: numeric columns {numeric}, ARFF has {want}"
    worst, stats = 0.0, {}
    for j, h in enumerate(header):
        if "=" in h:
            feat, cat = h.split("=", 1)
            ref = np.array([v == cat for v in raw[feat]], dtype=float)
            assert np.array_equal(X[:, j], ref), f"C={C}: one-hot column {h} differs from raw"
            continue
        col = X[train, j]
        assert abs(col.mean()) < PREP_TOL, f"C={C}: {h}: train mean {col.mean()}"
        assert abs(col.std() - 1) < PREP_TOL, f"C={C}: {h}: train std {col.std()}"
        x = np.array(raw[h], dtype=float)
        stats[h] = (x[train].mean(), x[train].std())
        ref = (x - stats[h][0]) / stats[h][1]
        d = float(np.max(np.abs(X[:, j] - ref)))
        worst = max(worst, d)
        assert d < PREP_TOL, f"C={C}: {h} is not standardised with train-only statistics ({d})"
        # Train-only fitting is visible: the test rows' mean is not the train rows' (0).
        assert abs(X[~train, j].mean()) > PREP_TOL, f"C={C}: {h}: test mean exactly 0"
    return worst, stats


def check_artifact(model_pb2, out, coef_names, coef_vals, final, header, stats, C):
    """model.pb carries exactly coefficients.csv and metrics.json, and the train rows'
    mean and std of each numeric feature."""
    art = model_pb2.ModelArtifact()
    with open(os.path.join(out, "model.pb"), "rb") as f:
        art.ParseFromString(f.read())
    lr = art.logistic_regression
    assert art.format_version == 1, f"C={C}: format_version {art.format_version}"
    assert lr.c == C, f"C={C}: artifact C {lr.c}"
    assert lr.converged, f"C={C}: artifact says not converged"
    assert lr.iterations == final["iterations"], f"C={C}: iterations {lr.iterations}"
    names = [c.name for c in lr.coefficients]
    assert names == coef_names[:-1] == header, f"C={C}: artifact columns differ"
    vals = [c.value for c in lr.coefficients] + [lr.intercept]
    assert vals == coef_vals, f"C={C}: artifact coefficients differ from coefficients.csv"
    metrics = {m.key: m.value for m in art.metrics}
    assert "test_roc_auc" in metrics, f"C={C}: artifact has no test_roc_auc"
    assert metrics["test_roc_auc"] == final["test_roc_auc"], \
        f"C={C}: artifact test_roc_auc {metrics['test_roc_auc']} != {final['test_roc_auc']}"
    for k, v in final.items():
        assert metrics.get(k) == v, f"C={C}: artifact metric {k} {metrics.get(k)} != {v}"
    nums = {p.feature: p.numeric for p in art.preparation if p.WhichOneof("kind") == "numeric"}
    assert sorted(nums) == sorted(stats), f"C={C}: artifact numeric features {sorted(nums)}"
    for name, (mean, std) in stats.items():
        got = (nums[name].mean, nums[name].std)
        assert np.allclose(got, (mean, std), rtol=1e-12, atol=0), \
            f"C={C}: artifact {name} mean/std {got}, train rows have {(mean, std)}"


def check(trainer, arff_path, arff, model_pb2, tmp, C):
    out = os.path.join(tmp, f"C{C:g}")
    subprocess.run([trainer, "fit", arff_path, "--C", repr(C), "--tol", "1e-10",
                    "--max-iter", "1000", "--out", out], check=True, capture_output=True)
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as f:
        final = json.load(f)["final"]
    header, rows = read_csv(os.path.join(out, "processed.csv"))
    assert header[-2:] == ["class", "split"], f"C={C}: processed.csv ends {header[-2:]}"
    assert len(rows) == len(arff[2]), f"C={C}: {len(rows)} processed rows, ARFF has {len(arff[2])}"
    header = header[:-2]
    X = np.array([r[:-2] for r in rows], dtype=float)
    y = np.array([int(r[-2]) for r in rows])
    raw_y = np.array([r[-1] == "bad" for r in arff[2]], dtype=int)
    assert np.array_equal(y, raw_y), f"C={C}: processed class is not the raw class == bad"
    train = ~check_split(y, np.array([r[-1] for r in rows]), C)
    assert final["train_rows"] == train.sum() and final["test_rows"] == (~train).sum(), \
        f"C={C}: metrics say {final['train_rows']:g}/{final['test_rows']:g} train/test rows"
    prep, stats = check_preparation(header, X, train, arff, C)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # newton-cg at tol 1e-12 is the referee
        sk = LogisticRegression(C=C, solver="newton-cg", tol=1e-12, max_iter=10000)
        sk.fit(X[train], y[train])
    cnames, crows = read_csv(os.path.join(out, "coefficients.csv"))
    assert cnames == ["name", "value"], f"C={C}: coefficients.csv header {cnames}"
    coef_names = [r[0] for r in crows]
    coef_vals = [float(r[1]) for r in crows]
    assert coef_names == header + ["(intercept)"], f"C={C}: coefficients.csv names differ"
    theirs = dict(zip(header, sk.coef_.ravel()))
    theirs["(intercept)"] = sk.intercept_[0]
    coef_diff = max(abs(v - theirs[nm]) for nm, v in zip(coef_names, coef_vals))
    assert coef_diff < COEF_TOL, f"C={C}: coefficients differ from scikit-learn by {coef_diff}"

    test_rows = np.flatnonzero(~train)
    p_sk = sk.predict_proba(X[test_rows])[:, 1]
    auc_sk = roc_auc_score(y[test_rows], p_sk)
    auc_diff = abs(final["test_roc_auc"] - auc_sk)
    assert auc_diff < AUC_TOL, f"C={C}: test AUC {final['test_roc_auc']} != sklearn {auc_sk}"
    sh, srows = read_csv(os.path.join(out, "test_scores.csv"))
    assert sh == ["row", "probability"], f"C={C}: test_scores.csv header {sh}"
    assert [int(r[0]) for r in srows] == list(test_rows + 1), \
        f"C={C}: test_scores.csv rows are not the processed test rows"
    p_ours = np.array([float(r[1]) for r in srows])
    prob_diff = float(np.max(np.abs(p_ours - p_sk)))
    assert prob_diff < PROB_TOL, f"C={C}: hold-out probabilities differ by {prob_diff}"

    check_artifact(model_pb2, out, coef_names, coef_vals, final, header, stats, C)
    print(f"C={C:g}: n={len(rows)} train={train.sum()} d={X.shape[1]} "
          f"iterations={final['iterations']:g}")
    print(f"  max |coef - sklearn| = {coef_diff:.3e}; max |p - sklearn| = {prob_diff:.3e}")
    print(f"  test AUC ours {final['test_roc_auc']:.12f} sklearn {auc_sk:.12f} "
          f"(diff {auc_diff:.3e}); standardisation max error {prep:.1e}")


def main():
    trainer, arff_path = sys.argv[1], sys.argv[2]
    arff = read_arff(arff_path)
    tmp = tempfile.mkdtemp(prefix="credito-trainer-sklearn-")
    try:
        model_pb2 = load_protos(os.path.join(tmp, "pb"))
        for C in (1.0, 1e6):
            check(trainer, arff_path, arff, model_pb2, tmp, C)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    main()
