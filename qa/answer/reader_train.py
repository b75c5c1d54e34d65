"""`make train-reader`: train the reader (`qa/answer/reader.py`) on squad2-train-19 and measure it against today's score.

Fitting data only (eval/README.md). Steps, all deterministic (fixed seeds, one thread count):

1. Candidates: every SQuAD question is retrieved and featurised as `make train` does (plus the gold
   dev half and `eval/fit/`, which the reader never trains on); the answerability model is refitted
   out of fold by article (5 folds, as `make train`) to rank each question's candidates.
2. Pairs: for each SQuAD question its answering sentences (positives) and its best-ranked other
   candidates (hard negatives; for an unanswerable question every candidate is one).
3. Training, on half A of the articles (every other one, sorted): the top `--trainable-layers` of the
   bundled MiniLM (default 2: layers 4-5) and a linear head over the mean token vector are trained with
   binary cross-entropy for `--epochs` (linear warm-up over 6% of the steps, then linear decay; gradient
   norm clipped to 1); the embeddings and the layers below are frozen (their output is computed once and kept).
4. Measurement on half B, which the reader never saw: AUROC of answerable vs unanswerable for (a)
   today's score, (b) the reader alone, (c) a logistic regression over both logits (stacked; 5 folds
   by article within B), on the 1 or 2 best candidates of today's model; the abstention threshold as
   `make train` picks it (false abstentions <= 0.10 on half B, the gold dev half and eval/fit/).
5. Writes `qa/answer/reader.safetensors` (layers 4-5 and head in float16; in its metadata the stack,
   fitted on all of half B, and the threshold) and `bench/results/reader.json` (every figure).

    python -m qa.answer.reader_train [--limit N] [--cached]
    # the retry (eval/README.md, bench/results/reader-retry.json): all six layers, 3 epochs, no loss weighting
    python -m qa.answer.reader_train --trainable-layers 6 --epochs 3 --lr-layers 3e-5 --lr-head 1e-4 \
        --no-pos-weight --max-tokens 96 --report bench/results/reader-retry.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import pickle
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qa.answer.features import FEATURES, Featurizer
from qa.answer.reader import (
    ARTIFACT,
    HEADS,
    HIDDEN,
    LAYERS,
    MAX_TOKENS,
    TRAINED_FROM,
    PairTokens,
    bundled_tensors,
    layer_names,
    logit,
)
from qa.answer.train import GOLD_WEIGHT, SQUAD, _ExactDense, _fit, _label, _threshold, auroc, evidence_sources
from qa.metrics import load_gold
from qa.settings import PROJECT_ROOT, Settings

SEED = 18
THREADS = 2
NEGATIVES = 2  # hard negatives per question
TOP = 2  # candidates the reader scores at measurement (the stack is chosen among 1..TOP)
BATCH = 32
EPOCHS = 1
LR_LAYERS = 5e-5
LR_HEAD = 1e-3
STACK_FOLDS = 5
POS_WEIGHT = True  # weigh the (fewer) answering sentences up to balance the classes in the loss
FROM = TRAINED_FROM  # layers below are frozen (their output computed once); --trainable-layers sets it
MAX_PIECES = MAX_TOKENS  # word pieces per (question, sentence) pair; --max-tokens sets it
CLIP = 1.0  # gradient norm clipped to this


@dataclass
class Question:
    """One fitting question: its candidates' texts, feature rows and labels, and its article."""

    text: str
    answerable: bool
    group: str
    texts: list[str]
    x: np.ndarray
    y: np.ndarray
    evidence: tuple[str, ...] = ()
    first: np.ndarray = field(default_factory=lambda: np.zeros(0))  # answerability probability per candidate


