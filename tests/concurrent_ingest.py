"""Two real `qa ingest` processes on one store, round after round; then every stored id's vector is read back.

    .venv/bin/python tests/concurrent_ingest.py --rounds 10 --files 300     # prints one line per round, then a summary

Each round rewrites the files of two folders (new text, so every file is updated: its old chunks
deleted, new ones embedded) and starts one `qa ingest` per folder at the same moment on the same
`QA_DATA_DIR`. The embedder is `QA_EMBED_MODEL=openai` pointed at `tests/fake_openai.py` on
127.0.0.1: fast and deterministic, so the round is about the store, not the model. After both exit,
a child process opens the store with chromadb alone (a store that segfaults, aborts or hangs on open
takes the child down, not this script) and reads every chunk and sentence with its vector and text.

A store that can't be opened after a round is replaced by a new, empty one for the next round.
A round is damaged when the store can't be opened, a vector or text can't be read back, a chunk
lacks one of its sentences, or the chunk count differs from what the two folders hold.
`tests/test_concurrent_ingest.py` runs a few rounds of this as a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_openai import FakeOpenAI  # noqa: E402

QA = Path(sys.executable).parent / "qa"
PARAGRAPHS = 2  # per file; each paragraph is one chunk

# Runs in a child: chromadb alone, no qa code, so it checks the store the same way before and after a fix.
VERIFY = r"""
import json, sys
import chromadb
path, collection = sys.argv[1], sys.argv[2]
client = chromadb.PersistentClient(path=path, settings=chromadb.Settings(anonymized_telemetry=False))
out = {}
sentence_ids = set()
for kind in ("sentences", "chunks"):
    col = client.get_collection(f"{collection}-{kind}")
    ids, metas, offset = [], {}, 0
    while True:
        got = col.get(include=["metadatas"], limit=5000, offset=offset)
        ids += got["ids"]
        metas.update(zip(got["ids"], got["metadatas"]))
        if len(got["ids"]) < 5000:
            break
        offset += 5000
    unreadable = []
    def ok(got, want):
        if list(got["ids"]) != list(want) and sorted(got["ids"]) != sorted(want):
            return False
        # Only chunks store text: a sentence's is a slice of its chunk's.
        return all(e is not None and len(e) > 0 for e in got["embeddings"]) and (kind == "sentences" or all(d for d in got["documents"]))
    for i in range(0, len(ids), 200):
        batch = ids[i:i + 200]
        try:
            if ok(col.get(ids=batch, include=["embeddings", "documents"]), batch):
                continue
        except Exception:
            pass
        for one in batch:
            try:
                if ok(col.get(ids=[one], include=["embeddings", "documents"]), [one]):
                    continue
            except Exception:
                pass
            unreadable.append(one)
    entry = {"ids": len(ids), "unreadable": len(unreadable)}
    if kind == "sentences":
        sentence_ids = set(ids)
    else:
        missing = 0
        for cid, meta in metas.items():
            n = len(json.loads(meta["sentences"]))
            missing += sum(f"{cid}:{j}" not in sentence_ids for j in range(n))
        entry["sentences_missing"] = missing
    out[kind] = entry
