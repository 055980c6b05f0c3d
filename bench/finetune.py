"""Fine-tuning MiniLM on the Amazon fine-food reviews: glassbert against transformers, in one run.

    python bench/finetune.py                                     # 4,000 train / 1,000 test, 2 epochs
    python bench/finetune.py --limit 800 --test-limit 300 --epochs 1   # a quick end-to-end check
    python bench/finetune.py --device cuda
    python bench/finetune.py --precision fp32 bf16 --limit 400 --test-limit 200 --epochs 1 --skip-frozen

(a) glassbert: `glassbert.tasks.job.finetune` on the training CSV (the Trainer, our model).
(b) transformers: BertForSequenceClassification from the same checkpoint, given glassbert's initial
    classifier weights, trained in a plain torch loop on the SAME batches in the same order (our
    tokenization, the Trainer's seeded shuffling and dynamic padding, the Trainer's dropout seeds),
    with the same AdamW (no decay on biases and LayerNorm), linear warmup/decay and clipping.
Both are scored on the test set with the same code: accuracy and macro-F1, next to the majority
baseline (65.8 % on the full test set). Then (c) head-only runs (encoder frozen, lr 1e-3) with the
classifier on the pooler and on the mean of the tokens: MiniLM's pooler was never trained, so
only the second can learn. Training times are the training loops alone (no loading, no saving).
Targets: accuracy within 0.5 points of transformers' (or better), at least 1.3× its speed.

--precision fp32 bf16 (the default) runs (a) and (b) in each: bf16 is the Trainer's bf16 autocast
(`finetune --precision bf16`) and the same autocast around transformers' forward; the saved weights are
fp32 and every model is scored in fp32. It prints bf16's accuracy beside fp32's for both libraries (target:
within 0.5 points), and how often the fp32 model's test labels change when it is run under bf16 autocast.
"""
from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import glassbert as gb  # noqa: E402
from glassbert import data as gdata  # noqa: E402
from glassbert.modeldir import resolve_model_path  # noqa: E402
from glassbert.tasks.classification import (ClassificationData, encode_classification,  # noqa: E402
                                            evaluate_classification, read_classification)
from glassbert.tasks.job import FinetuneArgs, build_task_model, finetune  # noqa: E402
from glassbert.tokenizer import pad_rows  # noqa: E402
from glassbert.train import build_optimizer, derive_seed, lr_factor  # noqa: E402

TEXT, LABEL = "review", "score"


def subset(data: ClassificationData, limit: int | None, seed: int) -> ClassificationData:
    """A seeded random subset of ``limit`` rows (all rows when limit is None), original order kept."""
    if limit is None or limit >= len(data):
        return data
    keep = sorted(random.Random(seed).sample(range(len(data)), limit))
    return ClassificationData([data.texts[i] for i in keep], None, [data.label_ids[i] for i in keep],
                              data.label_names)


