"""Check the hand-written test sets: ids unique, fields well formed, every evidence quote verbatim in its documents.

Run from the repository root: `python eval/check_sets.py`. Exit status 1 and one line per problem if anything is wrong.
Uses the standard library only, so it runs without the project's environment.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "seeds" / "000_da55755936a874b9.txt"
OWN_DOCS = ROOT / "eval" / "own-docs"


def _norm(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    return re.sub(r"\s+", " ", text).strip().lower()


def _lines(path: Path) -> list[tuple[int, dict]]:
    rows = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if raw.strip():
            rows.append((number, json.loads(raw)))
    return rows


def _check_turn(where: str, item: dict, texts: list[str], problems: list[str]) -> None:
    question, answers, answerable, evidence = item.get("question"), item.get("answers"), item.get("answerable"), item.get("evidence")
    if not isinstance(question, str) or not question.strip():
        problems.append(f"{where}: empty question")
    if not isinstance(answerable, bool):
        problems.append(f"{where}: `answerable` must be true or false")
    if not isinstance(answers, list) or not isinstance(evidence, list):
        problems.append(f"{where}: `answers` and `evidence` must be lists")
        return
    if answerable:
        if not answers or not evidence:
            problems.append(f"{where}: answerable but no answers or no evidence")
        for quote in evidence:
            if not any(quote in text for text in texts):
                problems.append(f"{where}: evidence not verbatim in the documents: {quote[:70]!r}")
        if evidence and not any(_norm(a) in _norm(e) for a in answers for e in evidence):
            problems.append(f"{where}: no accepted answer occurs in the evidence")
    elif answers or evidence:
        problems.append(f"{where}: unanswerable but has answers or evidence")


def check_gold(path: Path, texts: list[str], ids: set[str], problems: list[str], *, split_test: set[str] | None = None) -> dict:
    counts = {"items": 0, "answerable": 0, "unanswerable": 0, "follow_ups": 0, "reworded": 0, "new_unanswerable": 0}
    for number, item in _lines(path):
        where = f"{path.relative_to(ROOT)}:{number}"
        if item.get("id") in ids:
            problems.append(f"{where}: duplicate id {item.get('id')!r}")
        ids.add(item.get("id"))
        _check_turn(where, item, texts, problems)
        history = item.get("history", [])
        if not isinstance(history, list) or not all(isinstance(h, str) and h.strip() for h in history):
            problems.append(f"{where}: `history` must be a list of questions")
        if "of" in item:
            counts["reworded"] += 1
            if split_test is not None and item["of"] not in split_test:
                problems.append(f"{where}: `of` {item['of']!r} is not a test id of eval/split.json")
        counts["items"] += 1
        counts["answerable" if item.get("answerable") else "unanswerable"] += 1
        counts["follow_ups"] += bool(history)
        counts["new_unanswerable"] += not item.get("answerable") and "of" not in item
    return counts


def check_conversations(path: Path, texts: list[str], problems: list[str]) -> dict:
    counts = {"conversations": 0, "turns": 0, "answerable": 0, "unanswerable": 0, "follow_ups": 0, "topic_switches": 0}
    ids: set[str] = set()
    for number, conv in _lines(path):
        where = f"{path.relative_to(ROOT)}:{number}"
        if conv.get("id") in ids:
            problems.append(f"{where}: duplicate id {conv.get('id')!r}")
        ids.add(conv.get("id"))
        turns = conv.get("turns", [])
        if not 2 <= len(turns) <= 3:
            problems.append(f"{where}: {len(turns)} turns, expected 2 or 3")
        for index, turn in enumerate(turns):
            _check_turn(f"{where} turn {index + 1}", turn, texts, problems)
            if not isinstance(turn.get("follow_up"), bool):
                problems.append(f"{where} turn {index + 1}: `follow_up` must be true or false")
            if index == 0 and turn.get("follow_up"):
                problems.append(f"{where}: the first turn can't be a follow-up")
            counts["turns"] += 1
            counts["answerable" if turn.get("answerable") else "unanswerable"] += 1
            counts["follow_ups"] += bool(turn.get("follow_up"))
        counts["conversations"] += 1
        counts["topic_switches"] += bool(conv.get("topic_switch"))
    return counts


def main() -> int:
    problems: list[str] = []
    seed = [SEED.read_text(encoding="utf-8")]
    split = json.loads((ROOT / "eval" / "split.json").read_text(encoding="utf-8"))
    report = {}
    paraphrase = ROOT / "eval" / "paraphrase.jsonl"
    if paraphrase.exists():
        report["paraphrase"] = check_gold(paraphrase, seed, set(), problems, split_test=set(split["test"]))
    own_gold = OWN_DOCS / "gold.jsonl"
    if own_gold.exists():
        docs = sorted((OWN_DOCS / "corpus").iterdir())
        texts = [d.read_text(encoding="utf-8") for d in docs]
        words = {d.name: len(t.split()) for d, t in zip(docs, texts)}
        for name, count in words.items():
            if not 300 <= count <= 1200:
                problems.append(f"eval/own-docs/corpus/{name}: {count} words, expected 300-1200")
        report["own-docs"] = check_gold(own_gold, texts, set(), problems) | {"documents": len(docs), "words": words}
    conversations = ROOT / "eval" / "conversations.jsonl"
    if conversations.exists():
        report["conversations"] = check_conversations(conversations, seed, problems)
    print(json.dumps(report, indent=1))
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
