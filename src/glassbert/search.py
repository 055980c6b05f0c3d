"""Semantic search: embed a file of texts once into an index directory, then find the texts nearest a query.

    build_index("minilm", "sentences.txt", "my-index")      # `glassbert index minilm --input sentences.txt --out my-index`
    index = Index.load("my-index")
    index.search("how do I reset my password?", top_k=5)   # [Hit(text, score, row), …], best first

An index directory (written aside and swapped in whole, so it is the old index or the new one, never a mix):

    INDEX/
      vectors.npy    (N, H) float32 sentence vectors, unit length unless built with normalize=False
      texts.jsonl    {"text": …} per row, in the vectors' order (row i is vectors[i])
      hnsw.faiss     only when built with approximate=True (`--approximate`): a faiss HNSW graph over the vectors
      index.json     the model (the name given, its resolved path, a fingerprint of its config, weights and
                     tokenizer files), pooling, normalize, max_length, count, dim: what a query must be
                     embedded with

A query is embedded by the index's own model, with the index's pooling; ``Index.load(dir, model=…,
pooling=…)`` (and `glassbert serve MODEL --index DIR`) refuses another model or pooling, naming both, and a
model folder whose files changed since the index was built is refused too (its vectors would not match).

Search is exact by default: the score of a row is the dot product of its vector with the query's (the cosine, for
unit vectors), over every row, in float32 (torch's matmul and top-k). An index built with ``approximate=True``
also holds a faiss-cpu HNSW graph (IndexHNSWFlat, inner product on the unit vectors; the optional dependency
``glassbert[search]``), which search then walks instead: far faster for one query among 100k rows, and it may
miss a true neighbour. bench/search.py measured both; docs/search.md has the numbers and the chosen settings.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .embed import Embedder, check_pooling
from .errors import InputError, MissingError
from .modeldir import WEIGHT_FILES, resolve_model_path
from .runfiles import atomic_write_json, atomic_write_with, check_target_dir, swap_dir_into_place, write_jsonl
from .textfiles import jsonl_rows, read_input_texts, read_json_object, read_text
from .tokenizer import check_text

INDEX_FILE, VECTORS_FILE, TEXTS_FILE, HNSW_FILE = "index.json", "vectors.npy", "texts.jsonl", "hnsw.faiss"
FORMAT_VERSION = 1
DEFAULT_TOP_K = 10
# The files of a model folder whose bytes decide its vectors: config, weights, tokenizer.
FINGERPRINTED = ("config.json", *WEIGHT_FILES, "tokenizer.json", "vocab.txt", "tokenizer_config.json")
SCORE_BLOCK = 1 << 24  # scores computed at once (queries × rows): 64 MB of float32
# The approximate index's settings, chosen by bench/search.py (docs/search.md): M 32 neighbours a node,
# efConstruction 100, efSearch 128 (at least top_k) — recall@10 1.00 on clustered data at 100k rows.
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 100, 128
FAISS_MISSING = "approximate search needs faiss-cpu: pip install 'glassbert[search]' (or pip install faiss-cpu)"


def _faiss():
    """The faiss module, or an InputError that says in one line how to install it."""
    try:
        import faiss
    except ImportError:
        raise InputError(FAISS_MISSING) from None
    return faiss


def hnsw_index(vectors: np.ndarray, threads: int | None = None):
    """A faiss IndexHNSWFlat (inner product) over ``vectors`` (N, H) float32, with the settings above."""
    faiss = _faiss()
    if threads:
        faiss.omp_set_num_threads(threads)
    graph = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    graph.add(np.ascontiguousarray(vectors, dtype=np.float32))
    graph.hnsw.efSearch = HNSW_EF_SEARCH
    return graph


@dataclass(frozen=True)
class Hit:
    """One found text: ``row`` is its place in the index (texts.jsonl's line, from 0)."""

    text: str
    score: float
    row: int

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "score": self.score, "index": self.row}


# ─── the model an index belongs to ─────────────────────────────────────────────────────────
def model_identity(model: str | Path) -> dict[str, str]:
    """{"model": the name given, "model_path": its resolved folder, "fingerprint": sha256 of the folder's
    config, weights and tokenizer files (16 hex digits)}: two folders with the same files are the same model."""
    directory = resolve_model_path(model).resolve()
    digest = hashlib.sha256()
    for name in FINGERPRINTED:
        path = directory / name
        if path.is_file():
            digest.update(name.encode() + b"\0")
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
    return {"model": str(model), "model_path": str(directory), "fingerprint": digest.hexdigest()[:16]}


