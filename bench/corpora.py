"""The benchmark's corpora: the seed article, and subsets of Debian's Python 3.11 documentation sources."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "work"  # not hidden: LlamaIndex's reader skips paths with a dot-folder in them
SEEDS = ROOT / "seeds"
GOLD = ROOT / "eval" / "gold.jsonl"
PYDOCS = Path("/usr/share/doc/python3.11/html/_sources")
PYDOCS_QUESTIONS = BENCH / "python_docs_questions.jsonl"

# Name -> chunks wanted (None: every file). Subsets grow file by file in a fixed order.
SIZES: dict[str, int | None] = {"seed": 0, "1k": 1_000, "10k": 10_000, "all": None}


@dataclass
class Corpus:
    name: str
    folder: Path
    questions: Path
    files: int
    chunks: int
    words: int
    tokens: int  # word pieces the encoder reads, [CLS]/[SEP] included

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["folder"] = str(self.folder)
        out["questions"] = str(self.questions)
        return out


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_python_docs() -> Path:
    """Install Debian's python3.11-doc if its sources are missing (needs root and the Debian mirror)."""
    if PYDOCS.is_dir():
        return PYDOCS
    log("installing python3.11-doc with apt-get …")
    install = ["apt-get", "install", "-y", "-q", "python3.11-doc"]
    if subprocess.run(install, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True)
        done = subprocess.run(install, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"apt-get install python3.11-doc failed:\n{done.stderr[-2000:]}")
    if not PYDOCS.is_dir():
        raise SystemExit(f"python3.11-doc is installed but {PYDOCS} is missing.")
    return PYDOCS


def _file_stats(root: Path) -> dict[str, dict[str, int]]:
    """Chunks, words and word pieces per file, as `qa ingest` would cut them (cached by size and mtime)."""
    from qa.documents import chunk_document, load_folder
    from qa.embed import _Tokens, bundled_model_dir

    cache = WORK / f"stats-{root.name}.json"
    files = sorted(p for p in root.rglob("*") if p.is_file())
    key = f"{root.resolve()}:{len(files)}:{sum(p.stat().st_size for p in files)}:{max(p.stat().st_mtime_ns for p in files)}"
    if cache.is_file():
        data = json.loads(cache.read_text())
        if data.get("key") == key:
            return dict(data["files"])
    log(f"counting chunks in {root} …")
    tokens = _Tokens(bundled_model_dir())
    stats: dict[str, dict[str, int]] = {}
    for doc in load_folder(root, max_bytes=20_000_000).documents:
        chunks = chunk_document(doc, count_tokens=tokens.count, max_tokens=200)
        texts = [t for c in chunks for t in c.sentence_texts()]
        stats[doc.source] = {"chunks": len(chunks), "words": len(doc.text.split()), "tokens": sum(tokens.count(texts))}
    WORK.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "files": stats}))
    return stats


def corpus(name: str) -> Corpus:
    """The folder for size `name` (built under bench/work/corpora/), with its counts and questions."""
    if name not in SIZES:
        raise SystemExit(f"unknown size {name!r}; choose from {', '.join(SIZES)}")
    if name == "seed":
        stats = _file_stats(SEEDS)
        return _summary(name, SEEDS, GOLD, stats, list(stats))
    root = ensure_python_docs()
    stats = _file_stats(root)
    wanted = SIZES[name]
    # Files the questions quote come first, so every subset can answer every question.
    first = [json.loads(line)["source"] for line in PYDOCS_QUESTIONS.read_text().splitlines() if line.strip()]
    order = list(dict.fromkeys(first)) + sorted(s for s in stats if s not in first)
    chosen: list[str] = []
    total = 0
    for source in order:
        if wanted is not None and total >= wanted:
            break
        chosen.append(source)
        total += stats[source]["chunks"]
    folder = WORK / "corpora" / f"pydocs-{name}"
    marker = WORK / "corpora" / f"pydocs-{name}.files.json"
    if not (marker.is_file() and json.loads(marker.read_text()) == chosen):
        shutil.rmtree(folder, ignore_errors=True)
        for source in chosen:
            target = folder / source
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / source, target)
        marker.write_text(json.dumps(chosen))
    return _summary(name, folder, PYDOCS_QUESTIONS, stats, chosen)


def _summary(name: str, folder: Path, questions: Path, stats: dict[str, dict[str, int]], chosen: list[str]) -> Corpus:
    return Corpus(
        name=name,
        folder=folder,
        questions=questions,
        files=len(chosen),
        chunks=sum(stats[s]["chunks"] for s in chosen),
        words=sum(stats[s]["words"] for s in chosen),
        tokens=sum(stats[s]["tokens"] for s in chosen),
    )


def load_questions(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
