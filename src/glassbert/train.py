"""One Trainer for pretraining and fine-tuning.

The loop, in order, for every optimizer step:

    global batch (seeded permutation per epoch) ─▶ this rank's contiguous share
    ─▶ grad_accum micro-batches ─▶ collate(items, generator seeded by (seed, micro-step))
    ─▶ model(**batch).loss ─▶ backward ─▶ clip ─▶ AdamW (warmup + linear decay) ─▶ log / eval / save

Everything that decides a step (data order, collate randomness, dropout) is derived from
(seed, position), and checkpoints hold the position plus optimizer and RNG state, so on the CPU
a run that is killed and resumed follows the same per-step losses as one that never stopped.
Under ``torchrun`` each rank takes its contiguous share of every global batch, so N processes
equal one process with ``grad_accum=N``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence

import numpy as np
import safetensors.torch
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

CHECKPOINT_DIR = "checkpoint"
BEST_DIR = "best"
MODEL_FILE = "model.safetensors"
STATE_FILE = "trainer_state.pt"
MARKER_FILE = "checkpoint.json"
METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "metrics.png"
CONFIG_FILE = "trainer_config.json"
STATE_FORMAT = 1

Collate = Callable[[list, torch.Generator], Mapping[str, Any]]
MetricsFn = Callable[[Any, Mapping[str, Any]], Mapping[str, float]]
EvalFn = Callable[[nn.Module], Mapping[str, float]]


class NonFiniteLossError(RuntimeError):
    """Training stopped because the loss became NaN or infinite."""

    def __init__(self, step: int, loss: float, last_finite_loss: float | None) -> None:
        self.step, self.loss, self.last_finite_loss = step, loss, last_finite_loss
        last = "none yet" if last_finite_loss is None else f"{last_finite_loss:.6g}"
        super().__init__(
            f"non-finite loss {loss} at step {step} (last finite loss: {last}); "
            "the optimizer step was skipped and no checkpoint was written for it. "
            "Try a lower lr, warmup, gradient clipping, or amp='no'."
        )


# ----------------------------------------------------------------------------- config


@dataclass
class TrainConfig:
    """Everything the Trainer needs to know; ``batch_size`` is the GLOBAL batch (all ranks)."""

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
    seed: int = 0
    shuffle: bool = True
    log_every: int = 10
    eval_every: int | None = None
    save_every: int | None = None
    eval_batch_size: int | None = None
    keep_best: str | None = None
    keep_best_mode: Literal["auto", "max", "min"] = "auto"
    early_stop_patience: int | None = None
    amp: Literal["auto", "bf16", "no"] = "auto"
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
        _require(self.schedule == "constant" or self.max_steps is not None or self.epochs is not None,
                 "schedule='linear' needs max_steps or epochs to know where the decay ends; "
                 "with minutes alone use schedule='constant'")
        _require(self.keep_best_mode in ("auto", "max", "min"), f"keep_best_mode must be 'auto', 'max' or 'min', got {self.keep_best_mode!r}")
        _require(self.early_stop_patience is None or self.keep_best is not None,
                 "early_stop_patience needs keep_best (the eval metric to watch)")
        _require(self.amp in ("auto", "bf16", "no"), f"amp must be 'auto', 'bf16' or 'no', got {self.amp!r}")
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
        raise ValueError(message)


# ----------------------------------------------------------------------------- state


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


class Callback:
    """Hooks the Trainer calls on every rank; check ``trainer.is_main`` before writing files."""

    def on_train_begin(self, trainer: Trainer) -> None: ...
    def on_before_optimizer_step(self, trainer: Trainer) -> None: ...
    def on_step_end(self, trainer: Trainer, loss: float) -> None: ...
    def on_log(self, trainer: Trainer, row: dict[str, Any]) -> None: ...
    def on_evaluate(self, trainer: Trainer, row: dict[str, Any]) -> None: ...
    def on_save(self, trainer: Trainer, path: Path) -> None: ...
    def on_train_end(self, trainer: Trainer, summary: FitSummary) -> None: ...


# ----------------------------------------------------------------------------- pieces


def derive_seed(*parts: int | str) -> int:
    """A well-mixed 63-bit seed from (seed, purpose, counter, ...)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def lr_factor(step: int, warmup_steps: int, total_steps: int | None, schedule: str) -> float:
    """Multiplier of the base lr for 0-based optimizer step ``step``.

    Warmup: (step + 1) / warmup_steps. Then 'constant' stays at 1; 'linear' decays as
    (total - step) / (total - warmup), reaching 0 after the last step.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    assert total_steps is not None
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float], eps: float, fused: bool = False
) -> torch.optim.AdamW:
    """AdamW with decay on matrices only: biases, LayerNorm weights (all 1-D params) get none."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("the model has no trainable parameters (all requires_grad=False)")
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, **({"fused": True} if fused else {}))