def collect(settings: Settings, corpus: Path, items: list[Any], groups: list[str], log: Any) -> list[Question]:
    from typing import cast

    from qa.engine import Engine
    from qa.retrieve import Corpus, Retriever
    from qa.store import Store

    engine = Engine(settings)
    engine.ingest(corpus, progress=False)
    # as `make train` ranks them: exactly, the corpus in text order (qa/answer/train.py, _rows)
    chunks = sorted(engine.corpus.chunks, key=lambda c: (c.source, c.start, c.end, c.text))
    retriever = Retriever(cast(Store, _ExactDense(engine.store, chunks)), Corpus(chunks), engine.embedder)
    featurizer = Featurizer()
    out = []
    started = time.perf_counter()
    for n, (item, group) in enumerate(zip(items, groups)):
        context = item.history[-1] if item.history else ""
        passages = retriever.search(f"{context} {item.question}".strip(), settings.top_k)
        cands = featurizer.candidates(item.question, passages, context=context)
        out.append(
            Question(
                text=item.question,
                answerable=item.answerable,
                group=group,
                texts=[c.text for c in cands],
                x=np.array([c.features for c in cands]).reshape(len(cands), len(FEATURES)),
                y=np.array([_label(c.text, item.answers, item.evidence) if item.answerable else 0 for c in cands], dtype=np.int64),
                evidence=tuple(item.evidence) if item.answerable else (),
            )
        )
        if (n + 1) % 1000 == 0:
            log(f"  {n + 1}/{len(items)} questions ({time.perf_counter() - started:.0f} s)")
    return out


def _rows(qs: list[Question]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.concatenate([q.x for q in qs]) if qs else np.zeros((0, len(FEATURES)))
    y = np.concatenate([q.y for q in qs]) if qs else np.zeros(0)
    owner = np.concatenate([np.full(len(q.y), i) for i, q in enumerate(qs)]) if qs else np.zeros(0, dtype=int)
    return x, y, owner


def first_stage(squad: list[Question], gold: list[Question], written: list[Question]) -> None:
    """Today's answerability model: out of fold by article on SQuAD (5 folds, gold dev in every fit), fitted on all for the rest."""
    groups = sorted({q.group for q in squad})
    fold_of = {g: i % 5 for i, g in enumerate(groups)}
    gx, gy, _ = _rows(gold)
    for fold in range(5):
        train = [q for q in squad if fold_of[q.group] != fold]
        held = [q for q in squad if fold_of[q.group] == fold]
        tx, ty, _ = _rows(train)
        model = _fit(np.concatenate([tx, gx]), np.concatenate([ty, gy]), np.concatenate([np.ones(len(ty)), np.full(len(gy), GOLD_WEIGHT)]), FEATURES)
        for q in held:
            q.first = model.predict(q.x) if len(q.y) else np.zeros(0)
    sx, sy, _ = _rows(squad)
    model = _fit(np.concatenate([sx, gx]), np.concatenate([sy, gy]), np.concatenate([np.ones(len(sy)), np.full(len(gy), GOLD_WEIGHT)]), FEATURES)
    for q in gold + written:
        q.first = model.predict(q.x) if len(q.y) else np.zeros(0)


def top(q: Question, k: int) -> np.ndarray:
    """Indices of the k best candidates by today's score (ties by position)."""
    return np.argsort(-q.first, kind="stable")[:k]


def training_pairs(qs: list[Question]) -> list[tuple[int, str, int]]:
    """(question index, sentence, label): answering sentences and the best-ranked others."""
    pairs = []
    for i, q in enumerate(qs):
        positives = [q.texts[j] for j in np.flatnonzero(q.y)]
        if q.answerable and not positives:
            positives = list(q.evidence[:1])
        pairs += [(i, t, 1) for t in dict.fromkeys(positives)]
        negatives = [q.texts[j] for j in top(q, len(q.texts)) if not q.y[j]][:NEGATIVES]
        pairs += [(i, t, 0) for t in dict.fromkeys(negatives) if t not in positives]
    return pairs


class Lower:
    """Embeddings and the frozen layers 0..FROM-1, run once per pair (torch, no gradients)."""

    def __init__(self, tensors: dict[str, np.ndarray]) -> None:
        import torch

        self.t = {k: torch.from_numpy(v) for k, v in tensors.items()}
        self.layers = [build_layer(tensors, i).eval() for i in range(FROM)]

    def __call__(self, ids: Any, seg: Any, mask: Any) -> Any:
        import torch

        t = self.t
        with torch.no_grad():
            x = t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][: ids.shape[1]]
            x = x + t["embeddings.token_type_embeddings.weight"][seg]
            x = torch.nn.functional.layer_norm(x, (HIDDEN,), t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], 1e-12)
            for layer in self.layers:
                x = layer(x, mask)
        return x


