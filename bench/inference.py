"""Inference speed: the same weights through glassbert and transformers, in one run.

    python bench/inference.py                      # base (random weights) and MiniLM, CPU, fp32 and bf16
    python bench/inference.py --device cuda --models base minilm --precision bf16
    python bench/inference.py --models base --precision fp32 bf16 --texts 64 --repeats 3
    python bench/inference.py --models minilm --precision fp32 bf16 int8   # and int8 (CPU)
    python bench/inference.py --models minilm base --fp64-errors          # each bf16 mode's error against fp64
    python bench/inference.py --models base --precision bf16 --compile    # and glassbert under torch.compile

Prints real (non-padding) tokens/s of each and the ratio glassbert / transformers, on
(1) batches of real sentences of varied length, padded to the longest (what users feed), and
(2) full-length batches with no padding (where transformers already runs near the GEMM limit),
for each --precision side by side. bf16: glassbert as its commands load it (glassbert.quantize: Linear weights
cast once, the layers computing in bf16 from the fp32 embeddings, attention on each text's own tokens),
transformers in its best bf16 mode of two (autocast over fp32 weights, or
the model cast to bf16: "hf bf16" is the faster, named in the table); int8: both libraries' Linear layers
replaced by the same int8 layer (glassbert.quantize.quantize_int8: int8 weights, one activation scale per token).
First it measures a plain GEMM in each precision (int8: that layer, 1024 rows, its activations quantized on
every call): what the matrix units give here.
The arms take turns (every repeat runs each library in each precision once) so that a shared machine's
changing load slows them alike; the best of the repeats is kept, and the load average is printed.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import glassbert as gb  # noqa: E402
from glassbert.precision import autocast  # noqa: E402
from glassbert.quantize import prepared_copy, quantize_int8  # noqa: E402

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": None}


def gemm_rates(device: str, precisions: list[str], n: int = 1024, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of an (n, n) @ (n, n) matmul in each precision, the precisions taking turns (best of repeats)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    inputs = {p: (a.to(DTYPES[p] or torch.float32), b.to(DTYPES[p] or torch.float32)) for p in precisions}
    if "int8" in precisions:  # x @ y as glassbert's int8 Linear holding yᵀ (the activations quantized per call)
        layer = torch.nn.Linear(n, n, bias=False)
        layer.weight.data.copy_(b.T)
        int8 = quantize_int8(torch.nn.Sequential(layer))[0]
        inputs["int8"] = (a, None)
    best = {p: float("inf") for p in precisions}
    for _ in range(repeats):
        for p, (x, y) in inputs.items():
            matmul = (lambda x=x: int8(x)) if p == "int8" else (lambda x=x, y=y: x @ y)
            matmul()  # warm
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(4):
                matmul()
            if device == "cuda":
                torch.cuda.synchronize()
            best[p] = min(best[p], (time.perf_counter() - t0) / 4)
    return {p: 2 * n ** 3 / t / 1e9 for p, t in best.items()}


def context(device: str, precision: str):
    """The forward's precision context: glassbert.precision's bf16 autocast (fp16: torch.autocast directly)."""
    if precision == "fp16":
        return torch.autocast(device, dtype=torch.float16)
    return autocast(device, precision == "bf16")


def load_sentences(n: int, seed: int = 0, group: bool = True) -> list[str]:
    """Real prose from the committed test corpus: single sentences, or (group) texts of 1–6 sentences."""
    from glassbert.data import split_sentences
    text = (ROOT / "tests" / "data" / "tiny_corpus.txt").read_text(encoding="utf-8")
    sentences = [s for s in split_sentences(re.sub(r"\s+", " ", text)) if len(s) > 3]
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        k = rng.choice([1, 1, 1, 2, 2, 3, 4, 6]) if group else 1
        start = rng.randrange(len(sentences) - k)
        out.append(" ".join(sentences[start:start + k]))
    return out


def make_models(name: str, device: str, tmp: Path):
    import transformers
    if name == "minilm":
        from glassbert.modeldir import resolve_model_path
        path = resolve_model_path("minilm")
    else:
        torch.manual_seed(0)
        hf_cfg = transformers.BertConfig(**{k: v for k, v in gb.BertConfig.preset(name).to_dict().items()
                                            if k not in ("architectures", "classifier_pooling")})
        path = tmp / name
        transformers.BertModel(hf_cfg).save_pretrained(path)
    hf = transformers.BertModel.from_pretrained(path, attn_implementation="sdpa").to(device).eval()
    ours = gb.BertModel.from_pretrained(path).to(device).eval()
    return ours, hf, gb.Tokenizer.from_pretrained("minilm")


def timed_turns(arms: dict, batches, device, repeats: int) -> dict:
    """Best-of-`repeats` seconds of each arm (a function of one batch) over all batches, the arms taking turns."""
    best = {name: float("inf") for name in arms}
    for _ in range(repeats):
        for name, fn in arms.items():
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for b in batches:
                fn(b)
            if device == "cuda":
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def prepared(ours, hf, precision: str, device: str) -> tuple:
    """glassbert's model as its commands load it in ``precision``, and transformers' arms: {mode: model}."""
    import copy
    if precision == "int8":
        return prepared_copy(ours, "int8", device), {"int8": quantize_int8(copy.deepcopy(hf))}
    if precision == "bf16":
        return prepared_copy(ours, "bf16", device), {"autocast": hf, "cast": copy.deepcopy(hf).to(torch.bfloat16)}
    return ours, {precision: hf}


def run(name: str, args, tmp: Path) -> list[tuple]:
    ours, hf, tok = make_models(name, args.device, tmp)
    models = {p: prepared(ours, hf, p, args.device) for p in args.precision}
    compiled = {p: torch.compile(mine, dynamic=True) for p, (mine, _) in models.items()} if args.compile else {}

    def padded_batches(texts):
        return [tok(texts[i:i + args.batch_size], max_length=args.max_length)
                for i in range(0, len(texts), args.batch_size)]
    sentences = padded_batches(load_sentences(args.texts, group=False))
    paragraphs = padded_batches(load_sentences(args.texts))
    g = torch.Generator().manual_seed(0)
    full_ids = [torch.randint(1000, 30000, (args.full_batch, args.max_length), generator=g) for _ in range(args.full_batches)]
    full = [dict(input_ids=i, token_type_ids=torch.zeros_like(i), attention_mask=torch.ones_like(i)) for i in full_ids]
    rows, compile_seconds = [], {}
    for label, batches in (("sentences", sentences), ("texts", paragraphs), ("full", full)):
        batches = [{k: v.to(args.device) for k, v in b.items()} for b in batches]
        real = sum(int(b["attention_mask"].sum()) for b in batches)
        padded = sum(b["attention_mask"].numel() for b in batches)

        def go(model, precision):
            def step(b):
                with context(args.device, precision):
                    model(**b)
            return step
        arms = {}
        for p, (mine, theirs) in models.items():
            arms[("ours", p)] = go(mine, p)
            if args.compile:
                arms[("ours compiled", p)] = go(compiled[p], p)
            arms.update({(f"hf {mode}", p): go(model, p) for mode, model in theirs.items()})
        with torch.inference_mode():
            for arm, fn in arms.items():  # warm-up (torch.compile compiles here: timed, and once per shape kind)
                t0 = time.perf_counter()
                fn(batches[0])
                if arm[0] == "ours compiled":
                    fn(batches[-1])
                    compile_seconds[(arm[1], label)] = time.perf_counter() - t0
            seconds = timed_turns(arms, batches, args.device, args.repeats)
            b0 = batches[0]
            for p, (mine, theirs) in models.items():
                mode = min(theirs, key=lambda m: seconds[(f"hf {m}", p)])  # transformers' best mode
                with context(args.device, p):
                    diff = (mine(**b0).sequence_output.float() - theirs[mode](**b0).last_hidden_state.float()
                            )[b0["attention_mask"].bool()].abs().max()
                t_hf, t_ours = seconds[(f"hf {mode}", p)], seconds[("ours", p)]
                shown = p if mode == p else f"{p}:{mode}"
                rows.append((name, label, shown, real, padded, real / t_hf, real / t_ours, t_hf / t_ours, float(diff)))
                if args.compile:
                    t_c = seconds[("ours compiled", p)]
                    print(f"{name} {label} {p}: torch.compile'd glassbert {real / t_c:.0f} real tok/s, "
                          f"{t_ours / t_c:.2f}x eager glassbert, {t_hf / t_c:.2f}x transformers; first two "
                          f"calls (compiling) {compile_seconds[(p, label)]:.1f} s", flush=True)
    return rows


def fp64_errors(name: str, args, tmp: Path) -> None:
    """Each library's bf16 modes (and glassbert's fp32) against the same model in float64, on the varied-length
    texts: the last layer's error on real tokens, and the lowest cosine of mean-pooled vectors."""
    import copy
    from glassbert.model import pool
    ours, hf, tok = make_models(name, args.device, tmp)
    texts = load_sentences(args.texts)
    batches = [tok(texts[i:i + args.batch_size], max_length=args.max_length)
               for i in range(0, len(texts), args.batch_size)]
    autocast_fp32_residual = prepared_copy(ours, "bf16", args.device)
    autocast_fp32_residual.residual_dtype = None  # the prepared weights, the layers left to autocast
    arms = {"glassbert fp32": (ours, False),
            "glassbert bf16 (as loaded for inference)": (prepared_copy(ours, "bf16", args.device), True),
            "glassbert bf16, fp32 residual stream": (autocast_fp32_residual, True),
            "transformers bf16 (cast)": (copy.deepcopy(hf).to(torch.bfloat16), False),
            "transformers bf16 (autocast)": (hf, True)}
    reference = copy.deepcopy(ours).double()
    with torch.inference_mode():
        refs = [reference(**b).sequence_output for b in batches]
        print(f"\n{name}: error against float64, {sum(int(b['attention_mask'].sum()) for b in batches)} real tokens")
        for label, (model, under_autocast) in arms.items():
            worst, relative, cosine = 0.0, [], 1.0
            for b, ref in zip(batches, refs):
                with autocast(args.device, under_autocast):
                    out = model(**b)
                h = getattr(out, "last_hidden_state", None)
                h = (out.sequence_output if h is None else h).double()
                real = b["attention_mask"].bool()
                d = (h - ref)[real]
                worst = max(worst, d.abs().max().item())
                relative.append((d.norm(dim=-1) / ref[real].norm(dim=-1)).mean().item())
                cosine = min(cosine, torch.cosine_similarity(pool(h, b["attention_mask"], "mean"),
                                                             pool(ref, b["attention_mask"], "mean")).min().item())
            print(f"  {label:42} mean relative error {statistics.mean(relative):.2e}  max |error| {worst:.2e}  "
                  f"lowest cosine of mean-pooled vectors {cosine:.6f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["base", "minilm"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", nargs="+", choices=list(DTYPES), default=["fp32", "bf16"],
                   help="precisions to compare side by side (default fp32 bf16; fp16 only means something on CUDA)")
    p.add_argument("--texts", type=int, default=256, help="varied-length texts")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--full-batch", type=int, default=8)
    p.add_argument("--full-batches", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compile", action="store_true",
                   help="also time glassbert's model under torch.compile(dynamic=True), and the compile time")
    p.add_argument("--fp64-errors", action="store_true",
                   help="instead of timing: each bf16 mode's error against the model in float64 (--texts 64 by default)")
    args = p.parse_args()
    if args.fp64_errors:
        args.texts = 64 if args.texts == 256 else args.texts
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.models:
                fp64_errors(name, args, Path(tmp))
        return
    print(f"torch {torch.__version__}, device {args.device}, precision {' '.join(args.precision)}, "
          f"threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    if args.device == "cuda":
        print(torch.cuda.get_device_name())
    gemm = gemm_rates(args.device, args.precision)
    print("GEMM 1024³: " + ", ".join(f"{p} {rate:.0f} G{'OP' if p == 'int8' else 'FLOP'}/s" for p, rate in gemm.items()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            rows += run(name, args, Path(tmp))
    print("\nsentences: single real sentences, 32 a batch, padded to the longest; texts: 1–6 sentences a text;"
          " full: 128 real tokens a row, no padding")
    print(f"\n{'model':8} {'batches':9} {'prec':13} {'real tok':>9} {'padded':>8} {'transformers tok/s':>19} "
          f"{'glassbert tok/s':>16} {'ratio':>7} {'max|diff|':>10}")
    for name, label, prec, real, padded, hf_tps, ours_tps, ratio, diff in rows:
        print(f"{name:8} {label:9} {prec:13} {real:9d} {padded:8d} {hf_tps:19.0f} {ours_tps:16.0f} {ratio:6.2f}x "
              f"{diff:10.2e}")
    for prec in args.precision:
        ratios = [r[7] for r in rows if r[2].split(':')[0] == prec]
        varied = [r[7] for r in rows if r[2].split(':')[0] == prec and r[1] != "full"]
        print(f"geometric mean ratio, {prec}: {statistics.geometric_mean(ratios):.2f}x "
              f"(varied-length batches alone: {statistics.geometric_mean(varied):.2f}x)")
    if len(args.precision) > 1:  # what each library gains from the other precisions
        first = args.precision[0]
        base = {(r[0], r[1]): r for r in rows if r[2].split(':')[0] == first}
        for prec in args.precision[1:]:
            for lib, col in (("transformers", 5), ("glassbert", 6)):
                gains = [r[col] / base[(r[0], r[1])][col] for r in rows if r[2].split(':')[0] == prec]
                print(f"{lib} {prec} / {first}: {statistics.geometric_mean(gains):.2f}x")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
