"""What int8 (and bf16) inference costs against fp32, measured: a fine-tuned classifier's labels, and MiniLM's
sentence vectors, on the fine-food reviews' test set (issue 31's int8 acceptance), in one run.

    python bench/classifier_precision.py --run runs/foods-minilm     # a classifier fine-tuned on fine-foods
    python bench/classifier_precision.py                             # fine-tunes one first (1 epoch, ~4 min)
    python bench/classifier_precision.py --run runs/foods-minilm --variants   # int8 variants, old and new

(1) The classifier (--run: a `glassbert finetune` classification run on the fine-food reviews; without it,
    `glassbert finetune minilm --train data/fine-foods/train.csv --text-column review --label-column score
    --epochs 1 --precision bf16 --out OUT` is run first, OUT a temporary folder unless --out says) labels the
    test reviews (1,000) as `glassbert classify RUN --input test.csv --text-column review --precision P` does
    (the text-classification pipeline that command calls, loaded once per precision, applied to the texts):
    in each P of --precision, how many labels agree with fp32's, the accuracy of each, the largest change of a
    probability, and texts/s (tokenizing included).
(2) MiniLM sentence vectors (`Embedder("minilm", precision=P)`, mean pooling, unit length) of the same test
    reviews (--embed-texts, --embed-max-length tokens): cosine of each to its fp32 vector (mean, lowest, 1st
    percentile), how often the nearest neighbour among them is the same, and texts/s; with int8, also the
    layer glassbert's int8 used before (torch's dynamic int8 Linear, one activation scale per call: "int8 old").
The precisions take turns, --repeats times (best time kept), so a shared machine's drift slows all alike; the
load average is printed with the CPU's GEMM rates (bench/inference.py's gemm_rates).

--variants then labels the test set with int8 variants of the classifier, beside fp32 again, all taking turns:
glassbert's int8 (glassbert.quantize.Int8Linear: one activation scale per token, torch._int_mm) against the
layer it replaced (torch's dynamic int8 Linear, one activation scale per call, with 8- and with 7-bit
activations), and the per-token layer with asymmetric activations (a zero point per token) and with 7-bit
weights (what a CPU without VNNI gets): what each costs in labels and in speed.
"""
from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import glassbert as gb  # noqa: E402
from glassbert import data as gdata  # noqa: E402
from glassbert.quantize import Int8Linear, for_inference, fuse_qkv, quantize_int8  # noqa: E402
from glassbert.tasks.classification import read_classification  # noqa: E402
from inference import gemm_rates  # noqa: E402  (bench/inference.py: one GEMM-rate function for every bench)

TEXT, LABEL = "review", "score"
PRECISIONS = ("fp32", "bf16", "int8")


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min) on {os.cpu_count()} cores"


def fine_tune(out: Path, train_csv: Path, epochs: int, precision: str, threads: int) -> Path:
    """`glassbert finetune minilm` on ``train_csv`` into ``out`` (the command itself, printed and timed)."""
    command = [sys.executable, "-m", "glassbert", "finetune", "minilm", "--train", str(train_csv), "--text-column",
               TEXT, "--label-column", LABEL, "--epochs", str(epochs), "--precision", precision, "--out", str(out),
               "--threads", str(threads)]
    print("$ glassbert " + " ".join(command[3:]), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    print(f"fine-tuned in {time.perf_counter() - start:.0f} s ({load_note()})", flush=True)
    return out


def timed_turns(arms: dict, repeats: int) -> tuple[dict, dict]:
    """Each arm (a function of no arguments) run ``repeats`` times, the arms taking turns: (best seconds, the
    first result) per arm."""
    best = {name: float("inf") for name in arms}
    results = {}
    for _ in range(repeats):
        for name, fn in arms.items():
            t0 = time.perf_counter()
            result = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
            results.setdefault(name, result)
    return best, results


# ── int8 variants: glassbert's layer (per-token scales) against the one it replaced (one scale per call) ──────

class PerCallInt8(DynamicLinear):
    """glassbert's int8 layer before the per-token one: torch's dynamic int8 Linear (fbgemm) with all 8 bits of
    the activations (where the CPU has VNNI), whose one activation scale covers the call's whole input."""

    reduce_range = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x, self._packed_params._packed_params,
                                                  reduce_range=self.reduce_range).to(x.dtype)


