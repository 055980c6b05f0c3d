"""Vector search at the sizes people index on a CPU: exact numpy against faiss-cpu and usearch, in one run.

    python bench/search.py                              # 100k × 384, one thread, best of 3
    python bench/search.py --n 10000 100000 --threads 2 --repeats 5
    python bench/search.py --backends faiss-hnsw --ef-search 64 128 256   # the HNSW arm alone, several efSearch
    PYTHONPATH=/tmp/searchlibs python bench/search.py   # faiss-cpu / usearch installed aside (pip --target)

Backends (a row is skipped, and says so, when its library is not installed):
  numpy        exact: float32 ``queries @ vectors.T`` and ``argpartition``
  torch        exact: the same matmul in torch, then ``torch.topk`` (what glassbert.search does)
  faiss-flat   exact: faiss.IndexFlatIP
  faiss-hnsw   approximate: faiss.IndexHNSWFlat, inner product, with glassbert's settings (M 32, efConstruction
               100, efSearch 128: glassbert.search.HNSW_*) unless --hnsw-m / --ef-construction / --ef-search say
               others; one row per efSearch
  usearch      approximate: usearch HNSW (connectivity 16, expansion_add 128, expansion_search 64), inner product

For each: build time, queries/s with one query per call and with 100 per call, and recall@10 against exact
numpy on the same queries. Two data sets of unit vectors: ``random`` (uniform on the sphere: speed is the same
for any data; recall here is the worst case, no structure to exploit) and ``clustered`` (real-ish: 2,000
cluster centres in a 64-dimensional subspace with a decaying spectrum, points scattered around them, plus a
little full-rank noise, as sentence embeddings are: most of the variance in few directions, near-duplicates
close together). Queries come from the same distribution but are not in the index.

The backends take turns in every repeat so a shared machine's changing load slows them alike; the best of
the repeats is kept (the machine may be shared: say so with the numbers). The thread count is set through
the environment before numpy and faiss load, and through each library's own call.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[100_000], help="vectors in the index")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--queries", type=int, default=200, help="queries timed one per call (and for recall)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--data", nargs="+", default=["random", "clustered"], choices=["random", "clustered"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backends", nargs="+", default=None, help="only these (numpy, the reference, always runs)")
    p.add_argument("--hnsw-m", type=int, default=32, help="faiss-hnsw: neighbours a node (glassbert.search.HNSW_M)")
    p.add_argument("--ef-construction", type=int, default=100, help="faiss-hnsw: glassbert.search.HNSW_EF_CONSTRUCTION")
    p.add_argument("--ef-search", type=int, nargs="+", default=[128], help="faiss-hnsw: glassbert.search.HNSW_EF_SEARCH")
    return p.parse_args()


ARGS = parse()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_data(kind: str, n: int, q: int, dim: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(n index vectors, q query vectors), unit length, float32."""
    if kind == "random":
        return unit(rng.standard_normal((n, dim), dtype=np.float32)), unit(rng.standard_normal((q, dim), dtype=np.float32))
    sub = 64
    basis = np.linalg.qr(rng.standard_normal((dim, sub)))[0].T.astype(np.float32)   # (sub, dim), orthonormal rows
    scale = (1.0 / np.sqrt(np.arange(1, sub + 1))).astype(np.float32)              # a decaying spectrum
    centres = rng.standard_normal((2000, sub), dtype=np.float32) * scale

    def points(m: int) -> np.ndarray:
        which = rng.integers(0, len(centres), m)
        low = centres[which] + 0.35 * rng.standard_normal((m, sub), dtype=np.float32) * scale
        return unit(low @ basis + 0.03 * rng.standard_normal((m, dim), dtype=np.float32))
    return points(n), points(q)


# ─── the backends: build(vectors) → search(queries (q, d), k) → ids (q, k) ─────────────────
def numpy_exact(vectors: np.ndarray):
    def search(queries: np.ndarray, k: int) -> np.ndarray:
        scores = queries @ vectors.T
        top = np.argpartition(scores, -k, axis=1)[:, -k:]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        return np.take_along_axis(top, order, axis=1)
    return search


def torch_exact(vectors: np.ndarray):
    import torch
    torch.set_num_threads(ARGS.threads)
    matrix = torch.from_numpy(vectors)
    return lambda queries, k: torch.topk(torch.from_numpy(queries) @ matrix.T, k, dim=1).indices.numpy()


def faiss_flat(vectors: np.ndarray):
    import faiss
    faiss.omp_set_num_threads(ARGS.threads)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return lambda queries, k: index.search(queries, k)[1]


