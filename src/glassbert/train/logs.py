"""The train log row: sums over the steps since the last row, then their means and throughput."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


SUMS = ("steps", "loss", "grad_norm", "tokens", "examples", "metrics")  # what a checkpoint keeps of a window


@dataclass
class LogWindow:
    """Sums over the steps since the last train log row (``started``: the clock when it opened; ``paused``: the
    seconds since then spent outside training steps: evaluations, checkpoints, recordings; ``carried``: seconds
    of training in it before a resume).

    A checkpoint holds the sums (:meth:`state`), so that a resumed run's next row averages the same steps as
    the run that never stopped (:meth:`resumed`)."""

    started: float
    paused: float = 0.0
    steps: int = 0
    loss: float = 0.0
    grad_norm: float = 0.0
    tokens: int = 0
    examples: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    carried: float = 0.0

    def state(self, now: float) -> dict[str, Any]:
        """The sums (and the seconds of training so far) as plain numbers, for the checkpoint."""
        return {**{k: getattr(self, k) for k in SUMS}, "metrics": dict(self.metrics),
                "seconds": self.carried + max(now - self.started - self.paused, 0.0)}

    @classmethod
    def resumed(cls, saved: dict[str, Any] | None, now: float) -> LogWindow:
        """The window a checkpoint's :meth:`state` describes, reopened at ``now`` (empty without one: a
        checkpoint from before windows were saved)."""
        if not saved:
            return cls(started=now)
        return cls(started=now, carried=float(saved.get("seconds", 0.0)),
                   **{k: (dict(saved[k]) if k == "metrics" else saved[k]) for k in SUMS})

    def add(self, loss: float, grad_norm: float, tokens: int, examples: int, metrics: dict[str, float]) -> None:
        """One optimizer step: its global mean loss and metrics, its grad norm, tokens and examples."""
        self.steps += 1
        self.loss += loss
        self.grad_norm += grad_norm
        self.tokens += tokens
        self.examples += examples
        for k, v in metrics.items():
            self.metrics[k] = self.metrics.get(k, 0.0) + v

    def row(self, step: int, epoch: float, lr: float, elapsed: float, now: float) -> dict[str, Any]:
        """The metrics.jsonl row: means over the window's steps, examples (and tokens) per second of training."""
        seconds = max(self.carried + now - self.started - self.paused, 1e-9)
        row: dict[str, Any] = {
            "split": "train",
            "step": step,
            "epoch": epoch,
            "loss": self.loss / self.steps,
            "lr": lr,
            "grad_norm": self.grad_norm / self.steps,
            "examples_per_s": self.examples / seconds,
            "elapsed": elapsed,
            **{k: v / self.steps for k, v in self.metrics.items()},
        }
        if self.tokens:
            row["tokens_per_s"] = self.tokens / seconds
        return row


__all__ = ["LogWindow"]
