"""The bundled WordPiece tokenizer: token counts for chunking, ids for the network."""

from __future__ import annotations

from pathlib import Path

MAX_SEQ_TOKENS = 256


class Tokens:
    """The bundled WordPiece tokenizer (Rust `tokenizers`, no transformers import)."""

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()

    def count(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts)] if texts else []

    def ids(self, texts: list[str]) -> list[list[int]]:
        out = []
        for enc in self.tokenizer.encode_batch(texts):
            ids = enc.ids
            if len(ids) > MAX_SEQ_TOKENS:
                ids = ids[: MAX_SEQ_TOKENS - 1] + ids[-1:]  # keep [SEP], as sentence-transformers does
            out.append(ids)
        return out
