"""The Trainer: one loop for pretraining and fine-tuning.

For every optimizer step:

    global batch (seeded permutation per epoch) ─▶ this rank's contiguous share
    ─▶ grad_accum micro-batches ─▶ collate(items, generator seeded by (seed, micro-step))
    ─▶ model(**batch).loss ─▶ backward ─▶ clip ─▶ AdamW (warmup + linear decay over the steps or the minutes) ─▶ log / eval / save

Everything that decides a step (data order, collate randomness, dropout) is derived from
(seed, position), and checkpoints hold the position plus optimizer and RNG state, so on the CPU
a run that is killed and resumed follows the same per-step losses as one that never stopped.
Under ``torchrun`` each rank takes its contiguous share of every global batch, so N processes
equal one process with ``grad_accum=N``.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import ExistsError, InputError, NonFiniteLossError
from ..precision import autocast, use_bf16
from ..progress import progress_bar
from ..runfiles import BEST_DIR, CHECKPOINT_DIR, METRICS_FILE, PLOT_FILE, append_jsonl
from .batches import EpochSteps, MicroBatch, count_tokens, identity, to_device
from .checkpoints import (find_checkpoint, load_best_weights, prepare_run_dir, read_best_row, read_checkpoint,
                          write_best, write_checkpoint)
from .config import Evaluation, FitSummary, TrainConfig, TrainState
from .distributed import DistInfo, all_sum, barrier, resolve_device
from .evaluation import BatchMetrics, MetricsFn, as_evaluation, mean_eval_loss
from .logs import LogWindow
from .optim import build_optimizer, lr_factor, time_lr_factor
from .plots import plot_metrics
from .rng import derive_seed, seed_everything, set_rng_state

Collate = Callable[[list, torch.Generator], Mapping[str, Any]]
EvalFn = Callable[[nn.Module], "Mapping[str, float] | Evaluation"]
ROW_KEYS = ("split", "step", "epoch")  # what an eval row adds to the metrics


class Callback:
    """Hooks the Trainer calls on every rank; check ``trainer.is_main`` before writing files."""

    def on_train_begin(self, trainer: Trainer) -> None: ...
    def on_before_optimizer_step(self, trainer: Trainer) -> None: ...
    def on_step_end(self, trainer: Trainer, loss: float) -> None: ...
    def on_log(self, trainer: Trainer, row: dict[str, Any]) -> None: ...
    def on_evaluate(self, trainer: Trainer, row: dict[str, Any]) -> None: ...
    def on_save(self, trainer: Trainer, path: Path) -> None: ...
    def on_train_end(self, trainer: Trainer, summary: FitSummary) -> None: ...


class Trainer:
    """Trains ``model`` (``model(**batch).loss``) on ``train_dataset`` batched by ``collate_fn``.

    ``collate_fn(items, generator)`` builds a dict of tensors; ``metrics_fn(output, batch)``
    returns per-batch floats averaged into the logs; ``eval_fn(model)`` replaces the default
    evaluation (mean loss and metrics over ``eval_dataset``) and returns a mapping of metrics or an
    :class:`Evaluation` (metrics + details). ``last_evaluation`` / ``best_evaluation`` hold the latest
    and (with ``keep_best``) the best one; ``clock`` is the time source of the ``minutes`` stop.
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
            raise InputError("eval_every/keep_best need an eval_dataset or an eval_fn")

        self.model, self.train_dataset, self.collate_fn, self.config = model, train_dataset, collate_fn, config
        self.eval_dataset, self.eval_fn, self.metrics_fn = eval_dataset, eval_fn, metrics_fn
        self.callbacks = list(callbacks)
        self.out_dir = Path(config.out_dir)
        self.clock: Callable[[], float] = time.perf_counter

        info = DistInfo.from_env()
        self.device = resolve_device(config.device, info)
        self._owns_group = False
        if info.world_size > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")
            self._owns_group = True
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world_size = dist.get_world_size() if dist.is_initialized() else 1
        if config.batch_size % (self.world_size * config.grad_accum):
            raise InputError(
                f"batch_size {config.batch_size} (global) must be divisible by "
                f"world_size {self.world_size} × grad_accum {config.grad_accum}"
            )
        self.steps_per_epoch = len(train_dataset) // config.batch_size
        if self.steps_per_epoch == 0:
            raise InputError(f"train_dataset has {len(train_dataset)} items, fewer than one batch of {config.batch_size}")
        limits = [v for v in (config.max_steps, config.epochs and config.epochs * self.steps_per_epoch) if v]
        self.total_steps: int | None = min(limits) if limits else None
        # warmup_ratio: a fraction of the steps (with max_steps/epochs) and of the time budget (with minutes)
        ratio = config.warmup_ratio
        self.warmup_steps = config.warmup_steps if ratio is None else round(ratio * (self.total_steps or 0))
        self.warmup_fraction = ratio if ratio is not None and config.minutes is not None else 0.0

        # precision "auto": bf16 where the hardware has fast bf16 (CUDA; a CPU with AMX or AVX512-BF16): glassbert.precision
        self.bf16 = use_bf16(config.precision, self.device)  # whether the forward passes run under bf16 autocast
        self.model.to(self.device)
        self.optimizer = build_optimizer(
            self.model, config.lr, config.weight_decay, config.betas, config.eps
        )
        self.state = TrainState()
        self.last_evaluation: Evaluation | None = None
        self.best_evaluation: Evaluation | None = None
        self._best_weights: dict[str, torch.Tensor] | None = None
        self._ddp: DistributedDataParallel | None = None
        self._resumed = False
        self._metrics = BatchMetrics(metrics_fn)
        self._early_stop = False
        self._last_eval: dict[str, Any] | None = None
        self._last_train: dict[str, Any] = {}
        self._pbar: Any = None
        self._window: LogWindow | None = None  # the train log's open window (its sums go into checkpoints)
        self._saved_window: dict[str, Any] | None = None  # the window the checkpoint resumed from held
        self._session_clock: tuple[float, float] = (self.clock(), 0.0)  # (clock at this session's start, elapsed then)

    # -- small helpers ---------------------------------------------------------------

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _barrier(self) -> None:
        barrier(self.world_size)

    def _all_sum(self, values: list[float]) -> list[float]:
        return all_sum(values, self.world_size, self.device)

    def _callback(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)

    def _append_row(self, row: dict[str, Any]) -> None:
        append_jsonl(self.out_dir / METRICS_FILE, row)

    # -- checkpoints -----------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Write out_dir/checkpoint/ atomically (rank 0), with barriers around it."""
        target = self.out_dir / CHECKPOINT_DIR
        self._barrier()
        if self.is_main:
            write_checkpoint(
                target, self.model, self.optimizer, self.state, self.config,
                schedule={"kind": self.config.schedule, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                          "minutes": self.config.minutes, "warmup_fraction": self.warmup_fraction},
                world_size=self.world_size, metric_keys=self._metrics.keys,
                log_window=self._window.state(self.clock()) if self._window is not None else None,
            )
            self._callback("on_save", target)
        self._barrier()
        return target

    def resume(self, path: str | Path | None = None) -> int:
        """Restore weights, optimizer, position, RNG and best-metric state; returns the step."""
        ckpt = Path(path) if path is not None else find_checkpoint(self.out_dir)
        saved = read_checkpoint(ckpt, self.model, self.config, self.device)
        fused = [group.get("fused") for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(saved["optimizer"])
        for group, kernel in zip(self.optimizer.param_groups, fused):  # a run saved before AdamW was fused on the
            group["fused"] = kernel                                     # CPU keeps the kernel this one chose
        self.state = TrainState(**saved["state"])
        self._metrics.keys = saved["metric_keys"]
        self._saved_window = saved.get("log_window")  # None in a checkpoint from before: the row starts anew
        patience = self.config.early_stop_patience
        self._early_stop = patience is not None and self.state.bad_evals >= patience
        if self.config.keep_best and self.state.best_step is not None:
            row = read_best_row(self.out_dir / BEST_DIR) or {}
            self.best_evaluation = Evaluation({k: v for k, v in row.items() if k not in (*ROW_KEYS, "metric")})
        set_rng_state(saved["rng"])
        self._resumed = True
        return self.state.step

    def _restore_best(self) -> bool:
        """With keep_best and restore_best: put the best evaluation's weights back into the model."""
        if not (self.config.keep_best and self.config.restore_best) or self.state.best_step is None:
            return False
        if self._best_weights is not None:
            self.model.load_state_dict(self._best_weights)
        else:  # the best was found before a resume: read it back from best/
            self._barrier()
            load_best_weights(self.out_dir / BEST_DIR, self.model, self.device)
        return True

    # -- evaluation ------------------------------------------------------------------

    def evaluate(self) -> dict[str, Any]:
        """Run ``eval_fn`` (rank 0, metrics broadcast) or the mean loss/metrics over ``eval_dataset``; log it."""
        self.model.eval()
        details = None
        try:
            if self.eval_fn is not None:
                result: list[Any] = [None]
                if self.is_main:
                    with torch.no_grad():
                        evaluation = as_evaluation(self.eval_fn(self.model))
                    result[0], details = evaluation.metrics, evaluation.details
                if self.world_size > 1:
                    dist.broadcast_object_list(result, src=0)
                values = result[0]
            else:
                values = self.mean_eval_loss()
        finally:
            self.model.train()
        self.last_evaluation = Evaluation(dict(values), details)
        row = {"split": "eval", "step": self.state.step, "epoch": self._epoch_float(), **values}
        if self.is_main:
            self._append_row(row)
        self._last_eval = row
        self._callback("on_evaluate", row)
        return row

    def mean_eval_loss(self) -> dict[str, float]:
        """The default evaluation: the item-weighted mean loss and ``metrics_fn`` values over ``eval_dataset``
        (each rank its share, all ranks summed), in the model's current mode."""
        if self.eval_dataset is None:
            raise InputError("mean_eval_loss needs an eval_dataset")
        cfg = self.config
        return mean_eval_loss(self.model, self.eval_dataset, self.collate_fn, self._metrics,
                              batch_size=cfg.eval_batch_size or cfg.batch_size, seed=cfg.seed, device=self.device,
                              bf16=self.bf16, rank=self.rank, world_size=self.world_size)

    def _track_best(self, row: dict[str, Any]) -> None:
        name = self.config.keep_best
        if name is None:
            return
        if name not in row:
            raise InputError(f"keep_best metric {name!r} is not among the eval results {sorted(row)}")
        value, best = float(row[name]), self.state.best_value
        better = best is None or (value > best if self.config.best_mode == "max" else value < best)
        if better:
            self.state.best_value, self.state.best_step, self.state.bad_evals = value, self.state.step, 0
            self.best_evaluation = self.last_evaluation
            if self.config.restore_best:
                self._best_weights = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            self._barrier()
            if self.is_main:
                write_best(self.out_dir / BEST_DIR, self.model, name, row)
            self._barrier()
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
                raise ExistsError(
                    f"{self.out_dir} already holds a checkpoint: pass resume=True to continue it, "
                    "overwrite=True to start over, or choose another out_dir"
                )
            self.state = TrainState(elapsed=cfg.setup_seconds)
            seed_everything(cfg.seed)
        self._barrier()
        if self.is_main:
            prepare_run_dir(self.out_dir, self.state.step if self._resumed else None, {
                **cfg.to_dict(), "world_size": self.world_size, "steps_per_epoch": self.steps_per_epoch,
                "total_steps": self.total_steps, "warmup_steps_resolved": self.warmup_steps,
                "warmup_fraction_of_minutes": self.warmup_fraction,
                "device": str(self.device), "precision_resolved": "bf16" if self.bf16 else "fp32",
            })
        self._barrier()
        if self.world_size > 1 and self._ddp is None:
            self._ddp = DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters,
            )
        self._pbar = progress_bar(
            total=self.total_steps, initial=self.state.step, desc="train",
            disable=not (cfg.progress and self.is_main),
        )
        self._callback("on_train_begin")

    @property
    def resumed(self) -> bool:
        """Whether this run continued from a checkpoint (resume(), or fit(resume=True) that found one)."""
        return self._resumed

    def _epoch_float(self) -> float:
        return self.state.epoch + self.state.batch_in_epoch / self.steps_per_epoch

    def stop_reason(self) -> str | None:
        """Why training would stop now (max_steps, epochs, early_stop, minutes), or None when it goes on."""
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

    def _steps(self) -> Iterator[list[MicroBatch]]:
        """This rank's micro-batches for every step from the saved position onwards."""
        while True:
            steps = EpochSteps(self.train_dataset, self.collate_fn, self.config, rank=self.rank,
                               world_size=self.world_size, steps_per_epoch=self.steps_per_epoch,
                               epoch=self.state.epoch, start=self.state.batch_in_epoch, first_step=self.state.step)
            if self.config.num_workers > 0:
                yield from torch.utils.data.DataLoader(
                    steps, batch_size=None, shuffle=False, num_workers=self.config.num_workers, collate_fn=identity
                )
            else:
                yield from (steps[b] for b in range(len(steps)))

    def elapsed_now(self) -> float:
        """Seconds of training so far, summed over resumes (the saved elapsed plus this session's)."""
        started, base_elapsed = self._session_clock
        return base_elapsed + self.clock() - started

    def lr_factor_now(self) -> float:
        """The multiplier of the base lr for the step about to be taken (see :class:`TrainConfig`): by steps
        (warmup, then constant or linear to ``total_steps``) and, with ``minutes``, by the fraction of the
        time budget spent: the lower of the two, so a linear schedule reaches 0 at whichever limit comes first."""
        cfg, step = self.config, self.state.step
        factor = lr_factor(step, self.warmup_steps, self.total_steps, cfg.schedule if self.total_steps else "constant")
        if cfg.minutes is not None:
            fraction = self.elapsed_now() / (cfg.minutes * 60)
            if cfg.schedule == "linear":
                factor = min(factor, time_lr_factor(fraction, self.warmup_fraction))
            elif fraction < self.warmup_fraction:
                factor = min(factor, fraction / self.warmup_fraction)
        return factor

    def _loop(self) -> FitSummary:
        cfg, st = self.config, self.state
        self._session_clock = (self.clock(), st.elapsed)
        last_saved = st.step if self._resumed else -1
        last_eval = st.step if self._resumed else -1
        window = self._window = LogWindow.resumed(self._saved_window if self._resumed else None, self.clock())
        stopped_by: str | None = self.stop_reason()
        if stopped_by is None and self._resumed and self.is_main:  # where the curves continue after a stop
            self._append_row({"split": "resume", "step": st.step, "epoch": self._epoch_float(), "elapsed": st.elapsed})
        if stopped_by is None:
            for micro_batches in self._steps():
                loss = self._train_step(micro_batches, window)
                st.step += 1
                st.batch_in_epoch += 1
                if st.batch_in_epoch == self.steps_per_epoch:
                    st.epoch, st.batch_in_epoch = st.epoch + 1, 0
                st.elapsed = self.elapsed_now()
                if self._pbar is not None:
                    self._pbar.update(1)
                paused = self.clock()  # from here to the next step: callbacks, eval, checkpoint (not throughput)
                self._callback("on_step_end", loss)
                if st.step % cfg.log_every == 0:
                    window.paused += self.clock() - paused
                    window = self._window = self._log(window)
                    paused = window.started
                if cfg.eval_every and st.step % cfg.eval_every == 0:
                    self._track_best(self.evaluate())
                    last_eval = st.step
                if cfg.save_every and st.step % cfg.save_every == 0:
                    self.save_checkpoint()
                    last_saved = st.step
                window.paused += self.clock() - paused
                stopped_by = self.stop_reason()
                if stopped_by is not None:
                    break
        if window.steps:
            window = self._window = self._log(window)  # the final checkpoint holds an empty window
        if (self.eval_dataset is not None or self.eval_fn is not None) and last_eval != st.step:
            self._track_best(self.evaluate())
        st.elapsed = self.elapsed_now()
        if last_saved != st.step:
            self.save_checkpoint()
        if self.is_main:
            plot_metrics(self.out_dir / METRICS_FILE, self.out_dir / PLOT_FILE)
        summary = FitSummary(
            step=st.step, epoch=self._epoch_float(), elapsed=st.elapsed, stopped_by=str(stopped_by),
            train=self._last_train, eval=self._last_eval, best_metric=cfg.keep_best,
            best_value=st.best_value, best_step=st.best_step, restored_best=self._restore_best(),
        )
        self._callback("on_train_end", summary)
        return summary

    def _train_step(self, micro_batches: list[MicroBatch], window: LogWindow) -> float:
        """Forward/backward every micro-batch, clip, step; returns the global-batch mean loss."""
        model = self._ddp or self.model
        model.train()
        accum = len(micro_batches)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        metric_sums: dict[str, float] = {}
        tokens, examples, has_tokens = 0, 0, False
        for a, mb in enumerate(micro_batches):
            batch = to_device(mb.batch, self.device)
            torch.manual_seed(derive_seed(self.config.seed, "dropout", mb.micro_id))
            sync = self._ddp.no_sync() if self._ddp is not None and a < accum - 1 else contextlib.nullcontext()
            with sync:
                with autocast(self.device, self.bf16):
                    output = model(**batch)
                loss = getattr(output, "loss", None)
                if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
                    raise TypeError("model(**batch) must return an object whose .loss is a scalar tensor")
                (loss.float() / accum).backward()
            loss_sum += loss.detach().double()
            for k, v in self._metrics(output, batch).items():
                metric_sums[k] = metric_sums.get(k, 0.0) + v
            n_tokens = count_tokens(batch)
            has_tokens |= n_tokens is not None
            tokens += n_tokens or 0
            examples += mb.size
        keys = self._metrics.keys or []
        totals = self._all_sum([loss_sum.item(), float(accum), float(tokens), float(examples)]
                               + [metric_sums.get(k, 0.0) for k in keys])
        step_loss = totals[0] / totals[1]
        if not math.isfinite(step_loss):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLossError(self.state.step + 1, step_loss, self.state.last_finite_loss)

        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm or math.inf)
        self._callback("on_before_optimizer_step")
        factor = self.lr_factor_now()
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * factor
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.last_finite_loss = step_loss

        window.add(step_loss, float(grad_norm), int(totals[2]) if has_tokens else 0, int(totals[3]),
                   {k: totals[4 + i] / totals[1] for i, k in enumerate(keys)})
        return step_loss

    def _log(self, window: LogWindow) -> LogWindow:
        now = self.clock()
        row = window.row(self.state.step, self._epoch_float(), self.optimizer.param_groups[0]["lr"],
                         self.state.elapsed, now)
        if window.steps < self.config.log_every:  # the run's last row (or the first after resuming an old checkpoint)
            row["partial"] = True
        if self.is_main:
            self._append_row(row)
        if self._pbar is not None:
            postfix = {"loss": f"{row['loss']:.4f}"}
            if "tokens_per_s" in row:
                postfix["tok/s"] = f"{row['tokens_per_s']:.0f}"
            self._pbar.set_postfix(postfix, refresh=False)
        self._last_train = row
        self._callback("on_log", row)
        return LogWindow(started=now)


__all__ = ["Trainer", "Callback"]
