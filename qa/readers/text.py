"""Plain text: the file's own text (offsets point into it), encoding detected, one block per paragraph."""

from __future__ import annotations

from pathlib import Path

from qa.errors import InputError
from qa.readers import TEXT, Block, Document
from qa.text import paragraph_spans


def decode(raw: bytes) -> str:
    """Text of `raw`: UTF-8 (with or without BOM) when it is, else the encoding charset-normalizer finds."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InputError("starts like UTF-16 text but isn't; convert it with `iconv -t UTF-8`") from exc
    elif b"\x00" in raw[:8192]:
        raise InputError("looks like a binary file, not text")
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = _detected(raw)
    # Keep offsets meaningful: only Windows/Mac line ends are normalised, nothing else.
    return text.replace("\r\n", "\n").replace("\r", "\n")


# Single-byte code pages, commonest first. charset-normalizer finds several that decode a short
# text equally cleanly (Windows-1252 and -1250 differ in a few letters); then the commoner one wins.
_COMMON = ("cp1252", "iso8859_15", "latin_1", "cp1251", "cp1250", "iso8859_2", "cp1253", "cp1254", "cp1257")


def _detected(raw: bytes) -> str:
    from charset_normalizer import from_bytes

    matches = list(from_bytes(raw))
    if not matches:
        raise InputError("not text in any encoding charset-normalizer recognises; convert it with `iconv -t UTF-8`")
    least = min(m.chaos for m in matches)
    calm = {m.encoding: m for m in matches if m.chaos <= least + 0.01}
    for encoding in _COMMON:
        if encoding in calm:
            return str(calm[encoding])
    return str(min(matches, key=lambda m: m.chaos))


class TextReader:
    def read(self, path: Path) -> Document:
        text = decode(path.read_bytes())
        return Document(text, [Block(s, e, TEXT) for s, e in paragraph_spans(text)])
