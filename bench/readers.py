"""Ingest throughput per document format (`make bench` runs it; alone: `python bench/readers.py`).

For each format, a document of a realistic size is built with the library that writes it (fpdf2,
Debian's chromium printing HTML, python-docx, python-pptx, the csv module), plus, when present, two
real PDFs Debian ships (a LaTeX manual and a DocBook spec). Two figures per format:

- *read*: extraction alone (`qa.readers.read_document`), best of 3: pages/s for PDF, slides/s for
  PPTX, rows/s for CSV, words/s for everything;
- *ingest*: `Engine.ingest` of that one file into a fresh store (read + chunk + embed + write), the
  throughput a user sees; the encoder dominates it, so it differs little between formats.

Prints a table and, with --json, one JSON object on the last line (what bench/run.py reads).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import doc_fixtures as fx  # noqa: E402

WORK = BENCH / "work" / "readers"
REAL_PDFS = {
    "pdf (LaTeX manual, real)": Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf"),
    "pdf (DocBook spec, real)": Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf"),
}
PARAGRAPH = ("Paragraph {n} of the operations manual explains how crew {n} checks the moorings, logs the tide "
             "and reports damage to the harbour master before the evening shift begins.")


def _paragraphs(n: int) -> list[str]:
    return [PARAGRAPH.format(n=i) for i in range(1, n + 1)]


def build(folder: Path, scale: int) -> dict[str, Path]:
    """One document per format, about `scale` paragraphs each (50 pages of PDF at scale 400)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    paths["pdf (fpdf2)"] = fx.make_pdf(folder / "fpdf.pdf", pages_of_filler=max(scale // 8 - 4, 1))

    page = "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Manual</title></head><body>"
    page += "".join(f"<h2>Section {i}</h2><p>{p}</p>" for i, p in enumerate(_paragraphs(scale), start=1)) + "</body></html>"
    printed = folder / "printed.html"
    printed.write_text(page, encoding="utf-8")
    paths["pdf (chromium print)"] = _print(printed, folder / "chromium.pdf")

    import docx

    document = docx.Document()
    for i, p in enumerate(_paragraphs(scale), start=1):
        if i % 10 == 1:
            document.add_heading(f"Chapter {i // 10 + 1}", level=1)
        document.add_paragraph(p)
    document.save(str(folder / "manual.docx"))
    paths["docx"] = folder / "manual.docx"

    from pptx import Presentation

    deck = Presentation()
    for i in range(0, scale, 4):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Slide {i // 4 + 1}"
        slide.placeholders[1].text_frame.text = "\n".join(_paragraphs(scale)[i : i + 4])
    deck.save(str(folder / "deck.pptx"))
    paths["pptx"] = folder / "deck.pptx"

    html = fx.SAVED_PAGE.replace("<main>", "<main>" + "".join(f"<h2>Part {i}</h2><p>{p}</p>" for i, p in enumerate(_paragraphs(scale))))
    (folder / "page.html").write_text(html, encoding="utf-8")
    paths["html"] = folder / "page.html"

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Crew", "Mooring", "Tide (m)", "Report"])
    for i in range(scale * 4):
        writer.writerow([f"crew {i}", f"berth {i % 40}", f"{(i % 17) / 3:.2f}", f"no damage found on check {i}"])
    (folder / "log.csv").write_text(buffer.getvalue(), encoding="utf-8")
    paths["csv"] = folder / "log.csv"

    rst = "Manual\n======\n\n" + "".join(f"Section {i}\n{'-' * len(f'Section {i}')}\n\n{p}\n\n" for i, p in enumerate(_paragraphs(scale)))
    (folder / "manual.rst").write_text(rst, encoding="utf-8")
    paths["rst"] = folder / "manual.rst"

    md = "# Manual\n\n" + "".join(f"## Section {i}\n\nThe **crew** reads [this](https://example.org/{i}).\n\n{p}\n\n" for i, p in enumerate(_paragraphs(scale)))
    (folder / "manual.md").write_text(md, encoding="utf-8")
    paths["md"] = folder / "manual.md"

    (folder / "manual.txt").write_text("\n\n".join(_paragraphs(scale)), encoding="utf-8")
    paths["txt"] = folder / "manual.txt"
    for name, path in REAL_PDFS.items():
        if path.is_file():
            paths[name] = shutil.copy(path, folder / path.name)
    return paths


def _print(page: Path, out: Path) -> Path:
    import subprocess

    subprocess.run([fx.chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                    f"--print-to-pdf={out}", page.as_uri()], check=True, capture_output=True, timeout=300)
    return out


def measure(name: str, path: Path, *, ingest: bool) -> dict[str, Any]:
    from qa import Engine, Settings
    from qa.readers import TABLE, read_document

    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        doc = read_document(path)
        best = min(best, time.perf_counter() - started)
    pages = max((b.page or 0 for b in doc.blocks), default=0)
    rows = sum(len(b.units) for b in doc.blocks if b.kind == TABLE)
    words = len(doc.text.split())
    out: dict[str, Any] = {"format": name, "bytes": path.stat().st_size, "words": words, "pages": pages or None,
                           "rows": rows or None, "read_s": round(best, 3), "read_words_per_s": round(words / best)}
    if pages:
        out["read_pages_per_s"] = round(pages / best, 1)
    if rows:
        out["read_rows_per_s"] = round(rows / best)
    if ingest:
        data = WORK / "stores" / path.stem
        shutil.rmtree(data, ignore_errors=True)
        engine = Engine(Settings(data_dir=data, _env_file=None))
        engine.embedder.embed(["warm up the encoder"], batch_size=1)
        started = time.perf_counter()
        report = engine.ingest(path, progress=False)
        seconds = time.perf_counter() - started
        out.update(ingest_s=round(seconds, 2), chunks=report.chunks_embedded, ingest_words_per_s=round(words / seconds))
        if pages:
            out["ingest_pages_per_s"] = round(pages / seconds, 2)
    return out


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| format | size | words | pages/rows | read | read pages/s | ingest | ingest words/s | ingest pages/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        units = f"{r['pages']} pages" if r.get("pages") else (f"{r['rows']} rows" if r.get("rows") else "")
        lines.append(
            f"| {r['format']} | {r['bytes'] / 1000:,.0f} kB | {r['words']:,} | {units} | {r['read_s']:.2f} s "
            f"({r['read_words_per_s']:,} words/s) | {r.get('read_pages_per_s', '')} | "
            f"{r.get('ingest_s', '–')} s | {r.get('ingest_words_per_s', '–')} | {r.get('ingest_pages_per_s', '')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=400, help="paragraphs per synthetic document")
    parser.add_argument("--no-ingest", dest="ingest", action="store_false", help="time extraction only")
    parser.add_argument("--json", action="store_true", help="end with the results as one JSON line")
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    paths = build(WORK / "docs", args.scale)
    rows = [measure(name, path, ingest=args.ingest) for name, path in paths.items()]
    print(table(rows))
    if args.json:
        print(json.dumps({"scale": args.scale, "formats": rows}))


if __name__ == "__main__":
    main()