def faiss_hnsw(vectors: np.ndarray):
    import faiss
    faiss.omp_set_num_threads(ARGS.threads)
    index = faiss.IndexHNSWFlat(vectors.shape[1], ARGS.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ARGS.ef_construction
    index.add(vectors)
    return {ef: (lambda queries, k, ef=ef: index.search(queries, k, params=faiss.SearchParametersHNSW(efSearch=ef))[1])
            for ef in ARGS.ef_search}


def usearch_hnsw(vectors: np.ndarray):
    from usearch.index import Index
    index = Index(ndim=vectors.shape[1], metric="ip", dtype="f32", connectivity=16, expansion_add=128,
                  expansion_search=64)
    index.add(np.arange(len(vectors)), vectors, threads=ARGS.threads)

    def search(queries: np.ndarray, k: int) -> np.ndarray:
        found = index.search(queries, k, threads=ARGS.threads)
        return np.asarray(found.keys).reshape(len(queries), k)
    return search


BACKENDS = {"numpy": numpy_exact, "torch": torch_exact, "faiss-flat": faiss_flat, "faiss-hnsw": faiss_hnsw, "usearch": usearch_hnsw}
MODULES = {"torch": "torch", "faiss-flat": "faiss", "faiss-hnsw": "faiss", "usearch": "usearch"}


def available() -> dict[str, str]:
    """backend → library version ("" for numpy); a missing library is printed once and left out."""
    found = {}
    for name in BACKENDS:
        if ARGS.backends and name != "numpy" and name not in ARGS.backends:
            continue
        module = MODULES.get(name)
        if module is None:
            found[name] = f"numpy {np.__version__}"
            continue
        try:
            found[name] = f"{module} {__import__(module).__version__}"
        except ImportError as e:
            print(f"# {name}: skipped ({module} is not installed: {e})", file=sys.stderr)
    return found


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)]))


def measure(name: str, vectors: np.ndarray, queries: np.ndarray, k: int) -> dict[str, dict[str, float]]:
    """row label → its numbers: one row, or one per efSearch (faiss-hnsw), which share the build."""
    t = time.perf_counter()
    searches = BACKENDS[name](vectors)
    build = time.perf_counter() - t
    if callable(searches):
        searches = {None: searches}
    rows = {}
    for setting, search in searches.items():
        search(queries[:5], k)  # warm up
        t = time.perf_counter()
        ids1 = np.concatenate([search(queries[i:i + 1], k) for i in range(len(queries))])
        qps1 = len(queries) / (time.perf_counter() - t)
        t = time.perf_counter()
        np.concatenate([search(queries[i:i + 100], k) for i in range(0, len(queries), 100)])
        qps100 = len(queries) / (time.perf_counter() - t)
        label = name if setting is None else f"{name} ef{setting}"
        rows[label] = {"build_s": build, "qps1": qps1, "qps100": qps100, "ids": ids1}
    return rows


def main() -> None:
    versions = available()
    rng = np.random.default_rng(ARGS.seed)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {ARGS.dim}-d unit vectors, top-{ARGS.k}, {ARGS.queries} queries, {ARGS.threads} thread(s), best of "
          f"{ARGS.repeats}; load average at start {load:.2f} on {os.cpu_count()} CPUs")
    print("# " + ", ".join(f"{name}: {v}" for name, v in versions.items()))
    print(f"{'data':10} {'n':>8} {'backend':16} {'build s':>8} {'q/s (1)':>9} {'q/s (100)':>10} {'recall@10':>10}")
    for kind in ARGS.data:
        for n in ARGS.n:
            vectors, queries = make_data(kind, n, max(ARGS.queries, 100), ARGS.dim, rng)
            best: dict[str, dict[str, float]] = {}
            for _ in range(ARGS.repeats):
                for name in versions:  # the backends take turns
                    for label, got in measure(name, vectors, queries, ARGS.k).items():
                        row = best.setdefault(label, got)
                        row["build_s"] = min(row["build_s"], got["build_s"])
                        row["qps1"], row["qps100"] = max(row["qps1"], got["qps1"]), max(row["qps100"], got["qps100"])
            exact = best["numpy"]["ids"]
            for name, row in best.items():
                print(f"{kind:10} {n:>8} {name:16} {row['build_s']:>8.2f} {row['qps1']:>9.0f} "
                      f"{row['qps100']:>10.0f} {recall(row['ids'], exact):>10.3f}", flush=True)


if __name__ == "__main__":
    main()
