"""How sure is the reader retry's verdict? Paired bootstrap of the stack's AUROC gain over today's score (issue 18).

Fitting data only. Reads the candidates `reader_train` cached (`.qa/train-reader/candidates.pkl`, from
`python -m qa.answer.reader_train --collect-only`) and the reader artifact (`qa/answer/reader.safetensors`,
NumPy, float16 weights), refits today's model as the trainer does, scores each question of the gold dev half
and `eval/fit/` (stack from the artifact, fitted on SQuAD half B) and of SQuAD half B (stack refitted out of
fold by article, as the trainer measures it), then resamples questions 2,000 times (seed 18) and prints the
AUROC gain's 95% interval per set. No test set is read.

    .venv/bin/python bench/reader_ci.py [--out bench/results/reader-retry-ci.json]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "reader-retry-ci.json")
    args = parser.parse_args()
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    from sklearn.linear_model import LogisticRegression

    from qa.answer import reader_train as rt
    from qa.answer.reader import ARTIFACT, load_reader, logit
    from qa.answer.train import auroc

    # the trainer pickles its questions while running as __main__
    sys.modules["__main__"].Question = rt.Question  # type: ignore[attr-defined]
    squad, gold, written = pickle.loads((ROOT / ".qa" / "train-reader" / "candidates.pkl").read_bytes())
    rt.first_stage(squad, gold, written)
    reader = load_reader(ARTIFACT)
    k = reader.stack.top
    groups = sorted({q.group for q in squad})
    half = {g: i % 2 for i, g in enumerate(groups)}
    held = [q for q in squad if half[q.group] == 1]

    def read(qs: list[rt.Question]) -> list[np.ndarray]:
        return [reader.logits(q.text, [q.texts[j] for j in rt.top(q, k)]) for q in qs]

    def best(q: rt.Question) -> float:
        return float(q.first.max()) if len(q.first) else 0.0

    out: dict[str, object] = {"stack_top": k, "resamples": 2000, "seed": rt.SEED}
    scored: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for name, qs in (("gold", gold), ("written", written)):
        r = read(qs)
        stacked = np.array([float(reader.stack.predict(logit(q.first[rt.top(q, k)]), s).max()) if len(s) else 0.0 for q, s in zip(qs, r)])
        scored[name] = (np.array([best(q) for q in qs]), stacked, np.array([q.answerable for q in qs]))
    r = read(held)
    first = [logit(q.first[rt.top(q, k)]) for q in held]
    labels = [q.y[rt.top(q, k)] for q in held]
    h_groups = sorted({q.group for q in held})
    fold_of = {g: i % rt.STACK_FOLDS for i, g in enumerate(h_groups)}
    stacked = np.zeros(len(held))
    for fold in range(rt.STACK_FOLDS):
        use = [i for i, q in enumerate(held) if fold_of[q.group] != fold and len(first[i])]
        x = np.concatenate([np.stack([first[i], r[i]], axis=1) for i in use])
        m = LogisticRegression(C=1.0, max_iter=1000).fit(x, np.concatenate([labels[i] for i in use]))
        for i, q in enumerate(held):
            if fold_of[q.group] == fold and len(first[i]):
                z = np.stack([first[i], r[i]], axis=1) @ m.coef_[0] + m.intercept_[0]
                stacked[i] = float((1 / (1 + np.exp(-z))).max())
    scored["squad_half_b"] = (np.array([best(q) for q in held]), stacked, np.array([q.answerable for q in held]))

    rng = np.random.default_rng(rt.SEED)
    for name, (today, stack, ans) in scored.items():
        gains = []
        for _ in range(2000):
            pick = rng.integers(0, len(ans), len(ans))
            a, b = auroc(today[pick], ans[pick]), auroc(stack[pick], ans[pick])
            if a is not None and b is not None:
                gains.append(b - a)
        lo, hi = np.percentile(gains, [2.5, 97.5])
        out[name] = {
            "questions": len(ans), "answerable": int(ans.sum()),
            "today_auroc": round(auroc(today, ans) or 0.0, 4), "stacked_auroc": round(auroc(stack, ans) or 0.0, 4),
            "gain": round((auroc(stack, ans) or 0.0) - (auroc(today, ans) or 0.0), 4),
            "gain_95": [round(float(lo), 4), round(float(hi), 4)], "share_of_resamples_with_a_gain": round(float(np.mean(np.array(gains) > 0)), 3),
        }
    text = json.dumps(out, indent=1, sort_keys=True) + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