def _described(identity: dict[str, Any]) -> str:
    return f"{identity['model_path']} (fingerprint {identity['fingerprint']})"


# ─── building ──────────────────────────────────────────────────────────────────────────────
def build_index(model: str | Path, texts: str | Path | Sequence[str], out: str | Path, *, pooling: str = "mean",
                normalize: bool = True, max_length: int | None = None, text_column: str = "text",
                batch_size: int = 32, precision: str = "fp32", threads: int | None = None,
                overwrite: bool = False, show_progress: bool | None = None, device: str | None = None,
                approximate: bool = False) -> Path:
    """Embed ``texts`` (a list, or a file: one text per line, or a CSV/TSV/JSONL's ``text_column``) with
    ``model`` into the index directory ``out``; returns ``out``. An ``out`` that holds files is refused unless
    ``overwrite`` (checked before the model loads); a progress bar counts the texts of a large input.
    ``approximate``: also build a faiss HNSW graph (hnsw.faiss) that search walks instead of every row; it
    needs faiss-cpu and unit vectors (``normalize``)."""
    pooling = check_pooling(pooling)
    if approximate:
        _faiss()
        if not normalize:
            raise InputError("an approximate index searches unit vectors by inner product: build it with normalize "
                             "(drop --no-normalize)")
    out = Path(out)
    source = None if isinstance(texts, (list, tuple)) else Path(texts)
    check_target_dir(out, overwrite=overwrite, option="--out", reads=(("the model", model), ("--input", source)))
    if source is not None:
        items = read_input_texts(source, text_column, strip=False)[0]
    else:
        items = [check_text(t, i) for i, t in enumerate(texts)]
        if not items:
            raise InputError("no texts to index: give at least one")
    identity = model_identity(model)
    embedder = Embedder(model, device=device, max_length=max_length, precision=precision, threads=threads)
    vectors = embedder.encode(items, pooling=pooling, normalize=normalize, batch_size=batch_size,
                              show_progress=show_progress)
    info = {"format": FORMAT_VERSION, **identity, "pooling": pooling, "normalize": normalize,
            "max_length": embedder.max_length, "count": len(items), "dim": int(vectors.shape[1])}
    graph = None
    if approximate:
        graph = hnsw_index(vectors, threads)
        info["approximate"] = {"kind": "faiss-hnsw", "file": HNSW_FILE, "M": HNSW_M,
                               "ef_construction": HNSW_EF_CONSTRUCTION, "ef_search": HNSW_EF_SEARCH}

    def write(tmp: Path) -> None:
        atomic_write_with(tmp / VECTORS_FILE, lambda path: np.save(path, vectors, allow_pickle=False))
        write_jsonl(tmp / TEXTS_FILE, [{"text": t} for t in items])
        if graph is not None:
            atomic_write_with(tmp / HNSW_FILE, lambda path: _faiss().write_index(graph, str(path)))
        atomic_write_json(tmp / INDEX_FILE, info, indent=1)  # last: a folder with index.json is whole
    _write_then_swap(out, write)
    return out


