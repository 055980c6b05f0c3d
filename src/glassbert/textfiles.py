"""Reading a user's text files: UTF-8, JSON and CSV whose errors name the file and the line.

Every reader of an input file (corpora, task data, vocab.txt, tokenizer and model JSON) goes through
here, so that a byte that is not UTF-8, a JSON syntax error or a malformed CSV row is one
:class:`~glassbert.errors.InputError` starting ``<file> line <n>``, never a ``UnicodeDecodeError``
or ``_csv.Error`` traceback.

It is also the one place that knows which file names mean which format (:data:`FORMATS`) and reads a
column of texts from them, for every command that takes a user's texts:

    .txt                   plain text        (corpora: blank-line-separated documents; inputs: one text a line)
    .csv / .tsv, .tab      a table with a header line: --text-column names the column
    .jsonl, .ndjson, .json one JSON object per line: --text-column names the key
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import InputError

# A cell may hold a whole document (csv's default limit is 131,072 characters); C long's maximum
# on every platform.
CSV_FIELD_LIMIT = 2**31 - 1


def read_text(path: str | Path) -> str:
    """The file's text, decoded as UTF-8 (a leading byte-order mark dropped, line ends kept as they are).

    Bytes that are not UTF-8 raise InputError ``<path> line <n>: byte 0x.. is not UTF-8 …``, the
    line counted from the start of the file to the first bad byte.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        data = err.object  # without the byte-order mark: err.start indexes this
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise InputError(f"{path} line {line}: byte 0x{data[err.start]:02x} at column {column} is not "
                         f"UTF-8 ({err.reason}); save the file as UTF-8") from None


def read_lines(path: str | Path) -> list[str]:
    """The file's lines without their ends; line n is ``lines[n - 1]``. Errors as :func:`read_text`."""
    return split_lines(read_text(path))


def split_lines(text: str) -> list[str]:
    """Lines split as ``open()`` splits them (at \\n, \\r\\n or \\r only: unlike ``str.splitlines``, a
    U+2028 or form feed inside a line stays there), without their ends."""
    lines = io.StringIO(text, newline=None).readlines()
    return [line[:-1] if line.endswith("\n") else line for line in lines]


def parse_json(text: str, path: str | Path, loads: Callable[[str], Any] = json.loads) -> Any:
    """``loads(text)``; a syntax error is InputError ``<path> line <n> column <c>: invalid JSON …``."""
    try:
        return loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path} line {err.lineno} column {err.colno}: invalid JSON ({err.msg})") from None


def read_json(path: str | Path) -> Any:
    """The JSON value in a UTF-8 file (see :func:`read_text` and :func:`parse_json` for the errors)."""
    return parse_json(read_text(path), path)


def read_json_object(path: str | Path) -> dict[str, Any]:
    """:func:`read_json` that must be a JSON object ({...})."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object {{...}}, got {type(data).__name__}")
    return data


def jsonl_rows(text: str, path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, object) of every non-blank line of a JSON-lines text; a line that is not a JSON object
    is InputError ``<path> line <n>: …``."""
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path} line {number}: invalid JSON ({err.msg}); expected one object per line") from None
        if not isinstance(record, dict):
            raise InputError(f"{path} line {number}: expected a JSON object, got {type(record).__name__}")
        yield number, record


def csv_rows(text: str, path: str | Path, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """(line where the row starts, fields) of every row of a CSV/TSV text, blank rows included.

    Fields may be as long as the text (no 131,072-character limit); a row csv cannot parse is
    InputError ``<path> line <n>: malformed row …``.
    """
    csv.field_size_limit(CSV_FIELD_LIMIT)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise InputError(f"{path} line {start}: malformed row ({err})") from None
        yield start, row
        start = reader.line_num + 1


# ─── which suffix is which format ──────────────────────────────────────────────────────────
DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}  # a table with a header line
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")           # one JSON object per line
PLAIN_SUFFIXES = (".txt",)
TABLE_SUFFIXES = (*DELIMITERS, *JSONL_SUFFIXES)
SUFFIXES = (*PLAIN_SUFFIXES, *TABLE_SUFFIXES)             # what every reader of a user's texts accepts
FORMATS = {**{s: "csv" for s in DELIMITERS}, **{s: "jsonl" for s in JSONL_SUFFIXES}, **{s: "plain" for s in PLAIN_SUFFIXES}}


def file_format(path: str | Path) -> str | None:
    """``"csv"`` (CSV or TSV), ``"jsonl"``, ``"plain"`` or None (a suffix no reader knows)."""
    return FORMATS.get(Path(path).suffix.lower())


def field_name(path: str | Path) -> str:
    """What a table calls a field: a CSV/TSV column or a JSON key."""
    return "column" if file_format(path) == "csv" else "key"


# ─── tables: rows with a header ────────────────────────────────────────────────────────────
def iter_table(path: Path) -> Iterator[tuple[int, dict[str, Any], list[str]]]:
    """Yield (line number, row, header) from a CSV, TSV or JSON-lines file (UTF-8; a cell may be
    of any length); errors name the file and the line."""
    path = Path(path)
    kind = file_format(path)
    if kind == "csv":
        header: list[str] | None = None
        for start_line, row in csv_rows(read_text(path), path, DELIMITERS[path.suffix.lower()]):
            if not row or all(not cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip() for cell in row]
                continue
            if len(row) != len(header):
                raise InputError(f"{path} line {start_line}: expected {len(header)} fields "
                                 f"({', '.join(header)}), got {len(row)}")
            yield start_line, dict(zip(header, row)), header
        if header is None:
            raise InputError(f"{path}: file is empty (expected a header line and rows)")
    elif kind == "jsonl":
        for line_no, row in jsonl_rows(read_text(path), path):
            yield line_no, row, list(row.keys())
    else:
        raise InputError(f"{path}: unknown table format {path.suffix.lower()!r}; use .csv, .tsv or .jsonl")


