"""The Python API against the command on a busy machine: `Embedder` and the feature-extraction pipeline vs
`glassbert embed`, 1,000 sentences through MiniLM while other processes spin on the CPU.

    python bench/python_api.py                  # 1,000 sentences, 2 spinning processes, 2 rounds
    python bench/python_api.py --busy 0 --n 500

Each arm runs in a fresh process (so thread pools and the load average are read anew), the arms alternating
round by round: the command (`glassbert embed minilm --input FILE --out FILE.npy`), `gb.Embedder("minilm")
.encode(texts, normalize=True)` and `gb.pipeline("feature-extraction", "minilm")(texts)`. A process's wall time
counts its imports, the model's loading and the encoding, the same for all three; the Python arms also report
their encoding alone. The acceptance (issue 29): each Python arm within 1.5× of the command's throughput. No
arm is told a thread count: each chooses as glassbert.threads says (GLASSBERT_THREADS and OMP_NUM_THREADS are
removed from their environment).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PYTHON_ARM = r"""
import json, sys, time
start = time.perf_counter()
import glassbert as gb
texts = open({texts!r}, encoding="utf-8").read().splitlines()
if {arm!r} == "Embedder":
    run = gb.Embedder("minilm")
    encode = lambda: run.encode(texts, normalize=True, show_progress=False)
else:
    run = gb.pipeline("feature-extraction", "minilm")
    encode = lambda: run(texts, show_progress=False)
loaded = time.perf_counter()
vectors = encode()
done = time.perf_counter()
import torch
print(json.dumps({{"wall": done - start, "encode": done - loaded, "threads": torch.get_num_threads(),
                   "shape": list(vectors.shape)}}))
"""


def spin(stop_at: float) -> None:
    while time.time() < stop_at:
        pass


def sentences(n: int) -> list[str]:
    """``n`` review-like sentences (glassbert.synthetic's sentiment set: no download)."""
    from glassbert.synthetic import make_sentiment
    return [" ".join(text.split()) for text, _ in make_sentiment(n, 7)]


def run_arm(arm: str, texts_file: Path, out_dir: Path, env: dict[str, str]) -> dict:
    if arm == "glassbert embed":
        argv = [sys.executable, "-m", "glassbert", "embed", "minilm", "--input", str(texts_file),
                "--out", str(out_dir / "cli.npy"), "--overwrite"]
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return {"wall": time.perf_counter() - start}
    code = PYTHON_ARM.format(texts=str(texts_file), arm=arm)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    found["process"] = time.perf_counter() - start
    return found


def cpu_name() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000, help="sentences (default 1000)")
    p.add_argument("--busy", type=int, default=2, help="spinning processes (default 2)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--warm-up", type=float, default=20.0, help="seconds the spinners run before the first arm")
    args = p.parse_args()
    arms = ["glassbert embed", "Embedder", "pipeline"]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "GLASSBERT_THREADS")}
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    print(f"{cpu_name()}, {os.cpu_count()} cores; load average now {os.getloadavg()[0]:.2f}; "
          f"{args.n} sentences, {args.busy} spinning processes, {args.rounds} rounds")
    with tempfile.TemporaryDirectory() as tmp:
        texts_file = Path(tmp) / "sentences.txt"
        texts_file.write_text("\n".join(sentences(args.n)) + "\n", encoding="utf-8")
        stop_at = time.time() + 3600
        spinners = [mp.Process(target=spin, args=(stop_at,), daemon=True) for _ in range(args.busy)]
        for s in spinners:
            s.start()
        try:
            time.sleep(args.warm_up if args.busy else 0)
            results: dict[str, list[dict]] = {arm: [] for arm in arms}
            for r in range(args.rounds):
                for arm in arms if r % 2 == 0 else arms[::-1]:
                    found = run_arm(arm, texts_file, Path(tmp), env)
                    found["load"] = os.getloadavg()[0]
                    results[arm].append(found)
                    extra = (f"  (encoding {found['encode']:.1f} s, {args.n / found['encode']:.0f} texts/s; "
                             f"{found['threads']} threads)" if "encode" in found else "")
                    print(f"round {r + 1}  {arm:16} {found['wall']:6.1f} s  {args.n / found['wall']:6.0f} texts/s"
                          f"  load {found['load']:.2f}{extra}", flush=True)
        finally:
            for s in spinners:
                s.terminate()
    best = {arm: min(f["wall"] for f in found) for arm, found in results.items()}
    cli = best["glassbert embed"]
    print("\nbest of the rounds (whole process: imports, loading, encoding):")
    for arm in arms:
        ratio = best[arm] / cli
        print(f"  {arm:16} {best[arm]:6.1f} s  {args.n / best[arm]:6.0f} texts/s  {ratio:5.2f}× the command's time"
              + ("" if arm == "glassbert embed" else ("  within 1.5×" if ratio <= 1.5 else "  NOT within 1.5×")))


if __name__ == "__main__":
    main()
