"""Intra-op threads against model size, on a quiet and on a busy machine: what glassbert.threads chooses.

    python bench/threads.py                       # toy … small presets, 1 thread vs all cores, quiet and busy
    python bench/threads.py --presets mini base --busy 0

For each preset, a pretraining step (forward + backward + AdamW, batch 16 × 128 tokens; the toy at its
own 6 × 14) is timed with 1 thread and with every core, first on a quiet machine, then while --busy
processes spin on the CPU (another job on the same machine). It prints steps/s and the ratio, and
what `choose_threads` picks for that preset. Each measurement runs in a fresh process, so thread pools
do not carry over.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

CHILD = r"""
import json, sys, time, torch
sys.path.insert(0, {src!r})
from glassbert.config import BertConfig
from glassbert.heads import BertForPreTraining
torch.set_num_threads({threads})
torch.manual_seed(0)
preset = {preset!r}
batch, length = (6, 14) if preset == "toy" else ({batch}, 128)
config = BertConfig.preset(preset, vocab_size=1000 if preset != "toy" else 20)
model = BertForPreTraining(config)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
ids = torch.randint(5, config.vocab_size, (batch, length))
labels = torch.full_like(ids, -100); labels[:, 1::7] = ids[:, 1::7]
nsp = torch.zeros(batch, dtype=torch.long)
def step():
    out = model(input_ids=ids, labels=labels, next_sentence_label=nsp)
    out.loss.backward(); opt.step(); opt.zero_grad()
for _ in range(3):
    step()
n, start = 0, time.perf_counter()
while time.perf_counter() - start < {seconds}:
    step(); n += 1
print(json.dumps({{"steps_per_s": n / (time.perf_counter() - start)}}))
"""


def spin(stop_at: float) -> None:
    while time.time() < stop_at:
        pass


def measure(preset: str, threads: int, seconds: float, batch: int) -> float:
    code = CHILD.format(src=str(ROOT / "src"), threads=threads, preset=preset, seconds=seconds, batch=batch)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "GLASSBERT_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["steps_per_s"]


def main() -> None:
    from glassbert.config import PRESETS
    from glassbert.threads import SMALL_HIDDEN, choose_threads, usable_cores

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["toy", "tiny", "mini", "small"])
    p.add_argument("--seconds", type=float, default=6.0, help="timed seconds per measurement")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--busy", type=int, default=None, help="spinning processes for the busy case (default: cores)")
    args = p.parse_args()
    cores = usable_cores()
    busy = cores if args.busy is None else args.busy
    print(f"{cores} usable cores; busy case: {busy} spinning processes; SMALL_HIDDEN = {SMALL_HIDDEN}")
    print(f"{'preset':8} {'hidden':>6}  {'machine':7} {'1 thread':>10} {f'{cores} threads':>10} {'ratio':>7}   chooses")
    for preset in args.presets:
        hidden = PRESETS[preset]["hidden_size"]
        for load in ("quiet", "busy") if busy else ("quiet",):
            procs = []
            if load == "busy":
                stop_at = time.time() + 4 * args.seconds + 60
                procs = [mp.Process(target=spin, args=(stop_at,), daemon=True) for _ in range(busy)]
                for proc in procs:
                    proc.start()
            try:
                one = measure(preset, 1, args.seconds, args.batch)
                many = measure(preset, cores, args.seconds, args.batch)
            finally:
                for proc in procs:
                    proc.terminate()
            env = {k: os.environ.pop(k) for k in ("OMP_NUM_THREADS", "GLASSBERT_THREADS") if k in os.environ}
            # what a job started on such a machine would pick (the load average now still holds this bench's runs)
            choice = choose_threads(hidden_size=hidden, busy=busy if load == "busy" else 0.0)
            os.environ.update(env)
            print(f"{preset:8} {hidden:>6}  {load:7} {one:>8.2f}/s {many:>8.2f}/s {many / one:>6.2f}×   {choice}")


if __name__ == "__main__":
    main()
