"""What the Trainer is told (TrainConfig), where a run is (TrainState) and what it hands back (Evaluation,
FitSummary)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import InputError
from ..precision import check_precision


@dataclass
class TrainConfig:
    """Everything the Trainer needs to know; ``batch_size`` is the GLOBAL batch (all ranks).

    The 'linear' schedule warms up, then decays to 0 where the run ends: at ``max_steps``/``epochs``, or at
    the deadline ``minutes`` (by the fraction of the time budget spent; warmup_ratio is then a fraction of
    the budget); with both, the lower of the two rates, so it ends at whichever limit comes first.

    With ``keep_best`` (an eval metric), the best evaluation's weights are written to ``best/`` and,
    with ``restore_best`` (default), put back into the model when ``fit`` ends.
    """

    out_dir: str | Path
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 0
    warmup_ratio: float | None = None
    schedule: Literal["linear", "constant"] = "linear"
    max_grad_norm: float | None = 1.0
    max_steps: int | None = None
    epochs: int | None = None
    minutes: float | None = None
    setup_seconds: float = 0.0  # spent preparing a new run before its first step (pretrain's --init-embeddings):
    #                             counted in its elapsed time, so ``minutes`` is the whole run's
    seed: int = 0
    shuffle: bool = True
    log_every: int = 10
    eval_every: int | None = None
    save_every: int | None = None
    eval_batch_size: int | None = None
    keep_best: str | None = None
    keep_best_mode: Literal["auto", "max", "min"] = "auto"
    restore_best: bool = True
    early_stop_patience: int | None = None
    precision: Literal["fp32", "bf16", "auto"] = "auto"  # bf16 autocast; auto: where it is fast (glassbert.precision)
    device: str = "auto"
    num_workers: int = 0
    progress: bool = True
    overwrite: bool = False
    find_unused_parameters: bool = False

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        _require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _require(self.grad_accum >= 1, f"grad_accum must be >= 1, got {self.grad_accum}")
        _require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _require(all(0 <= b < 1 for b in self.betas), f"betas must lie in [0, 1), got {self.betas}")
        _require(self.eps > 0, f"eps must be > 0, got {self.eps}")
        _require(self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.warmup_ratio is not None:
            _require(0 <= self.warmup_ratio < 1, f"warmup_ratio must lie in [0, 1), got {self.warmup_ratio}")
            _require(self.warmup_steps == 0, "give warmup_steps or warmup_ratio, not both")
        _require(self.schedule in ("linear", "constant"), f"schedule must be 'linear' or 'constant', got {self.schedule!r}")
        _require(self.max_grad_norm is None or self.max_grad_norm > 0, f"max_grad_norm must be > 0 or None, got {self.max_grad_norm}")
        _require(
            any(v is not None for v in (self.max_steps, self.epochs, self.minutes)),
            "set at least one stop condition: max_steps, epochs or minutes",
        )
        for name in ("max_steps", "epochs", "log_every", "eval_every", "save_every", "eval_batch_size", "early_stop_patience"):
            value = getattr(self, name)
            _require(value is None or (isinstance(value, int) and value >= 1), f"{name} must be a positive int or None, got {value!r}")
        _require(self.minutes is None or self.minutes > 0, f"minutes must be > 0, got {self.minutes}")
        _require(self.keep_best_mode in ("auto", "max", "min"), f"keep_best_mode must be 'auto', 'max' or 'min', got {self.keep_best_mode!r}")
        _require(self.early_stop_patience is None or self.keep_best is not None,
                 "early_stop_patience needs keep_best (the eval metric to watch)")
        check_precision(self.precision, training=True)
        _require(self.num_workers >= 0, f"num_workers must be >= 0, got {self.num_workers}")

    @property
    def best_mode(self) -> Literal["max", "min"]:
        """'min' for losses and perplexities when keep_best_mode is 'auto', else 'max'."""
        if self.keep_best_mode != "auto":
            return self.keep_best_mode
        name = (self.keep_best or "").lower()
        return "min" if name.endswith("loss") or "perplexity" in name else "max"

    def to_dict(self) -> dict[str, Any]:
        """JSON- and weights_only-safe dict (primitives and lists only)."""
        out = asdict(self)
        out["out_dir"] = str(self.out_dir)
        out["betas"] = list(self.betas)
        return out


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise InputError(message)


@dataclass
class TrainState:
    """Where the run is: the position in the data, the clock, and the best-metric bookkeeping."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # epoch of the NEXT batch
    batch_in_epoch: int = 0  # index of the NEXT batch within that epoch
    elapsed: float = 0.0  # seconds of training, summed over resumes
    best_value: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    last_finite_loss: float | None = None


@dataclass
class Evaluation:
    """What ``eval_fn(model)`` may return instead of a plain mapping of metrics.

    ``metrics`` are logged (and ``keep_best`` reads them); ``details`` is anything the caller wants
    back with them (predictions, a confusion matrix, the text to print), untouched by the Trainer.
    Under torchrun only rank 0 runs ``eval_fn``: the other ranks get the metrics, not the details.
    """

    metrics: dict[str, float]
    details: Any = None


@dataclass
class FitSummary:
    """What ``Trainer.fit`` returns."""

    step: int
    epoch: float
    elapsed: float
    stopped_by: str  # "max_steps" | "epochs" | "minutes" | "early_stop"
    train: dict[str, Any] = field(default_factory=dict)  # last train log row
    eval: dict[str, Any] | None = None  # last eval row
    best_metric: str | None = None
    best_value: float | None = None
    best_step: int | None = None
    restored_best: bool = False  # the model holds the best_step weights (not the last step's)


__all__ = ["TrainConfig", "TrainState", "Evaluation", "FitSummary"]