class PerCallInt8Reduced(PerCallInt8):
    """The same with 7-bit activations (``reduce_range``: torch's default, for its CPUs without VNNI)."""

    reduce_range = True


class AsymmetricInt8(Int8Linear):
    """glassbert's Int8Linear with asymmetric activations: each token's min to max on all 256 levels (stored as
    q − 128) and the zero point's term added back, one more pass over the output: Σ_k (q_tk + 128 − z_t) w_ok =
    (q·w)_to + (128 − z_t) Σ_k w_ok."""

    def __init__(self, linear: nn.Linear, levels: int | None = None) -> None:
        super().__init__(linear, levels)
        self.register_buffer("weight_sums", self.weight.sum(1, dtype=torch.int32).float())    # (out,)

    def _block(self, x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor, scale: torch.Tensor | None = None,
               scratch: torch.Tensor | None = None, q: torch.Tensor | None = None) -> None:
        lo = x.amin(1, keepdim=True).clamp_(max=0)                               # (m, 1)
        hi = x.amax(1, keepdim=True).clamp_(min=0)
        scale = torch.sub(hi, lo, out=scale).div_(255).clamp_(min=torch.finfo(torch.float32).tiny)
        zero = torch.div(lo, scale).neg_().round_()                              # 0 … 255
        rounded = torch.addcmul(zero - 128, x, scale.reciprocal(), out=scratch).round_().clamp_(-128, 127)
        q = rounded.to(torch.int8) if q is None else q.copy_(rounded)
        sums = out.view(torch.int32)
        torch._int_mm(q, weight, out=sums)
        out.copy_(sums).mul_(scale)
        out.addr_(scale.mul(128 - zero).squeeze(1), self.weight_sums)
        torch.addcmul(self.bias, out, self.weight_scale, out=out)


def _per_call(model: nn.Module, layer: type = PerCallInt8) -> nn.Module:
    """``model`` as glassbert quantized it for int8 before: Q, K, V fused, then every nn.Linear as torch's dynamic
    int8 Linear (torch.ao.quantization.quantize_dynamic, one weight scale per row) of class ``layer``."""
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    fuse_qkv(model)
    with warnings.catch_warnings():  # torch announces quantized tensors will move to torchao; they still run
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8,
                                mapping={nn.Linear: layer}, inplace=True)


def _per_token(model: nn.Module, layer: type = Int8Linear, levels: int | None = None) -> nn.Module:
    """``model`` with Q, K, V fused and every nn.Linear an int8 ``layer`` (glassbert.quantize.quantize_int8's)."""
    fuse_qkv(model)
    return quantize_int8(model, layer, levels)


VARIANTS = {  # name → fp32 model in, int8 model out
    "per call (torch dynamic, glassbert before)": _per_call,
    "per call, 7-bit activations (torch default)": lambda m: _per_call(m, PerCallInt8Reduced),
    "per token (glassbert: for_inference)": lambda m: for_inference(m, "int8", "cpu") and m,
    "per token, asymmetric (zero point)": lambda m: _per_token(m, AsymmetricInt8),
    "per token, 7-bit weights (no VNNI)": lambda m: _per_token(m, levels=63),
}


def run_variants(run: Path, texts: list[str], gold: np.ndarray, fp32_labels: np.ndarray, fp32_probs: np.ndarray,
                 label_names: list[str], args) -> None:
    from glassbert.quantize import PREPARED
    from glassbert.tasks.classifier import classify, load_classifier
    print(f"\n(3) int8 variants of {run.name}'s classifier, {len(texts)} test reviews, classified as (1) does; "
          f"{load_note()}")
    base = load_classifier(run)
    arms = {"fp32": (lambda: classify(base, texts, progress=False))}
    for name, make in VARIANTS.items():
        model = make(copy.deepcopy(base.model).eval())
        for module in model.modules():  # so that classify(precision="int8") applies it as it is
            object.__setattr__(module, PREPARED, "int8")
        assert not any(type(m) is nn.Linear for m in model.modules()), name  # every layer int8
        fine_tuned = dataclasses.replace(base, model=model)
        classify(fine_tuned, texts[:16], precision="int8", progress=False)  # warm-up
        arms[name] = (lambda ft=fine_tuned: classify(ft, texts, precision="int8", progress=False))
    seconds, results = timed_turns(arms, args.repeats)
    print(f"{'int8 variant':44} {'agree':>7} {'accuracy':>9} {'max |Δp|':>9} {'texts/s':>8} {'vs fp32':>8}")
    for name, rows in results.items():
        labels = np.array([label_names.index(r["label"]) for r in rows])
        probs = np.array([[r["probs"][k] for k in label_names] for r in rows])
        print(f"{name:44} {(labels == fp32_labels).mean():7.1%} {(labels == gold).mean():9.4f} "
              f"{np.abs(probs - fp32_probs).max():9.4f} {len(texts) / seconds[name]:8.1f} "
              f"{seconds['fp32'] / seconds[name]:7.2f}x")


