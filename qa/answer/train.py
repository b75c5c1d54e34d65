"""`make train`: fit the answerability model and the follow-up decision on the fitting data only, deterministically.

Fitting data (eval/README.md): `../shared/benchmarks/squad2-train-19/` (validated by article),
the dev ids of `eval/split.json` over `eval/gold.jsonl`, and what `eval/fit/` holds (questions on
documents written for fitting, and `follow_ups.jsonl`). Every
retrieved sentence becomes a row of `FEATURES`, labelled 1 when the question is answerable and the
sentence holds an accepted answer inside its evidence; a logistic regression is fitted on the rows,
and the abstention threshold is the highest one that keeps false abstentions at most
`--max-false-abstain` on each of three fitting sets: the SQuAD questions (out-of-fold), the gold dev
half, and the questions written for fitting (`eval/fit/gold.jsonl`, short business documents unlike
SQuAD's Wikipedia articles). The written questions constrain the threshold only; the weights are
fitted without them.

    python -m qa.answer.train [--out qa/answer/answerability.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from qa.answer.extractive import SECOND_POOL
from qa.answer.features import FEATURES, Featurizer
from qa.answer.followup import FOLLOW_UP_FEATURES, follow_up_features
from qa.answer.model import ARTIFACT, Logistic
from qa.metrics import load_gold
from qa.settings import PROJECT_ROOT, Settings
from qa.store import SentenceHit, Store
from qa.text import normalize

SQUAD = PROJECT_ROOT.parent / "shared" / "benchmarks" / "squad2-train-19"
GOLD_WEIGHT = 10.0  # 36 dev items beside 6,317 SQuAD questions: weighted to about a tenth of the questions
FOLDS = 5
C = 1.0
# The runner-up sentence is quoted beside the best unless it scores under a floor: the highest floor that covers
# at most this share fewer answerable fitting questions than quoting it always. Under the floor, a sentence of the
# best one's passage among the best SECOND_POOL may follow it instead (it often completes it). At 0.005, two
# written questions could swing the floor from 0.038 to 0.016 (a second quote after almost every answer).
SECOND_TOLERANCE = 0.01


@dataclass
class Rows:
    """Feature rows of one fitting set, with each row's question and label and each question's group."""

    x: list[np.ndarray]
    y: list[int]
    question: list[int]
    passage: list[int]  # the row's passage: its rank among the question's retrieved ones
    answerable: list[bool]
    group: list[str]


def _label(sentence: str, answers: tuple[str, ...], evidence: tuple[str, ...]) -> int:
    s = normalize(sentence)
    if not any(normalize(a) in s for a in answers if a.strip()):
        return 0
    return int(any(normalize(e) in s or s in normalize(e) for e in evidence))


def evidence_sources(items: list[Any], files: list[Path], name: Callable[[Path], str] = lambda p: p.stem) -> list[str]:
    """Each question's document (`name` of one of `files`): the file holding its evidence, else the previous question's."""
    texts = {name(p): normalize(p.read_text(encoding="utf-8")) for p in files}
    out, last = [], ""
    for item in items:
        for e in item.evidence:
            hit = next((name for name, t in texts.items() if normalize(e) in t), None)
            if hit:
                last = hit
                break
        out.append(last)
    return out


class _ExactDense:
    """The store, searched exactly: nearest sentences by cosine in NumPy, ties broken by corpus order.

    Chroma's HNSW search is approximate, and the order of near-equal neighbours it returns can change
    from one process to the next on the same index, which changed a few of the 150k candidate rows, and
    so the artifact, from run to run. The fitting corpora are small (a few thousand sentences each), so
    `make train` ranks them exactly; everything else is the store's own.
    """

    def __init__(self, store: Store, chunks: list[Any]) -> None:
        keys = [(c.id, i) for c in chunks for i in range(len(c.sentences))]  # in corpus order
        vectors: dict[tuple[str, int], np.ndarray] = {}
        for at in range(0, len(keys), 1000):  # under SQLite's limit on ids in one query
            vectors.update(store.sentence_vectors(keys[at : at + 1000]))
        self.keys = [k for k in keys if k in vectors]
        matrix = np.array([vectors[k] for k in self.keys], dtype=np.float64).reshape(len(self.keys), -1)
        self.matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        self._store = store

    def dense_sentences(self, vector: np.ndarray, k: int, *, available: int | None = None) -> list[SentenceHit]:
        query = np.asarray(vector, dtype=np.float64)
        similarity = self.matrix @ (query / max(float(np.linalg.norm(query)), 1e-12))
        order = np.argsort(-similarity, kind="stable")[:k]
        return [SentenceHit(self.keys[r][0], self.keys[r][1], float(similarity[r])) for r in order.tolist()]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _rows(settings: Settings, corpus: Path, items: list[Any], groups: list[str], *, context_from_history: bool, log: Any) -> Rows:
    from qa.engine import Engine

    engine = Engine(settings)
    report = engine.ingest(corpus, progress=False)
    log(f"  indexed {corpus}: {report.chunks_embedded} chunks embedded")
    from qa.retrieve import Corpus, Retriever

    # Ties in retrieval break by corpus position, and the store may list chunks in any order: a corpus
    # sorted by where each chunk's text is (not by chunk id, which hashes the folder's absolute path and so
    # differs between checkouts) makes the rows, and so the artifact, the same on every run and machine.
    loaded = engine.corpus
    chunks = sorted(loaded.chunks, key=lambda c: (c.source, c.start, c.end, c.text))
    retriever = Retriever(cast(Store, _ExactDense(engine.store, chunks)), Corpus(chunks), engine.embedder)
    featurizer = Featurizer()
    rows = Rows([], [], [], [], [], [])
    started = time.perf_counter()
    for q, (item, group) in enumerate(zip(items, groups)):
        context = item.history[-1] if context_from_history and item.history else ""
        query = f"{context} {item.question}".strip()
        passages = retriever.search(query, settings.top_k)
        for cand in featurizer.candidates(item.question, passages, context=context):
            rows.x.append(cand.features)
            rows.y.append(_label(cand.text, item.answers, item.evidence) if item.answerable else 0)
            rows.question.append(q)
            rows.passage.append(cand.chunk)
        rows.answerable.append(item.answerable)
        rows.group.append(group)
        if (q + 1) % 1000 == 0:
            log(f"  {q + 1}/{len(items)} questions ({time.perf_counter() - started:.0f} s)")
    return rows


def _fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, names: tuple[str, ...]) -> Logistic:
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    model = LogisticRegression(C=C, max_iter=5000, tol=1e-6)
    model.fit((x - mean) / scale, y, sample_weight=w)
    return Logistic(names, mean, scale, model.coef_[0].astype(np.float64), float(model.intercept_[0]))


def question_scores(model: Logistic, x: np.ndarray, question: np.ndarray, n: int) -> np.ndarray:
    """Each question's score: the best probability among its candidate sentences (0 with none)."""
    p = model.predict(x) if len(x) else np.zeros(0)
    best = np.zeros(n)
    np.maximum.at(best, question, p)
    return best