def build_layer(tensors: dict[str, np.ndarray], i: int) -> Any:
    import torch

    class Layer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q = torch.nn.Linear(HIDDEN, HIDDEN)
            self.k = torch.nn.Linear(HIDDEN, HIDDEN)
            self.v = torch.nn.Linear(HIDDEN, HIDDEN)
            self.out = torch.nn.Linear(HIDDEN, HIDDEN)
            self.ln1 = torch.nn.LayerNorm(HIDDEN, eps=1e-12)
            self.ff1 = torch.nn.Linear(HIDDEN, 4 * HIDDEN)
            self.ff2 = torch.nn.Linear(4 * HIDDEN, HIDDEN)
            self.ln2 = torch.nn.LayerNorm(HIDDEN, eps=1e-12)

        def forward(self, x: Any, mask: Any) -> Any:
            b, n, _ = x.shape
            d = HIDDEN // HEADS

            def split(y: Any) -> Any:
                return y.view(b, n, HEADS, d).transpose(1, 2)

            q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
            scores = q @ k.transpose(-1, -2) / (d**0.5) + ((1 - mask) * -1e9)[:, None, None, :]
            context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, HIDDEN)
            x = self.ln1(self.out(context) + x)
            return self.ln2(self.ff2(torch.nn.functional.gelu(self.ff1(x))) + x)

    layer = Layer()
    state = {short: torch.from_numpy(tensors[long].copy()) for short, long in layer_names(i).items()}
    layer.load_state_dict(state)
    return layer


def build_upper(tensors: dict[str, np.ndarray]) -> Any:
    import torch

    class Upper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList([build_layer(tensors, i) for i in range(FROM, LAYERS)])
            self.head = torch.nn.Linear(HIDDEN, 1)
            torch.nn.init.normal_(self.head.weight, std=0.02)
            torch.nn.init.zeros_(self.head.bias)

        def forward(self, x: Any, mask: Any) -> Any:
            for layer in self.layers:
                x = layer(x, mask)
            pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True)
            return self.head(pooled).squeeze(-1)

    return Upper()


