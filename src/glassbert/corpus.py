"""Text corpora on disk: readers for .txt/.jsonl/.csv/.tsv files and folders, and a rule-based
sentence splitter.

Corpus format (what ``glassbert data fetch`` writes and ``read_texts`` reads): UTF-8 plain text, one
document per blank-line-separated block, one paragraph per line inside a document. A *document* is the
unit next-sentence prediction draws its "random next" segments from, so it must hold many sentences:
a whole speech (sotu), a chapter (moby-dick, books).
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import InputError, MissingError
from .textfiles import SUFFIXES, file_format, read_documents

SUPPORTED_SUFFIXES = SUFFIXES  # glassbert.textfiles says which suffix is which format

# --------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------


def read_texts(path: str | Path, text_column: str | None = None) -> list[str]:
    """Read documents from a file or (recursively, sorted) from a directory.

    .txt: documents separated by blank lines; .jsonl (.ndjson, .json): one object per line, field
    ``text_column`` (default "text"); .csv/.tsv (.tab): the column ``text_column`` (default "text").
    """
    path = Path(path)
    if not path.exists():
        raise MissingError(f"{path}: no such file or directory")
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and file_format(p) is not None
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if not files:
            raise InputError(
                f"{path}: directory holds no {'/'.join(SUPPORTED_SUFFIXES)} files"
            )
        texts: list[str] = []
        for file in files:
            texts.extend(read_documents(file, text_column))
        return texts
    return read_documents(path, text_column)


# --------------------------------------------------------------------------------------
# Sentence splitting
# --------------------------------------------------------------------------------------

# Lowercased words that end with "." without ending the sentence.
ABBREVIATIONS = frozenset(
    """mr mrs ms messrs dr prof sr jr st mt ft gen col capt lt sgt cmdr adm maj rev hon gov
    sen rep pres supt vs v cf e.g i.e viz al approx dept univ assn bros
    jan feb mar apr jun jul aug sep sept oct nov dec""".split()
)
# Abbreviations that are only non-final before a number ("No. 5", "Art. 3").
NUMERIC_ABBREVIATIONS = frozenset({"no", "nos", "art", "vol", "p", "pp", "fig", "ch", "sec"})
# Words that, after an acronym such as "U.S.", signal that a new sentence starts.
SENTENCE_STARTERS = frozenset(
    """the a an this that these those there it its we i our you he she they his her their
    but and in on at for if when while as so yet however moreover nevertheless then thus
    what who how why where let no not all each every my""".split()
)

_BOUNDARY = re.compile(r"""([.!?]+|\.\.\.|…)(["'”’)\]]*)\s+(?=["'“‘(\[]*[A-Z0-9])""")
_WORD_BEFORE = re.compile(r"([A-Za-z0-9][A-Za-z0-9.'’]*)$")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences by rule: [.!?] (plus closing quotes) then an upper-case
    start, except after abbreviations (Mr., Dr., No. 5), initials (J. Smith) and acronyms
    (U.S.) not followed by a typical sentence opener. Blank lines always split."""
    sentences: list[str] = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        flat = " ".join(paragraph.split())
        if not flat:
            continue
        start = 0
        for match in _BOUNDARY.finditer(flat):
            if not _is_boundary(flat, match):
                continue
            sentence = flat[start : match.end()].strip()
            if sentence:
                sentences.append(sentence)
            start = match.end()
        rest = flat[start:].strip()
        if rest:
            sentences.append(rest)
    return sentences


def _is_boundary(text: str, match: re.Match[str]) -> bool:
    punctuation, closing = match.group(1), match.group(2)
    if punctuation != "." or closing:
        return True
    word_match = _WORD_BEFORE.search(text[max(0, match.start() - 40) : match.start()])
    word = word_match.group(1) if word_match else ""
    next_word = text[match.end() :].split(" ", 1)[0].lstrip("\"'“‘([")
    lowered = word.lower()
    if lowered in ABBREVIATIONS:
        return False
    if lowered in NUMERIC_ABBREVIATIONS and next_word[:1].isdigit():
        return False
    if len(word) == 1 and word.isupper():  # an initial: "John F. Kennedy"
        return False
    if re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", word):  # "U.S", "e.g", "D.C"
        return next_word.lower().strip(",;:") in SENTENCE_STARTERS
    return True


__all__ = ["read_texts", "split_sentences", "SUPPORTED_SUFFIXES"]
