#!/usr/bin/python3
"""Synthetic German Credit for the trainer benchmark: ROWS rows with credit-g's exact ARFF header.

Each feature is drawn on its own from its empirical distribution in data/raw/credit-g.arff
(categories with their frequencies, numbers resampled from the real values), and the class from a
fixed logistic model over them: L2 logistic regression (C=1) fitted by Newton's method on the real
file, one-hot and standardised as the trainer prepares it. The hold-out AUC of a model refitted on
the synthetic rows is therefore meaningful (about 0.80). Deterministic for a given seed and
source file. Debian python3-numpy only.

Usage: gen_credit.py ROWS OUT.arff [--seed S] [--source credit-g.arff]
"""
import argparse
import csv
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "data", "raw", "credit-g.arff")
CHUNK = 100000  # rows formatted and written at a time

# The @attribute lines of data/raw/credit-g.arff, verbatim.
HEADER = """@relation german_credit
@attribute checking_status { '<0', '0<=X<200', '>=200', 'no checking'}
@attribute duration numeric
@attribute credit_history { 'no credits/all paid', 'all paid', 'existing paid', 'delayed previously', 'critical/other existing credit'}
@attribute purpose { 'new car', 'used car', furniture/equipment, radio/tv, 'domestic appliance', repairs, education, vacation, retraining, business, other}
@attribute credit_amount numeric
@attribute savings_status { '<100', '100<=X<500', '500<=X<1000', '>=1000', 'no known savings'}
@attribute employment { unemployed, '<1', '1<=X<4', '4<=X<7', '>=7'}
@attribute installment_commitment numeric
@attribute personal_status { 'male div/sep', 'female div/dep/mar', 'male single', 'male mar/wid', 'female single'}
@attribute other_parties { none, 'co applicant', guarantor}
@attribute residence_since numeric
@attribute property_magnitude { 'real estate', 'life insurance', car, 'no known property'}
@attribute age numeric
@attribute other_payment_plans { bank, stores, none}
@attribute housing { rent, own, 'for free'}
@attribute existing_credits numeric
@attribute job { 'unemp/unskilled non res', 'unskilled resident', skilled, 'high qualif/self emp/mgmt'}
@attribute num_dependents numeric
@attribute own_telephone { none, yes}
@attribute foreign_worker { yes, no}
@attribute class { good, bad}
@data
"""


def parse_header():
    """[(name, None | [(category, token as written in the header)])] for every attribute."""
    attrs = []
    for line in HEADER.splitlines():
        if not line.startswith("@attribute"):
            continue
        _, name, spec = line.split(None, 2)
        if spec == "numeric":
            attrs.append((name, None))
            continue
        toks = [t.strip() for t in spec.strip("{} ").split(",")]
        attrs.append((name, [(t.strip("'"), t) for t in toks]))
    return attrs


def read_source(path, attrs):
    """The real rows as columns: float arrays for numbers, category indexes for the others."""
    rows, data = [], False
    with open(path, encoding="utf-8") as f:
        for line in f:
            s = line.strip()
            if data and s and not s.startswith("%"):
                rows.append(next(csv.reader([s], quotechar="'")))
            data = data or s.lower().startswith("@data")
    cols = []
    for j, (_, cats) in enumerate(attrs):
        vals = [r[j] for r in rows]
        if cats is None:
            cols.append(np.array(vals, dtype=float))
        else:
            index = {c: k for k, (c, _) in enumerate(cats)}
            cols.append(np.array([index[v] for v in vals]))
    return cols


def design(cols, attrs, stats):
    """One-hot categories and standardised numbers (stats: per numeric column mean, std)."""
    parts = []
    for col, (name, cats), st in zip(cols, attrs, stats):
        if cats is None:
            parts.append(((col - st[0]) / st[1])[:, None])
        else:
            parts.append((col[:, None] == np.arange(len(cats))[None, :]).astype(float))
    return np.hstack(parts)


def fit_logreg(X, y, C=1.0):
    """L2 logistic regression (scikit-learn's objective, intercept unpenalised) by Newton."""
    Xb = np.hstack([X, np.ones((X.shape[0], 1))])
    w = np.zeros(Xb.shape[1])
    reg = np.full(Xb.shape[1], 1.0 / C)
    reg[-1] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-Xb @ w))
        g = Xb.T @ (p - y) + reg * w
        H = (Xb * (p * (1 - p))[:, None]).T @ Xb + np.diag(reg)
        step = np.linalg.solve(H, g)
        w -= step
        if np.max(np.abs(step)) < 1e-12:
            break
    return w


def chunk(rng, n, real, feats, target, stats, w):
    """n synthetic data lines: features drawn independently, the class from the model w."""
    cols, out = [], []
    for c, (_, cats) in zip(real, feats):
        if cats is None:
            values, counts = np.unique(c, return_counts=True)
            k = rng.choice(len(values), size=n, p=counts / counts.sum())
            cols.append(values[k])
            out.append(np.array(["%g" % v for v in values], dtype=object)[k])
        else:
            freq = np.bincount(c, minlength=len(cats)) / len(c)
            k = rng.choice(len(cats), size=n, p=freq)
            cols.append(k)
            out.append(np.array([t for _, t in cats], dtype=object)[k])
    z = design(cols, feats, stats) @ w[:-1] + w[-1]
    bad = rng.random(n) < 1.0 / (1.0 + np.exp(-z))
    (_, good_tok), (_, bad_tok) = target[1]
    out.append(np.where(bad, bad_tok, good_tok).astype(object))
    return "".join(",".join(r) + "\n" for r in zip(*out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rows", type=int)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--source", default=SOURCE)
    a = ap.parse_args()

    attrs = parse_header()
    feats, target = attrs[:-1], attrs[-1]
    real = read_source(a.source, attrs)
    stats = [(c.mean(), c.std() or 1.0) if cats is None else None
             for c, (_, cats) in zip(real, feats)]
    w = fit_logreg(design(real[:-1], feats, stats), (real[-1] == 1).astype(float))

    rng = np.random.default_rng(a.seed)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(f"% Synthetic German Credit: bench/gen_credit.py {a.rows} --seed {a.seed}\n")
        f.write(HEADER)
        for start in range(0, a.rows, CHUNK):
            f.write(chunk(rng, min(CHUNK, a.rows - start), real, feats, target, stats, w))
    print(f"{a.out}: {a.rows} rows, seed {a.seed}", file=sys.stderr)


if __name__ == "__main__":
    main()