# ── (1) the classifier, (2) the embeddings ─────────────────────────────────────────────────────────────────

def classifier(run: Path, texts: list[str], gold_names: list[str], precisions: list[str], args) -> tuple:
    """(1): the labels and probabilities of fp32, the run's label names (its id2label order), the gold labels."""
    pipes = {p: gb.pipeline("text-classification", run, precision=p, threads=args.threads) for p in precisions}
    config = pipes[precisions[0]].loaded.config
    label_names = [config.id2label[i] for i in range(config.num_labels)]
    gold = np.array([label_names.index(g) for g in gold_names])
    for pipe in pipes.values():
        pipe.run(texts[:16], progress=False)  # warm-up
    seconds, results = timed_turns({p: (lambda pipe=pipe: pipe.run(texts, progress=False))
                                    for p, pipe in pipes.items()}, args.repeats)
    labels = {p: np.array([label_names.index(r["label"]) for r in rows]) for p, rows in results.items()}
    probs = {p: np.array([[r["probs"][k] for k in label_names] for r in rows]) for p, rows in results.items()}
    ref = "fp32" if "fp32" in precisions else precisions[0]
    print(f"\n(1) classifier {run}, {len(texts)} test reviews (labels {', '.join(label_names)}; majority label alone "
          f"{np.bincount(gold).max() / len(gold):.3f}); {load_note()}")
    print(f"{'':6} {'agree with ' + ref:>16} {'changed':>8} {'accuracy':>9} {'max |Δp|':>9} {'texts/s':>8} "
          f"{'vs ' + ref:>8}")
    for p in precisions:
        changed = int((labels[p] != labels[ref]).sum())
        print(f"{p:6} {1 - changed / len(texts):16.2%} {changed:8d} {(labels[p] == gold).mean():9.4f} "
              f"{np.abs(probs[p] - probs[ref]).max():9.4f} {len(texts) / seconds[p]:8.1f} "
              f"{seconds[ref] / seconds[p]:7.2f}x")
        flips = np.flatnonzero(labels[p] != labels[ref])
        if len(flips):
            top2 = np.sort(probs[ref][flips], axis=1)[:, -2:]
            print(f"       the {len(flips)} changed: {ref}'s margin between its top two labels "
                  f"{', '.join(f'{m:.3f}' for m in sorted(top2[:, 1] - top2[:, 0])[:10])}"
                  f"{' …' if len(flips) > 10 else ''}")
    return labels[ref], probs[ref], label_names, gold


