"""Do the questions written for fitting belong in the answerability model's weights? (issue 18; fitting data only)

`python bench/abstain_written.py` after `python -m qa.answer.train --out /tmp/x.json` has cached the SQuAD and
gold-dev feature rows in `.qa/train/rows.npz`. The written questions (`eval/fit/gold.jsonl`, about `eval/fit/docs/`)
are held out a group of documents at a time: each fold's model and threshold are fitted without the documents it
is scored on, so the figures are what the rule does on business documents it has not seen. For each way of fitting:

- written, held out by document: AUROC of the pooled held-out scores, and the false-abstain rate and abstain
  recall when each fold's threshold is the highest keeping false abstentions <= 0.10 on every set it was fitted on;
- SQuAD and the gold dev half: AUROC in sample (they are in every fold's fit).

Writes `bench/results/abstain_written.json`. No test set is read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.answer import train as T  # noqa: E402
from qa.answer.features import FEATURES  # noqa: E402
from qa.answer.model import Logistic  # noqa: E402

FOLDS = 8


def written(work: Path, fit_docs: Path) -> tuple[T.Rows, list[str]]:
    from qa.metrics import load_gold
    from qa.settings import Settings

    items = load_gold(fit_docs / "gold.jsonl")
    files = sorted(p for p in (fit_docs / "docs").iterdir() if p.is_file())
    docs = T.evidence_sources(items, files, name=lambda p: p.name)
    first = next(d for d in docs if d)
    docs = [d or first for d in docs]
    rows = T._rows(
        Settings(data_dir=work, llm_base_url=None, OPENAI_API_KEY=None, collection="fit-docs"), fit_docs / "docs", items,
        docs, context_from_history=True, log=lambda m: print(m, file=sys.stderr),
    )
    return rows, docs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / ".qa" / "train")
    parser.add_argument("--fit-docs", type=Path, default=ROOT / "eval" / "fit")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "abstain_written.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    saved = np.load(args.work / "rows.npz", allow_pickle=False)
    sx, sy, sq, sa = saved["sx"], saved["sy"], saved["sq"], saved["sa"].astype(bool)
    gx, gy, gq, ga = saved["gx"], saved["gy"], saved["gq"], saved["ga"].astype(bool)
    rows, docs = written(args.work, args.fit_docs)
    wx, wy, wq, wa = np.array(rows.x), np.array(rows.y), np.array(rows.question), np.array(rows.answerable)
    names = sorted(set(docs))
    doc_fold = {d: i % FOLDS for i, d in enumerate(names)}
    q_fold = np.array([doc_fold[d] for d in docs])
    r_fold = q_fold[wq]
    print(f"written: {len(wa)} questions ({int((~wa).sum())} unanswerable) on {len(names)} documents, {FOLDS} folds; "
          f"squad {len(sa)}, gold dev {len(ga)}", flush=True)

    def fit(parts: list[tuple[np.ndarray, np.ndarray, float]]) -> Logistic:
        """One model over the (rows, labels, weight) sets whose weight is above 0."""
        parts = [(x, y, w) for x, y, w in parts if w > 0]
        return T._fit(np.concatenate([x for x, _, _ in parts]), np.concatenate([y for _, y, _ in parts]),
                      np.concatenate([np.full(len(y), w) for _, y, w in parts]), FEATURES)

    results: dict[str, Any] = {}
    methods: dict[str, tuple[float, float, float]] = {  # name: (SQuAD weight, gold-dev weight, written weight)
        "today: SQuAD + gold dev x10 in the weights, written in the threshold only": (1.0, T.GOLD_WEIGHT, 0.0),
        "written x3 in the weights": (1.0, T.GOLD_WEIGHT, 3.0),
        "written x10 in the weights": (1.0, T.GOLD_WEIGHT, 10.0),
        "written x30 in the weights": (1.0, T.GOLD_WEIGHT, 30.0),
        "written x100 in the weights": (1.0, T.GOLD_WEIGHT, 100.0),
        "gold dev x1 + written x1 only (no SQuAD)": (0.0, 1.0, 1.0),
    }
    for name, (ws, wg, ww) in methods.items():
        t0 = time.perf_counter()
        held = np.zeros(len(wa))
        far_n = rec_n = 0
        thresholds = []
        for k in range(FOLDS):
            tr_r, te_q = r_fold != k, q_fold == k
            model = fit([(sx, sy, ws), (gx, gy, wg), (wx[tr_r], wy[tr_r], ww)])
            # the written questions of the other folds, renumbered 0..n-1, and this fold's
            tr_q = np.flatnonzero(~te_q)
            keep = np.isin(wq, tr_q)
            fit_sets = [
                (T.question_scores(model, sx, sq, len(sa)), sa), (T.question_scores(model, gx, gq, len(ga)), ga),
                (T.question_scores(model, wx[keep], np.searchsorted(tr_q, wq[keep]), len(tr_q)), wa[tr_q]),
            ]
            t = T._threshold(fit_sets, 0.10)
            thresholds.append(t)
            te = np.flatnonzero(te_q)
            rows_te = np.isin(wq, te)
            s = T.question_scores(model, wx[rows_te], np.searchsorted(te, wq[rows_te]), len(te))
            held[te] = s
            far_n += int(((s < t) & wa[te]).sum())
            rec_n += int(((s < t) & ~wa[te]).sum())
        full = fit([(sx, sy, ws), (gx, gy, wg), (wx, wy, ww)])
        out: dict[str, Any] = {
            "written_held_out_by_document": {
                "auroc": round(T.auroc(held, wa) or 0.0, 4),
                "false_abstain_rate": round(far_n / int(wa.sum()), 4),
                "abstain_recall": round(rec_n / int((~wa).sum()), 4),
                "fold_thresholds": [round(t, 4) for t in thresholds],
            },
            "squad_in_sample_auroc": round(T.auroc(T.question_scores(full, sx, sq, len(sa)), sa) or 0.0, 4),
            "gold_dev_in_sample_auroc": round(T.auroc(T.question_scores(full, gx, gq, len(ga)), ga) or 0.0, 4),
        }
        results[name] = out
        h = out["written_held_out_by_document"]
        print(f"{name:<75} written AUROC {h['auroc']:.3f} far {h['false_abstain_rate']:.3f} recall {h['abstain_recall']:.3f} | "
              f"squad {out['squad_in_sample_auroc']:.3f} gold-dev {out['gold_dev_in_sample_auroc']:.3f} ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    args.out.write_text(json.dumps({"folds": FOLDS, "documents": len(names), "questions": len(wa), "methods": results}, indent=1) + "\n",
                        encoding="utf-8")
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
