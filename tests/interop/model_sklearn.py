#!/usr/bin/env python3
"""Parity of common/model with scikit-learn (Debian python3-sklearn, python3-numpy).

model_tool prepares German Credit (every row) and fits L2 logistic regression; scikit-learn
fits LogisticRegression on the SAME prepared matrix. Coefficients and intercept must agree to
1e-4 (issue 4), and our AUC / log loss / Brier on our probabilities must equal sklearn.metrics
to 1e-9. Usage: model_sklearn.py MODEL_TOOL CREDIT_G_ARFF
"""
import json
import subprocess
import sys
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score


def check(tool, arff, C):
    out = subprocess.run([tool, arff, repr(C)], check=True, capture_output=True, text=True)
    r = json.loads(out.stdout)
    X, y = np.array(r["X"]), np.array(r["y"])
    ours = np.append(np.array(r["coef"]), r["intercept"])
    assert r["converged"] == 1, f"C={C}: our solver did not converge"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs may warn at C=1e6; newton-cg is the referee
        sk = LogisticRegression(C=C, solver="newton-cg", tol=1e-12, max_iter=10000).fit(X, y)
    theirs = np.append(sk.coef_.ravel(), sk.intercept_)
    diff = float(np.max(np.abs(ours - theirs)))
    print(f"C={C:g}: n={X.shape[0]} d={X.shape[1]} iterations={r['iterations']} "
          f"fit {r['seconds'] * 1e3:.2f} ms, max |coef - sklearn| = {diff:.3e}")
    assert diff < 1e-4, f"C={C}: coefficients differ from scikit-learn by {diff}"

    p = np.array(r["p"])
    for name, mine, ref in [
        ("auc", r["auc"], roc_auc_score(y, p)),
        ("log_loss", r["log_loss"], log_loss(y, p)),
        ("brier", r["brier"], brier_score_loss(y, p)),
        ("auc vs sklearn model", r["auc"], roc_auc_score(y, sk.predict_proba(X)[:, 1])),
    ]:
        tol = 1e-9 if "vs" not in name else 1e-3
        assert abs(mine - ref) <= tol, f"C={C}: {name} {mine} != sklearn {ref}"
        print(f"  {name}: ours {mine:.12f} sklearn {ref:.12f}")


def main():
    tool, arff = sys.argv[1], sys.argv[2]
    for C in (1.0, 1e6):
        check(tool, arff, C)
    print("ok")


if __name__ == "__main__":
    main()
