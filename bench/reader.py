"""What the trained reader (qa/answer/reader.py) adds to a question's latency: its scoring of the best candidates.

Times `Reader.logits` on the dev half of eval/gold.jsonl (fitting data), each question against its
evidence sentence and one other seed sentence (what the extractive answerer passes it), and prints
p50 / p95 wall and CPU milliseconds for 1 and 2 candidates, and the one-off load time.

    .venv/bin/python bench/reader.py [ARTIFACT]   # default qa/answer/reader.safetensors (`make train-reader`)
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    from qa.answer.reader import ARTIFACT, file_sha256, load_reader
    from qa.metrics import load_gold

    started = time.perf_counter()
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ARTIFACT
    reader = load_reader(path, file_sha256(path) if len(sys.argv) > 1 else None)
    load_ms = (time.perf_counter() - started) * 1000
    dev = set(json.loads((ROOT / "eval" / "split.json").read_text(encoding="utf-8"))["dev"])
    items = [i for i in load_gold(ROOT / "eval" / "gold.jsonl") if i.id in dev]
    filler = "Britain’s national security adviser called the move a powerful western message."
    out = {"load_ms": round(load_ms), "questions": len(items)}
    for k in (1, 2):
        wall, cpu = [], []
        for item in items:
            sentences = ([*item.evidence[:1], filler] if item.evidence else [filler, filler])[:k]
            w, c = time.perf_counter(), time.process_time()
            reader.logits(item.question, sentences)
            wall.append((time.perf_counter() - w) * 1000)
            cpu.append((time.process_time() - c) * 1000)
        for name, xs in (("wall", wall), ("cpu", cpu)):
            xs.sort()
            out[f"top{k}_{name}_p50_ms"] = round(statistics.median(xs), 1)
            out[f"top{k}_{name}_p95_ms"] = round(xs[int(0.95 * (len(xs) - 1))], 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