def _write_then_swap(out: Path, write) -> None:
    """``write(tmp)`` into a temp dir beside ``out``, then swap it in (the old ``out`` moved aside under a hidden
    name and deleted last): ``out`` is the old index or the new one, and a failure leaves the old."""
    target = out.absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.index-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
        swap_dir_into_place(tmp, target, old=target.with_name(f".{target.name}.replaced-{os.getpid()}"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ─── searching ─────────────────────────────────────────────────────────────────────────────
class Index:
    """A loaded index: ``search(queries, top_k)`` embeds the queries with the index's model (loaded on first
    use) and returns the nearest rows; ``search_vectors`` takes vectors embedded elsewhere (the server's)."""

    def __init__(self, directory: Path, vectors: np.ndarray, texts: list[str], info: dict[str, Any], graph=None):
        """``graph``: a faiss index over ``vectors`` (hnsw_index), searched instead of every row."""
        self.directory, self.vectors, self.texts, self.info, self.graph = directory, vectors, texts, info, graph
        self._matrix = torch.from_numpy(vectors)
        self._embedder: Embedder | None = None
        self.precision, self.threads, self.device = "fp32", None, None

    @classmethod
    def load(cls, directory: str | Path, *, model: str | Path | None = None, pooling: str | None = None,
             precision: str = "fp32", threads: int | None = None, device: str | None = None) -> "Index":
        """The index in ``directory``. ``model`` / ``pooling``: what the caller's queries are embedded with,
        refused unless they are the index's. ``precision``, ``threads``, ``device``: how the index's own model
        embeds queries (as the Embedder takes them)."""
        directory = Path(directory)
        how = "build one with: glassbert index MODEL --input FILE --out " + str(directory)
        if not directory.exists():
            raise MissingError(f"{directory}: no such index; {how}")
        if not directory.is_dir():
            raise InputError(f"{directory} is a file, not an index directory; {how}")
        if not (directory / INDEX_FILE).is_file():
            raise MissingError(f"{directory} is not a glassbert index (no {INDEX_FILE}); {how}")
        info = read_json_object(directory / INDEX_FILE)
        missing = [key for key in ("model_path", "fingerprint", "pooling", "normalize", "count", "dim") if key not in info]
        if missing or info.get("format") != FORMAT_VERSION:
            raise InputError(f"{directory / INDEX_FILE}: not an index this glassbert reads "
                             f"({'no ' + ', '.join(missing) if missing else 'format ' + repr(info.get('format'))}); "
                             "build it again with glassbert index")
        damaged = f"{directory} is damaged (%s); build it again with glassbert index"
        try:
            vectors = np.load(directory / VECTORS_FILE, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise InputError(damaged % f"{VECTORS_FILE}: {e}") from None
        texts = [str(row.get("text", "")) for _, row in jsonl_rows(read_text(directory / TEXTS_FILE),
                                                                   directory / TEXTS_FILE)]
        if vectors.dtype != np.float32 or vectors.shape != (info["count"], info["dim"]) or len(texts) != info["count"]:
            raise InputError(damaged % f"{info['count']} rows of {info['dim']} expected, found {vectors.dtype} "
                                       f"vectors {vectors.shape} and {len(texts)} texts")
        graph = None
        if info.get("approximate"):
            faiss = _faiss()
            try:
                graph = faiss.read_index(str(directory / HNSW_FILE))
            except RuntimeError as e:
                raise InputError(damaged % f"{HNSW_FILE}: {str(e).strip().splitlines()[-1]}") from None
            if graph.ntotal != info["count"] or graph.d != info["dim"]:
                raise InputError(damaged % f"{HNSW_FILE} holds {graph.ntotal} rows of {graph.d}, "
                                           f"{info['count']} of {info['dim']} expected")
            if threads:
                faiss.omp_set_num_threads(threads)
        index = cls(directory, vectors, texts, info, graph)
        index.precision, index.threads, index.device = precision, threads, device
        if model is not None or pooling is not None:
            index.check_model(model, pooling)
        return index

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def pooling(self) -> str:
        return self.info["pooling"]

    def check_model(self, model: str | Path | None = None, pooling: str | None = None) -> None:
        """Refuse a model (or pooling) other than the index's, naming both; with no ``model``, the index's own
        model folder as it is now (it must still hold the files the index was built with)."""
        built = _described(self.info)
        if pooling is not None and check_pooling(pooling) != self.pooling:
            raise InputError(f"index {self.directory} was built with {self.pooling} pooling, not {pooling}: "
                             f"embed queries with --pooling {self.pooling}")
        if model is None:
            if not Path(self.info["model_path"]).is_dir():
                raise MissingError(f"index {self.directory} was built with the model {self.info['model_path']}, "
                                   "which is no longer there: put it back, or build the index again")
            now = model_identity(self.info["model_path"])
            if now["fingerprint"] != self.info["fingerprint"]:
                raise InputError(f"index {self.directory} was built with {built}, whose files have changed since "
                                 f"(fingerprint now {now['fingerprint']}): build the index again with that model")
            return
        asked = model_identity(model)
        if asked["fingerprint"] != self.info["fingerprint"]:
            raise InputError(f"index {self.directory} was built with {built}, not with {_described(asked)}: "
                             "search it with its own model, or build an index with this one")

    @property
    def embedder(self) -> Embedder:
        """The index's own model, checked and loaded on first use."""
        if self._embedder is None:
            self.check_model()
            self._embedder = Embedder(self.info["model_path"], device=self.device, max_length=self.info.get("max_length"),
                                      precision=self.precision, threads=self.threads)
        return self._embedder

    def search(self, queries: str | Sequence[str], top_k: int = DEFAULT_TOP_K) -> list:
        """The ``top_k`` rows nearest each query, best first: a list of :class:`Hit` for one query (a str), a
        list of those for a list of queries."""
        one = isinstance(queries, str)
        texts = check_queries([queries] if one else queries)
        check_top_k(top_k)
        vectors = self.embedder.encode(texts, pooling=self.pooling, normalize=self.info["normalize"],
                                       show_progress=False)
        found = self.search_vectors(vectors, top_k)
        return found[0] if one else found

    def search_vectors(self, vectors: np.ndarray, top_k: int = DEFAULT_TOP_K) -> list[list[Hit]]:
        """The ``top_k`` rows nearest each of ``vectors`` ((Q, H), embedded by this index's model and pooling,
        normalized as the index is), best first."""
        check_top_k(top_k)
        queries = torch.as_tensor(np.asarray(vectors, dtype=np.float32)).reshape(-1, self.vectors.shape[1]) \
            if np.asarray(vectors).shape[-1] == self.vectors.shape[1] else None
        if queries is None:
            raise InputError(f"query vectors of size {np.asarray(vectors).shape[-1]}, but index {self.directory} "
                             f"holds vectors of size {self.vectors.shape[1]} ({self.info['model_path']})")
        k = min(top_k, len(self))
        hits: list[list[Hit]] = []
        if self.graph is not None:
            ef = max(int(self.info.get("approximate", {}).get("ef_search", HNSW_EF_SEARCH)), k)
            scores, rows = self.graph.search(np.ascontiguousarray(queries.numpy()), k,
                                             params=_faiss().SearchParametersHNSW(efSearch=ef))
            return [[Hit(self.texts[r], float(s), int(r)) for s, r in zip(srow.tolist(), rrow.tolist()) if r >= 0]
                    for srow, rrow in zip(scores, rows)]
        step = max(1, SCORE_BLOCK // max(1, len(self)))
        with torch.inference_mode():
            for start in range(0, len(queries), step):
                scores, rows = torch.topk(queries[start:start + step] @ self._matrix.T, k, dim=1)
                hits += [[Hit(self.texts[r], float(s), int(r)) for s, r in zip(srow.tolist(), rrow.tolist())]
                         for srow, rrow in zip(scores, rows)]
        return hits


def check_queries(queries: Sequence[str]) -> list[str]:
    """The queries as a list; none, or a blank one, is an InputError that says which."""
    queries = [check_text(q, i, "query") for i, q in enumerate(queries)]
    if not queries:
        raise InputError("no query: give at least one text to search for")
    for i, q in enumerate(queries):
        if not q.strip():
            raise InputError(f"query {i} is empty: give the text to search for")
    return queries


def check_top_k(top_k: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InputError(f"top_k must be a whole number ≥ 1, got {top_k!r}")
    return top_k


def format_hits(queries: Sequence[str], found: Sequence[Sequence[Hit]], width: int = 90) -> str:
    """The terminal table of `glassbert search`: per query, its hits (rank, score, row, text)."""
    lines = []
    for query, hits in zip(queries, found):
        lines.append(f"{query}")
        for rank, hit in enumerate(hits, 1):
            text = hit.text if len(hit.text) <= width else hit.text[:width - 1] + "…"
            lines.append(f"  {rank:>3}  {hit.score:6.3f}  [{hit.row}]  {text}")
    return "\n".join(lines)


def hit_rows(queries: Sequence[str], found: Sequence[Sequence[Hit]]) -> list[dict[str, Any]]:
    """One row per hit, for a .jsonl file: query, rank, text, score, index (the row)."""
    return [{"query": q, "rank": rank, **hit.as_dict()} for q, hits in zip(queries, found)
            for rank, hit in enumerate(hits, 1)]


__all__ = ["Hit", "Index", "build_index", "hnsw_index", "model_identity", "check_queries", "check_top_k", "format_hits",
           "hit_rows", "INDEX_FILE", "VECTORS_FILE", "TEXTS_FILE", "HNSW_FILE",
           "DEFAULT_TOP_K"]
