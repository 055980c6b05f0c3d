"""Pretraining speed: glassbert vs transformers' BertForPreTraining (--arch albert: AlbertForPreTraining, MLM +
SOP), same config, weights and batches.

    python bench/pretrain.py                       # mini preset, State of the Union, 60 steps each
    python bench/pretrain.py --preset small --steps 200 --device cuda
    python bench/pretrain.py --arch albert         # ALBERT's tiny preset; --preset base for ALBERT-base's shape
    python bench/pretrain.py --precision fp32 bf16 --steps 30 --profile 3   # both precisions, then a profile

Both models start from the same weights and take the same optimizer steps (AdamW, no decay on biases
and LayerNorm, lr warmup then linear decay) on the same masked batches, the two libraries taking turns
(--turn steps each), so that a machine whose load changes during the run slows both alike. Prints real
(non-padding) tokens/s of each and the ratio, then the held-out MLM and NSP (SOP) accuracy of the glassbert run.

glibc's malloc is pinned first (--malloc steady, the default): left to itself it moves its mmap threshold as
memory is freed, and then whichever library allocates after the other's large frees takes its temporaries from
fresh pages (millions of page faults a run), so the ratio depended on the order of the arms (ALBERT base bf16:
1.57× with two arms, 1.20× with four; pinned, 1.28× and 1.22×). --malloc default leaves it alone.

--precision fp32 bf16 (the default) trains each library in each precision from the same weights on the same
batches (bf16: glassbert.precision's autocast around the forward, as the Trainer runs it; weights and AdamW in
fp32), all four runs taking turns, and prints them side by side, after the CPU's 1024³ GEMM rate in each
(bench/inference.py's gemm_rates): how close each run is to the machine. int8 is for inference only (dynamic
quantization has no gradients): asked for, it is named as such and left out. --profile N then profiles N more
steps of each run (torch.profiler) and prints the top operations by self CPU time.
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import ctypes.util
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import glassbert as gb  # noqa: E402
from glassbert.data import fetch, read_texts  # noqa: E402
from glassbert.precision import autocast  # noqa: E402
from glassbert.pretrain import PretrainArgs, build_datasets, pretraining_metrics  # noqa: E402
from glassbert.train import build_optimizer, lr_factor  # noqa: E402
from inference import gemm_rates  # noqa: E402  (bench/inference.py: one GEMM-rate function for every bench)


def vocabulary(corpus: Path, size: int, cache: Path) -> Path:
    if not (cache / "vocab.txt").is_file():
        gb.Tokenizer.train(read_texts(corpus), vocab_size=size, files=False).save_pretrained(cache)
    return cache


def batches_for(dataset, collate, n: int, batch_size: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(dataset), generator=g).tolist()
    while len(order) < n * batch_size:
        order += torch.randperm(len(dataset), generator=g).tolist()
    return [collate([dataset[i] for i in order[k * batch_size:(k + 1) * batch_size]],
                    torch.Generator().manual_seed(seed + k)) for k in range(n)]


def steady_malloc() -> str:
    """Pin glibc malloc's mmap and trim thresholds (as MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ would), so
    that every arm allocates from the same kind of memory whatever ran before it; what was done, in words."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return "malloc left as it is (no glibc mallopt)"
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    if not (mallopt(M_MMAP_THRESHOLD, 32 << 20) and mallopt(M_TRIM_THRESHOLD, 1 << 30)):
        return "malloc left as it is (mallopt refused)"
    return "malloc pinned (mmap threshold 32 MiB, trim threshold 1 GiB)"


