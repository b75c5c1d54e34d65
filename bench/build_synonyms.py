"""Build qa/answer/data/synonyms.tsv from Princeton WordNet 3.0 (`make synonyms`; needs Debian's `wordnet-base`).

Reads WordNet's own database files (index.* and data.* in /usr/share/wordnet/) directly, so neither this
script nor qa needs nltk; qa reads only the derived file, so it needs neither apt nor WordNet at run time.

Two lemmas of the same part of speech (noun, verb, adjective) are synonyms when they share a synset that is
among the first `--senses` senses of BOTH (WordNet orders a lemma's senses by frequency in its tagged
corpus), which keeps "expel ~ kick out" (first sense of both) and drops rare senses ("fire ~ can").
Proper names are left out (names are matched as names). Lemmas of one or two words; each is written as the English Snowball stems of its words (the stems the
answerer's coverage features use). One line a term: `stem[ stem]<TAB>synonym|synonym|...`, each synonym
a space-separated stem sequence; each pair is written once (under the term that sorts first) and\nread both ways. Deterministic: sorted output, no randomness.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.terms import stemmer  # noqa: E402
from qa.text import STOPWORDS  # noqa: E402

POS = {"noun": "n", "verb": "v", "adj": "a"}
_LEMMA = re.compile(r"^[a-z]+(?:_[a-z]+)?$")  # one or two plain words

HEADER = """\
# Synonyms: a term's Snowball stems (one word or two)<TAB>its synonyms, |-separated, each as space-separated stems;\n# each pair once, under the term that sorts first (read both ways).
# Source: Princeton WordNet 3.0 (Debian package wordnet-base), nouns, verbs and adjectives; two lemmas are synonyms
# when they share a synset among the first {senses} senses of both. Built by `make synonyms` (bench/build_synonyms.py).
# Licence: WordNet 3.0 licence (Princeton University, permissive, BSD-like): "WordNet 3.0 Copyright 2006 by
# Princeton University. All rights reserved." Permission to use, copy, modify and distribute this software and
# database and its documentation for any purpose and without fee or royalty is hereby granted, provided that the
# copyright notice and this statement appear on all copies.
"""


def senses(root: Path, pos: str, limit: int) -> dict[str, list[str]]:
    """lemma -> its first `limit` synset offsets, most frequent first."""
    out: dict[str, list[str]] = {}
    for line in (root / f"index.{pos}").read_text(encoding="utf-8").splitlines():
        if line.startswith(" "):
            continue  # the licence header
        parts = line.split()
        lemma, n_synsets, n_pointers = parts[0], int(parts[2]), int(parts[3])
        offsets = parts[4 + n_pointers + 2 :]
        assert len(offsets) == n_synsets, line
        out[lemma] = offsets[:limit]
    return out


def synsets(root: Path, pos: str) -> dict[str, list[str]]:
    """synset offset -> its lemmas as written (adjective markers like "(a)" removed; proper names keep capitals)."""
    out: dict[str, list[str]] = {}
    for line in (root / f"data.{pos}").read_text(encoding="utf-8").splitlines():
        if line.startswith(" "):
            continue
        parts = line.split()
        count = int(parts[3], 16)
        words = [re.sub(r"\(.*\)$", "", parts[4 + 2 * i]) for i in range(count)]
        out[parts[0]] = words
    return out


def build(root: Path, limit: int) -> dict[str, set[str]]:
    stem = stemmer()

    def key(lemma: str) -> str | None:
        if not _LEMMA.match(lemma):
            return None
        words = lemma.split("_")
        if all(w in STOPWORDS for w in words):
            return None
        return " ".join(stem.stemWord(w) for w in words)

    table: dict[str, set[str]] = defaultdict(set)
    for pos in POS.values():
        name = {"n": "noun", "v": "verb", "a": "adj"}[pos]
        first = senses(root, name, limit)
        members = synsets(root, name)
        for lemma, offsets in first.items():
            mine = key(lemma)
            if mine is None:
                continue
            for offset in offsets:
                if lemma not in members[offset]:
                    continue  # written with capitals in this synset: a proper name ("Einstein"), no synonym of a word
                for other in members[offset]:
                    if other != other.lower():
                        continue  # a proper name ("Einstein") is no synonym of a word ("genius")
                    theirs = key(other)
                    if theirs is None or theirs == mine or offset not in first.get(other, ()):
                        continue
                    if mine < theirs:  # each pair once; qa reads the file both ways
                        table[mine].add(theirs)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--senses", type=int, default=2, help="senses of each lemma considered (most frequent first)")
    parser.add_argument("--out", type=Path, default=ROOT / "qa/answer/data/synonyms.tsv")
    args = parser.parse_args(argv)
    if not (args.wordnet / "index.noun").is_file():
        print(f"error: no WordNet database in {args.wordnet}; install it with: apt-get install -y wordnet-base", file=sys.stderr)
        return 2
    table = build(args.wordnet, args.senses)
    lines = [HEADER.format(senses=args.senses)]
    lines += [f"{k}\t{'|'.join(sorted(v))}\n" for k, v in sorted(table.items())]
    args.out.write_text("".join(lines), encoding="utf-8")
    print(f"{args.out}: {len(table)} terms, {sum(len(v) for v in table.values())} pairs, {args.out.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
