"""A tiny tied-weight token model, synthetic data and a runner for the Trainer tests.

Run as a script (for kill/resume and torchrun tests):
    python tests/helpers_train.py OUT_DIR --max-steps N [--save-every K] [--sleep S]
        [--resume] [--batch-size B] [--grad-accum A] [--eval-every E]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from glassbert.train import Callback, Trainer, TrainConfig  # noqa: E402

VOCAB, HIDDEN, MAX_LEN = 16, 12, 6


@dataclass
class TinyOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor


class TinyTokenModel(nn.Module):
    """Embedding → LayerNorm → MLP (dropout) → decoder tied to the embedding; predicts (x + 1) % V."""

    def __init__(self, dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, HIDDEN)
        self.norm = nn.LayerNorm(HIDDEN)
        self.dense = nn.Linear(HIDDEN, HIDDEN)
        self.dropout = nn.Dropout(dropout)
        self.decoder = nn.Linear(HIDDEN, VOCAB)
        self.decoder.weight = self.embed.weight  # tied, like BERT's MLM decoder
        nn.init.normal_(self.embed.weight, std=0.1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None) -> TinyOutput:
        h = self.norm(self.embed(input_ids))
        h = h + self.dropout(F.gelu(self.dense(h)))
        logits = self.decoder(h)  # (B, T, V)
        loss = None if labels is None else F.cross_entropy(logits.view(-1, VOCAB), labels.view(-1), ignore_index=-100)
        return TinyOutput(loss, logits)


def make_dataset(n: int = 64, seed: int = 123, fixed_length: int | None = None) -> list[list[int]]:
    """n token sequences of varied length 2..MAX_LEN (or all of ``fixed_length``)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, MAX_LEN + 1, (n,), generator=g)
    if fixed_length is not None:
        lengths.fill_(fixed_length)
    return [torch.randint(0, VOCAB, (int(k),), generator=g).tolist() for k in lengths]


def collate(items: list[list[int]], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Pad, label (x + 1) % V, and corrupt 20 % of the inputs using ``generator`` (dynamic noise)."""
    B = len(items)
    ids = torch.zeros(B, MAX_LEN, dtype=torch.long)
    mask = torch.zeros(B, MAX_LEN, dtype=torch.long)
    for i, seq in enumerate(items):
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
    labels = torch.where(mask.bool(), (ids + 1) % VOCAB, torch.full_like(ids, -100))
    noise = torch.rand(B, MAX_LEN, generator=generator) < 0.2
    ids = torch.where(noise & mask.bool(), torch.randint(0, VOCAB, (B, MAX_LEN), generator=generator), ids)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def collate_clean(items: list[list[int]], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """``collate`` without the random corruption (ignores the generator)."""
    ids = torch.tensor(items)
    mask = torch.ones_like(ids)
    return {"input_ids": ids, "attention_mask": mask, "labels": (ids + 1) % VOCAB}


def accuracy(output: TinyOutput, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    keep = batch["labels"] != -100
    return {"acc": float((output.logits.argmax(-1)[keep] == batch["labels"][keep]).float().mean())}


class Sleep(Callback):
    """Slows every step so a test can kill the process mid-run."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        time.sleep(self.seconds)


def make_trainer(out_dir: str | Path, model_seed: int = 0, sleep: float = 0.0, dropout: float = 0.1,
                 model: nn.Module | None = None, callbacks: tuple = (), eval_dataset: list | None = None,
                 eval_fn=None, data: list | None = None, collate_fn=collate, **overrides) -> Trainer:
    torch.manual_seed(model_seed)
    model = model if model is not None else TinyTokenModel(dropout)
    cfg = dict(out_dir=out_dir, batch_size=8, lr=1e-2, max_steps=20, log_every=1, progress=False, warmup_steps=3)
    cfg.update(overrides)
    data = data if data is not None else make_dataset()
    return Trainer(model, data, collate_fn, TrainConfig(**cfg), metrics_fn=accuracy,
                   eval_dataset=eval_dataset, eval_fn=eval_fn,
                   callbacks=[*callbacks, *([Sleep(sleep)] if sleep else [])])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--save-every", type=int, default=None)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in the tests that compare against this run
    trainer = make_trainer(args.out_dir, sleep=args.sleep, max_steps=args.max_steps, save_every=args.save_every,
                           batch_size=args.batch_size, grad_accum=args.grad_accum, eval_every=args.eval_every,
                           **(dict(eval_dataset=make_dataset(20, seed=9), keep_best="loss") if args.eval_every else {}))
    trainer.fit(resume=args.resume)


if __name__ == "__main__":
    main()
