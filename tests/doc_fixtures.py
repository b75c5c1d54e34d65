"""Documents of every supported format, built with the libraries that write them (never hand-written bytes).

Shared by the reader tests and `bench/readers.py`. Each builder writes one file and returns its path.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path

LEFT_COLUMN = (
    "The northern depot keeps the spare turbines. Each turbine is inspected every spring by the maintenance crew, "
    "who record the blade wear in the logbook. The logbook is stored in the depot office."
)
RIGHT_COLUMN = (
    "The southern depot handles the cable drums. Cable drums are weighed on arrival and stacked by length. "
    "Drums longer than two kilometres go to the outdoor yard behind the gate."
)
PLANS = [("Plan", "Monthly price", "Seats"), ("Bronze", "9 EUR", "1"), ("Silver", "19 EUR", "3"), ("Gold", "49 EUR", "10")]


def make_pdf(path: Path, *, pages_of_filler: int = 0) -> Path:
    """Page 1: an introduction. Page 2: the opening hours. Page 3: two columns whose lines are written
    interleaved (left line, right line, ...), as a naive extractor would read them. Page 4: a table."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_title("Harbour operations handbook")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 12, "Harbour operations handbook", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, "This handbook describes the daily work in the harbour. It is revised every year by the "
                         "harbour master and shared with all crews.")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.start_section("Opening hours")  # a bookmark in the PDF's outline, as word processors and LaTeX make them
    pdf.cell(0, 10, "Opening hours", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, "The harbour office opens at seven in the morning and closes at half past five. "
                         "On public holidays the office stays closed and the night watch answers calls.")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.start_section("Depots")  # a bookmark in the PDF's outline, as word processors and LaTeX make them
    pdf.cell(0, 10, "Depots", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    width = (pdf.epw - 10) / 2
    left = pdf.multi_cell(width, 6, LEFT_COLUMN, dry_run=True, output="LINES")
    right = pdf.multi_cell(width, 6, RIGHT_COLUMN, dry_run=True, output="LINES")
    y = pdf.get_y() + 6
    for i in range(max(len(left), len(right))):
        if i < len(left):
            pdf.text(pdf.l_margin, y + 6 * i, left[i])
        if i < len(right):
            pdf.text(pdf.l_margin + width + 10, y + 6 * i, right[i])
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.start_section("Price list")  # a bookmark in the PDF's outline, as word processors and LaTeX make them
    pdf.cell(0, 10, "Price list", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    with pdf.table() as table:
        for row in PLANS:
            cells = table.row()
            for value in row:
                cells.cell(value)
    for n in range(pages_of_filler):
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, f"Filler page {n + 1}. " + "The tide tables are printed weekly and posted at the gate. " * 30)
    pdf.output(str(path))
    return path


def make_scanned_pdf(path: Path) -> Path:
    """A page that is only a picture of text: no text layer, as a scanner makes it."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (800, 300), "white")
    ImageDraw.Draw(image).text((20, 20), "This page was scanned; its words are pixels.", fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    pdf = FPDF()
    pdf.add_page()
    pdf.image(buffer, x=10, y=10, w=180)
    pdf.output(str(path))
    return path


def make_large_pdf(path: Path, *, megabytes: float) -> Path:
    """A one-page PDF made large by a photo-like (incompressible) image."""
    import os

    from fpdf import FPDF
    from PIL import Image

    side = int((megabytes * 1_000_000 / 3) ** 0.5) + 1
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.cell(0, 10, "A page with a large photograph.")
    pdf.image(image, x=10, y=30, w=180)
    pdf.output(str(path))
    return path


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = "Staff policy"
    document.add_heading("Staff policy", level=0)
    document.add_heading("3. Leave entitlements", level=1)
    document.add_paragraph("Every employee has twenty-eight days of annual leave, including public holidays.")
    document.add_heading("Sick leave", level=2)
    document.add_paragraph("Sick leave longer than three days needs a note from a doctor.")
    document.add_heading("4. Equipment", level=1)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Item", "Replaced every"
    for item, period in (("Laptop", "four years"), ("Phone", "three years")):
        cells = table.add_row().cells
        cells[0].text, cells[1].text = item, period
    document.save(str(path))
    return path


def make_pptx(path: Path) -> Path:
    from pptx import Presentation
    from pptx.util import Inches

    presentation = Presentation()
    first = presentation.slides.add_slide(presentation.slide_layouts[1])
    first.shapes.title.text = "Quarterly results"
    first.placeholders[1].text_frame.text = "Revenue grew in every region this quarter."
    second = presentation.slides.add_slide(presentation.slide_layouts[1])
    second.shapes.title.text = "Hiring"
    second.placeholders[1].text_frame.text = "The team hired fourteen engineers in Lisbon."
    rows = [("Office", "Head count"), ("Lisbon", "52"), ("Oslo", "17")]
    shape = second.shapes.add_table(len(rows), 2, Inches(1), Inches(5), Inches(6), Inches(1.2))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            shape.table.cell(r, c).text = value
    presentation.save(str(path))
    return path


SAVED_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Bicycle repair guide</title>
<style>body { font-family: sans-serif; } .hidden-tracker { color: red; }</style>
<script>window.trackingSecret = "tracking pixel loader"; document.write("injected script text");</script>
</head><body>
<nav><a href="/">Home</a> <a href="/shop">Shop the navigation menu</a></nav>
<div id="cookie-banner" class="cookie-consent">We use cookies to improve your experience. Accept all cookies?
<button>Accept</button></div>
<header><p>Site header slogan: wheels for everyone</p></header>
<main>
<h1>Bicycle repair guide</h1>
<p>Most flat tyres come from worn tread or glass on the road.</p>
<h2>Brakes</h2>
<p>Brake pads should be replaced when the groove on the pad is no longer visible.</p>
<h3>Tools</h3>
<table><tr><th>Tool</th><th>Used for</th></tr>
<tr><td>Tyre lever</td><td>removing the tyre</td></tr><tr><td>Hex key</td><td>adjusting the brake calliper</td></tr></table>
</main>
<footer><p>Copyright footer text, all rights reserved.</p></footer>
<script>console.log("late script text")</script>
</body></html>
"""


def make_html(path: Path) -> Path:
    path.write_text(SAVED_PAGE, encoding="utf-8")
    return path


def make_csv(path: Path) -> Path:
    """A semicolon CSV in Windows-1252, as spreadsheet programs export it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";")
    writer.writerow(["City", "Mayor", "Population"])
    writer.writerow(["Zürich", "Corine Mauch", "443,000"])
    writer.writerow(["Genève", "Christina Kitsos", "203,000"])
    path.write_bytes(buffer.getvalue().encode("cp1252"))
    return path


RST = """\
=================
Deployment manual
=================

Preparing the host
==================

The host needs two network interfaces and a static address.

Rolling back
============

A rollback restores the previous release from the archive in under ten minutes.

.. include:: /etc/passwd

=========  ============
Service    Port
=========  ============
web        8080
metrics    9102
=========  ============
"""


def make_rst(path: Path) -> Path:
    path.write_text(RST, encoding="utf-8")
    return path


MARKDOWN = """\
Travel policy
=============

Trips abroad need **written approval** from a [line manager](https://intranet.example.org/managers).

## Allowances

| Country | Daily allowance | Hotel cap |
|---|---|---|
| France | 45 EUR | 150 EUR |
| Japan | 6000 JPY | 20000 JPY |

## Booking

Book trains with the `travel-desk` tool at least a week ahead.
"""


def make_markdown(path: Path) -> Path:
    path.write_text(MARKDOWN, encoding="utf-8")
    return path


def make_cp1252_text(path: Path) -> Path:
    path.write_bytes("The café on the quay serves crème brûlée every Friday – ask for Zoë.".encode("cp1252"))
    return path


PRINTED_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>Printed notice</title>
<style>body { font-family: 'DejaVu Sans', sans-serif; font-size: 14pt; } .next { break-before: page; }</style></head>
<body><h1>Ferry timetable notice</h1><p>This notice was printed from a browser, as many real PDFs are.</p>
<p class="next">The winter ferry leaves the island at quarter past six and returns at nine in the evening.</p>
<div style="column-count: 2; column-gap: 2.5em; text-align: justify"><p>LEFT</p><p>RIGHT</p></div>
</body></html>""".replace("LEFT", LEFT_COLUMN).replace("RIGHT", RIGHT_COLUMN)


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    raise RuntimeError("chromium is not installed: run `make chromium`")


def make_browser_pdf(path: Path) -> Path:
    """A two-page PDF printed by Debian's chromium (CID fonts with ToUnicode maps, like most web PDFs)."""
    page = path.with_suffix(".src.html")
    page.write_text(PRINTED_PAGE, encoding="utf-8")
    subprocess.run(
        [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
         f"--print-to-pdf={path}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    page.unlink()
    return path
