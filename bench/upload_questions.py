"""Questions answered on the chat page while an upload is indexed, and how long each took.

    .venv/bin/python bench/upload_questions.py --mb 1      # prints one line, saves bench/results/upload_questions.json

A `ChatPage` on the seed index (bundled MiniLM, embedded Chroma) uploads a generated `.txt` of about
`--mb` megabytes (short paragraphs of distinct sentences) in one thread while the main thread asks
the seed question over and over, as a user would, until the upload is done.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "What is Mark Sedwill's job?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "upload_questions.json")
    args = parser.parse_args()

    from qa import Engine, Settings
    from qa.ui import ChatPage

    with tempfile.TemporaryDirectory(prefix="qa-upload-") as tmp:
        work = Path(tmp)
        seeds = shutil.copytree(ROOT / "seeds", work / "seeds")
        settings = Settings(data_dir=work / ".qa", seeds_dir=seeds, _env_file=None)
        engine = Engine(settings)
        engine.ingest(seeds)
        page = ChatPage(engine, settings)
        list(page.chat(QUESTION, None))  # warm: model and index loaded
        upload = work / "in" / "ledger.txt"
        upload.parent.mkdir()
        paragraphs, size, i = [], 0, 0
        while size < args.mb * 1_000_000:
            text = f"Ledger entry {i} records {i * 3} crates of tin for the port of Amsel. It was signed by clerk {i % 17}."
            paragraphs.append(text)
            size += len(text) + 2
            i += 1
        upload.write_text("\n\n".join(paragraphs), encoding="utf-8")
        status: list[str] = []
        thread = threading.Thread(target=lambda: status.append(page.upload([str(upload)])[0]))
        started = time.monotonic()
        thread.start()
        times: list[float] = []
        while thread.is_alive():
            t0 = time.monotonic()
            answer = list(page.chat(QUESTION, None))[-1][3]
            if thread.is_alive():
                times.append(time.monotonic() - t0)
            assert "national security adviser" in answer["text"], answer
        upload_s = time.monotonic() - started
        thread.join()
        assert "added and indexed" in status[0], status
    result = {
        "upload_mb": round(size / 1e6, 2), "paragraphs": len(paragraphs), "upload_s": round(upload_s, 1),
        "questions_during_upload": len(times),
        "question_ms_mean": round(1000 * statistics.fmean(times), 1) if times else None,
        "question_ms_p95": round(1000 * sorted(times)[int(0.95 * (len(times) - 1))], 1) if times else None,
        "question_ms_max": round(1000 * max(times), 1) if times else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{result['questions_during_upload']} questions answered during a {result['upload_s']} s upload of "
          f"{result['upload_mb']} MB; per question mean {result['question_ms_mean']} ms, p95 {result['question_ms_p95']} ms, "
          f"max {result['question_ms_max']} ms")


if __name__ == "__main__":
    main()
