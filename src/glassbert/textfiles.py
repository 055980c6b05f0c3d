"""Reading a user's text files: UTF-8, JSON and CSV whose errors name the file and the line.

Every reader of an input file (corpora, task data, vocab.txt, tokenizer and model JSON) goes through
here, so that a byte that is not UTF-8, a JSON syntax error or a malformed CSV row is one
:class:`~glassbert.errors.InputError` starting ``<file> line <n>``, never a ``UnicodeDecodeError``
or ``_csv.Error`` traceback.
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


__all__ = ["CSV_FIELD_LIMIT", "read_text", "read_lines", "split_lines", "parse_json", "read_json", "read_json_object",
           "jsonl_rows", "csv_rows"]
