#!/usr/bin/python3
"""scikit-learn's side of the trainer benchmark: the pipeline `credito-trainer fit` runs, timed.

Parses an ARFF file (own parser: numbers as floats, '?' as missing, categories as strings),
holds out 20% with train_test_split(stratify=y, random_state=0), fits a ColumnTransformer
(numeric: SimpleImputer(median) + StandardScaler; categorical: OneHotEncoder(handle_unknown=
"ignore")) on the train rows, then LogisticRegression(C) with the chosen solver, and scores the
hold-out. No cross-validation (the benchmark runs the trainer with --cv-folds 1).
With --test-rows test_scores.csv (from credito-trainer fit) it holds out exactly the trainer's
rows instead and also reports the largest difference from the trainer's probabilities.
Prints one line of key=value figures. Debian python3-sklearn, python3-numpy.

Usage: sklearn_train.py FILE.arff [--C 1] [--solver lbfgs|newton-cg|newton-cholesky]
                        [--max-iter 1000] [--test-rows test_scores.csv]
"""
import argparse
import csv
import time
import warnings

T0 = time.monotonic()  # before the imports: scikit-learn's import is part of its cost

import numpy as np  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402


def read_arff(path):
    """(names, is_numeric, X as an object array of floats and strings, class column)."""
    names, numeric, lines = [], [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            s = line.strip()
            if not s or s.startswith("%"):
                continue
            low = s.lower()
            if low.startswith("@attribute"):
                _, name, spec = s.split(None, 2)
                names.append(name.strip("'"))
                numeric.append(spec.strip().lower() in ("numeric", "real", "integer"))
            elif low.startswith("@data"):
                lines = [ln for ln in f if ln.strip() and not ln.startswith("%")]
    cols = list(zip(*csv.reader(lines, quotechar="'", skipinitialspace=True)))
    del lines
    X = np.empty((len(cols[0]), len(cols) - 1), dtype=object)
    for j, col in enumerate(cols[:-1]):
        if numeric[j]:
            X[:, j] = np.array([np.nan if v == "?" else float(v) for v in col])
        else:
            X[:, j] = np.array(col, dtype=object)
    return names, numeric, X, np.array(cols[-1], dtype=object)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file")
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--solver", default="lbfgs",
                    choices=["lbfgs", "newton-cg", "newton-cholesky"])
    ap.add_argument("--max-iter", type=int, default=1000)
    ap.add_argument("--test-rows", help="test_scores.csv of credito-trainer fit: its hold-out")
    ap.add_argument("--positive", default="bad")
    a = ap.parse_args()

    t = time.monotonic()
    names, numeric, X, cls = read_arff(a.file)
    y = (cls == a.positive).astype(int)
    t_parse = time.monotonic() - t

    t = time.monotonic()
    ours = None
    if a.test_rows:
        with open(a.test_rows, encoding="utf-8") as f:
            r = list(csv.reader(f))[1:]
        te = np.array([int(x[0]) - 1 for x in r])
        ours = np.array([float(x[1]) for x in r])
        mask = np.zeros(len(y), dtype=bool)
        mask[te] = True
        Xtr, Xte, ytr, yte = X[~mask], X[te], y[~mask], y[te]
    else:
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    num = [j for j in range(X.shape[1]) if numeric[j]]
    cat = [j for j in range(X.shape[1]) if not numeric[j]]
    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num),
        ("cat", OneHotEncoder(handle_unknown="ignore"), cat)])
    Ptr = prep.fit_transform(Xtr)
    Pte = prep.transform(Xte)
    t_prep = time.monotonic() - t

    t = time.monotonic()
    model = LogisticRegression(C=a.C, solver=a.solver, max_iter=a.max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a convergence warning is reported as iterations
        model.fit(Ptr, ytr)
    t_fit = time.monotonic() - t

    t = time.monotonic()
    p = model.predict_proba(Pte)[:, 1]
    auc = roc_auc_score(yte, p)
    t_eval = time.monotonic() - t

    extra = ""
    if ours is not None:
        extra = (f" our_split=1 max_p_diff={np.max(np.abs(p - ours)):.3e}"
                 f" auc_of_our_probabilities={roc_auc_score(yte, ours):.6f}")
    print(f"sklearn solver={a.solver} rows={len(y)} train={len(ytr)} test={len(yte)} "
          f"width={Ptr.shape[1]} sparse={int(hasattr(Ptr, 'tocsr'))} "
          f"iterations={int(model.n_iter_[0])} parse={t_parse:.3f} prepare={t_prep:.3f} "
          f"fit={t_fit:.3f} evaluate={t_eval:.3f} total={time.monotonic() - T0:.3f} "
          f"test_auc={auc:.6f}{extra}")


if __name__ == "__main__":
    main()
