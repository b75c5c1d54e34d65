"""Rankers for the best sentence, compared on FITTING data only (issue 18; `python bench/rankers.py`, ~1 min).

Which sentence an answer quotes first is the answerability model's ranking. This compares it with two other
rankers fitted on the same rows: a listwise logistic regression (softmax over one question's candidates,
fitted by L-BFGS) and gradient-boosted trees (HistGradientBoosting, depth 4, 300 rounds, seed 18). Reads the
feature rows `make train` caches (`.qa/train/rows.npz`; run `make train` once to write it) and builds those of
the questions written for fitting (`eval/fit/`). Scored per set as the share of answerable questions whose
best sentence (top1) or one of whose best two (top2) holds the answer; `reachable` is the share with any
candidate that does. SQuAD out of fold by article (the five folds of `make train`); the gold dev half is in
every fit; the written questions in none. Writes `bench/results/rankers.json`. No test set is read.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.answer import train as T  # noqa: E402
from qa.answer.features import FEATURES  # noqa: E402
from qa.metrics import load_gold  # noqa: E402
from qa.settings import Settings  # noqa: E402

Ranker = Callable[[np.ndarray], np.ndarray]


def top_k(score: np.ndarray, y: np.ndarray, question: np.ndarray, answerable: np.ndarray) -> dict[str, float]:
    n = len(answerable)
    top1, top2, seen = np.zeros(n), np.zeros(n), np.zeros(n, dtype=int)
    for r in np.lexsort((np.arange(len(question)), -score, question)).tolist():
        q = question[r]
        if seen[q] < 2 and y[r]:
            top2[q] = 1
            top1[q] = max(top1[q], float(seen[q] == 0))
        seen[q] += 1
    reachable = np.zeros(n)
    np.maximum.at(reachable, question, y)
    m = answerable.astype(bool)
    return {"top1": round(float(top1[m].mean()), 4), "top2": round(float(top2[m].mean()), 4), "reachable": round(float(reachable[m].mean()), 4)}


def pointwise(x: np.ndarray, y: np.ndarray, q: np.ndarray, w: np.ndarray) -> Ranker:
    return T._fit(x, y, w, FEATURES).predict


def listwise(x: np.ndarray, y: np.ndarray, q: np.ndarray, w: np.ndarray, l2: float = 1.0) -> Ranker:
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-9] = 1.0
    has_answer = np.zeros(q.max() + 1)
    np.maximum.at(has_answer, q, y)
    keep = has_answer[q] > 0  # a question with no answering candidate says nothing about the order
    z, yk, qk, wk = (x[keep] - mean) / scale, y[keep].astype(float), q[keep], w[keep]
    groups, qi = np.unique(qk, return_inverse=True)
    wq = np.zeros(len(groups))
    np.maximum.at(wq, qi, wk)
    npos = np.bincount(qi, weights=yk)

    def loss(beta: np.ndarray) -> tuple[float, np.ndarray]:
        s = z @ beta
        mx = np.full(len(groups), -np.inf)
        np.maximum.at(mx, qi, s)
        e = np.exp(s - mx[qi])
        se = np.bincount(qi, weights=e, minlength=len(groups))
        lse = np.log(se) + mx
        pos = np.bincount(qi, weights=s * yk, minlength=len(groups)) / npos
        value = float((wq * (lse - pos)).sum() / wq.sum() + l2 * beta @ beta / (2 * len(groups)))
        grad = z.T @ ((e / se[qi] - yk / npos[qi]) * wq[qi]) / wq.sum() + l2 * beta / len(groups)
        return value, grad

    beta = minimize(loss, np.zeros(z.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 2000}).x
    return lambda rows: ((rows - mean) / scale) @ beta


def trees(x: np.ndarray, y: np.ndarray, q: np.ndarray, w: np.ndarray) -> Ranker:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_depth=4, max_iter=300, learning_rate=0.1, random_state=18)
    model.fit(x, y, sample_weight=w)
    return lambda rows: model.predict_proba(rows)[:, 1]


def main() -> int:
    work = ROOT / ".qa" / "train"
    saved = np.load(work / "rows.npz")
    sx, sy, sq, sa, sg = saved["sx"], saved["sy"], saved["sq"], saved["sa"], saved["sg"]
    gx, gy, gq, ga = saved["gx"], saved["gy"], saved["gq"], saved["ga"]
    items = load_gold(ROOT / "eval" / "fit" / "gold.jsonl")
    written = T._rows(Settings(data_dir=work, llm_base_url=None, OPENAI_API_KEY=None, collection="fit-docs"), ROOT / "eval" / "fit" / "docs",
                      items, ["fit-docs"] * len(items), context_from_history=True, log=lambda _: None)
    wx, wy, wq, wa = np.array(written.x), np.array(written.y), np.array(written.question), np.array(written.answerable)
    fold_of = {g: i % T.FOLDS for i, g in enumerate(sorted(set(sg.tolist())))}
    q_fold = np.array([fold_of[g] for g in sg.tolist()])
    gq_off = gq + sq.max() + 1
    results = {}
    for name, fit in (("pointwise logistic (today)", pointwise), ("listwise logistic", listwise), ("gradient-boosted trees", trees)):
        oof = np.zeros(len(sy))
        for fold in range(T.FOLDS):
            tr = q_fold[sq] != fold
            ranker = fit(np.concatenate([sx[tr], gx]), np.concatenate([sy[tr], gy]), np.concatenate([sq[tr], gq_off]),
                         np.concatenate([np.ones(tr.sum()), np.full(len(gy), T.GOLD_WEIGHT)]))
            oof[~tr] = ranker(sx[~tr])
        full = fit(np.concatenate([sx, gx]), np.concatenate([sy, gy]), np.concatenate([sq, gq_off]),
                   np.concatenate([np.ones(len(sy)), np.full(len(gy), T.GOLD_WEIGHT)]))
        results[name] = {"squad_out_of_fold": top_k(oof, sy, sq, sa), "gold_dev_in_fit": top_k(full(gx), gy, gq, ga),
                         "written_for_fitting": top_k(full(wx), wy, wq, wa)}
        print(name, json.dumps(results[name]), flush=True)
    out = ROOT / "bench" / "results" / "rankers.json"
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
