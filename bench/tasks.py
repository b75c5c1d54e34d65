"""One measurement in a fresh process: `python bench/tasks.py TASK --data DIR ...`; prints one JSON line.

Tasks: `ingest` (time `Engine.ingest`), `queries` (latency of `Engine.ask`, then one eval pass over the
questions), `llm` (time before the first streamed token against the local OpenAI-compatible fake).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from corpora import ROOT, load_questions  # noqa: E402


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 2)

    return {"p50": pick(0.50), "p95": pick(0.95), "mean": round(statistics.fmean(ordered), 2), "n": len(ordered)}


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def engine(args: argparse.Namespace, **overrides: Any) -> Any:
    from qa import Engine, Settings

    options: dict[str, Any] = {"data_dir": Path(args.data), "_env_file": None}
    if args.chroma_port:
        options.update(chroma_host="127.0.0.1", chroma_port=args.chroma_port)
    if args.folder:
        options["seeds_dir"] = Path(args.folder)
    options.update(overrides)
    return Engine(Settings(**options))


def _timed(obj: Any, name: str, key: str, totals: dict[str, float]) -> None:
    """Add the time spent in `obj.name` to `totals[key]` (instrumentation of this process only)."""
    original = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - started

    setattr(obj, name, wrapper)


def task_ingest(args: argparse.Namespace) -> dict[str, Any]:
    eng = engine(args)
    started = time.perf_counter()
    totals = {"count_tokens_s": 0.0, "embed_s": 0.0, "store_write_s": 0.0, "store_read_s": 0.0}
    embedder, store = eng.embedder, eng.store  # loading them counts in `seconds`, not in the parts
    _timed(embedder, "count_tokens", "count_tokens_s", totals)
    _timed(embedder, "embed", "embed_s", totals)
    _timed(store, "add", "store_write_s", totals)
    _timed(store, "delete", "store_write_s", totals)
    _timed(store, "chunk_ids_by_source", "store_read_s", totals)
    report = eng.ingest(Path(args.folder), progress=False)
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "parts_s": {k: round(v, 3) for k, v in totals.items()},
        "chunks_embedded": report.chunks_embedded,
        "added": len(report.added),
        "unchanged": len(report.unchanged),
        "encoder": getattr(embedder, "backend", type(embedder).__name__) if embedder is not None else "not loaded",
        "peak_rss_mb": peak_rss_mb(),
    }


def task_queries(args: argparse.Namespace) -> dict[str, Any]:
    questions = load_questions(Path(args.questions))
    eng = engine(args)
    started = time.perf_counter()
    eng.ask(str(questions[0]["question"]))  # loads the model, the store, the BM25 index
    load_s = time.perf_counter() - started
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    latencies: list[float] = []
    parts: dict[str, list[float]] = {}
    for i in range(args.n):
        q = questions[i % len(questions)]
        t = time.perf_counter()
        answer = eng.ask(str(q["question"]))
        latencies.append((time.perf_counter() - t) * 1000)
        for key, value in (answer.timings or {}).items():
            parts.setdefault(key, []).append(float(value))
    if profiler is not None:
        import pstats

        profiler.disable()
        with open(args.profile, "w") as fh:
            pstats.Stats(profiler, stream=fh).sort_stats("cumulative").print_stats(40)
    # One eval pass: every question once, with its history, as `qa eval` would run it.
    hits = answered = 0
    t = time.perf_counter()
    for q in questions:
        answer = eng.ask(str(q["question"]), q.get("history") or [])
        if q.get("answerable", True):
            retrieved = " ".join(squash(c.text) for c in answer.retrieved)
            hits += all(squash(e) in retrieved for e in q.get("evidence", []))
            answered += any(a.lower() in answer.text.lower() for a in q.get("answers", []))
    eval_s = time.perf_counter() - t
    answerable = sum(1 for q in questions if q.get("answerable", True))
    return {
        "load_s": round(load_s, 3),
        "latency_ms": percentiles(latencies),
        "parts_ms": {k: percentiles(v) for k, v in parts.items()},
        "distinct_questions": len(questions),
        "eval_questions": len(questions),
        "eval_s": round(eval_s, 3),
        "eval_qps": round(len(questions) / eval_s, 2),
        "evidence_retrieved": round(hits / max(answerable, 1), 3),
        "answer_contains_gold": round(answered / max(answerable, 1), 3),
        "chunks": eng.store.count(),
        "peak_rss_mb": peak_rss_mb(),
    }


def task_llm(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_openai import FakeOpenAI

    questions = load_questions(Path(args.questions))
    with FakeOpenAI() as fake:
        fake.reply("The documents answer this [1].")
        eng = engine(args, llm_base_url=fake.base_url, llm_model="fake-model", llm_retries=0)
        for item in eng.stream(str(questions[0]["question"])):  # load everything first
            pass
        first: list[float] = []
        pipeline: list[float] = []
        for i in range(args.n):
            started = time.perf_counter()
            answer = None
            seen = False
            for item in eng.stream(str(questions[i % len(questions)]["question"])):
                if isinstance(item, str) and item and not seen:
                    first.append((time.perf_counter() - started) * 1000)
                    seen = True
                elif not isinstance(item, str):
                    answer = item
            if answer is not None and "pipeline_ms" in (answer.timings or {}):
                pipeline.append(float(answer.timings["pipeline_ms"]))
        mode = getattr(answer, "mode", "?")
    return {
        "first_token_ms": percentiles(first) if first else None,
        "pipeline_ms": percentiles(pipeline) if pipeline else None,
        "mode": mode,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("task", choices=["ingest", "queries", "llm"])
    parser.add_argument("--data", required=True)
    parser.add_argument("--folder")
    parser.add_argument("--questions")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--chroma-port", type=int)
    parser.add_argument("--profile")
    args = parser.parse_args()
    result = {"ingest": task_ingest, "queries": task_queries, "llm": task_llm}[args.task](args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
