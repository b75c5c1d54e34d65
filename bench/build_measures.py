"""Build qa/answer/data/measures.tsv from Princeton WordNet 3.0 (`make measures`; needs Debian's `wordnet-base`).

What the answerer knows of amounts, for the answer-type features (`qa/answer/qtype.py`):

- `unit`: the units of each kind of measure, one-word lemmas of every synset under WordNet's unit synsets
  (`monetary_unit`, `time_unit` with week, fortnight, year, decade and century, `computer_memory_unit`,
  `linear_unit`, `mass_unit`, `power_unit`), with their irregular plurals from WordNet's noun.exc ("pence",
  "feet"); "100 GB" states an amount of memory, "£45" (a currency symbol, Unicode category Sc) or "45 pence" one
  of money;
- `asks`, money: the nouns of money paid or charged (the synsets of `cost`, `price` as an amount and as monetary
  value, `charge` as a price, `fee` and the fees under it, `fine`, `rent`, `wage` and `budget`; a synonym only
  where that synset is its own first sense, so "terms" and "damage" of `price` stay out) and the verbs of paying
  (cost, pay, charge and spend, as WordNet has them in their money senses), with irregular forms from noun.exc and verb.exc ("paid", "spent");
  stop words are left out ("be" of "cost, be"): "what fee ...", "how much does ... cost" ask for money;
- `gives`, money: adjectives that state a price of nothing (the "costing nothing" synset of `free`);
- `period`: the periods a rate is given per (day, week, month, year, hour): each periodic adjective of WordNet
  (similar to `periodic`, derived from a time noun: "daily", "annual", "yearly") with its noun.

One line an entry: `section<TAB>kind<TAB>word|word|...`. Deterministic: sorted output.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.text import STOPWORDS  # noqa: E402

HEADER = """\
# Measures: section<TAB>kind<TAB>words, |-separated. Sections: unit (a kind's units), asks (words of a question that
# ask for that kind), gives (words that state an amount of that kind), period (a period and the words naming it).
# Source: Princeton WordNet 3.0 (Debian package wordnet-base); built by `make measures` (bench/build_measures.py).
# Licence: WordNet 3.0 licence (Princeton University, permissive, BSD-like): "WordNet 3.0 Copyright 2006 by
# Princeton University. All rights reserved." Permission to use, copy, modify and distribute this software and
# database and its documentation for any purpose and without fee or royalty is hereby granted, provided that the
# copyright notice and this statement appear on all copies.
"""

# (kind, lemma, sense number): the synsets whose hyponyms (closure) are units of the kind
UNIT_ROOTS = (
    ("money", "monetary_unit", 1),
    ("time", "time_unit", 1), ("time", "week", 1), ("time", "fortnight", 1), ("time", "year", 1),
    ("time", "decade", 1), ("time", "century", 1),
    ("memory", "computer_memory_unit", 1),
    ("length", "linear_unit", 1),
    ("mass", "mass_unit", 1),
    ("power", "power_unit", 1),
)
# Money a question asks for: noun synsets (with the synsets under them where the flag says so) and verb synsets
ASK_MONEY_NOUNS = (
    ("cost", 1, False), ("price", 1, False), ("price", 2, False), ("charge", 3, False), ("fee", 1, True),
    ("fine", 1, False), ("rent", 1, False), ("wage", 1, False), ("budget", 1, False),
)
ASK_MONEY_VERBS = (("cost", 1), ("pay", 1), ("charge", 1), ("spend", 2))  # each verb itself: its synonyms name other things
FREE = ("free", "costing nothing")  # the adjective synset whose gloss starts so
PERIODIC = ("periodic", 1)  # the head adjective periodic adjectives are similar to
_WORD = re.compile(r"^[A-Za-z][A-Za-z.]*$")  # one word (abbreviations with dots kept)


class WordNet:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.lemmas: dict[tuple[str, str], list[str]] = {}
        self.pointers: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
        self.gloss: dict[tuple[str, str], str] = {}
        for pos, name in (("n", "noun"), ("v", "verb"), ("a", "adj")):
            for line in (root / f"data.{name}").read_text(encoding="utf-8").splitlines():
                if line.startswith(" "):
                    continue  # the licence header
                head, _, gloss = line.partition(" | ")
                parts = head.split()
                count = int(parts[3], 16)
                key = (pos, parts[0])
                self.lemmas[key] = [re.sub(r"\(.*\)$", "", parts[4 + 2 * i]) for i in range(count)]
                at = 4 + 2 * count
                n = int(parts[at])
                self.pointers[key] = [
                    (parts[at + 1 + 4 * j], parts[at + 2 + 4 * j], {"s": "a"}.get(parts[at + 3 + 4 * j], parts[at + 3 + 4 * j])) for j in range(n)
                ]
                self.gloss[key] = gloss.strip()
        self.first_noun_sense: dict[str, tuple[str, str]] = {}
        for line in (root / "index.noun").read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if parts and not line.startswith(" "):
                self.first_noun_sense[parts[0]] = ("n", parts[4 + int(parts[3]) + 2])
        self.exceptions: dict[str, list[tuple[str, str]]] = defaultdict(list)  # base -> (inflected, pos)
        for pos, name in (("n", "noun"), ("v", "verb")):
            for line in (root / f"{name}.exc").read_text(encoding="utf-8").splitlines():
                inflected, *bases = line.split()
                for base in bases:
                    self.exceptions[base].append((inflected, pos))

    def synset(self, lemma: str, sense: int, pos: str = "n") -> tuple[str, str]:
        name = {"n": "noun", "v": "verb", "a": "adj"}[pos]
        for line in (self.root / f"index.{name}").read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if parts and parts[0] == lemma:
                n_pointers = int(parts[3])
                return (pos, parts[4 + n_pointers + 2 :][sense - 1])
        raise KeyError(f"{lemma} ({pos}) is not in WordNet")

    def closure(self, key: tuple[str, str]) -> set[tuple[str, str]]:
        """The synset and every hyponym below it (instances included)."""
        seen: set[tuple[str, str]] = set()
        todo = [key]
        while todo:
            k = todo.pop()
            if k in seen:
                continue
            seen.add(k)
            todo += [(pos, off) for sym, off, pos in self.pointers[k] if sym in ("~", "~i") and pos == k[0]]
        return seen

    def words(self, keys: set[tuple[str, str]], pos: str = "n") -> set[str]:
        """One-word lemmas of the synsets, with their irregular inflections."""
        out = {w for k in keys for w in self.lemmas[k] if _WORD.match(w)}
        out |= {inflected for w in list(out) for inflected, p in self.exceptions.get(w.lower(), ()) if p == pos}
        return out


def build(root: Path) -> list[tuple[str, str, list[str]]]:
    wn = WordNet(root)
    units: dict[str, set[str]] = defaultdict(set)
    for kind, lemma, sense in UNIT_ROOTS:
        units[kind] |= {w for w in wn.words(wn.closure(wn.synset(lemma, sense))) if w.lower() not in STOPWORDS}
    asks = set()
    for lemma, sense, below in ASK_MONEY_NOUNS:
        top = wn.synset(lemma, sense)
        keys = wn.closure(top) if below else {top}
        asks |= {lemma} | {w for w in wn.words(keys) if w in wn.first_noun_sense and wn.first_noun_sense[w] in keys}
    for lemma, sense in ASK_MONEY_VERBS:
        if lemma not in wn.lemmas[wn.synset(lemma, sense, "v")]:
            raise KeyError(f"sense {sense} of the verb {lemma} is not its own synset")
        asks |= wn.words({wn.synset(lemma, sense, "v")}, "v") & ({lemma} | {i for i, pos in wn.exceptions.get(lemma, ()) if pos == "v"})
    asks = {w.lower() for w in asks if w.lower() not in STOPWORDS}
    free = next(k for k in wn.lemmas if k[0] == "a" and FREE[0] in wn.lemmas[k] and wn.gloss[k].startswith(FREE[1]))
    gives = {w.lower() for w in wn.lemmas[free] if _WORD.match(w)}
    head = wn.synset(*PERIODIC, pos="a")
    periods: dict[str, set[str]] = defaultdict(set)
    for key, pointers in wn.pointers.items():
        if key[0] != "a" or ("&", head[1], "a") not in pointers:
            continue
        nouns = [(pos, off) for sym, off, pos in pointers if sym == "+" and pos == "n"]
        named = sorted({wn.lemmas[n][0] for n in nouns if n in wn.lemmas} & units["time"])
        for noun in named[:1]:
            periods[noun] |= {noun} | {w for w in wn.lemmas[key] if _WORD.match(w)}
    rows = [("unit", kind, sorted(words)) for kind, words in sorted(units.items())]
    rows += [("asks", "money", sorted(asks)), ("gives", "money", sorted(gives))]
    rows += [("period", noun, sorted(words)) for noun, words in sorted(periods.items())]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--out", type=Path, default=ROOT / "qa/answer/data/measures.tsv")
    args = parser.parse_args(argv)
    if not (args.wordnet / "index.noun").is_file():
        print(f"error: no WordNet database in {args.wordnet}; install it with: apt-get install -y wordnet-base", file=sys.stderr)
        return 2
    rows = build(args.wordnet)
    args.out.write_text(HEADER + "".join(f"{s}\t{k}\t{'|'.join(w)}\n" for s, k, w in rows), encoding="utf-8")
    print(f"{args.out}: " + ", ".join(f"{s} {k} {len(w)}" for s, k, w in rows) + f"; {args.out.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