def auroc(scores: np.ndarray, answerable: np.ndarray) -> float | None:
    """Probability that an answerable question scores above an unanswerable one (ties count half)."""
    pos, neg = scores[answerable], scores[~answerable]
    if not len(pos) or not len(neg):
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="stable")
    ranks = np.empty(len(order))
    values = np.concatenate([pos, neg])[order]
    i = 0
    while i < len(values):  # average ranks over ties
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _rates(scores: np.ndarray, answerable: np.ndarray, t: float) -> tuple[float, float]:
    """(false_abstain_rate, abstain_recall) at threshold t."""
    return float((scores[answerable] < t).mean()), float((scores[~answerable] < t).mean()) if (~answerable).any() else 0.0


def _threshold(sets: list[tuple[np.ndarray, np.ndarray]], ceiling: float) -> float:
    """The highest threshold whose false-abstain rate is <= ceiling on every set."""
    candidates = np.unique(np.concatenate([s for s, _ in sets]))
    best = 0.0
    for t in candidates:
        if all(_rates(s, a, float(t))[0] <= ceiling for s, a in sets):
            best = max(best, float(t))
    return best


@dataclass
class TopThree:
    """Per question, what the answerer would quote: the best sentence's score and whether it holds the answer (a
    positive row); the runner-up's score and whether it does; whether the best of the next two that shares the
    best sentence's passage (the fallback under the floor) does."""

    best: np.ndarray
    second: np.ndarray
    best_right: np.ndarray
    second_right: np.ndarray
    fallback_right: np.ndarray
    answerable: np.ndarray

    @classmethod
    def of(cls, scores: np.ndarray, y: np.ndarray, question: np.ndarray, passage: np.ndarray, answerable: np.ndarray) -> TopThree:
        n = len(answerable)
        best, second = np.full(n, -1.0), np.full(n, -1.0)
        best_right, second_right, fallback_right = (np.zeros(n, dtype=bool) for _ in range(3))
        best_passage, fallback_found = np.full(n, -1), np.zeros(n, dtype=bool)
        rank = np.zeros(n, dtype=int)
        # rows best first within each question, ties by row order (the answerer breaks them by position too)
        for r in np.lexsort((np.arange(len(question)), -scores, question)).tolist():
            q, k = question[r], rank[question[r]]
            rank[q] += 1
            if k == 0:
                best[q], best_right[q], best_passage[q] = scores[r], bool(y[r]), passage[r]
                continue
            if k == 1:
                second[q], second_right[q] = scores[r], bool(y[r])
            if k <= SECOND_POOL - 1 and not fallback_found[q] and passage[r] == best_passage[q]:
                fallback_found[q], fallback_right[q] = True, bool(y[r])
        return cls(best, second, best_right, second_right, fallback_right, np.asarray(answerable, dtype=bool))

    def coverage(self, threshold: float, floor: float) -> float:
        """Share of answerable questions answered with the answer: the best sentence clears `threshold`, and it, or the
        runner-up when that scores >= `floor`, or else the fallback, holds it."""
        quoted_second = self.second >= floor
        right = self.best_right | np.where(quoted_second, self.second_right, self.fallback_right)
        return float((self.answerable & (self.best >= threshold) & right).sum() / max(int(self.answerable.sum()), 1))


