"""A run directory's files, and the one way they are written: atomically.

Every file a run leaves is written to a temp name beside its target and renamed over it, so a reader
(or a resumed run after a kill) sees the old file or the new one, never half of one. Directories
(checkpoints, the best model) are filled in a temp dir, marked complete with a list of their files,
and swapped in; a crash mid-swap leaves ``<name>.old`` complete, which :func:`find_complete` finds.

    RUN/
      config.json, model.safetensors, tokenizer files   the model (a fine-tuned run: the best evaluation's weights)
      metrics.jsonl          one JSON row per log/eval (append; a torn last line is skipped on read): "split"
                             train | eval | resume (where a resumed run went on); a train row averaged over fewer
                             than log_every steps has "partial": true
      metrics.png            the curves (plot_metrics)
      trainer_config.json    the TrainConfig plus what the Trainer resolved (steps, warmup, device)
      checkpoint/            model.safetensors + trainer_state.pt (optimizer, position, RNG, the open log window's
                             sums) + checkpoint.json:
                             what --resume continues from, written while the run trains
      best/                  the best model by the keep_best metric (+ best.json), while the run trains

When a fine-tuning run finishes, its root holds the final model and ``checkpoint/`` and ``best/`` are removed
(train.checkpoints.finish_run), unless ``--keep-checkpoint``: the model is kept once, and a killed run keeps
its checkpoint until then. Pretraining runs keep ``checkpoint/`` (``--resume --minutes`` extends them).
docs/run-directories.md lists each command's files.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable

from .errors import ExistsError, InputError
from .textfiles import read_text

CHECKPOINT_DIR = "checkpoint"
BEST_DIR = "best"
BEST_FILE = "best.json"
MODEL_FILE = "model.safetensors"
STATE_FILE = "trainer_state.pt"
MARKER_FILE = "checkpoint.json"
METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "metrics.png"
CONFIG_FILE = "trainer_config.json"


def _tmp_name(path: Path) -> Path:
    """``.name.tmp-PID<suffix>`` beside ``path``: hidden, per-process, same suffix (savefig picks the format by it)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (/proc), else set and put back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _as_user_file(path: Path) -> None:
    """Give ``path`` the mode a plain new file of the user's gets (0666 less the umask): writers such as
    safetensors' make theirs 0600, which another user of a shared model could not read."""
    os.chmod(path, 0o666 & ~_umask())