class States:
    """The frozen layers' output for each distinct (question, sentence), float16, computed once."""

    def __init__(self, tokens: PairTokens, lower: Lower) -> None:
        self.tokens = tokens
        self.lower = lower
        self.cache: dict[tuple[str, str], tuple[Any, Any]] = {}

    def add(self, pairs: list[tuple[str, str]], log: Any) -> None:
        import torch

        todo = sorted({p for p in pairs if p not in self.cache})
        todo_ids = [self.tokens.pairs(q, [s])[0] for q, s in todo]
        order = sorted(range(len(todo)), key=lambda i: len(todo_ids[i][0]))
        started = time.perf_counter()
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            ids, seg, mask = pad([todo_ids[i] for i in batch])
            x = self.lower(ids, seg, mask).to(torch.float16)
            for row, i in enumerate(batch):
                n = len(todo_ids[i][0])
                self.cache[todo[i]] = (x[row, :n].clone(), torch.tensor(todo_ids[i][0]))
            if (start // 64) % 50 == 0:
                log(f"  frozen layers: {start + len(batch)}/{len(order)} pairs ({time.perf_counter() - started:.0f} s)")

    def batch(self, pairs: list[tuple[str, str]]) -> tuple[Any, Any]:
        import torch

        got = [self.cache[p][0] for p in pairs]
        n = max(len(g) for g in got)
        x = torch.zeros(len(got), n, HIDDEN)
        mask = torch.zeros(len(got), n)
        for row, g in enumerate(got):
            x[row, : len(g)] = g.float()
            mask[row, : len(g)] = 1
        return x, mask


def pad(pairs: list[tuple[list[int], list[int]]]) -> tuple[Any, Any, Any]:
    import torch

    n = max(len(i) for i, _ in pairs)
    ids = torch.zeros(len(pairs), n, dtype=torch.long)
    seg = torch.zeros(len(pairs), n, dtype=torch.long)
    mask = torch.zeros(len(pairs), n)
    for row, (i, s) in enumerate(pairs):
        ids[row, : len(i)] = torch.tensor(i)
        seg[row, : len(s)] = torch.tensor(s)
        mask[row, : len(i)] = 1
    return ids, seg, mask


def train(tensors: dict[str, np.ndarray], states: States, pairs: list[tuple[str, str, int]], log: Any, losses: list[float]) -> Any:
    """Layers FROM.. and the head, trained on `pairs` (question, sentence, label); batches of similar length, seeded.

    Each step's loss is appended to `losses`."""
    import torch

    torch.manual_seed(SEED)
    model = build_upper(tensors)
    model.train()
    opt = torch.optim.AdamW(
        [{"params": model.layers.parameters(), "lr": LR_LAYERS}, {"params": model.head.parameters(), "lr": LR_HEAD}], weight_decay=0.01
    )
    rng = random.Random(SEED)
    steps = EPOCHS * ((len(pairs) + BATCH - 1) // BATCH)
    warmup = max(1.0, 0.06 * steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1 - s / steps))
    positives = sum(p[2] for p in pairs)
    pos_weight = torch.tensor((len(pairs) - positives) / max(positives, 1) if POS_WEIGHT else 1.0)
    started = time.perf_counter()
    step = 0
    for epoch in range(EPOCHS):
        order = sorted(range(len(pairs)), key=lambda i: (len(states.cache[(pairs[i][0], pairs[i][1])][0]), rng.random()))
        batches = [order[i : i + BATCH] for i in range(0, len(order), BATCH)]
        rng.shuffle(batches)
        total = 0.0
        for b in batches:
            x, mask = states.batch([(pairs[i][0], pairs[i][1]) for i in b])
            y = torch.tensor([float(pairs[i][2]) for i in b])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x, mask), y, pos_weight=pos_weight)
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            opt.step()
            sched.step()
            total += float(loss.detach())
            losses.append(float(loss.detach()))
            step += 1
            if step % 100 == 0:
                log(
                    f"  epoch {epoch + 1} step {step}/{steps}: loss {total / (step - epoch * len(batches)):.4f} this epoch, "
                    f"{np.mean(losses[-100:]):.4f} last 100 steps ({time.perf_counter() - started:.0f} s)"
                )
    model.eval()
    return model


def score(model: Any, states: States, pairs: list[tuple[str, str]]) -> np.ndarray:
    import torch

    out = np.zeros(len(pairs))
    order = sorted(range(len(pairs)), key=lambda i: len(states.cache[pairs[i]][0]))
    with torch.no_grad():
        for start in range(0, len(order), 128):
            b = order[start : start + 128]
            x, mask = states.batch([pairs[i] for i in b])
            out[b] = model(x, mask).numpy()
    return out


def artifact_bytes(model: Any, stack: dict[str, Any], meta: dict[str, Any]) -> bytes:
    """The reader artifact: the trained layers and head in float16, the stack and what it is in the metadata."""
    import torch
    from safetensors.torch import save

    tensors = {}
    for li, layer in enumerate(model.layers):
        for short, value in layer.state_dict().items():
            tensors[f"layer.{FROM + li}.{short}"] = value.detach().to(torch.float16).contiguous()
    tensors["head.weight"] = model.head.weight.detach().to(torch.float16).contiguous()
    tensors["head.bias"] = model.head.bias.detach().to(torch.float16).reshape(1).contiguous()
    raw: bytes = save(dict(sorted(tensors.items())), metadata={"stack": json.dumps(stack, sort_keys=True), "meta": json.dumps(meta, sort_keys=True)})
    return canonical(raw)


def canonical(raw: bytes) -> bytes:
    """The safetensors file with its JSON header's keys sorted: safetensors writes the metadata in hash-map order,
    which changes from run to run, so the same weights gave a different file (and sha256) each time."""
    n = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the data stays 8-byte aligned, as safetensors writes it
    return len(header).to_bytes(8, "little") + header + raw[8 + n :]