def write_rows(data: ClassificationData, path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([TEXT, LABEL])
        writer.writerows([text, data.label_names[y]] for text, y in zip(data.texts, data.label_ids))
    return path


def train_transformers(model_dir: Path, labels: list[str], train_set, args, device: torch.device,
                       precision: str = "fp32"):
    """transformers' BertForSequenceClassification, our initial head, the Trainer's recipe and batches."""
    import transformers

    transformers.logging.set_verbosity_error()
    id2label = dict(enumerate(labels))
    hf = transformers.BertForSequenceClassification.from_pretrained(
        model_dir, id2label=id2label, label2id={v: k for k, v in id2label.items()}, attn_implementation="sdpa")
    ours = build_task_model("classify", model_dir, id2label, "pooler", seed=args.seed)  # finetune's init
    hf.classifier.load_state_dict(ours.classifier.state_dict())
    probe = pad_rows([{k: v for k, v in train_set[i].items() if k != "labels"} for i in range(4)],
                        train_set.pad_id)
    with torch.no_grad():
        gap = (hf.eval()(**probe).logits - ours.eval()(**probe).logits).abs().max().item()
    if gap > 1e-4:
        raise SystemExit(f"transformers and glassbert start from different models (logit gap {gap:.2e})")
    del ours
    hf.to(device).train()

    n, bs = len(train_set), args.batch_size
    steps_per_epoch = n // bs
    total = steps_per_epoch * args.epochs
    warmup = round(0.1 * total)
    optimizer = build_optimizer(hf, args.lr, 0.01, (0.9, 0.999), 1e-8)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    step = 0
    losses: list[float] = []
    torch.manual_seed(args.seed)
    _sync(device)
    started = time.perf_counter()
    for epoch in range(args.epochs):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(args.seed, "epoch", epoch)))
        for b in range(steps_per_epoch):
            batch = pad_rows([train_set[i] for i in order[b * bs:(b + 1) * bs].tolist()], train_set.pad_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            torch.manual_seed(derive_seed(args.seed, "dropout", step))  # the Trainer's dropout seed
            with autocast:
                loss = hf(**batch).loss
            loss.float().backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            for group in optimizer.param_groups:
                group["lr"] = args.lr * lr_factor(step, warmup, total, "linear")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step += 1
            if args.progress and step % 10 == 0:
                print(f"  transformers step {step}/{total} loss {sum(losses[-10:]) / 10:.4f}", flush=True)
    _sync(device)
    return hf, time.perf_counter() - started


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--frozen-lr", type=float, default=1e-3, help="lr of the head-only runs")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--limit", type=int, default=None, help="train on a seeded random subset of N reviews")
    parser.add_argument("--test-limit", type=int, default=None, help="score on a seeded subset of N reviews")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"],
                        help="train the full fine-tunes in each (bf16: autocast; default fp32 bf16)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--skip-frozen", action="store_true", help="leave out the head-only runs")
    parser.add_argument("--progress", action="store_true", help="show training progress")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the runs here (default: a temp dir)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU here")

    model_dir = resolve_model_path("minilm")
    foods = gdata.fetch("fine-foods", ROOT / "data", quiet=True)
    full_train = read_classification(foods / "train.csv", TEXT, LABEL)
    labels = full_train.label_names
    train = subset(full_train, args.limit, args.seed)
    test = subset(read_classification(foods / "test.csv", TEXT, LABEL, labels=labels), args.test_limit,
                  args.seed + 1)
    tok = gb.Tokenizer.from_pretrained(model_dir)
    train_set = encode_classification(train, tok, args.max_length)
    test_set = encode_classification(test, tok, args.max_length)
    majority = max(range(len(labels)), key=lambda k: full_train.label_ids.count(k))
    baseline = sum(y == majority for y in test.label_ids) / len(test)
    real = sum(train_set.lengths)
    print(f"fine-food reviews: {len(train)} train / {len(test)} test, MiniLM ({model_dir}), "
          f"{args.epochs} epoch(s), batch {args.batch_size}, lr {args.lr:g}, max_length {args.max_length}, "
          f"{args.device}, {torch.get_num_threads()} threads; {real / len(train):.0f} tokens per review on average; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        train_csv = write_rows(train, work / "train.csv")
        common = dict(text_column=TEXT, label_column=LABEL, epochs=args.epochs, batch_size=args.batch_size,
                      max_length=args.max_length, seed=args.seed, device=args.device, progress=args.progress,
                      quiet=True, overwrite=True)

        def glassbert_run(name: str, out: str, **kw):
            summary = finetune(FinetuneArgs(model_dir, train_csv, work / out, **common, **kw))
            model = gb.BertForSequenceClassification.from_pretrained(work / out).to(device)
            scores = evaluate_classification(model, test_set, labels, batch_size=64)
            results.append((name, scores.metrics, summary["train_seconds"]))
            print(f"  done: {name}", flush=True)
            return model

        for precision in args.precision:
            model = glassbert_run(f"glassbert, full fine-tune, {precision}", f"glassbert-{precision}", lr=args.lr,
                                  precision=precision)
            if precision == "fp32":
                flips = label_agreement(model, test_set, device)
            del model
            hf, seconds = train_transformers(model_dir, labels, train_set, args, device, precision)
            results.append((f"transformers, full fine-tune, {precision}",
                            evaluate_classification(hf, test_set, labels, 64).metrics, seconds))
            print(f"  done: transformers, full fine-tune, {precision}", flush=True)
            del hf
        if not args.skip_frozen:
            for pooling in ("pooler", "mean"):
                glassbert_run(f"glassbert, head only, {pooling} pooling", f"frozen-{pooling}",
                              lr=args.frozen_lr, freeze="encoder", pooling=pooling)

    print()
    print(f"{'run':<38} {'accuracy':>9} {'macro-F1':>9} {'train s':>9}")
    print(f"{'majority baseline (' + labels[majority] + ')':<38} {baseline:>9.3f}")
    for name, scores, secs in results:
        print(f"{name:<38} {scores['accuracy']:>9.3f} {scores['macro_f1']:>9.3f} {secs:>9.1f}")
    full = {name: (scores, secs) for name, scores, secs in results}
    print()
    for precision in args.precision:
        (ours, our_s), (theirs, their_s) = (full[f"{lib}, full fine-tune, {precision}"]
                                            for lib in ("glassbert", "transformers"))
        gap = 100 * (ours["accuracy"] - theirs["accuracy"])
        ratio = their_s / our_s
        print(f"{precision} accuracy: glassbert {gap:+.1f} points vs transformers (target ≥ -0.5)  "
              f"{'OK' if gap >= -0.5 else 'MISSED'}")
        print(f"{precision} speed:    glassbert {ratio:.2f}× transformers ({our_s:.1f} s vs {their_s:.1f} s; "
              f"target ≥ 1.3×)  {'OK' if ratio >= 1.3 else 'MISSED'}")
    if {"fp32", "bf16"} <= set(args.precision):
        for lib in ("glassbert", "transformers"):
            (low, low_s), (high, high_s) = (full[f"{lib}, full fine-tune, {p}"] for p in ("bf16", "fp32"))
            gap = 100 * (low["accuracy"] - high["accuracy"])
            print(f"{lib}: bf16 accuracy {low['accuracy']:.3f} vs fp32 {high['accuracy']:.3f} ({gap:+.1f} points, "
                  f"target ≥ -0.5: {'OK' if gap >= -0.5 else 'MISSED'}); training {low_s:.1f} s in bf16, {high_s:.1f} s in fp32")
    if "fp32" in args.precision:
        print(f"the fp32 glassbert model run under bf16 autocast: {flips[0]} of {flips[1]} test labels change "
              f"({100 * (1 - flips[0] / flips[1]):.1f} % agree)")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


def label_agreement(model, test_set, device: torch.device) -> tuple[int, int]:
    """(labels that change, labels): the model's test predictions in fp32 against the same model under bf16
    autocast (glassbert.precision, as `glassbert classify --precision bf16` runs it)."""
    from glassbert.precision import autocast
    from glassbert.tasks.classification import class_logits
    fp32 = class_logits(model, test_set, 64).argmax(-1)
    with autocast(device, True):
        bf16 = class_logits(model, test_set, 64).argmax(-1)
    return int((fp32 != bf16).sum()), len(fp32)


if __name__ == "__main__":
    main()