def atomic_write_with(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to fill a temp file beside ``path``, then rename it over ``path`` (its folder is
    made if missing, as `--png out/why.png` asks), with the mode the user's umask gives a new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        write(tmp)
        _as_user_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write_with(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = None) -> Path:
    """``obj`` as JSON (non-JSON numbers such as numpy floats through ``float``), newline-terminated."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, default=float) + "\n")


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a .jsonl file ([] when absent); a torn line (a kill mid-write) is skipped.

    The rows are ASCII (json.dumps escapes the rest), so a byte that is not UTF-8 is damage, not a torn
    write: an InputError that names the file and line.
    """
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in read_text(path).splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def append_jsonl(path: str | Path, row: dict[str, Any]) -> None:
    """Append one row as one line (a single write, so a kill tears at most this line)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Replace a .jsonl file with ``rows``, atomically."""
    return atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


# ─── directories ─────────────────────────────────────────────────────────────────────────────


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_complete(directory: str | Path) -> bool:
    """True when ``directory`` has its marker and every file the marker lists."""
    directory = Path(directory)
    marker = directory / MARKER_FILE
    if not marker.is_file():
        return False
    try:
        files = json.loads(marker.read_text(encoding="utf-8"))["files"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        return False
    return all((directory / name).is_file() for name in files)


def find_complete(target: str | Path) -> Path | None:
    """``target`` when complete, else the ``target.old`` a crash mid-swap left, else None."""
    target = Path(target)
    for candidate in (target, target.with_name(f"{target.name}.old")):
        if is_complete(candidate):
            return candidate
    return None


def swap_dir_into_place(tmp: Path, target: Path, old: Path | None = None) -> None:
    """Put the finished dir ``tmp`` at ``target``: rename old → .old, tmp → target, drop .old.

    A crash in between leaves ``target.old`` (complete) for :func:`find_complete`. A target whose name a
    user chose passes its own hidden ``old`` instead, so that no folder of theirs named ``X.old`` is lost.
    """
    old = old or target.with_name(f"{target.name}.old")
    if target.exists():
        if old.exists():
            shutil.rmtree(old)  # target is complete, so .old is stale
        os.replace(target, old)
    os.replace(tmp, target)
    _fsync_path(target.parent)
    if old.exists():
        shutil.rmtree(old)


def write_dir_atomically(target: str | Path, write: Callable[[Path], None]) -> Path:
    """Fill a temp dir beside ``target`` with ``write(tmp)``, mark it complete, fsync, swap it in."""
    target = Path(target)
    for stale in target.parent.glob(f".{target.name}.tmp-*"):  # left by a killed writer
        shutil.rmtree(stale, ignore_errors=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True)
    write(tmp)
    files = sorted(p.name for p in tmp.iterdir() if p.is_file())
    (tmp / MARKER_FILE).write_text(json.dumps({"files": files}))
    for p in tmp.iterdir():
        if p.is_file():
            _as_user_file(p)
        _fsync_path(p)
    _fsync_path(tmp)
    swap_dir_into_place(tmp, target)
    return target


# ─── targets: the one rule for every command that writes ─────────────────────────────────────
#
# An existing non-empty target is refused unless the caller says --overwrite (replace it whole: the old
# contents go before the first new file is written, so a directory never mixes two runs) or --resume
# (continue what is there). Check early, before the work; replace late, once the inputs have been read.

# Files that mark a directory as something glassbert (or transformers) wrote, so that --overwrite may
# replace it. A folder with none of them (a home dir, a source tree, ".") is never emptied.
_OURS = ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json", METRICS_FILE, CONFIG_FILE,
         "pretrain_args.json", "demo.json", "glassbert_task.json", "record", CHECKPOINT_DIR,
         "index.json")  # an index (glassbert.search)


def _is_nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def check_target_dir(path: str | Path, *, overwrite: bool = False, resume: bool = False,
                     option: str = "--out", resume_hint: str | None = None,
                     reads: Iterable[tuple[str, str | Path | None]] = ()) -> Path:
    """Refuse a directory target that holds files, unless ``overwrite`` or ``resume``; returns the path.

    Call it before any work. ``resume_hint`` (e.g. "--resume") is offered in the message when the
    directory holds a checkpoint that could be continued. With ``overwrite``, the directory must look like one glassbert writes (a run,
    a model, a recording, a vocabulary), so a mistyped ``--out .`` never empties a folder of other files.
    ``reads``: (option, path) of what the command reads (its model, corpus, data files); a target that is
    one of them or holds one is refused, since replacing it would delete the input before it is read.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path} is a file: give a directory")
    if not resume:
        _refuse_holding_inputs(path, option, reads)
    if not _is_nonempty_dir(path) or resume:
        return path
    if not overwrite:
        can_resume = resume_hint and (path / CHECKPOINT_DIR).is_dir()
        raise ExistsError(f"{option} {path} already holds files: pass --overwrite to replace it whole, "
                          "or choose another directory" + (f" ({resume_hint} continues it)" if can_resume else ""))
    resolved = path.resolve()
    if resolved == Path.cwd().resolve() or resolved in Path.cwd().resolve().parents or resolved == Path.home():
        raise InputError(f"{option} {path} is the working directory, one of its parents or the home "
                         "directory: --overwrite will not empty it; choose a directory of its own")
    if not any((path / name).exists() for name in _OURS):
        raise InputError(f"{option} {path} holds files glassbert did not write (no model, run or vocabulary "
                         "files): --overwrite will not empty it; choose another directory")
    return path


def _refuse_holding_inputs(path: Path, option: str, reads: Iterable[tuple[str, str | Path | None]]) -> None:
    target = path.resolve()
    for name, source in reads:
        if source is None or not Path(source).exists():  # an alias ("minilm") or a missing file: not in the target
            continue
        src = Path(source).resolve()
        if src == target or target in src.parents:
            raise InputError(f"{option} {path} holds {name} {source}, which this command reads: writing there would "
                             f"replace it; choose another {option}")


RUN_CONFIG_KEYS = ("batch_size", "seed")  # in every trainer_config.json the Trainer writes


def holds_run(directory: str | Path) -> bool:
    """Whether ``directory`` holds a run that ``--resume`` may continue (and so rewrite): a complete checkpoint
    (its marker lists its files, and they are there), or the trainer_config.json the Trainer writes before its
    first step (a run stopped before its first checkpoint, or a finished one). A folder that merely has a
    ``checkpoint/``, ``best/`` or ``metrics.jsonl`` of its own is not one."""
    directory = Path(directory)
    if find_complete(directory / CHECKPOINT_DIR) is not None:
        return True
    try:
        saved = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(saved, dict) and all(key in saved for key in RUN_CONFIG_KEYS)


def replace_dir(path: str | Path) -> Path:
    """Empty ``path`` (checked by :func:`check_target_dir`) and recreate it: rename, then delete."""
    path = Path(path).resolve()
    if _is_nonempty_dir(path):
        trash = path.with_name(f".{path.name}.replaced-{os.getpid()}")
        os.replace(path, trash)
        shutil.rmtree(trash)
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_target_file(path: str | Path, *, overwrite: bool = False, option: str = "--out") -> Path:
    """Refuse an existing file target unless ``overwrite`` (the caller then writes it atomically)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {path} is a directory: give a file name")
    if path.exists() and not overwrite:
        raise ExistsError(f"{option} {path} already exists: pass --overwrite to replace it, or choose another name")
    return path


__all__ = [
    "CHECKPOINT_DIR", "BEST_DIR", "BEST_FILE", "MODEL_FILE", "STATE_FILE", "MARKER_FILE", "METRICS_FILE",
    "PLOT_FILE", "CONFIG_FILE", "atomic_write_with", "atomic_write_bytes", "atomic_write_text",
    "atomic_write_json", "read_jsonl", "append_jsonl", "write_jsonl", "is_complete", "find_complete",
    "swap_dir_into_place", "write_dir_atomically", "check_target_dir", "check_target_file", "replace_dir",
    "holds_run",
]
