"""Hostile inputs, timed (issue 14 §3): sentence splitting, a 5 MB one-line file, huge sentences, a queue flood.

    .venv/bin/python bench/hostile.py            # all of it (~5-10 min on 2 shared cores); part of `make bench`
    .venv/bin/python bench/hostile.py --no-flood # without the `qa chat` flood

Each measurement that needs a clean heap runs in a fresh process. Prints a table and writes
bench/results/hostile.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
SEED_FILE = ROOT / "seeds" / "000_da55755936a874b9.txt"
QA = str(Path(sys.executable).with_name("qa"))
FIVE_MB = 5_000_000


def one_paragraph(size: int) -> str:
    """The seed article's sentences repeated on one line, `size` characters."""
    line = " ".join(SEED_FILE.read_text(encoding="utf-8").split())
    return (line * (size // len(line) + 1))[:size]


def words_without_punctuation(size: int) -> str:
    rng = random.Random(0)
    vocab = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 9))) for _ in range(5000)]
    out: list[str] = []
    total = 0
    while total < size:
        word = rng.choice(vocab)
        out.append(word)
        total += len(word) + 1
    return " ".join(out)[:size]


def no_whitespace(size: int) -> str:
    rng = random.Random(0)
    return "".join(rng.choice(string.ascii_letters + string.digits + "+/=.,-") for _ in range(size))


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "OPENAI_", "SLACK_"))}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False")
    return env


# -- in a child process ---------------------------------------------------------------------------


def child_chunk(kind: str) -> dict[str, Any]:
    """Chunk a 5 MB one-sentence file (as ingest does, without embedding); time, peak RSS, coverage."""
    from qa.documents import Document, chunk_document
    from qa.embed import MiniLM, bundled_model_dir

    tokens = MiniLM(bundled_model_dir()).tokens
    text = {"words": words_without_punctuation, "nospace": no_whitespace}[kind](FIVE_MB)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    doc = Document(source=f"{kind}.txt", path=Path(f"{kind}.txt"), title=kind, text=text, file_hash="-")
    chunks = chunk_document(doc, count_tokens=tokens.count, max_tokens=200)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before checking the result below
    sizes = [n for i in range(0, len(chunks), 512) for n in tokens.count([c.text for c in chunks[i : i + 512]])]
    return {
        "file": f"5 MB, {'words, no punctuation' if kind == 'words' else 'no whitespace'}, one line",
        "chunk_s": round(seconds, 1),
        "peak_rss_mb": round(peak, 1),
        "rss_before_mb": round(before, 1),
        "chunks": len(chunks),
        "chars_covered": sum(s.end - s.start for c in chunks for s in c.sentences),
        "chars": len(text),
        "max_word_pieces_per_chunk": max(sizes),
        "offsets_hold": all(text[c.start : c.end] == c.text for c in chunks),
    }


# -- measurements ---------------------------------------------------------------------------------


def bench_split() -> list[dict[str, Any]]:
    from qa.text import sentence_spans

    rows = []
    for size in (100_000, 200_000, 400_000, FIVE_MB):
        text = one_paragraph(size)
        started = time.perf_counter()
        spans = sentence_spans(text)
        rows.append({"chars": size, "sentences": len(spans), "split_s": round(time.perf_counter() - started, 3)})
    for name, text in (("5 MB of '.'", "." * FIVE_MB), ("5 MB of 'a. '", "a. " * (FIVE_MB // 3))):
        started = time.perf_counter()
        spans = sentence_spans(text)
        rows.append({"chars": len(text), "what": name, "sentences": len(spans), "split_s": round(time.perf_counter() - started, 3)})
    return rows


def bench_ingest_line(work: Path) -> dict[str, Any]:
    """`qa ingest` of a folder holding one 5 MB single-line file, in a fresh process."""
    folder = work / "line"
    folder.mkdir()
    (folder / "line.txt").write_text(one_paragraph(FIVE_MB), encoding="utf-8")
    env = child_env() | {"QA_DATA_DIR": str(work / "line-data")}
    cpu_before = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run([QA, "ingest", "--json", str(folder)], env=env, cwd=work, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(done.stderr)
    report = json.loads(done.stdout)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the ingest: the first child
    cpu = _children_cpu() - cpu_before  # load-independent: what the ingest would take on idle cores
    ask = subprocess.run([QA, "ask", "--json", "What is Mark Sedwill's job?"], env=env, cwd=work, capture_output=True,
                         text=True, timeout=600)
    answer = json.loads(ask.stdout) if ask.returncode == 0 else {"text": ask.stderr}
    return {
        "file": "5 MB, seed article sentences repeated, one line",
        "ingest_wall_s": round(seconds, 1),
        "ingest_cpu_s": round(cpu, 1),
        "load_average": round(os.getloadavg()[0], 1),
        "chunks_embedded": report["chunks_embedded"],
        "peak_rss_mb": round(peak, 1),
        "answers_after": "Mark Sedwill" in answer.get("text", ""),
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_chunk(kind: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", kind], env=child_env(), capture_output=True, text=True, timeout=3600)
    if done.returncode:
        raise RuntimeError(done.stderr)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bench_flood(work: Path, requests: int) -> list[dict[str, Any]]:
    """`qa chat` with default limits on the seed index; joins from one address, then from 100."""
    from chat_flood import ask, chat_process, flood, rss_mb

    data = work / "flood-data"
    env = child_env() | {"QA_DATA_DIR": str(data)}
    subprocess.run([QA, "ingest", str(ROOT / "seeds")], env=env, cwd=work, capture_output=True, check=True, timeout=600)
    rows = []
    with chat_process(data, work) as chat:
        ask(chat.url)
        for clients in (1, 100):
            before = rss_mb(chat.pid)
            result = flood(chat.url, requests=requests, clients=clients, concurrency=100, timeout=300)
            time.sleep(2)  # the queue drains and the single client's bucket refills a little
            started = time.perf_counter()
            answered = "Mark Sedwill" in ask(chat.url)["text"]
            rows.append({
                "clients": clients,
                **result.to_dict(),
                "rss_before_mb": before,
                "rss_after_mb": rss_mb(chat.pid),
                "answered_after": answered,
                "answer_after_s": round(time.perf_counter() - started, 2),
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", choices=["words", "nospace"], help=argparse.SUPPRESS)
    parser.add_argument("--no-flood", dest="flood", action="store_false", help="skip the `qa chat` flood")
    parser.add_argument("--flood-requests", type=int, default=2100, help="queue joins per flood (the issue's 2,100)")
    parser.add_argument("--only", default="split,ingest,chunk,flood", help="comma-separated parts to run")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "hostile.json")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_chunk(args.child)))
        return

    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_average": os.getloadavg()[0]}
    work = Path(tempfile.mkdtemp(prefix="qa-hostile-"))
    try:
        parts = set(args.only.split(","))
        if "split" in parts:
            results["split"] = bench_split()
            for row in results["split"]:
                label = row.get("what") or f"{row['chars']:,} chars, one paragraph"
                print(f"split {label}: {row['split_s']} s, {row['sentences']:,} sentences")
        if "ingest" in parts:
            results["ingest_5mb_line"] = bench_ingest_line(work)
            print("ingest:", results["ingest_5mb_line"])
        if "chunk" in parts:
            results["chunk"] = [bench_chunk("words"), bench_chunk("nospace")]
            for row in results["chunk"]:
                print("chunk:", row)
        if args.flood and "flood" in parts:
            results["flood"] = bench_flood(work, args.flood_requests)
            for row in results["flood"]:
                print("flood:", row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["load_average_after"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