def find_checkpoint(out_dir: str | Path) -> Path | None:
    """The complete checkpoint in ``out_dir``: ``checkpoint/``, else ``checkpoint.old/`` left by a crash."""
    out_dir = Path(out_dir)
    for candidate in (out_dir / CHECKPOINT_DIR, out_dir / f"{CHECKPOINT_DIR}.old"):
        if _is_complete(candidate):
            return candidate
    return None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a metrics.jsonl; a torn last line (a kill mid-write) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def plot_metrics(metrics_path: str | Path, png_path: str | Path) -> None:
    """One panel per metric (loss first) over steps, train and eval lines; written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = read_metrics(metrics_path)
    skip = {"split", "step", "epoch", "elapsed"}
    keys = sorted({k for r in rows for k, v in r.items() if k not in skip and isinstance(v, (int, float))})
    keys.sort(key=lambda k: k != "loss")
    if not keys:
        return
    cols = min(3, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig = Figure(figsize=(4.5 * cols, 3.2 * nrows))
    FigureCanvasAgg(fig)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(nrows, cols, i + 1)
        for split, style in (("train", "-"), ("eval", "o-")):
            points = [(r["step"], r[key]) for r in rows if r.get("split") == split and key in r]
            if points:
                ax.plot(*zip(*points), style, label=split, markersize=3)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    png_path = Path(png_path)
    tmp = png_path.with_name(f".{png_path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=90)
    os.replace(tmp, png_path)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_complete(directory: Path) -> bool:
    marker = directory / MARKER_FILE
    if not marker.is_file():
        return False
    try:
        files = json.loads(marker.read_text())["files"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return False
    return all((directory / name).is_file() for name in files)


def _swap_into_place(tmp: Path, target: Path) -> None:
    """Rename old → .old, tmp → target, drop .old; a crash in between leaves .old to load."""
    old = target.with_name(f"{target.name}.old")
    if target.exists():
        if old.exists():
            shutil.rmtree(old)  # target is complete, so .old is stale
        os.replace(target, old)
    os.replace(tmp, target)
    _fsync_path(target.parent)
    if old.exists():
        shutil.rmtree(old)


def write_dir_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Fill a temp dir beside ``target`` with ``write``, mark it complete, fsync, swap it in."""
    for stale in target.parent.glob(f".{target.name}.tmp-*"):  # left by a killed writer
        shutil.rmtree(stale, ignore_errors=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True)
    write(tmp)
    files = sorted(p.name for p in tmp.iterdir() if p.is_file())
    (tmp / MARKER_FILE).write_text(json.dumps({"files": files}))
    for p in tmp.iterdir():
        _fsync_path(p)
    _fsync_path(tmp)
    _swap_into_place(tmp, target)


def _write_json_atomically(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> _Dist:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def _resolve_device(name: str, info: _Dist) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r} but no CUDA GPU is available")
        if device.index is None:
            device = torch.device("cuda", info.local_rank if info.world_size > 1 else torch.cuda.current_device())
        torch.cuda.set_device(device)
    return device


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [version, list(internal), gauss],
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state({
        "bit_generator": "MT19937",
        "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
        "has_gauss": n["has_gauss"],
        "gauss": n["gauss"],
    })
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _count_tokens(batch: Mapping[str, Any]) -> int | None:
    mask = batch.get("attention_mask")
    if isinstance(mask, torch.Tensor):
        return int(mask.sum())
    ids = batch.get("input_ids")
    return ids.numel() if isinstance(ids, torch.Tensor) else None