def table_cell(path: Path, line: int, row: dict[str, Any], column: str, header: list[str], option: str = "") -> str:
    """The text in ``column`` of one row (it may be empty); errors name the file, the line, the header and
    the ``option`` that chooses the column."""
    if column not in row:
        fix = f": name the right one with {option}" if option else ""
        raise InputError(f"{path} line {line}: no {field_name(path)} {column!r}; the header is {header}{fix}")
    value = row[column]
    if value is None or isinstance(value, (dict, list)):
        raise InputError(f"{path} line {line}: {column!r} must be text, got {json.dumps(value)}")
    return value if isinstance(value, str) else json.dumps(value)


def read_column(path: Path, column: str, pair_column: str | None = None) -> tuple[list[str], list[str] | None]:
    """Every row's ``column`` (and ``pair_column``) of a table, empty texts included (every row is an input)."""
    texts, pairs = [], []
    for line, row, header in iter_table(path):
        texts.append(table_cell(path, line, row, column, header, "--text-column"))
        if pair_column:
            pairs.append(table_cell(path, line, row, pair_column, header, "--text-pair-column"))
    if not texts:
        raise InputError(f"{path}: no rows to read (the file has a header and no rows)")
    return texts, (pairs if pair_column else None)


def read_input_texts(path: str | Path, text_column: str = "text", pair_column: str | None = None,
                     strip: bool = True) -> tuple[list[str], list[str] | None]:
    """The texts (and second texts) of a user's input file: a table's ``text_column`` (see :func:`read_column`),
    else one text per non-blank line (``strip``: without the spaces around it); a plain file holds no pairs.
    A suffix of no table (.txt, .md, none) is read as lines."""
    path = Path(path)
    if file_format(path) in ("csv", "jsonl"):
        return read_column(path, text_column, pair_column)
    texts = [line.strip() if strip else line for line in read_lines(path) if line.strip()]
    if not texts:
        raise InputError(f"{path} holds no text (every line is blank; expected one text per line)")
    if pair_column:
        raise InputError(f"{path}: a .txt file holds one text per line; pairs need a CSV/TSV/JSONL file")
    return texts, None


# ─── corpora: documents ────────────────────────────────────────────────────────────────────
def read_documents(path: Path, text_column: str | None = None) -> list[str]:
    """The non-blank documents of one corpus file: a plain file's blank-line-separated blocks, or the
    ``text_column`` (default "text") of a table, whose rows may be ragged past that column."""
    path = Path(path)
    kind = file_format(path)
    if kind is None:
        raise InputError(f"{path}: unsupported file type {path.suffix.lower()!r} (supported: {', '.join(SUFFIXES)})")
    content = read_text(path)
    if not content.strip():
        raise InputError(f"{path}: file is empty")
    if kind == "plain":
        return _blocks(content)
    if kind == "jsonl":
        return _jsonl_documents(path, content, text_column or "text")
    return _table_documents(path, content, text_column or "text", DELIMITERS[path.suffix.lower()])


def _blocks(content: str) -> list[str]:
    documents: list[str] = []
    current: list[str] = []
    for line in content.splitlines():
        if line.strip():
            current.append(line.strip())
        elif current:
            documents.append("\n".join(current))
            current = []
    if current:
        documents.append("\n".join(current))
    return documents


def _jsonl_documents(path: Path, content: str, key: str) -> list[str]:
    texts: list[str] = []
    for number, record in jsonl_rows(content, path):
        if key not in record:
            raise InputError(f"{path} line {number}: no key {key!r} (keys: {sorted(record)}): name the text key "
                             "with --text-column (text_column= in Python)")
        value = record[key]
        if not isinstance(value, str):
            raise InputError(f"{path} line {number}: key {key!r} is {type(value).__name__}, not a string")
        if value.strip():
            texts.append(value)
    return texts


def _table_documents(path: Path, content: str, column: str, delimiter: str) -> list[str]:
    rows = csv_rows(content, path, delimiter)  # long documents in one cell are fine
    header = next((row for _, row in rows if row), [])
    if column not in header:
        raise InputError(f"{path}: column {column!r} not in header {header}: name the text column with "
                         "--text-column (text_column= in Python)")
    index = header.index(column)
    texts: list[str] = []
    for line, row in rows:
        if not row:
            continue
        if len(row) <= index:
            raise InputError(f"{path} line {line}: row has {len(row)} fields, column {column!r} is field {index + 1}")
        if row[index].strip():
            texts.append(row[index])
    return texts


__all__ = ["CSV_FIELD_LIMIT", "read_text", "read_lines", "split_lines", "parse_json", "read_json", "read_json_object",
           "jsonl_rows", "csv_rows", "DELIMITERS", "JSONL_SUFFIXES", "PLAIN_SUFFIXES", "TABLE_SUFFIXES", "SUFFIXES",
           "FORMATS", "file_format", "field_name", "iter_table", "table_cell", "read_column", "read_input_texts",
           "read_documents"]
