"""Inference speed: the same weights through glassbert and transformers, in one run.

    python bench/inference.py                      # base (random weights) and MiniLM, CPU
    python bench/inference.py --device cuda --models base minilm --dtype bf16

Prints real (non-padding) tokens/s of each and the ratio glassbert / transformers, on
(1) batches of real sentences of varied length, padded to the longest (what users feed), and
(2) full-length batches with no padding (where transformers already runs near the GEMM limit).
"""
from __future__ import annotations

import argparse
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
        from glassbert.checkpoint import resolve_model_path
        path = resolve_model_path("minilm")
    else:
        torch.manual_seed(0)
        hf_cfg = transformers.BertConfig(**{k: v for k, v in gb.BertConfig.preset(name).to_dict().items()
                                            if k not in ("architectures", "classifier_pooling")})
        path = tmp / name
        transformers.BertModel(hf_cfg).save_pretrained(path)
    hf = transformers.BertModel.from_pretrained(path, attn_implementation="sdpa").to(device).eval()
    ours = gb.BertModel.from_pretrained(path).to(device).eval()
    return ours, hf, gb.Tokenizer.from_pretrained(gb.checkpoint.resolve_model_path("minilm"))


def timed(fn, batches, device, repeats: int) -> float:
    """Best-of-`repeats` seconds for running fn over all batches."""
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for b in batches:
            fn(b)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def run(name: str, args, tmp: Path) -> list[tuple]:
    ours, hf, tok = make_models(name, args.device, tmp)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    def padded_batches(texts):
        return [tok(texts[i:i + args.batch_size], max_length=args.max_length)
                for i in range(0, len(texts), args.batch_size)]
    sentences = padded_batches(load_sentences(args.texts, group=False))
    paragraphs = padded_batches(load_sentences(args.texts))
    g = torch.Generator().manual_seed(0)
    full_ids = [torch.randint(1000, 30000, (args.full_batch, args.max_length), generator=g) for _ in range(args.full_batches)]
    full = [dict(input_ids=i, token_type_ids=torch.zeros_like(i), attention_mask=torch.ones_like(i)) for i in full_ids]
    rows = []
    for label, batches in (("sentences", sentences), ("texts", paragraphs), ("full", full)):
        batches = [{k: v.to(args.device) for k, v in b.items()} for b in batches]
        real = sum(int(b["attention_mask"].sum()) for b in batches)
        padded = sum(b["attention_mask"].numel() for b in batches)

        def go(model):
            def step(b):
                with torch.autocast(args.device, dtype=dtype, enabled=dtype is not None):
                    model(**b)
            return step
        with torch.inference_mode():
            for model in (ours, hf):  # warm-up
                go(model)(batches[0])
            t_ours = timed(go(ours), batches, args.device, args.repeats)
            t_hf = timed(go(hf), batches, args.device, args.repeats)
            b0 = batches[0]
            diff = (ours(**b0).sequence_output - hf(**b0).last_hidden_state)[b0["attention_mask"].bool()].abs().max()
        rows.append((name, label, real, padded, real / t_hf, real / t_ours, t_hf / t_ours, float(diff)))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["base", "minilm"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--texts", type=int, default=256, help="varied-length texts")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--full-batch", type=int, default=8)
    p.add_argument("--full-batches", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(f"torch {torch.__version__}, device {args.device}, dtype {args.dtype}, threads {torch.get_num_threads()}")
    if args.device == "cuda":
        print(torch.cuda.get_device_name())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            rows += run(name, args, Path(tmp))
    print("\nsentences: single real sentences, 32 a batch, padded to the longest; texts: 1–6 sentences a text;"
          " full: 128 real tokens a row, no padding")
    print(f"\n{'model':8} {'batches':9} {'real tok':>9} {'padded':>8} {'transformers tok/s':>19} "
          f"{'glassbert tok/s':>16} {'ratio':>7} {'max|diff|':>10}")
    for name, label, real, padded, hf_tps, ours_tps, ratio, diff in rows:
        print(f"{name:8} {label:9} {real:9d} {padded:8d} {hf_tps:19.0f} {ours_tps:16.0f} {ratio:6.2f}x {diff:10.2e}")
    print(f"\ngeometric mean ratio: {statistics.geometric_mean([r[6] for r in rows]):.2f}x")


if __name__ == "__main__":
    main()
