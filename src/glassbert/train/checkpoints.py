"""The Trainer's checkpoint (weights + optimizer + position + RNG, for an exact resume) and its best
model, both written as complete directories through :mod:`glassbert.runfiles`."""

from __future__ import annotations

import json
import pickle
import shutil
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from ..errors import InputError, MissingError
from ..runfiles import (BEST_DIR, BEST_FILE, CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE, MODEL_FILE, STATE_FILE,
                        atomic_write_json, find_complete, is_complete, read_jsonl, write_dir_atomically,
                        write_jsonl)
from ..textfiles import read_json_object
from .config import TrainConfig, TrainState
from .rng import get_rng_state

STATE_FORMAT = 1
RESUME_KEYS = ("batch_size", "seed", "shuffle")  # what fixes the data position a checkpoint holds


def find_checkpoint(out_dir: str | Path) -> Path | None:
    """The complete checkpoint in ``out_dir``: ``checkpoint/``, else ``checkpoint.old/`` left by a crash."""
    return find_complete(Path(out_dir) / CHECKPOINT_DIR)


def write_checkpoint(target: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: TrainState,
                     config: TrainConfig, **extra: Any) -> Path:
    """``target``/ with model.safetensors and trainer_state.pt (``extra``: schedule, world size, …)."""

    def write(directory: Path) -> None:
        safetensors.torch.save_model(model, str(directory / MODEL_FILE))
        torch.save({"format": STATE_FORMAT, "state": asdict(state), "optimizer": optimizer.state_dict(),
                    "rng": get_rng_state(), "config": config.to_dict(), **extra}, directory / STATE_FILE)

    return write_dir_atomically(target, write)


def checkpoint_step(ckpt: Path) -> int | None:
    """The step of checkpoint dir ``ckpt`` without loading it into a model, or None when a file of it does not
    read whole (:func:`read_checkpoint` then says what is wrong)."""
    try:
        with safetensors.safe_open(str(ckpt / MODEL_FILE), "pt"):  # its header matches its size
            pass
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            step = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True)["state"]["step"]
    except Exception:  # noqa: BLE001 — any damage: the full read names it
        return None
    return step if isinstance(step, int) else None


def read_checkpoint(ckpt: Path | None, model: nn.Module, config: TrainConfig, device: torch.device) -> dict[str, Any]:
    """Load the weights of checkpoint dir ``ckpt`` into ``model``; return its saved state, checked
    against ``config`` (a different batch size, seed or shuffle would not continue the same data)."""
    if ckpt is None or not is_complete(ckpt):
        raise MissingError(f"no complete checkpoint in {ckpt or CHECKPOINT_DIR}")
    damaged = ("is damaged and cannot be resumed from ({}): restore it from a copy, or start the run "
               "again with --overwrite")
    try:
        safetensors.torch.load_model(model, ckpt / MODEL_FILE, strict=True, device=str(device))
    except (safetensors.SafetensorError, OSError) as e:
        raise InputError(f"{ckpt / MODEL_FILE} " + damaged.format(str(e).splitlines()[0][:120])) from None
    except RuntimeError as e:  # the right format, the wrong model (missing/unexpected keys, shapes)
        raise InputError(f"{ckpt / MODEL_FILE} does not fit this model "
                         f"({str(e).splitlines()[0][:200]}): was the run started with other settings?") from None
    try:
        with warnings.catch_warnings():  # a damaged file draws pickle-protocol warnings before the error
            warnings.simplefilter("ignore")
            saved = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, OSError) as e:
        # torch's own message advises weights_only=False: never pass that on for an untrusted file
        raise InputError(f"{ckpt / STATE_FILE} " + damaged.format(f"not a readable torch state file: "
                                                                   f"{type(e).__name__}")) from None
    if not isinstance(saved, dict) or not {"state", "optimizer", "rng", "config"} <= set(saved):
        raise InputError(f"{ckpt / STATE_FILE} " + damaged.format("keys missing"))
    if saved.get("format") != STATE_FORMAT:
        raise InputError(f"{ckpt / STATE_FILE} has format {saved.get('format')}, expected {STATE_FORMAT}")
    for key in RESUME_KEYS:
        if saved["config"][key] != getattr(config, key):
            raise InputError(
                f"cannot resume {ckpt}: it was trained with {key}={saved['config'][key]!r}, "
                f"this config has {key}={getattr(config, key)!r} (the saved data position would not match)"
            )
    return saved


def prepare_run_dir(out_dir: Path, resumed_step: int | None, config_record: dict[str, Any]) -> None:
    """Ready ``out_dir`` for a run: a fresh run drops the files of an earlier one; a resumed run drops the
    metrics rows logged after the checkpoint it continues from. Writes trainer_config.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = out_dir / METRICS_FILE
    if resumed_step is not None:
        write_jsonl(metrics, [r for r in read_jsonl(metrics) if r.get("step", 0) <= resumed_step])
    else:
        for stale in (CHECKPOINT_DIR, f"{CHECKPOINT_DIR}.old", BEST_DIR):
            shutil.rmtree(out_dir / stale, ignore_errors=True)
        metrics.unlink(missing_ok=True)
    atomic_write_json(out_dir / CONFIG_FILE, config_record, indent=2)


def write_best(target: Path, model: nn.Module, metric: str, row: dict[str, Any]) -> Path:
    """``target``/ with the model (its own save_pretrained when it has one) and best.json (the eval row)."""

    def write(directory: Path) -> None:
        if callable(getattr(model, "save_pretrained", None)):
            model.save_pretrained(directory)
        else:
            safetensors.torch.save_model(model, str(directory / MODEL_FILE))
        (directory / BEST_FILE).write_text(json.dumps({"metric": metric, **row}, indent=2))

    return write_dir_atomically(target, write)


def read_best_row(target: Path) -> dict[str, Any] | None:
    """The eval row best.json holds, or None when there is no complete best dir."""
    found = find_complete(target)
    return read_json_object(found / BEST_FILE) if found is not None else None


def load_best_weights(target: Path, model: nn.Module, device: torch.device) -> None:
    """Put the weights of best dir ``target`` back into ``model`` (tied weights are saved once)."""
    found = find_complete(target)
    if found is None:
        raise MissingError(f"no complete best model in {target}")
    safetensors.torch.load_model(model, found / MODEL_FILE, strict=True, device=str(device))


def finish_run(out_dir: str | Path, keep_checkpoint: bool = False) -> list[str]:
    """Prune a finished run whose root now holds its final (best) model: ``checkpoint/`` (the weights again plus
    twice their size in optimizer state) goes unless ``keep_checkpoint``, and ``best/`` with it (the root is the
    best evaluation's weights; an extended run reads them back from ``best/``, so it stays beside a kept
    checkpoint). Call it last, once the root model is written: a kill before then leaves the checkpoint, and a
    resume finishes the run again. Returns the names removed."""
    out_dir = Path(out_dir)
    if keep_checkpoint:
        return []
    removed = []
    for name in (CHECKPOINT_DIR, BEST_DIR):  # the checkpoint first: a run with best/ alone is not resumable anyway
        for path in (out_dir / name, out_dir / f"{name}.old"):
            if path.is_dir():
                shutil.rmtree(path)
                removed.append(path.name)
    return removed


__all__ = ["find_checkpoint", "checkpoint_step", "prepare_run_dir", "write_checkpoint", "read_checkpoint", "write_best", "read_best_row",
           "load_best_weights", "finish_run", "STATE_FORMAT"]