def main(argv: list[str] | None = None) -> int:
    global LR_LAYERS, LR_HEAD, POS_WEIGHT, EPOCHS, FROM, MAX_PIECES
    import torch

    parser = argparse.ArgumentParser(prog="python -m qa.answer.reader_train", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ARTIFACT)
    parser.add_argument("--report", type=Path, default=PROJECT_ROOT / "bench" / "results" / "reader.json")
    parser.add_argument("--work", type=Path, default=PROJECT_ROOT / ".qa" / "train-reader")
    parser.add_argument("--limit", type=int, default=None, help="about N SQuAD questions, evenly spread (a quick check; with --cached, of the cached ones)")
    parser.add_argument("--cached", action="store_true", help="reuse the candidates of the last run in --work")
    parser.add_argument("--max-false-abstain", type=float, default=0.10)
    parser.add_argument("--lr-layers", type=float, default=LR_LAYERS)
    parser.add_argument("--lr-head", type=float, default=LR_HEAD)
    parser.add_argument("--no-pos-weight", action="store_true", help="don't up-weight the answering sentences in the loss")
    parser.add_argument("--trainable-layers", type=int, default=LAYERS - TRAINED_FROM, help=f"top encoder layers trained (1..{LAYERS}; embeddings stay frozen)")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS, help="word pieces per (question, sentence) pair")
    parser.add_argument("--collect-only", action="store_true", help="retrieve and cache the candidates in --work, then stop")
    args = parser.parse_args(argv)
    if not 1 <= args.trainable_layers <= LAYERS:
        parser.error(f"--trainable-layers must be 1..{LAYERS}")
    if os.environ.get("PYTHONHASHSEED") != "0" and argv is None:
        # as `make train`: sets of terms are summed in hash order, so one fixed hash seed gives the same features every run
        os.execve(sys.executable, [sys.executable, "-m", "qa.answer.reader_train", *sys.argv[1:]], {**os.environ, "PYTHONHASHSEED": "0"})
    LR_LAYERS, LR_HEAD, POS_WEIGHT = args.lr_layers, args.lr_head, not args.no_pos_weight
    EPOCHS, FROM, MAX_PIECES = args.epochs, LAYERS - args.trainable_layers, args.max_tokens
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    cache = args.work / "candidates.pkl"
    if args.cached and cache.is_file():
        squad, gold, written = pickle.loads(cache.read_bytes())
        if args.limit:
            squad = squad[:: max(1, len(squad) // args.limit)]
    else:
        base = Settings(data_dir=args.work, llm_base_url=None, OPENAI_API_KEY=None)
        items = load_gold(SQUAD / "gold.jsonl")
        items = items[:: max(1, len(items) // args.limit)] if args.limit else items
        log(f"SQuAD fitting set: {len(items)} questions")
        squad = collect(
            base.model_copy(update={"collection": "fit-squad2-train-19"}), SQUAD / "corpus", items,
            evidence_sources(items, sorted((SQUAD / "corpus").glob("*.txt"))), log,
        )
        dev_ids = set(json.loads((PROJECT_ROOT / "eval" / "split.json").read_text(encoding="utf-8"))["dev"])
        dev = [i for i in load_gold(PROJECT_ROOT / "eval" / "gold.jsonl") if i.id in dev_ids]
        gold = collect(base.model_copy(update={"collection": "fit-seed"}), PROJECT_ROOT / "seeds", dev, ["gold-dev"] * len(dev), log)
        fit = load_gold(PROJECT_ROOT / "eval" / "fit" / "gold.jsonl")
        written = collect(base.model_copy(update={"collection": "fit-docs"}), PROJECT_ROOT / "eval" / "fit" / "docs", fit, ["fit-docs"] * len(fit), log)
        args.work.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps((squad, gold, written)))
    if args.collect_only:
        log(f"cached the candidates of {len(squad)} + {len(gold)} + {len(written)} questions in {cache}")
        return 0
    collected = time.perf_counter()
    first_stage(squad, gold, written)

    from qa.embed import bundled_model_dir

    # One split by article: the reader learns on half A and is measured (and stacked) on half B, which
    # it never saw; the shipped reader is the one trained on A (a second training on all articles would
    # need its own held-out stack and doubles the CPU time on 2 shared cores).
    groups = sorted({q.group for q in squad})
    half = {g: i % 2 for i, g in enumerate(groups)}
    learn = [q for q in squad if half[q.group] == 0]
    held = [q for q in squad if half[q.group] == 1]
    tensors = bundled_tensors(bundled_model_dir())
    states = States(PairTokens(bundled_model_dir(), MAX_PIECES), Lower(tensors))
    pair_list = [(learn[i].text, s, y) for i, s, y in training_pairs(learn)]
    measured = [(q.text, q.texts[j]) for q in held + gold + written for j in top(q, TOP)]
    states.add([(q, s) for q, s, _ in pair_list] + measured, log)
    frozen = time.perf_counter()
    log(f"reader on half A ({len(learn)} questions): {len(pair_list)} pairs")
    losses: list[float] = []
    final = train(tensors, states, pair_list, log, losses)
    trained = time.perf_counter()
    reader: dict[str, list[np.ndarray]] = {}
    for name, qs in (("held", held), ("gold", gold), ("written", written)):
        keys = [(q.text, q.texts[j]) for q in qs for j in top(q, TOP)]
        got = iter(score(final, states, keys))
        reader[name] = [np.array([next(got) for _ in top(q, TOP)]) for q in qs]

    first_logit = [logit(q.first[top(q, TOP)]) for q in held]
    labels = [q.y[top(q, TOP)] for q in held]

    def stack_fit(rows: list[int], k: int) -> tuple[np.ndarray, float]:
        from sklearn.linear_model import LogisticRegression

        use = [i for i in rows if len(first_logit[i])]
        x = np.concatenate([np.stack([first_logit[i][:k], reader["held"][i][:k]], axis=1) for i in use])
        y = np.concatenate([labels[i][:k] for i in use])
        m = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
        return m.coef_[0], float(m.intercept_[0])

    def stack_predict(coef: np.ndarray, intercept: float, first: np.ndarray, scores: np.ndarray) -> float:
        if not len(first):
            return 0.0
        z = np.stack([first, scores], axis=1) @ coef + intercept
        return float((1 / (1 + np.exp(-z))).max())

    def best(q: Question) -> float:
        return float(q.first.max()) if len(q.first) else 0.0

    h_ans = np.array([q.answerable for q in held])
    h_groups = sorted({q.group for q in held})
    fold_of = {g: i % STACK_FOLDS for i, g in enumerate(h_groups)}
    today = np.array([best(q) for q in held])
    results: dict[str, Any] = {"squad_half_b": {"questions": len(held), "articles": len(h_groups), "today_auroc": round(auroc(today, h_ans) or 0.0, 4)}}
    best_k, best_auc, stacked_by_k = 1, -1.0, {}
    for k in range(1, TOP + 1):
        alone = np.array([float(r[:k].max()) if len(r) else -40.0 for r in reader["held"]])
        stacked = np.zeros(len(held))
        for fold in range(STACK_FOLDS):
            coef, intercept = stack_fit([i for i, q in enumerate(held) if fold_of[q.group] != fold], k)
            for i, q in enumerate(held):
                if fold_of[q.group] == fold:
                    stacked[i] = stack_predict(coef, intercept, first_logit[i][:k], reader["held"][i][:k])
        stacked_by_k[k] = stacked
        auc_c = auroc(stacked, h_ans) or 0.0
        results["squad_half_b"][f"top{k}"] = {"reader_alone_auroc": round(auroc(alone, h_ans) or 0.0, 4), "stacked_auroc": round(auc_c, 4)}
        if auc_c > best_auc + 0.002:
            best_k, best_auc = k, auc_c
    coef, intercept = stack_fit(list(range(len(held))), best_k)

    def rates(scores: np.ndarray, ans: np.ndarray, t: float) -> dict[str, float]:
        return {"false_abstain_rate": round(float((scores[ans] < t).mean()), 4), "abstain_recall": round(float((scores[~ans] < t).mean()), 4)}

    sets = {"squad_half_b": (stacked_by_k[best_k], h_ans)}
    today_sets = {"squad_half_b": (today, h_ans)}
    for name, qs in (("gold", gold), ("written", written)):
        ans = np.array([q.answerable for q in qs])
        sc = np.array([stack_predict(coef, intercept, logit(q.first[top(q, best_k)]), r[:best_k]) for q, r in zip(qs, reader[name])])
        sets[name] = (sc, ans)
        today_sets[name] = (np.array([best(q) for q in qs]), ans)
        alone = np.array([float(r[:best_k].max()) if len(r) else -40.0 for r in reader[name]])
        results[f"{name}_fitting_set"] = {
            "today_auroc": round(auroc(today_sets[name][0], ans) or 0.0, 4),
            "reader_alone_auroc": round(auroc(alone, ans) or 0.0, 4),
            "stacked_auroc": round(auroc(sc, ans) or 0.0, 4),
        }
    # rounded down as `make train` does: rounding up could lift it above an answerable question's score it must keep
    threshold = math.floor(_threshold(list(sets.values()), args.max_false_abstain) * 1e4) / 1e4
    today_t = math.floor(_threshold(list(today_sets.values()), args.max_false_abstain) * 1e4) / 1e4
    results["threshold"] = {
        "stacked": threshold,
        **{f"stacked_{name}": rates(s, a, threshold) for name, (s, a) in sets.items()},
        "today": today_t,
        **{f"today_{name}": rates(s, a, today_t) for name, (s, a) in today_sets.items()},
    }
    results["stack"] = {"top": best_k, "coef": [round(float(c), 6) for c in coef], "intercept": round(intercept, 6)}
    rate = sum(p[2] for p in pair_list) / max(len(pair_list), 1)
    weight = (1 - rate) / max(rate, 1e-9) if POS_WEIGHT else 1.0
    # the loss of always answering the base rate (with pos weighting: the best constant under the weighted loss)
    c = weight * rate / (weight * rate + 1 - rate)
    constant = -(weight * rate * math.log(c) + (1 - rate) * math.log(1 - c))
    results["training"] = {
        "trainable_layers": LAYERS - FROM, "epochs": EPOCHS, "lr_layers": LR_LAYERS, "lr_head": LR_HEAD, "pos_weight": round(weight, 4),
        "max_tokens": MAX_PIECES, "batch": BATCH, "steps": len(losses), "constant_guess_loss": round(constant, 4),
        "loss_first_100_steps": round(float(np.mean(losses[:100])), 4), "loss_last_100_steps": round(float(np.mean(losses[-100:])), 4),
        "loss_per_100_steps": [round(float(np.mean(losses[i : i + 100])), 4) for i in range(0, len(losses), 100)],
    }
    results["pairs"] = {"questions": len(learn), "articles": len({q.group for q in learn}), "pairs": len(pair_list), "positives": sum(p[2] for p in pair_list)}
    results["seconds"] = {
        "candidates": round(collected - started), "frozen_layers": round(frozen - collected),
        "training": round(trained - frozen), "total": round(time.perf_counter() - started),
    }
    log(json.dumps(results, indent=1))

    stack = {"coef": results["stack"]["coef"], "intercept": results["stack"]["intercept"], "threshold": threshold, "top": best_k}
    meta = {
        "what": f"layers {FROM}-{LAYERS - 1} and a linear head of a cross-encoder on all-MiniLM-L6-v2 (the embeddings and layers below {FROM} bundled, unchanged)",
        "fitting_data": "squad2-train-19 (CC BY-SA 4.0): trained on half of its articles, stacked on the other half; "
        "threshold also on the gold dev half and eval/fit",
        "seed": SEED, "epochs": EPOCHS, "rebuild": "make train-reader", "trained_from": FROM, "max_tokens": MAX_PIECES,
    }
    raw = artifact_bytes(final, stack, meta)
    args.out.write_bytes(raw)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    digest = hashlib.sha256(raw).hexdigest()
    results["artifact"] = {"bytes": len(raw), "sha256": digest, "path": str(args.out.name), "in_git": False}
    args.report.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    log(f"wrote {args.out} ({len(raw):,} bytes), sha256 {digest}; {time.perf_counter() - started:.0f} s")
    print(digest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