def _second_floor(sets: list[TopThree], threshold: float, tolerance: float) -> float:
    """The highest floor for quoting the runner-up that covers at most `tolerance` fewer answerable questions than
    quoting it always, on every set."""
    always = [s.coverage(threshold, 0.0) for s in sets]
    floors = np.unique(np.round(np.concatenate([s.second[s.second >= 0] for s in sets]), 4))
    best = 0.0
    for floor in floors.tolist():
        if all(s.coverage(threshold, floor) >= full - tolerance for s, full in zip(sets, always)):
            best = max(best, floor)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qa.answer.train", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ARTIFACT)
    parser.add_argument("--work", type=Path, default=PROJECT_ROOT / ".qa" / "train", help="store for the fitting corpora")
    parser.add_argument("--squad", type=Path, default=SQUAD)
    parser.add_argument("--gold", type=Path, default=PROJECT_ROOT / "eval" / "gold.jsonl")
    parser.add_argument("--split", type=Path, default=PROJECT_ROOT / "eval" / "split.json")
    parser.add_argument("--seeds", type=Path, default=PROJECT_ROOT / "seeds")
    parser.add_argument("--follow-ups", type=Path, default=PROJECT_ROOT / "eval" / "fit" / "follow_ups.jsonl")
    parser.add_argument("--fit-docs", type=Path, default=PROJECT_ROOT / "eval" / "fit", help="folder with gold.jsonl and docs/ written for fitting")
    parser.add_argument("--max-false-abstain", type=float, default=0.10)
    parser.add_argument("--second-tolerance", type=float, default=SECOND_TOLERANCE)
    parser.add_argument("--limit", type=int, default=None, help="only the first N SQuAD questions (a quick check)")
    parser.add_argument("--cached", action="store_true", help="reuse the feature rows of the last run in --work (trying fitting options)")
    args = parser.parse_args(argv)
    if os.environ.get("PYTHONHASHSEED") != "0" and argv is None:
        # Sets of terms are summed in iteration order, which follows str hashing: one fixed hash seed
        # makes every float, and so the artifact's bytes, the same on every run.
        os.execve(sys.executable, [sys.executable, "-m", "qa.answer.train", *sys.argv[1:]], {**os.environ, "PYTHONHASHSEED": "0"})
    started = time.perf_counter()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    cache = args.work / "rows.npz"
    saved = np.load(cache, allow_pickle=False) if args.cached and cache.is_file() else None
    if saved is not None and "sp" in saved.files:  # a cache from before the rows kept their passage is rebuilt
        squad = Rows(list(saved["sx"]), list(saved["sy"]), list(saved["sq"]), list(saved["sp"]), list(saved["sa"]), list(saved["sg"]))
        gold = Rows(list(saved["gx"]), list(saved["gy"]), list(saved["gq"]), list(saved["gp"]), list(saved["ga"]), ["gold-dev"] * len(saved["ga"]))
    else:
        # OPENAI_API_KEY: the key's field is set by its env name (the name pydantic's mypy plugin knows)
        base = Settings(data_dir=args.work, llm_base_url=None, OPENAI_API_KEY=None)
        squad_items = load_gold(args.squad / "gold.jsonl")[: args.limit]
        log(f"SQuAD fitting set: {len(squad_items)} questions")
        squad = _rows(
            base.model_copy(update={"collection": "fit-squad2-train-19"}), args.squad / "corpus", squad_items,
            evidence_sources(squad_items, sorted((args.squad / "corpus").glob("*.txt"))), context_from_history=False, log=log,
        )
        dev_ids = set(json.loads(args.split.read_text(encoding="utf-8"))["dev"])
        dev_items = [item for item in load_gold(args.gold) if item.id in dev_ids]
        log(f"gold dev half: {len(dev_items)} questions")
        gold = _rows(
            base.model_copy(update={"collection": "fit-seed"}), args.seeds, dev_items, ["gold-dev"] * len(dev_items),
            context_from_history=True, log=log,
        )
        args.work.mkdir(parents=True, exist_ok=True)
        np.savez(
            cache, sx=np.array(squad.x), sy=np.array(squad.y), sq=np.array(squad.question), sp=np.array(squad.passage),
            sa=np.array(squad.answerable), sg=np.array(squad.group), gx=np.array(gold.x), gy=np.array(gold.y), gq=np.array(gold.question),
            gp=np.array(gold.passage), ga=np.array(gold.answerable),
        )
    fit_items = load_gold(args.fit_docs / "gold.jsonl")
    log(f"questions written for fitting: {len(fit_items)}")
    written = _rows(
        Settings(data_dir=args.work, llm_base_url=None, OPENAI_API_KEY=None, collection="fit-docs"), args.fit_docs / "docs",
        fit_items, ["fit-docs"] * len(fit_items), context_from_history=True, log=log,
    )
    features_done = time.perf_counter()

    sx, sy, sq = np.array(squad.x), np.array(squad.y), np.array(squad.question)
    s_ans = np.array(squad.answerable)
    gx, gy, gq = np.array(gold.x), np.array(gold.y), np.array(gold.question)
    g_ans = np.array(gold.answerable)
    groups = sorted(set(squad.group))
    fold_of = {g: i % FOLDS for i, g in enumerate(groups)}
    q_fold = np.array([fold_of[g] for g in squad.group])
    oof = np.zeros(len(squad.answerable))
    oof_rows = np.zeros(len(sy))
    for fold in range(FOLDS):
        train_rows = q_fold[sq] != fold
        x = np.concatenate([sx[train_rows], gx])
        y = np.concatenate([sy[train_rows], gy])
        w = np.concatenate([np.ones(train_rows.sum()), np.full(len(gy), GOLD_WEIGHT)])
        model = _fit(x, y, w, FEATURES)
        held = np.flatnonzero(q_fold == fold)
        rows = np.isin(sq, held)
        scores = question_scores(model, sx[rows], np.searchsorted(held, sq[rows]), len(held))
        oof[held] = scores
        oof_rows[rows] = model.predict(sx[rows])
    model = _fit(np.concatenate([sx, gx]), np.concatenate([sy, gy]), np.concatenate([np.ones(len(sy)), np.full(len(gy), GOLD_WEIGHT)]), FEATURES)
    gold_scores = question_scores(model, gx, gq, len(g_ans))
    # The questions written for fitting are not in the weights: adding them to the fit (weighted like the gold
    # dev half) lowered the AUROC on both other fitting sets. They do constrain the threshold: a threshold set
    # on SQuAD and the seed article alone abstained on too many answerable questions about business documents.
    w_ans = np.array(written.answerable)
    w_scores = question_scores(model, np.array(written.x), np.array(written.question), len(w_ans))
    # Rounded down to four places: rounding up could lift it above the score of an answerable question it must keep.
    threshold = math.floor(_threshold([(oof, s_ans), (gold_scores, g_ans), (w_scores, w_ans)], args.max_false_abstain) * 1e4) / 1e4
    s_far, s_rec = _rates(oof, s_ans, threshold)
    g_far, g_rec = _rates(gold_scores, g_ans, threshold)
    w_far, w_rec = _rates(w_scores, w_ans, threshold)
    wx, wy, wq = np.array(written.x), np.array(written.y), np.array(written.question)
    sp, gp, wp = np.array(squad.passage), np.array(gold.passage), np.array(written.passage)
    top_three = [
        TopThree.of(oof_rows, sy, sq, sp, s_ans), TopThree.of(model.predict(gx), gy, gq, gp, g_ans), TopThree.of(model.predict(wx), wy, wq, wp, w_ans),
    ]
    second_floor = _second_floor(top_three, threshold, args.second_tolerance)
    coverage = [
        {"same_passage_only": round(t.coverage(threshold, math.inf), 4), "with_runner_up": round(t.coverage(threshold, second_floor), 4),
         "runner_up_always": round(t.coverage(threshold, 0.0), 4)}
        for t in top_three
    ]

    pairs = [json.loads(line) for line in args.follow_ups.read_text(encoding="utf-8").splitlines() if line.strip()]
    fx = np.array([follow_up_features(p["question"], p["previous"]) for p in pairs])
    fy = np.array([int(p["follow_up"]) for p in pairs])
    follow_up = _fit(fx, fy, np.ones(len(fy)), FOLLOW_UP_FEATURES)
    loo = []
    for i in range(len(fy)):
        keep = np.arange(len(fy)) != i
        one = _fit(fx[keep], fy[keep], np.ones(keep.sum()), FOLLOW_UP_FEATURES)
        loo.append(int(one.predict(fx[i : i + 1])[0] >= 0.5) == fy[i])

    meta = {
        "what": "logistic regression over qa.answer.features.FEATURES, one row per retrieved sentence; "
        "a question's score is its best sentence's probability",
        "fitting_data": {
            "squad2-train-19": {"questions": len(squad.answerable), "rows": int(len(sy)), "positive_rows": int(sy.sum())},
            "gold_dev_half": {"questions": len(g_ans), "rows": len(gold.y), "weight": GOLD_WEIGHT},
            "written_for_fitting": {"questions": len(w_ans), "rows": len(written.y), "use": "threshold only (not in the weights)"},
            "follow_ups": {"pairs": len(fy), "follow_ups": int(fy.sum())},
        },
        "validation": {
            "squad_out_of_fold_by_article": {
                "folds": FOLDS, "auroc": round(auroc(oof, s_ans) or 0.0, 4),
                "false_abstain_rate": round(s_far, 4), "abstain_recall": round(s_rec, 4),
            },
            "gold_dev_in_sample": {"auroc": round(auroc(gold_scores, g_ans) or 0.0, 4), "false_abstain_rate": round(g_far, 4), "abstain_recall": round(g_rec, 4)},
            "written_for_fitting": {"auroc": round(auroc(w_scores, w_ans) or 0.0, 4), "false_abstain_rate": round(w_far, 4), "abstain_recall": round(w_rec, 4)},
            "answer_coverage_squad_gold_dev_written": coverage,
            "follow_up_leave_one_out_accuracy": round(float(np.mean(loo)), 4),
        },
        "licence": "CC BY-SA 4.0: fitted on SQuAD 2.0 (Rajpurkar, Jia and Liang 2018) questions over Wikipedia excerpts",
        "rebuild": "make train",
    }
    artifact = {
        "answer": model.to_dict(),
        "threshold": threshold,
        "second_floor": second_floor,
        "second_tolerance": args.second_tolerance,
        "follow_up": follow_up.to_dict(),
        "follow_up_threshold": 0.5,
        "max_false_abstain": args.max_false_abstain,
        "meta": meta,
    }
    text = json.dumps(artifact, indent=1, sort_keys=True) + "\n"
    args.out.write_text(text, encoding="utf-8")
    digest = hashlib.sha256(text.encode()).hexdigest()
    done = time.perf_counter()
    log(json.dumps(meta["validation"], indent=1))
    log(f"threshold {threshold}, runner-up floor {second_floor}; features {features_done - started:.0f} s, fitting {done - features_done:.0f} s, total {done - started:.0f} s")
    log(f"wrote {args.out} ({len(text.encode()):,} bytes), sha256 {digest}")
    print(digest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