def _to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _identity(x: Any) -> Any:
    return x


@dataclass(frozen=True)
class _MicroBatch:
    micro_id: int  # global micro-step: seeds collate and dropout
    size: int  # items in it
    batch: Mapping[str, Any]


class _EpochSteps(torch.utils.data.Dataset):
    """Item b = this rank's collated micro-batches for global batch ``start + b`` of one epoch."""

    def __init__(self, trainer: Trainer, epoch: int, start: int, first_step: int) -> None:
        cfg = trainer.config
        n = len(trainer.train_dataset)
        if cfg.shuffle:
            gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "epoch", epoch))
            self.order = torch.randperm(n, generator=gen)
        else:
            self.order = torch.arange(n)
        self.dataset, self.collate_fn = trainer.train_dataset, trainer.collate_fn
        self.seed, self.batch_size, self.accum = cfg.seed, cfg.batch_size, cfg.grad_accum
        self.rank, self.world = trainer.rank, trainer.world_size
        self.start, self.first_step, self.steps = start, first_step, trainer.steps_per_epoch

    def __len__(self) -> int:
        return self.steps - self.start

    def __getitem__(self, b: int) -> list[_MicroBatch]:
        index = self.start + b
        per_rank = self.batch_size // self.world
        micro = per_rank // self.accum
        glob = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        share = glob[self.rank * per_rank : (self.rank + 1) * per_rank]
        out = []
        for a in range(self.accum):
            ids = share[a * micro : (a + 1) * micro].tolist()
            micro_id = (self.first_step + b) * self.world * self.accum + self.rank * self.accum + a
            gen = torch.Generator().manual_seed(derive_seed(self.seed, "collate", micro_id))
            out.append(_MicroBatch(micro_id, len(ids), self.collate_fn([self.dataset[i] for i in ids], gen)))
        return out


@dataclass
class _Window:
    """Sums over the steps since the last train log row."""

    steps: int = 0
    loss: float = 0.0
    grad_norm: float = 0.0
    tokens: int = 0
    examples: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)


# ----------------------------------------------------------------------------- trainer