def embeddings(texts: list[str], precisions: list[str], args) -> None:
    embedders = {p: gb.Embedder("minilm", precision=p, threads=args.threads, max_length=args.embed_max_length)
                 for p in precisions}
    if "int8" in precisions:  # the int8 layer glassbert used before, on the same model
        from glassbert.quantize import PREPARED
        base = embedders["fp32"]
        model = _per_call(copy.deepcopy(base.model).eval())
        for module in model.modules():  # so that the Embedder runs it as it is
            object.__setattr__(module, PREPARED, "int8")
        embedders["int8 old"] = gb.Embedder(model, base.tokenizer, precision="int8", threads=args.threads,
                                            max_length=args.embed_max_length)
    for e in embedders.values():
        e.encode(texts[:32], show_progress=False)  # warm-up
    logging.getLogger("glassbert").setLevel(logging.ERROR)  # not once per pass: the count is printed below
    seconds, vectors = timed_turns({p: (lambda e=e: e.encode(texts, normalize=True, show_progress=False))
                                    for p, e in embedders.items()}, args.repeats)
    ref = "fp32" if "fp32" in precisions else precisions[0]
    cut = embedders[ref].tokenizer(texts, padding=True, max_length=args.embed_max_length, warn_truncation=False)
    print(f"\n(2) MiniLM sentence vectors (mean pooling, unit length, ≤ {args.embed_max_length} tokens: "
          f"{cut.truncated} truncated) of {len(texts)} test reviews; {load_note()}")
    print(f"{'':8} {'cos mean':>9} {'lowest':>9} {'1st pct':>9} {'same NN':>8} {'texts/s':>8} {'vs ' + ref:>8}")
    sims = {}
    for p in embedders:
        sims[p] = vectors[p] @ vectors[p].T
        np.fill_diagonal(sims[p], -2)
    for p in embedders:
        cos = (vectors[p] * vectors[ref]).sum(1)
        same = (sims[p].argmax(1) == sims[ref].argmax(1)).mean()
        print(f"{p:8} {cos.mean():9.5f} {cos.min():9.5f} {np.percentile(cos, 1):9.5f} {same:8.1%} "
              f"{len(texts) / seconds[p]:8.1f} {seconds[ref] / seconds[p]:7.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, help="a classifier fine-tuned on the fine-food reviews (default: fine-tune one)")
    p.add_argument("--out", type=Path, help="where the classifier fine-tuned here is kept (default: a temporary folder)")
    p.add_argument("--epochs", type=int, default=1, help="of the classifier fine-tuned here")
    p.add_argument("--train-precision", choices=["fp32", "bf16", "auto"], default="bf16",
                   help="of the classifier fine-tuned here")
    p.add_argument("--train-limit", type=int, default=None, help="train on the first N reviews only")
    p.add_argument("--precision", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    p.add_argument("--texts", type=int, default=1000, help="test reviews classified (at most 1,000)")
    p.add_argument("--embed-texts", type=int, default=1000, help="test reviews embedded (0: skip (2))")
    p.add_argument("--embed-max-length", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2, help="timed passes of each precision, taking turns (best kept)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, all cores)")
    p.add_argument("--variants", action="store_true", help="then label the test set with int8 variants")
    p.add_argument("--skip-classifier", action="store_true", help="(2) alone")
    args = p.parse_args()
    args.threads = args.threads or torch.get_num_threads()
    precisions = list(dict.fromkeys(["fp32"] + args.precision))  # fp32: what the others are held to
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {load_note()}")
    gemm = gemm_rates("cpu", precisions)
    print("GEMM 1024³: " + ", ".join(f"{x} {rate:.0f} G{'OP' if x == 'int8' else 'FLOP'}/s" for x, rate in gemm.items()),
          flush=True)
    foods = gdata.fetch("fine-foods", ROOT / "data", quiet=True)
    train = read_classification(foods / "train.csv", TEXT, LABEL)
    test = read_classification(foods / "test.csv", TEXT, LABEL, labels=train.label_names)

    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_classifier:
            run = args.run
            if run is None:
                train_csv = foods / "train.csv"
                if args.train_limit:
                    train_csv = Path(tmp) / "train.csv"
                    with train_csv.open("w", newline="", encoding="utf-8") as f:
                        writer = csv.writer(f)
                        writer.writerow([TEXT, LABEL])
                        writer.writerows([t, train.label_names[y]] for t, y in
                                         zip(train.texts[:args.train_limit], train.label_ids[:args.train_limit]))
                run = fine_tune(args.out or Path(tmp) / "foods-minilm", train_csv, args.epochs, args.train_precision,
                                args.threads)
            n = min(args.texts, len(test))
            texts = test.texts[:n]
            gold_names = [test.label_names[y] for y in test.label_ids[:n]]
            fp32_labels, fp32_probs, label_names, gold = classifier(run, texts, gold_names, precisions, args)
            if args.variants:
                run_variants(run, texts, gold, fp32_labels, fp32_probs, label_names, args)
        if args.embed_texts:
            embeddings(test.texts[:min(args.embed_texts, len(test))], precisions, args)
    print(f"\n{load_note()} at the end")


if __name__ == "__main__":
    main()
