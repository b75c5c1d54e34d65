"""LLM-judged metrics for a run: llama-index's correctness and faithfulness evaluators on the configured LLM."""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any

from qa.metrics import strip_markers, summarize

if TYPE_CHECKING:
    from qa.eval.run import Run
    from qa.settings import Settings


def _parse_score(text: str) -> tuple[float | None, str]:
    """The judge's 1-5 score: the first number of its reply (llama-index's parser needs two lines).

    A number outside 1-5 is no score (a weak judge writes "15" or a year), so it can't skew the mean.
    """
    match = re.search(r"\d+(?:\.\d+)?", text or "")
    score = float(match.group()) if match else None
    return (score if score is not None and 1 <= score <= 5 else None), text.strip()


def judge_run(run: Run, settings: Settings, *, progress: bool) -> None:
    """Add llm_correctness (llama-index CorrectnessEvaluator) and llm_faithfulness (FaithfulnessEvaluator).

    Correctness: answerable items, against the accepted answers; an abstention scores 1 of 5 without a call.
    Faithfulness: answers with citations, against the cited passages. A failed judge call leaves the item out.
    """
    from llama_index.core.evaluation import CorrectnessEvaluator, FaithfulnessEvaluator
    from tqdm import tqdm

    from qa.answer.llm import make_llm

    llm = make_llm(settings)
    correctness = CorrectnessEvaluator(llm=llm, parser_function=_parse_score)
    faithfulness = FaithfulnessEvaluator(llm=llm)
    for record in tqdm(run.records, desc="Judging", unit="q", file=sys.stderr, disable=not progress, mininterval=0.5):
        metrics = record["metrics"]
        text = strip_markers(record["answer"])
        query = record["question"]
        if record["history"]:
            query = "Earlier questions: " + " / ".join(record["history"]) + "\nQuestion: " + query
        try:
            if record["answerable"]:
                if record["abstained"] or not text:
                    score: float | None = 1.0
                else:
                    result = correctness.evaluate(query=query, response=text, reference=" / ".join(record["answers"]))
                    score = result.score
                if score is not None:
                    metrics["llm_correctness_score"] = score
                    metrics["llm_correctness"] = float(score >= 4.0)
            if not record["abstained"] and record["_passages"] and text:
                result = faithfulness.evaluate(query=query, response=text, contexts=record["_passages"])
                metrics["llm_faithfulness"] = float(bool(result.passing))
        except Exception as exc:  # one bad judge reply must not sink a long run
            metrics["judge_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    mode = run.summary["mode"]
    extra: dict[str, Any] = {key: run.summary[key] for key in ("llm_fallbacks", "errors", "ungrounded_share", "flagged_share") if key in run.summary}
    run.summary = {**summarize(run.records, mode=mode), **extra, "judge_model": settings.llm_model}
