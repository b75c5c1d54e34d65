"""Levers for the abstention decision, compared on FITTING data only (issue 18; `python bench/abstain_levers.py`).

Reads the feature rows `make train` cached (`.qa/train/rows.npz`: SQuAD `squad2-train-19` and the gold
dev half; run `python -m qa.answer.train --out /tmp/x.json` once to write it) and builds the rows of the
questions written for fitting (`eval/fit/`). Every method is scored the same way:

- SQuAD out of fold by article (the five folds `make train` uses): nothing of a held-out article is fitted on;
- the gold dev half: in the sentence model's fit (as today), out of the question-level stage's;
- `eval/fit/gold.jsonl`: in no fit, except where a method says "written in" (then leave one document out).

For each: AUROC per set, and false-abstain rate / abstain recall at the threshold `make train` would choose
(the highest keeping false abstentions <= 0.10 on each of the three sets). Writes
`bench/results/abstain_levers.json`. No test set is read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.answer.features import FEATURES  # noqa: E402
from qa.answer import train as T  # noqa: E402

F = {name: i for i, name in enumerate(FEATURES)}
# The three documents written for fitting before issue 18's abstention work; the other four came with it.
FIRST_DOCS = ("dublin-office-facilities.md", "gym-membership-terms.md", "orbit-notes-release-2.4.md")


def doc_of(items: list[Any], docs: Path) -> list[str]:
    """The written document each fitting question is about: the one holding its evidence (else the previous one's)."""
    return T.evidence_sources(items, sorted(p for p in docs.iterdir() if p.is_file()), name=lambda p: p.name)


def written_rows(work: Path, fit_docs: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    from qa.metrics import load_gold
    from qa.settings import Settings

    items = load_gold(fit_docs / "gold.jsonl")
    docs = doc_of(items, fit_docs / "docs")
    # Questions about no document (absent everywhere) are spread over the documents round-robin.
    for i, d in enumerate(docs):
        if not d:
            names = sorted(p.name for p in (fit_docs / "docs").iterdir())
            docs[i] = names[i % len(names)]
    rows = T._rows(
        Settings(data_dir=work, llm_base_url=None, OPENAI_API_KEY=None, collection="fit-docs"), fit_docs / "docs", items,
        docs, context_from_history=True, log=lambda m: print(m, file=sys.stderr),
    )
    return {"x": np.array(rows.x), "y": np.array(rows.y), "q": np.array(rows.question), "a": np.array(rows.answerable)}, docs


def question_features(x: np.ndarray, p: np.ndarray, q: np.ndarray, n: int) -> np.ndarray:
    """One row a question from its candidate rows `x` and their sentence probabilities `p`."""
    out = np.zeros((n, 24))
    order = np.lexsort((-p, q))
    xs, ps, qs = x[order], p[order], q[order]
    starts = np.searchsorted(qs, np.arange(n))
    ends = np.searchsorted(qs, np.arange(n), side="right")
    for i in range(n):
        a, b = starts[i], ends[i]
        if a == b:
            continue
        pp, xx = ps[a:b], xs[a:b]
        p1 = pp[0]
        p2 = pp[1] if b - a > 1 else 0.0
        lg = lambda v: float(np.log(max(v, 1e-6) / max(1 - v, 1e-6)))  # noqa: E731
        best = xx[0]
        out[i] = [
            lg(p1), lg(p1) - lg(p2), float(pp[:3].mean()), float(np.log1p(b - a)), float((pp >= 0.5 * p1).sum()),
            best[F["coverage"]], best[F["coverage_window"]], best[F["entity_coverage"]], best[F["missing_idf"]],
            best[F["typed"]], best[F["typed_strict"]], best[F["dense"]], best[F["bm25"]], best[F["chunk_rank"]],
            best[F["numbers_repeated"]],
            best[F["count_noun_missing"]] + best[F["calendar_missing"]] + best[F["percent_missing"]] + best[F["country_conflict"]],
            best[F["unseen_terms"]], best[F["entity_unseen"]], best[F["best_coverage"]], best[F["best_dense"]],
            best[F["strict_kind"]], float(xx[:, F["coverage_window"]].max()), float(xx[:, F["bm25"]].max()),
            float(xx[:, F["entity_coverage"]].max()),
        ]
    return out


QFEATURES = (
    "logit_best", "logit_gap", "top3_mean", "log_candidates", "near_best", "best_coverage_s", "best_window", "best_entity",
    "best_missing_idf", "best_typed", "best_typed_strict", "best_dense_s", "best_bm25", "best_chunk_rank", "best_numbers",
    "best_type_conflicts", "unseen_terms", "entity_unseen", "best_coverage", "best_dense", "strict_kind", "max_window",
    "max_bm25", "max_entity",
)


def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None, c: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-9] = 1.0
    m = LogisticRegression(C=c, max_iter=5000, tol=1e-6).fit((x - mean) / scale, y, sample_weight=w)
    return lambda z: m.predict_proba((z - mean) / scale)[:, 1]


def fit_trees(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None, **kw: Any) -> Callable[[np.ndarray], np.ndarray]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    params = {"max_iter": 200, "learning_rate": 0.05, "max_depth": 3, "min_samples_leaf": 40, "l2_regularization": 1.0,
              "random_state": 18, "early_stopping": False}
    params.update(kw)
    m = HistGradientBoostingClassifier(**params).fit(x, y, sample_weight=w)
    return lambda z: m.predict_proba(z)[:, 1]


def best_per_question(p: np.ndarray, q: np.ndarray, n: int) -> np.ndarray:
    best = np.zeros(n)
    np.maximum.at(best, q, p)
    return best


def report(name: str, sets: dict[str, tuple[np.ndarray, np.ndarray]], ceiling: float = 0.10) -> dict[str, Any]:
    t = T._threshold(list(sets.values()), ceiling)
    out: dict[str, Any] = {"threshold": round(t, 5)}
    for key, (s, a) in sets.items():
        far, rec = T._rates(s, a, t)
        own = T._threshold([(s, a)], ceiling)
        out[key] = {
            "auroc": round(T.auroc(s, a) or 0.0, 4), "false_abstain": round(far, 4), "abstain_recall": round(rec, 4),
            "recall_at_own_threshold": round(T._rates(s, a, own)[1], 4),
        }
    line = " | ".join(f"{k} {v['auroc']:.3f} {v['false_abstain']:.3f}/{v['abstain_recall']:.3f} ({v['recall_at_own_threshold']:.3f})" for k, v in out.items() if k != "threshold")
    print(f"{name:<44} t={t:.4f} | {line}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / ".qa" / "train")
    parser.add_argument("--fit-docs", type=Path, default=ROOT / "eval" / "fit")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "abstain_levers.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    saved = np.load(args.work / "rows.npz", allow_pickle=False)
    sx, sy, sq, sa, sg = saved["sx"], saved["sy"], saved["sq"], saved["sa"].astype(bool), saved["sg"]
    gx, gy, gq, ga = saved["gx"], saved["gy"], saved["gq"], saved["ga"].astype(bool)
    w, wdocs = written_rows(args.work, args.fit_docs)
    wx, wy, wq, wa = w["x"], w["y"], w["q"], w["a"].astype(bool)
    ns, ng, nw = len(sa), len(ga), len(wa)
    groups = sorted(set(sg.tolist()))
    fold_of = {g: i % T.FOLDS for i, g in enumerate(groups)}
    qfold = np.array([fold_of[g] for g in sg])
    rfold = qfold[sq]
    print(f"rows: squad {len(sy)} ({ns} questions), gold dev {len(gy)} ({ng}), written {len(wy)} ({nw}); "
          f"written documents {sorted(set(wdocs))}", flush=True)
    print("method | set AUROC false_abstain/abstain_recall at the joint threshold (recall at the set's own 0.10 threshold)")
    results: dict[str, Any] = {}

    def sentence_stage(fit: Callable[..., Callable[[np.ndarray], np.ndarray]], **kw: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Out-of-fold sentence probabilities on SQuAD, and the full model's on gold dev and written rows."""
        oof = np.zeros(len(sy))
        for k in range(T.FOLDS):
            tr = rfold != k
            m = fit(np.concatenate([sx[tr], gx]), np.concatenate([sy[tr], gy]),
                    np.concatenate([np.ones(tr.sum()), np.full(len(gy), T.GOLD_WEIGHT)]), **kw)
            oof[~tr] = m(sx[~tr])
        m = fit(np.concatenate([sx, gx]), np.concatenate([sy, gy]), np.concatenate([np.ones(len(sy)), np.full(len(gy), T.GOLD_WEIGHT)]), **kw)
        return oof, m(gx), m(wx)

    stages = {"sentence logistic (today)": sentence_stage(fit_logistic)}
    t0 = time.perf_counter()
    stages["sentence trees (HGB)"] = sentence_stage(fit_trees)
    print(f"  (sentence trees: {time.perf_counter() - t0:.0f} s for 6 fits)", flush=True)
    wdoc = np.array(wdocs)
    for sname, (ps, pg, pw) in stages.items():
        bs, bg, bw = best_per_question(ps, sq, ns), best_per_question(pg, gq, ng), best_per_question(pw, wq, nw)
        results[sname] = report(sname, {"squad_oof": (bs, sa), "gold_dev": (bg, ga), "written": (bw, wa)})
        qs, qg, qw = question_features(sx, ps, sq, ns), question_features(gx, pg, gq, ng), question_features(wx, pw, wq, nw)
        for qname, fit in (("logistic", fit_logistic), ("trees", fit_trees)):
            oof = np.zeros(ns)
            for k in range(T.FOLDS):
                tr = qfold != k
                oof[~tr] = fit(qs[tr], sa[tr])(qs[~tr])
            m = fit(qs, sa)
            name = f"{sname} + question-level {qname}"
            results[name] = report(name, {"squad_oof": (oof, sa), "gold_dev": (m(qg), ga), "written": (m(qw), wa)})
        if sname != "sentence logistic (today)":
            continue
        # Each question-level feature alone, and one weight on it subtracted from the best sentence's logit.
        sets = {"squad_oof": (qs, sa), "gold_dev": (qg, ga), "written": (qw, wa)}
        results["single_feature_auroc"] = {
            f: {k: round(T.auroc(X[:, i], a) or 0.0, 4) for k, (X, a) in sets.items()} for i, f in enumerate(QFEATURES)
        }
        results["best_logit_minus_weight"] = {
            f"{f} x{b}": {k: round(T.auroc(X[:, 0] - b * X[:, QFEATURES.index(f)], a) or 0.0, 4) for k, (X, a) in sets.items()}
            for f in ("unseen_terms", "best_missing_idf", "entity_unseen") for b in (0.5, 1, 2, 4)
        }
        # Question-level logistic with the gold dev half and the written questions in its fit (x10 each):
        # SQuAD out of fold, gold dev 6-fold, written leave one document out.
        for cols in (QFEATURES, ("logit_best", "logit_gap", "unseen_terms", "best_missing_idf", "max_window")):
            idx = [QFEATURES.index(c) for c in cols]
            S, G, W = qs[:, idx], qg[:, idx], qw[:, idx]

            def fit_with(parts: list[tuple[np.ndarray, np.ndarray, float]]) -> Callable[[np.ndarray], np.ndarray]:
                return fit_logistic(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                                    np.concatenate([np.full(len(p[1]), p[2]) for p in parts]))

            gfold = np.arange(ng) % 6
            oof = np.zeros(ns)
            for k in range(T.FOLDS):
                tr = qfold != k
                oof[~tr] = fit_with([(S[tr], sa[tr], 1.0), (G, ga, 10.0), (W, wa, 10.0)])(S[~tr])
            gout = np.zeros(ng)
            for k in range(6):
                tr = gfold != k
                gout[~tr] = fit_with([(S, sa, 1.0), (G[tr], ga[tr], 10.0), (W, wa, 10.0)])(G[~tr])
            wout = np.zeros(nw)
            for d in sorted(set(wdocs)):
                tr = wdoc != d
                wout[~tr] = fit_with([(S, sa, 1.0), (G, ga, 10.0), (W[tr], wa[tr], 10.0)])(W[~tr])
            name = f"{sname} + question-level logistic ({len(cols)} features), gold and written in (x10; held out by fold/document)"
            results[name] = report(name, {"squad_oof": (oof, sa), "gold_dev": (gout, ga), "written": (wout, wa)})

    # The written questions in the sentence model's weights (x10), scored leave one written document out.
    wrdoc = wdoc[wq]
    oof = np.zeros(len(sy))
    for k in range(T.FOLDS):
        tr = rfold != k
        oof[~tr] = fit_logistic(np.concatenate([sx[tr], gx, wx]), np.concatenate([sy[tr], gy, wy]),
                                np.concatenate([np.ones(tr.sum()), np.full(len(gy) + len(wy), T.GOLD_WEIGHT)]))(sx[~tr])
    wp = np.zeros(len(wy))
    for d in sorted(set(wdocs)):
        tr = wrdoc != d
        wp[~tr] = fit_logistic(np.concatenate([sx, gx, wx[tr]]), np.concatenate([sy, gy, wy[tr]]),
                               np.concatenate([np.ones(len(sy)), np.full(len(gy) + tr.sum(), T.GOLD_WEIGHT)]))(wx[~tr])
    m = fit_logistic(np.concatenate([sx, gx, wx]), np.concatenate([sy, gy, wy]),
                     np.concatenate([np.ones(len(sy)), np.full(len(gy) + len(wy), T.GOLD_WEIGHT)]))
    name = "sentence logistic, written in the weights (x10; written held out by document)"
    results[name] = report(name, {"squad_oof": (best_per_question(oof, sq, ns), sa), "gold_dev": (best_per_question(m(gx), gq, ng), ga),
                                  "written": (best_per_question(wp, wq, nw), wa)})

    # Threshold rules for today's score, checked on written documents the threshold was not chosen on.
    ps, pg, pw = stages["sentence logistic (today)"]
    S, G, W = best_per_question(ps, sq, ns), best_per_question(pg, gq, ng), best_per_question(pw, wq, nw)
    first = np.array([d in FIRST_DOCS for d in wdocs])
    rules: dict[str, Callable[[list[tuple[np.ndarray, np.ndarray]]], float]] = {
        "each set (make train)": lambda sets: T._threshold(sets, 0.10),
        "pooled": lambda sets: T._threshold([(np.concatenate([s for s, _ in sets]), np.concatenate([a for _, a in sets]))], 0.10),
    }
    results["threshold_rules"] = {}
    for rname, rule in rules.items():
        t_first = rule([(S, sa), (G, ga), (W[first], wa[first])])
        far, rec = T._rates(W[~first], wa[~first], t_first)
        held_in, held_ans, ts = [], [], []
        for d in sorted(set(wdocs)):
            keep = wdoc != d
            t = rule([(S, sa), (G, ga), (W[keep], wa[keep])])
            ts.append(round(t, 4))
            held_in.append(W[~keep] >= t)
            held_ans.append(wa[~keep])
        answered, ans = np.concatenate(held_in), np.concatenate(held_ans)
        t_all = rule([(S, sa), (G, ga), (W, wa)])
        out = {
            "threshold_first_3_documents": round(t_first, 4),
            "new_4_documents_at_it": {"false_abstain": round(far, 4), "abstain_recall": round(rec, 4)},
            "leave_one_document_out": {"thresholds": ts, "false_abstain": round(float((~answered[ans]).mean()), 4),
                                        "abstain_recall": round(float((~answered[~ans]).mean()), 4)},
            "threshold_all_7_documents": round(t_all, 4),
            "at_it": {k: dict(zip(("false_abstain", "abstain_recall"), (round(v, 4) for v in T._rates(s, a, t_all))))
                      for k, (s, a) in {"squad_oof": (S, sa), "gold_dev": (G, ga), "written": (W, wa)}.items()},
        }
        results["threshold_rules"][rname] = out
        print(f"threshold rule {rname}: {json.dumps(out)}", flush=True)
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["question_features"] = list(QFEATURES)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
