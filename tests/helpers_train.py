"""A tiny tied-weight token model, synthetic data and a runner for the Trainer tests.

Run as a script (for kill/resume and torchrun tests):
    python tests/helpers_train.py OUT_DIR --max-steps N [--save-every K] [--block-at K]
        [--resume] [--batch-size B] [--grad-accum A] [--eval-every E] [--log-every L]
    python tests/helpers_train.py cli --block-at K -- ARGS...   # `glassbert ARGS...`, blocked at step K

With ``--block-at K`` the run prints ``BLOCKED <step>`` once a checkpoint of step >= K is written and
then waits forever (for a file nobody creates), so a test can kill it at that point: it cannot finish
first, whatever the machine's speed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
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


BLOCKED = "BLOCKED"


def block_forever() -> None:
    """Wait on an event nobody sets (the test kills this process)."""
    threading.Event().wait()


class BlockAfterCheckpoint(Callback):
    """Once a checkpoint of step >= ``step`` is on disk: print ``BLOCKED <step>`` and wait to be killed."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, trainer: Trainer, path: Path) -> None:
        if trainer.state.step >= self.step:
            print(f"{BLOCKED} {trainer.state.step}", flush=True)
            block_forever()


class FakeClock(Callback):
    """A clock for ``trainer.clock`` that advances ``tick`` seconds per optimizer step, not with real time."""

    def __init__(self, tick: float) -> None:
        self.tick, self.now = tick, 0.0

    def __call__(self) -> float:
        return self.now

    def on_before_optimizer_step(self, trainer: Trainer) -> None:
        self.now += self.tick


def start_blocking(args: list[str], env: dict | None = None) -> tuple[subprocess.Popen, int]:
    """Start ``python tests/helpers_train.py ARGS`` (which must include --block-at) and wait until it
    prints BLOCKED; returns the process (still running, blocked) and the step it blocked at."""
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *args],
                            stdout=subprocess.PIPE, stderr=log, env=env, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(BLOCKED):
            return proc, int(line.split()[1])
    proc.wait()
    log.seek(0)
    raise AssertionError(f"the child ended (exit {proc.returncode}) before blocking:\n"
                         + log.read().decode(errors="replace")[-3000:])


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL: no handler runs, no file is closed cleanly."""
    proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def make_trainer(out_dir: str | Path, model_seed: int = 0, dropout: float = 0.1,
                 model: nn.Module | None = None, callbacks: tuple = (), eval_dataset: list | None = None,
                 eval_fn=None, data: list | None = None, collate_fn=collate, **overrides) -> Trainer:
    torch.manual_seed(model_seed)
    model = model if model is not None else TinyTokenModel(dropout)
    # fp32 unless a test asks: `auto` is bf16 on a CPU with fast bf16, and these tests compare numbers exactly
    cfg = dict(out_dir=out_dir, batch_size=8, lr=1e-2, max_steps=20, log_every=1, progress=False, warmup_steps=3,
               precision="fp32")
    cfg.update(overrides)
    data = data if data is not None else make_dataset()
    return Trainer(model, data, collate_fn, TrainConfig(**cfg), metrics_fn=accuracy,
                   eval_dataset=eval_dataset, eval_fn=eval_fn,
                   callbacks=list(callbacks))


def run_cli_blocking(argv: list[str]) -> None:
    """``glassbert ARGV`` in this process, every Trainer blocked after its checkpoint of step >= K."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--block-at", type=int, required=True)
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    from glassbert.cli import main as cli

    real_init = Trainer.__init__

    def init(self, *a, **kw) -> None:
        real_init(self, *a, **kw)
        self.callbacks.append(BlockAfterCheckpoint(args.block_at))

    Trainer.__init__ = init
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    cli.main(rest, prog_name="glassbert")


def main() -> None:
    if sys.argv[1:2] == ["cli"]:
        return run_cli_blocking(sys.argv[2:])
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--save-every", type=int, default=None)
    parser.add_argument("--block-at", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=None)
    parser.add_argument("--log-every", type=int, default=1)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in the tests that compare against this run
    blocks = (BlockAfterCheckpoint(args.block_at),) if args.block_at else ()
    trainer = make_trainer(args.out_dir, callbacks=blocks, max_steps=args.max_steps, save_every=args.save_every,
                           batch_size=args.batch_size, grad_accum=args.grad_accum, eval_every=args.eval_every,
                           log_every=args.log_every,
                           **(dict(eval_dataset=make_dataset(20, seed=9), keep_best="loss") if args.eval_every else {}))
    trainer.fit(resume=args.resume)


if __name__ == "__main__":
    main()