print(json.dumps(out))
"""


@dataclass
class Round:
    n: int
    exits: list[int]
    seconds: float
    store: dict[str, Any] = field(default_factory=dict)
    problem: str = ""  # why the store couldn't be checked (crash, hang)
    expected_chunks: int = 0
    stderr: list[str] = field(default_factory=list)

    @property
    def damaged(self) -> bool:
        if self.problem or any(self.exits):
            return True
        chunks, sentences = self.store["chunks"], self.store["sentences"]
        return bool(
            chunks["unreadable"] or sentences["unreadable"] or chunks["sentences_missing"]
            or chunks["ids"] != self.expected_chunks
        )

    def line(self) -> str:
        if self.problem:
            state = self.problem
        else:
            c, s = self.store["chunks"], self.store["sentences"]
            state = (
                f"chunks {c['ids']}/{self.expected_chunks} ({c['unreadable']} unreadable, {c['sentences_missing']} lacking sentences), "
                f"sentences {s['ids']} ({s['unreadable']} unreadable)"
            )
        return f"round {self.n}: exits {self.exits}, {self.seconds:.1f}s; {state} -> {'DAMAGED' if self.damaged else 'ok'}"


def write_folder(folder: Path, *, files: int, tag: str, round_no: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        paragraphs = [
            f"Report {tag}-{i} of round {round_no} covers harbour number {i * 7 + round_no}. "
            f"The {tag} keeper logged {i + round_no} ships. Weather stayed calm.",
            f"Section two of {tag}-{i} lists cargo batch {round_no}-{i}. Inspectors approved it on day {i % 28 + 1}.",
        ][:PARAGRAPHS]
        (folder / f"{tag}-{i:04d}.txt").write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")


def verify(data: Path, *, collection: str = "qa", timeout: float = 300) -> tuple[dict[str, Any], str]:
    """Read every id back in a child process: (counts, "") or ({}, what went wrong)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", VERIFY, str(data / "chroma"), collection],
            capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {}, f"opening the store hung (> {timeout:.0f} s)"
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or [""]
        return {}, f"opening the store crashed (exit {done.returncode}: {tail[0][:160]})"
    return json.loads(done.stdout.strip().splitlines()[-1]), ""


def run_rounds(work: Path, *, rounds: int, files: int, base_url: str | None, env: dict[str, str] | None = None,
               echo: bool = False, ingest_timeout: float = 300) -> list[Round]:
    """`base_url`: the fake OpenAI server that embeds; None embeds with `QA_EMBED_MODEL=fake` in each process."""
    data = work / ".qa"
    folders = [work / "alpha", work / "bravo"]
    embedder = {"QA_EMBED_MODEL": "openai", "QA_LLM_BASE_URL": base_url, "QA_OPENAI_EMBED_MODEL": "fake-embed"} if base_url else {
        "QA_EMBED_MODEL": "fake"}
    environ = {**os.environ, **(env or {}), "QA_DATA_DIR": str(data), **embedder, "QA_EMBED_BATCH_SIZE": "64"}
    environ.pop("OPENAI_API_KEY", None)
    out: list[Round] = []
    for n in range(1, rounds + 1):
        for folder in folders:
            write_folder(folder, files=files, tag=folder.name, round_no=n)
        started = time.perf_counter()
        procs = [
            subprocess.Popen([str(QA), "ingest", "--json", str(folder)], env=environ, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for folder in folders
        ]
        results = []
        for proc in procs:
            try:
                results.append(proc.communicate(timeout=max(1.0, ingest_timeout - (time.perf_counter() - started))))
            except subprocess.TimeoutExpired:
                proc.kill()  # a hung writer: killed, and the round counts as damaged
                results.append(proc.communicate())
        result = Round(n, [p.returncode for p in procs], time.perf_counter() - started,
                       expected_chunks=len(folders) * files * PARAGRAPHS,
                       stderr=[err.strip()[-300:] for _, err in results if err.strip()])
        result.store, result.problem = verify(data)
        out.append(result)
        if echo:
            print(result.line(), flush=True)
            for err in result.stderr:
                print("   stderr:", err.splitlines()[-1][:200], flush=True)
        if result.problem:  # a store that can't be opened stays that way: the next round starts a new one
            data = work / f".qa-after-round-{n}"
            environ["QA_DATA_DIR"] = str(data)
            if echo:
                print(f"   (the store can't be opened; round {n + 1} on starts a new one)", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--work", type=Path, default=None, help="folder for the store and corpora (default: a temp dir)")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="qa-concurrent-") as tmp, FakeOpenAI(embedding_dim=32) as fake:
        work = args.work or Path(tmp)
        results = run_rounds(work, rounds=args.rounds, files=args.files, base_url=fake.base_url, echo=True)
        damaged = sum(r.damaged for r in results)
        unopenable = sum(bool(r.problem) for r in results)
        print(f"{len(results) - damaged} of {len(results)} rounds without damage "
              f"({args.files} files per folder, 2 writers; {unopenable} left a store that can't be opened)")


if __name__ == "__main__":
    main()
