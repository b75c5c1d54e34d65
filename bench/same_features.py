"""Does a refactor of qa/answer/features.py compute the same numbers? Old and current featurizer on the same retrievals.

    git show e727c4c:qa/answer/features.py > /tmp/old_features.py
    python bench/same_features.py /tmp/old_features.py [--step 4]

Runs over the stores `make train` leaves in .qa/train (the SQuAD fitting set, every `--step`-th
question, and the dev half of eval/gold.jsonl), retrieving once per question and featurizing that
one retrieval both ways, because retrieval itself is not bit-reproducible between ingests (Chroma's
approximate index), so two `make train` runs may fit slightly different rows. Prints how many
questions got bit-identical feature rows; exits 1 if any did not.

The old file is called as `candidates(question, retrieval, corpus, context=...)` if it takes a
`Retrieval` and a `Corpus` (before the answerer seam), else with `Passages`.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path, help="an earlier qa/answer/features.py")
    parser.add_argument("--step", type=int, default=1, help="every N-th SQuAD question")
    parser.add_argument("--work", type=Path, default=ROOT / ".qa" / "train")
    args = parser.parse_args()

    spec = importlib.util.spec_from_file_location("old_features", args.old)
    assert spec is not None and spec.loader is not None
    old = importlib.util.module_from_spec(spec)
    sys.modules["old_features"] = old
    spec.loader.exec_module(old)

    from qa.answer.features import Featurizer
    from qa.answer.train import SQUAD, load_gold
    from qa.engine import Engine
    from qa.retrieve import Corpus, Retriever
    from qa.settings import Settings

    base = Settings(data_dir=args.work, llm_base_url=None, openai_api_key=None)
    dev = set(json.loads((ROOT / "eval" / "split.json").read_text(encoding="utf-8"))["dev"])
    parts = [
        ("fit-squad2-train-19", load_gold(SQUAD / "gold.jsonl")[:: args.step], False),
        ("fit-seed", [i for i in load_gold(ROOT / "eval" / "gold.jsonl") if i.id in dev], True),
    ]
    new_f, old_f = Featurizer(), old.Featurizer()
    takes_corpus = "corpus" in inspect.signature(old_f.candidates).parameters
    differing = 0
    for collection, items, with_history in parts:
        engine = Engine(base.model_copy(update={"collection": collection}))
        if not engine.corpus.chunks:
            print(f"{collection}: no store in {args.work}; run `make train` first", file=sys.stderr)
            return 1
        # As make train does: a corpus sorted by chunk id, so ties break the same way.
        retriever = Retriever(engine.store, Corpus(sorted(engine.corpus.chunks, key=lambda c: c.id)), engine.embedder)
        rows = same = 0
        started = time.perf_counter()
        for item in items:
            context = item.history[-1] if with_history and item.history else ""
            retrieval = retriever.retrieve(f"{context} {item.question}".strip(), base.top_k)
            passages = retriever.passages(retrieval)
            before = (
                old_f.candidates(item.question, retrieval, retriever.corpus, context=context)
                if takes_corpus
                else old_f.candidates(item.question, passages, context=context)
            )
            after = new_f.candidates(item.question, passages, context=context)
            a = np.stack([c.features for c in before]) if before else np.zeros((0, 0))
            b = np.stack([c.features for c in after]) if after else np.zeros((0, 0))
            rows += len(after)
            if [c.text for c in before] == [c.text for c in after] and np.array_equal(a, b):
                same += 1
            else:
                differing += 1
                print(f"  {item.id}: different rows", file=sys.stderr)
        print(f"{collection}: {len(items)} questions, {rows} feature rows, {same} with bit-identical rows ({time.perf_counter() - started:.0f} s)")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