class Run:
    """One library's training run, taken a few steps at a time: its optimizer, step, timed seconds and losses."""

    def __init__(self, model, batches, args, precision: str = "fp32"):
        self.device = torch.device(args.device)
        self.model = model.to(self.device).train()
        self.opt = build_optimizer(model, args.lr, 0.01, (0.9, 0.999), 1e-8)
        self.batches, self.args = batches, args
        self.warmup = max(1, len(batches) // 10)
        self.precision = precision
        self.step, self.seconds, self.losses = 0, 0.0, []

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def one_step(self, batch: dict) -> float:
        for group in self.opt.param_groups:
            group["lr"] = self.args.lr * lr_factor(min(self.step, len(self.batches)), self.warmup,
                                                    len(self.batches), "linear")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with autocast(self.device, self.precision == "bf16"):
            out = self.model(**batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return float(out.loss.detach())

    def train(self, n: int) -> None:
        """The next ``n`` steps; the first ``args.warmup_steps`` of the run (one-off costs) are not timed."""
        self._sync()
        t0 = time.perf_counter()
        for _ in range(min(n, len(self.batches) - self.step)):
            if self.step == self.args.warmup_steps:
                self._sync()
                t0 = time.perf_counter()
            self.losses.append(self.one_step(self.batches[self.step]))
            self.step += 1
        self._sync()
        if self.step > self.args.warmup_steps:
            self.seconds += time.perf_counter() - t0

    @property
    def done(self) -> bool:
        return self.step >= len(self.batches)


@torch.no_grad()
def evaluate(model, batches, device) -> dict[str, float]:
    model.eval()
    sums: dict[str, float] = {}
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        for k, v in pretraining_metrics(model(**batch), batch).items():
            sums[k] = sums.get(k, 0.0) + v
    return {k: v / len(batches) for k, v in sums.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=["bert", "albert"], default="bert")
    p.add_argument("--preset", default=None, help="default: mini (bert), tiny (albert)")
    p.add_argument("--turn", type=int, default=5, help="steps each library runs before the other takes its turn")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup-steps", type=int, default=3, help="untimed first steps")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", nargs="+", choices=["fp32", "bf16", "int8"], default=["fp32", "bf16"],
                   help="train in each, side by side (default fp32 bf16; bf16 = bf16 autocast; int8 is for "
                        "inference only and is left out with a note)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after the timed runs, profile N more steps of each and print the top ops by self CPU time")
    p.add_argument("--profile-rows", type=int, default=15)
    p.add_argument("--data", default=str(ROOT / "data"))
    p.add_argument("--skip-transformers", action="store_true")
    p.add_argument("--malloc", choices=["steady", "default"], default="steady",
                   help="steady (the default): pin glibc malloc's thresholds so the arms' order does not change "
                        "their speed; default: leave malloc alone")
    args = p.parse_args()
    if "int8" in args.precision:
        args.precision = [x for x in dict.fromkeys(args.precision) if x != "int8"]
        note = ("int8 is for inference only: dynamic int8 quantization (glassbert --precision int8) has no "
                "gradients, so there is no int8 pretraining step to time")
        if not args.precision:
            raise SystemExit(note + "; ask for --precision fp32 bf16")
        print(note + f"; timing {' '.join(args.precision)}")
    memory = steady_malloc() if args.malloc == "steady" else "malloc left as it is (--malloc default)"
    import transformers
    transformers.utils.logging.disable_progress_bar()

    corpus = fetch("sotu", args.data, quiet=True)
    vocab = vocabulary(corpus, args.vocab_size, Path(args.data) / ".cache" / f"sotu-vocab-{args.vocab_size}")
    tok = gb.Tokenizer.from_pretrained(vocab)
    pargs = PretrainArgs(corpus=str(corpus), vocab=str(vocab), out="", max_seq_length=args.max_seq_length,
                         arch=args.arch, preset=args.preset)
    arch = pargs.architecture
    data = build_datasets(pargs, tok)
    train_ds, eval_ds, collate, n_train, n_eval = data.train, data.eval, data.collate, data.train_documents, data.eval_documents
    batches = batches_for(train_ds, collate, args.steps, args.batch_size, seed=0)
    eval_batches = batches_for(eval_ds, collate, 20, args.batch_size, seed=10_000)
    real = sum(int(b["attention_mask"][:].sum()) for b in batches[args.warmup_steps:])
    padded = sum(b["attention_mask"].numel() for b in batches[args.warmup_steps:])
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, device {args.device}"
          f"{' ' + torch.cuda.get_device_name() if args.device == 'cuda' else ''}, threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}; {memory}")
    print(f"State of the Union: {n_train} speeches → {len(train_ds)} pairs (held out {n_eval} → {len(eval_ds)}); "
          f"vocab {tok.vocab_size}; {args.steps} steps × {args.batch_size} × ≤{args.max_seq_length}; "
          f"timed {real} real tokens of {padded} ({real / padded:.0%})")
    gemm = gemm_rates(args.device, args.precision)
    print("GEMM 1024³: " + ", ".join(f"{x} {rate:.0f} GFLOP/s" for x, rate in gemm.items()), flush=True)

    torch.manual_seed(0)
    config = arch.config_class.preset(pargs.preset, vocab_size=tok.vocab_size)
    ours = arch.pretraining(config)
    print(f"{args.arch} {pargs.preset}: {ours.num_parameters() / 1e6:.1f} M parameters, MLM + {arch.pair_task.upper()}")
    runs: dict[tuple[str, str], Run] = {}  # (library, precision) → its run, all from the same weights
    with tempfile.TemporaryDirectory() as tmp:
        ours.save_pretrained(tmp)
        hf_class = getattr(transformers, arch.pretraining.__name__)  # BertForPreTraining | AlbertForPreTraining
        for precision in args.precision:
            runs[("glassbert", precision)] = Run(copy.deepcopy(ours), batches, args, precision)
            if not args.skip_transformers:
                runs[("transformers", precision)] = Run(hf_class.from_pretrained(tmp, attn_implementation="sdpa"),
                                                        batches, args, precision)
    while not all(r.done for r in runs.values()):  # all take turns, --turn steps at a time
        for r in runs.values():
            r.train(args.turn)
    for (name, precision), r in runs.items():
        print(f"{name + ',':13} {precision}: {r.seconds:7.1f} s  {real / r.seconds:8.0f} real tok/s  "
              f"loss {r.losses[0]:.3f} → {r.losses[-1]:.3f}")
    for precision in args.precision:
        if ("transformers", precision) in runs:
            a, b = runs[("glassbert", precision)], runs[("transformers", precision)]
            gap = max(abs(x - y) for x, y in zip(a.losses[:5], b.losses[:5]))
            print(f"{precision} ratio glassbert / transformers: {b.seconds / a.seconds:.2f}x   "
                  f"(first-5-step loss gap {gap:.1e})")
    if len(args.precision) > 1:
        for name in ("glassbert", "transformers"):
            if (name, "bf16") in runs:
                print(f"{name} bf16 / fp32: {runs[(name, 'fp32')].seconds / runs[(name, 'bf16')].seconds:.2f}x")
    pair = arch.pair_task
    for precision in args.precision:
        metrics = evaluate(runs[("glassbert", precision)].model, eval_batches, torch.device(args.device))
        print(f"glassbert ({precision}) held-out after {args.steps} steps: MLM accuracy {metrics['mlm_acc']:.3f}, "
              f"{pair.upper()} accuracy {metrics[f'{pair}_acc']:.3f}, MLM loss {metrics['mlm_loss']:.3f}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if args.profile:
        for (name, precision), r in runs.items():
            profile(r, batches[:args.profile], f"{name} {precision}", args.profile_rows)


def profile(run: Run, batches: list[dict], title: str, rows: int) -> None:
    """``len(batches)`` training steps of ``run`` under torch.profiler: the top ops by self CPU time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    run.model.train()
    run.one_step(batches[0])  # warm
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for batch in batches:
            run.one_step(batch)
        seconds = time.perf_counter() - t0
    print(f"\n── profile: {title}, {len(batches)} steps, {seconds / len(batches) * 1000:.0f} ms a step "
          f"(under the profiler) ──")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=40))


if __name__ == "__main__":
    main()