class Trainer:
    """Trains ``model`` (``model(**batch).loss``) on ``train_dataset`` batched by ``collate_fn``.

    ``collate_fn(items, generator)`` builds a dict of tensors; ``metrics_fn(output, batch)``
    returns per-batch floats averaged into the logs; ``eval_fn(model)`` replaces the default
    evaluation (mean loss and metrics over ``eval_dataset``).
    """

    def __init__(
        self,
        model: nn.Module,
        train_dataset: Sequence[Any],
        collate_fn: Collate,
        config: TrainConfig,
        eval_dataset: Sequence[Any] | None = None,
        eval_fn: EvalFn | None = None,
        metrics_fn: MetricsFn | None = None,
        callbacks: Sequence[Any] = (),
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        for name, ds in (("train_dataset", train_dataset), ("eval_dataset", eval_dataset)):
            if ds is not None and not (hasattr(ds, "__len__") and hasattr(ds, "__getitem__")):
                raise TypeError(f"{name} must support len() and indexing, got {type(ds).__name__}")
        if not callable(collate_fn):
            raise TypeError("collate_fn must be callable: collate_fn(items, generator) -> dict of tensors")
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        has_eval = eval_dataset is not None or eval_fn is not None
        if (config.eval_every or config.keep_best) and not has_eval:
            raise ValueError("eval_every/keep_best need an eval_dataset or an eval_fn")

        self.model, self.train_dataset, self.collate_fn, self.config = model, train_dataset, collate_fn, config
        self.eval_dataset, self.eval_fn, self.metrics_fn = eval_dataset, eval_fn, metrics_fn
        self.callbacks = list(callbacks)
        self.out_dir = Path(config.out_dir)

        info = _Dist.from_env()
        self.device = _resolve_device(config.device, info)
        self._owns_group = False
        if info.world_size > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")
            self._owns_group = True
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world_size = dist.get_world_size() if dist.is_initialized() else 1
        if config.batch_size % (self.world_size * config.grad_accum):
            raise ValueError(
                f"batch_size {config.batch_size} (global) must be divisible by "
                f"world_size {self.world_size} × grad_accum {config.grad_accum}"
            )
        self.steps_per_epoch = len(train_dataset) // config.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"train_dataset has {len(train_dataset)} items, fewer than one batch of {config.batch_size}")
        limits = [v for v in (config.max_steps, config.epochs and config.epochs * self.steps_per_epoch) if v]
        self.total_steps: int | None = min(limits) if limits else None
        if config.warmup_ratio is None:
            self.warmup_steps = config.warmup_steps
        elif self.total_steps is None:
            raise ValueError("warmup_ratio needs max_steps or epochs; use warmup_steps with minutes alone")
        else:
            self.warmup_steps = round(config.warmup_ratio * self.total_steps)

        self.amp_enabled = config.amp == "bf16" or (config.amp == "auto" and self.device.type == "cuda")
        self.model.to(self.device)
        self.optimizer = build_optimizer(
            self.model, config.lr, config.weight_decay, config.betas, config.eps, fused=self.device.type == "cuda"
        )
        self.state = TrainState()
        self._ddp: DistributedDataParallel | None = None
        self._resumed = False
        self._metric_keys: list[str] | None = None
        self._early_stop = False
        self._last_eval: dict[str, Any] | None = None
        self._last_train: dict[str, Any] = {}
        self._pbar: Any = None

    # -- small helpers ---------------------------------------------------------------

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def _all_sum(self, values: list[float]) -> list[float]:
        if self.world_size == 1:
            return values
        comm = self.device if self.device.type == "cuda" else torch.device("cpu")
        t = torch.tensor(values, dtype=torch.float64, device=comm)
        dist.all_reduce(t)
        return t.tolist()

    def _callback(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp_enabled)

    def _metrics(self, output: Any, batch: Mapping[str, Any]) -> dict[str, float]:
        if self.metrics_fn is None:
            return {}
        with torch.no_grad():
            values = {k: float(v) for k, v in self.metrics_fn(output, batch).items()}
        keys = sorted(values)
        if self._metric_keys is None:
            self._metric_keys = keys
        elif keys != self._metric_keys:
            raise ValueError(f"metrics_fn returned keys {keys}, earlier {self._metric_keys}; they must not change")
        return values

    def _append_row(self, row: dict[str, Any]) -> None:
        with open(self.out_dir / METRICS_FILE, "a") as f:
            f.write(json.dumps(row) + "\n")

    # -- checkpoints -----------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Write out_dir/checkpoint/ atomically (rank 0), with barriers around it."""
        target = self.out_dir / CHECKPOINT_DIR
        self._barrier()
        if self.is_main:
            write_dir_atomically(target, self._write_checkpoint)
            self._callback("on_save", target)
        self._barrier()
        return target

    def _write_checkpoint(self, directory: Path) -> None:
        safetensors.torch.save_model(self.model, str(directory / MODEL_FILE))
        torch.save(
            {
                "format": STATE_FORMAT,
                "state": asdict(self.state),
                "optimizer": self.optimizer.state_dict(),
                "schedule": {"kind": self.config.schedule, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps},
                "rng": _rng_state(),
                "config": self.config.to_dict(),
                "world_size": self.world_size,
                "metric_keys": self._metric_keys,
            },
            directory / STATE_FILE,
        )

    def _save_best(self, row: dict[str, Any]) -> None:
        def write(directory: Path) -> None:
            if callable(getattr(self.model, "save_pretrained", None)):
                self.model.save_pretrained(directory)
            else:
                safetensors.torch.save_model(self.model, str(directory / MODEL_FILE))
            (directory / "best.json").write_text(json.dumps({"metric": self.config.keep_best, **row}, indent=2))

        self._barrier()
        if self.is_main:
            write_dir_atomically(self.out_dir / BEST_DIR, write)
        self._barrier()

    def resume(self, path: str | Path | None = None) -> int:
        """Restore weights, optimizer, position, RNG and best-metric state; returns the step."""
        ckpt = Path(path) if path is not None else find_checkpoint(self.out_dir)
        if ckpt is None or not _is_complete(ckpt):
            raise FileNotFoundError(f"no complete checkpoint in {path or self.out_dir / CHECKPOINT_DIR}")
        safetensors.torch.load_model(self.model, ckpt / MODEL_FILE, strict=True, device=str(self.device))
        saved = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True)
        if saved.get("format") != STATE_FORMAT:
            raise ValueError(f"{ckpt / STATE_FILE} has format {saved.get('format')}, expected {STATE_FORMAT}")
        for key in ("batch_size", "seed", "shuffle"):
            if saved["config"][key] != getattr(self.config, key):
                raise ValueError(
                    f"cannot resume {ckpt}: it was trained with {key}={saved['config'][key]!r}, "
                    f"this config has {key}={getattr(self.config, key)!r} (the saved data position would not match)"
                )
        self.optimizer.load_state_dict(saved["optimizer"])
        self.state = TrainState(**saved["state"])
        self._metric_keys = saved["metric_keys"]
        patience = self.config.early_stop_patience
        self._early_stop = patience is not None and self.state.bad_evals >= patience
        _set_rng_state(saved["rng"])
        self._resumed = True
        return self.state.step

    # -- evaluation ------------------------------------------------------------------

    def evaluate(self) -> dict[str, Any]:
        """Run ``eval_fn`` (rank 0, broadcast) or the mean loss/metrics over ``eval_dataset``; log it."""
        self.model.eval()
        try:
            if self.eval_fn is not None:
                result = [None]
                if self.is_main:
                    with torch.no_grad():
                        result[0] = {k: float(v) for k, v in self.eval_fn(self.model).items()}
                if self.world_size > 1:
                    dist.broadcast_object_list(result, src=0)
                values = result[0]
            else:
                values = self._eval_dataset_loss()
        finally:
            self.model.train()
        row = {"split": "eval", "step": self.state.step, "epoch": self._epoch_float(), **values}
        if self.is_main:
            self._append_row(row)
        self._last_eval = row
        self._callback("on_evaluate", row)
        return row

    @torch.no_grad()
    def _eval_dataset_loss(self) -> dict[str, float]:
        assert self.eval_dataset is not None
        n = len(self.eval_dataset)
        bs = self.config.eval_batch_size or self.config.batch_size
        lo, hi = n * self.rank // self.world_size, n * (self.rank + 1) // self.world_size
        keys = None
        sums = [0.0, 0.0]  # loss × items, items
        metric_sums: dict[str, float] = {}
        for start in range(lo, hi, bs):
            ids = range(start, min(start + bs, hi))
            gen = torch.Generator().manual_seed(derive_seed(self.config.seed, "eval", start))
            batch = _to_device(self.collate_fn([self.eval_dataset[i] for i in ids], gen), self.device)
            with self._autocast():
                out = self.model(**batch)
            sums[0] += float(out.loss) * len(ids)
            sums[1] += len(ids)
            for k, v in self._metrics(out, batch).items():
                metric_sums[k] = metric_sums.get(k, 0.0) + v * len(ids)
        keys = self._metric_keys or []
        totals = self._all_sum(sums + [metric_sums.get(k, 0.0) for k in keys])
        if totals[1] == 0:
            raise ValueError("eval_dataset is empty")
        return {"loss": totals[0] / totals[1], **{k: totals[2 + i] / totals[1] for i, k in enumerate(keys)}}

    def _track_best(self, row: dict[str, Any]) -> None:
        name = self.config.keep_best
        if name is None:
            return
        if name not in row:
            raise KeyError(f"keep_best metric {name!r} is not among the eval results {sorted(row)}")
        value, best = float(row[name]), self.state.best_value
        better = best is None or (value > best if self.config.best_mode == "max" else value < best)
        if better:
            self.state.best_value, self.state.best_step, self.state.bad_evals = value, self.state.step, 0
            self._save_best(row)
        else:
            self.state.bad_evals += 1
            patience = self.config.early_stop_patience
            self._early_stop = patience is not None and self.state.bad_evals >= patience

    # -- the loop --------------------------------------------------------------------

    def fit(self, resume: bool = False) -> FitSummary:
        """Train until a stop condition; ``resume=True`` continues from out_dir's checkpoint if any."""
        try:
            self._start(resume)
            return self._loop()
        finally:
            if self._pbar is not None:
                self._pbar.close()
                self._pbar = None
            if self._owns_group and dist.is_initialized():
                dist.destroy_process_group()
                self._owns_group = False

    train = fit

    def _start(self, resume: bool) -> None:
        cfg = self.config
        if not self._resumed and resume and find_checkpoint(self.out_dir) is not None:
            self.resume()
        if not self._resumed:
            if find_checkpoint(self.out_dir) is not None and not cfg.overwrite and not resume:
                raise FileExistsError(
                    f"{self.out_dir} already holds a checkpoint: pass resume=True to continue it, "
                    "overwrite=True to start over, or choose another out_dir"
                )
            self.state = TrainState()
            torch.manual_seed(cfg.seed)
            random.seed(cfg.seed)
            np.random.seed(cfg.seed % 2**32)
        self._barrier()
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            metrics = self.out_dir / METRICS_FILE
            if self._resumed:  # drop rows logged after the checkpoint we continue from
                kept = [r for r in read_metrics(metrics) if r.get("step", 0) <= self.state.step]
                tmp = metrics.with_name(f".{METRICS_FILE}.tmp-{os.getpid()}")
                tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
                os.replace(tmp, metrics)
            else:
                for stale in (CHECKPOINT_DIR, f"{CHECKPOINT_DIR}.old", BEST_DIR):
                    shutil.rmtree(self.out_dir / stale, ignore_errors=True)
                metrics.unlink(missing_ok=True)
            _write_json_atomically(self.out_dir / CONFIG_FILE, {
                **cfg.to_dict(), "world_size": self.world_size, "steps_per_epoch": self.steps_per_epoch,
                "total_steps": self.total_steps, "warmup_steps_resolved": self.warmup_steps,
                "device": str(self.device), "amp_enabled": self.amp_enabled,
            })
        self._barrier()
        if self.world_size > 1 and self._ddp is None:
            self._ddp = DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters,
            )
        self._pbar = tqdm(
            total=self.total_steps, initial=self.state.step, desc="train", dynamic_ncols=True,
            disable=not (cfg.progress and self.is_main),
        )
        self._callback("on_train_begin")

    def _epoch_float(self) -> float:
        return self.state.epoch + self.state.batch_in_epoch / self.steps_per_epoch

    def _stop_reason(self) -> str | None:
        cfg, st = self.config, self.state
        if cfg.max_steps is not None and st.step >= cfg.max_steps:
            return "max_steps"
        if cfg.epochs is not None and st.epoch >= cfg.epochs:
            return "epochs"
        if self._early_stop:
            return "early_stop"
        if cfg.minutes is not None:
            out_of_time = st.elapsed >= cfg.minutes * 60
            if self._all_sum([float(out_of_time)])[0] > 0:  # every rank stops together
                return "minutes"
        return None

    def _steps(self) -> Iterator[list[_MicroBatch]]:
        """This rank's micro-batches for every step from the saved position onwards."""
        while True:
            steps = _EpochSteps(self, self.state.epoch, self.state.batch_in_epoch, self.state.step)
            if self.config.num_workers > 0:
                yield from torch.utils.data.DataLoader(
                    steps, batch_size=None, shuffle=False, num_workers=self.config.num_workers, collate_fn=_identity
                )
            else:
                yield from (steps[b] for b in range(len(steps)))

    def _loop(self) -> FitSummary:
        cfg, st = self.config, self.state
        clock, base_elapsed = time.perf_counter(), st.elapsed
        last_saved = st.step if self._resumed else -1
        last_eval = st.step if self._resumed else -1
        window = _Window()
        stopped_by: str | None = self._stop_reason()
        if stopped_by is None:
            for micro_batches in self._steps():
                loss = self._train_step(micro_batches, window)
                st.step += 1
                st.batch_in_epoch += 1
                if st.batch_in_epoch == self.steps_per_epoch:
                    st.epoch, st.batch_in_epoch = st.epoch + 1, 0
                st.elapsed = base_elapsed + time.perf_counter() - clock
                if self._pbar is not None:
                    self._pbar.update(1)
                self._callback("on_step_end", loss)
                if st.step % cfg.log_every == 0:
                    window = self._log(window)
                if cfg.eval_every and st.step % cfg.eval_every == 0:
                    self._track_best(self.evaluate())
                    last_eval = st.step
                if cfg.save_every and st.step % cfg.save_every == 0:
                    self.save_checkpoint()
                    last_saved = st.step
                stopped_by = self._stop_reason()
                if stopped_by is not None:
                    break
        if window.steps:
            self._log(window)
        if (self.eval_dataset is not None or self.eval_fn is not None) and last_eval != st.step:
            self._track_best(self.evaluate())
        st.elapsed = base_elapsed + time.perf_counter() - clock
        if last_saved != st.step:
            self.save_checkpoint()
        if self.is_main:
            plot_metrics(self.out_dir / METRICS_FILE, self.out_dir / PLOT_FILE)
        summary = FitSummary(
            step=st.step, epoch=self._epoch_float(), elapsed=st.elapsed, stopped_by=str(stopped_by),
            train=self._last_train, eval=self._last_eval, best_metric=cfg.keep_best,
            best_value=st.best_value, best_step=st.best_step,
        )
        self._callback("on_train_end", summary)
        return summary

    def _train_step(self, micro_batches: list[_MicroBatch], window: _Window) -> float:
        """Forward/backward every micro-batch, clip, step; returns the global-batch mean loss."""
        model = self._ddp or self.model
        model.train()
        accum = len(micro_batches)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        metric_sums: dict[str, float] = {}
        tokens, examples, has_tokens = 0, 0, False
        for a, mb in enumerate(micro_batches):
            batch = _to_device(mb.batch, self.device)
            torch.manual_seed(derive_seed(self.config.seed, "dropout", mb.micro_id))
            sync = self._ddp.no_sync() if self._ddp is not None and a < accum - 1 else contextlib.nullcontext()
            with sync:
                with self._autocast():
                    output = model(**batch)
                loss = getattr(output, "loss", None)
                if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
                    raise TypeError("model(**batch) must return an object whose .loss is a scalar tensor")
                (loss.float() / accum).backward()
            loss_sum += loss.detach().double()
            for k, v in self._metrics(output, batch).items():
                metric_sums[k] = metric_sums.get(k, 0.0) + v
            n_tokens = _count_tokens(batch)
            has_tokens |= n_tokens is not None
            tokens += n_tokens or 0
            examples += mb.size
        keys = self._metric_keys or []
        totals = self._all_sum([loss_sum.item(), float(accum), float(tokens), float(examples)]
                               + [metric_sums.get(k, 0.0) for k in keys])
        step_loss = totals[0] / totals[1]
        if not math.isfinite(step_loss):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLossError(self.state.step + 1, step_loss, self.state.last_finite_loss)

        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm or math.inf)
        self._callback("on_before_optimizer_step")
        factor = lr_factor(self.state.step, self.warmup_steps, self.total_steps, self.config.schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * factor
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.last_finite_loss = step_loss

        window.steps += 1
        window.loss += step_loss
        window.grad_norm += float(grad_norm)
        window.tokens += int(totals[2]) if has_tokens else 0
        window.examples += int(totals[3])
        for i, k in enumerate(keys):
            window.metrics[k] = window.metrics.get(k, 0.0) + totals[4 + i] / totals[1]
        return step_loss

    def _log(self, window: _Window) -> _Window:
        seconds = max(time.perf_counter() - window.started, 1e-9)
        row: dict[str, Any] = {
            "split": "train",
            "step": self.state.step,
            "epoch": self._epoch_float(),
            "loss": window.loss / window.steps,
            "lr": self.optimizer.param_groups[0]["lr"],
            "grad_norm": window.grad_norm / window.steps,
            "examples_per_s": window.examples / seconds,
            "elapsed": self.state.elapsed,
            **{k: v / window.steps for k, v in window.metrics.items()},
        }
        if window.tokens:
            row["tokens_per_s"] = window.tokens / seconds
        if self.is_main:
            self._append_row(row)
        if self._pbar is not None:
            postfix = {"loss": f"{row['loss']:.4f}"}
            if "tokens_per_s" in row:
                postfix["tok/s"] = f"{row['tokens_per_s']:.0f}"
            self._pbar.set_postfix(postfix, refresh=False)
        self._last_train = row
        self._callback("on_log", row)
        return _Window()
