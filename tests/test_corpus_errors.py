"""Reading corpora and other text files: errors name the file and the line (glassbert.textfiles, corpus)."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from glassbert import textfiles
from glassbert.corpus import read_texts
from glassbert.errors import InputError

LONG = "word " * 40_000  # 200,000 characters: over csv's default field limit of 131,072


@pytest.mark.parametrize("name, content, pattern", [
    ("latin.txt", b"first doc\n\nsecond doc\ncaf\xe9 au lait\n",
     r"latin\.txt line 4: byte 0xe9 at column 4 is not UTF-8"),
    ("bom.txt", b"\xef\xbb\xbfone\ntwo \xff\n", r"bom\.txt line 2: byte 0xff at column 5 is not UTF-8"),
    ("crlf.csv", b"text\r\nok\r\n\"bad \x80\"\r\n", r"crlf\.csv line 3: byte 0x80 at column 6 is not UTF-8"),
    ("rows.jsonl", b'{"text": "a"}\n{"text": "b"}\n{"text": "\xc3"}\n', r"rows\.jsonl line 3: byte 0xc3"),
])
def test_invalid_utf8_names_file_line_and_byte(tmp_path: Path, name: str, content: bytes, pattern: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=pattern):
        read_texts(tmp_path / name)


def test_invalid_utf8_inside_a_corpus_directory_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("fine\n", encoding="utf-8")
    (tmp_path / "b.txt").write_bytes(b"fine\n\xfe\n")
    with pytest.raises(InputError, match=r"b\.txt line 2: byte 0xfe"):
        read_texts(tmp_path)


@pytest.mark.parametrize("name, content, pattern", [
    ("bad.jsonl", '{"text": "a"}\n{"text": \n', r"bad\.jsonl line 2: invalid JSON"),
    ("key.jsonl", '{"text": "a"}\n{"body": "b"}\n', r"key\.jsonl line 2: no key 'text' \(keys: \['body'\]\)"),
    ("type.jsonl", '{"text": 3}\n', r"type\.jsonl line 1: key 'text' is int, not a string"),
    ("short.csv", 'title,text\na,b\n"multi\nline",c\nd\n', r"short\.csv line 5: row has 1 fields"),
])
def test_corpus_errors_say_line_like_every_reader(tmp_path: Path, name: str, content: str, pattern: str) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=pattern):
        read_texts(tmp_path / name)


def test_csv_cells_of_any_length_and_with_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["id", "text"], ["1", LONG], ["2", "two\nlines"], ["3", "last"]])
    assert read_texts(path) == [LONG, "two\nlines", "last"]
    assert [line for line, _ in textfiles.csv_rows(textfiles.read_text(path), path)] == [1, 2, 3, 5]


def test_a_row_csv_cannot_parse_names_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(textfiles, "CSV_FIELD_LIMIT", 10)  # the one csv.Error left: a cell over the limit
    path = tmp_path / "c.csv"
    path.write_text("text\nshort\n\"quoted\nand then far too long\"\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"c\.csv line 3: malformed row \(field larger than field limit \(10\)\)"):
        read_texts(path)


def test_read_lines_splits_like_open(tmp_path: Path) -> None:
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"\xef\xbb\xbfa\r\nb\rc\nd\xc2\x85e\xe2\x80\xa8f\n")
    with path.open(encoding="utf-8-sig") as f:
        expected = [line.rstrip("\n") for line in f]
    assert textfiles.read_lines(path) == expected == ["a", "b", "c", "d\x85e\u2028f"]


def test_json_errors_name_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{\n  "a": 1\n  "b": 2\n}', encoding="utf-8")
    with pytest.raises(InputError, match=r"x\.json line 3 column 3: invalid JSON \(Expecting ',' delimiter\)"):
        textfiles.read_json(path)
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(InputError, match=r"x\.json: expected a JSON object \{\.\.\.\}, got list"):
        textfiles.read_json_object(path)
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}')
    assert textfiles.read_json_object(path) == {"a": 1}


def test_jsonl_lines_are_split_only_at_line_ends(tmp_path: Path) -> None:
    path = tmp_path / "sep.jsonl"
    path.write_text('{"text": "one\u2028two\x85three"}\n{"text": "four"}\n{"text": 5}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"sep\.jsonl line 3: key 'text' is int"):
        read_texts(path)
    path.write_text('{"text": "one\u2028two\x85three"}\n{"text": "four"}\n', encoding="utf-8")
    assert read_texts(path) == ["one\u2028two\x85three", "four"]


def _write_two_texts(path: Path) -> Path:
    kind = textfiles.file_format(path)
    if kind == "plain":
        path.write_text("one\n\ntwo\n", encoding="utf-8")
    elif kind == "jsonl":
        path.write_text('{"text": "one", "label": "a"}\n{"text": "two", "label": "b"}\n', encoding="utf-8")
    else:
        sep = textfiles.DELIMITERS[path.suffix]
        path.write_text(f"text{sep}label\none{sep}a\ntwo{sep}b\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", textfiles.SUFFIXES)
def test_every_reader_of_texts_accepts_the_same_suffixes(tmp_path: Path, suffix: str) -> None:
    from glassbert.tasks.classification import read_classification
    from glassbert.tasks.classifier import read_texts as texts_to_classify

    path = _write_two_texts(tmp_path / f"in{suffix}")
    assert read_texts(path) == ["one", "two"]                                   # corpora (pretrain, vocab train)
    assert texts_to_classify(path, "text", None) == (["one", "two"], None)      # classify, tag
    assert textfiles.read_input_texts(path)[0] == ["one", "two"]                # embed
    if suffix in textfiles.TABLE_SUFFIXES:
        assert read_classification(path, "text", "label").texts == ["one", "two"]  # finetune
    (tmp_path / "folder").mkdir()
    _write_two_texts(tmp_path / "folder" / f"in{suffix}")
    assert read_texts(tmp_path / "folder") == ["one", "two"]                    # a corpus folder reads it too


def test_a_suffix_no_reader_knows(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("one\ntwo\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"unsupported file type '\.md'"):
        read_texts(path)                                                        # a corpus names its formats
    assert textfiles.read_input_texts(path)[0] == ["one", "two"]                # texts to apply a model to: lines
