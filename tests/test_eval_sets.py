"""The hand-written test sets stay valid: every evidence quote is still in its document, ids are unique, sizes hold."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_check_sets_finds_no_problem_and_the_sets_keep_their_minimum_sizes() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "eval" / "check_sets.py")], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    para, own, conv = counts["paraphrase"], counts["own-docs"], counts["conversations"]
    assert para["items"] >= 60 and para["new_unanswerable"] >= 15
    assert own["documents"] >= 6 and own["items"] >= 50 and own["unanswerable"] >= 15 and own["follow_ups"] >= 8
    assert conv["conversations"] >= 30 and conv["topic_switches"] * 2 >= conv["conversations"]


def test_a_broken_evidence_quote_is_reported_with_its_file_and_line(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    for part in ("eval", "seeds"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("runs"))
    gold = copy / "eval" / "paraphrase.jsonl"
    lines = gold.read_text(encoding="utf-8").splitlines()
    item = json.loads(lines[0])
    item["evidence"] = [item["evidence"][0].replace("diplomats", "diplomat")]
    lines[0] = json.dumps(item, ensure_ascii=False)
    gold.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = subprocess.run([sys.executable, str(copy / "eval" / "check_sets.py")], capture_output=True, text=True, cwd=copy)
    assert done.returncode == 1
    assert "eval/paraphrase.jsonl:1: evidence not verbatim" in done.stderr
