"""CSV and TSV (standard library csv, encoding detected): each row is quoted with its column headers."""

from __future__ import annotations

import csv
from pathlib import Path

from qa.errors import InputError
from qa.readers import Document, TextBuilder
from qa.readers.text import decode

_ROWS_PER_BLOCK = 50  # a block is a paragraph: rows are cited as "row block N", never split


class CsvReader:
    def read(self, path: Path) -> Document:
        text = decode(path.read_bytes())
        if path.suffix.lower() == ".tsv":
            dialect: type[csv.Dialect] | csv.Dialect = csv.excel_tab
        else:
            try:
                dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
            except csv.Error:
                dialect = csv.excel
        rows = [row for row in csv.reader(text.splitlines(), dialect) if any(cell.strip() for cell in row)]
        if not rows:
            raise InputError("no rows in it")
        header, body = rows[0], rows[1:]
        out = TextBuilder()
        if not body:
            out.add_table([], [header])
        for i in range(0, len(body), _ROWS_PER_BLOCK):
            out.add_table(header, body[i : i + _ROWS_PER_BLOCK])
        return out.document()
