"""How many CPU threads a job's tensor operations use.

torch starts with one intra-op thread per physical core. That is right for matrix products of any real
size and wrong for the toy model, whose many tiny ops leave the threads waiting for each other; and on a
machine that is busy with other work, waiting threads spin against it (a 2-core machine under load ran
the demo 15× slower with 2 threads than with 1). Measured with ``bench/threads.py`` on a quiet 2-core
machine, a pretraining step with 2 threads against 1: toy 1.03×, tiny 1.85×, mini 1.72×, small 1.86×;
with both cores busy with other work: 0.37×, 0.37×, 0.80×, 0.61×. So:

- ``--threads N`` (or ``threads=N``) wins;
- else ``GLASSBERT_THREADS`` / ``OMP_NUM_THREADS`` in the environment win (a user or launcher chose;
  ``OMP_NUM_THREADS=1`` under torchrun is torchrun's default for every process, not a choice, and is
  passed over);
- else a model narrower than :data:`SMALL_HIDDEN` gets 1 thread;
- else the cores this process may use, shared among the processes of a ``torchrun`` on this machine
  (``LOCAL_WORLD_SIZE``), less the cores other work keeps busy (the 1-minute load average), at least 1.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import BertConfig
from .errors import GlassbertError, InputError
from .modeldir import resolve_model_path

log = logging.getLogger("glassbert")

SMALL_HIDDEN = 64  # hidden sizes below this (the toy's 7) gain nothing from a second thread (bench/threads.py)
ENV_VARS = ("GLASSBERT_THREADS", "OMP_NUM_THREADS")


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str

    def __str__(self) -> str:
        return f"{self.threads} thread{'s' if self.threads != 1 else ''} ({self.reason})"


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. under taskset or a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _busy_cores() -> float:
    """Cores other processes keep busy: the 1-minute load average (0 where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def choose_threads(requested: int | None = None, hidden_size: int | None = None,
                   processes: int | None = None, busy: float | None = None) -> ThreadChoice:
    """The intra-op thread count for a job on a model of ``hidden_size`` (see the module's rules).

    ``busy``: the cores other work keeps busy (default: the 1-minute load average, read now)."""
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise InputError(f"threads must be a whole number >= 1, got {requested!r}")
        return ThreadChoice(requested, "as asked")
    processes = processes or int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    for var in ENV_VARS:
        value = os.environ.get(var)
        if var == "OMP_NUM_THREADS" and processes > 1 and value == "1":
            continue  # torchrun's own default for every process, not a choice: share the cores instead
        if value:
            try:
                n = int(value)
            except ValueError:
                raise InputError(f"{var}={value!r}: give a whole number of threads") from None
            if n < 1:
                raise InputError(f"{var}={value!r}: give a whole number of threads >= 1")
            return ThreadChoice(n, f"from {var}")
    if hidden_size is not None and hidden_size < SMALL_HIDDEN:
        return ThreadChoice(1, f"hidden size {hidden_size} < {SMALL_HIDDEN}: more threads only wait")
    cores = usable_cores()
    share = max(1, cores // max(1, processes))
    free = max(1, int(cores - (_busy_cores() if busy is None else busy) + 0.5))
    threads = max(1, min(share, free))
    why = f"{cores} cores" + (f" / {processes} processes" if processes > 1 else "")
    if threads < share:
        why += f", {cores - free} busy with other work"
    return ThreadChoice(threads, why)


def set_threads(requested: int | None = None, hidden_size: int | None = None,
                processes: int | None = None) -> ThreadChoice:
    """:func:`choose_threads`, applied to torch (intra-op threads); returns the choice."""
    choice = choose_threads(requested, hidden_size, processes)
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)
    return choice


def model_hidden_size(model: str | Path | None) -> int | None:
    """The hidden size in MODEL's config.json (a model directory, an alias, or a run holding one); None
    where there is none to read (the job itself then says what is wrong with MODEL)."""
    if not model:
        return None
    try:
        directory = resolve_model_path(model)
        configs = [directory / "config.json", *sorted(directory.glob("*/config.json"))] if directory.is_dir() else []
        found = next((c for c in configs if c.is_file()), None)
        return BertConfig.load(found).hidden_size if found else None
    except (GlassbertError, OSError):
        return None


def set_threads_for(requested: int | None, model: str | Path | None) -> ThreadChoice:
    """:func:`set_threads` for a job on MODEL (a directory, an alias or a run), chosen before the model is
    loaded: what a library function that loads MODEL by name does first (a pipeline, serve, trace_texts, explain,
    explore), its command passing ``--threads`` on as ``requested``."""
    choice = set_threads(requested, model_hidden_size(model))
    log.info("intra-op threads: %s", choice)
    return choice


__all__ = ["ThreadChoice", "choose_threads", "set_threads", "set_threads_for", "model_hidden_size", "usable_cores",
           "SMALL_HIDDEN"]
