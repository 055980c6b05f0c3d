"""The ``--record`` grammar: which samples to record, when, and which attributions with them.

    samples=0,1;epochs=0,10,100,last;every=5;steps=0,50;every_steps=100;explain=ig
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from glassbert.errors import InputError

KEYS = "samples, epochs, steps, every, every_steps, explain"
EXPLAIN = ("all", "ig", "none")  # the attributions recorded with each snapshot


@dataclass(frozen=True)
class RecordSpec:
    """Which samples and when. Parsed from ``"samples=0,1;epochs=0,10,100,last;every=5;steps=0,50"``.

    A call to :meth:`Recorder.maybe_record` records when any condition matches: the epoch is in
    ``epochs`` (each epoch once), ``last`` and the caller says this is the last call, the step is in
    ``steps``, the epoch is a multiple of ``every`` (each epoch once), or the step is a multiple of
    ``every_steps``. With no condition at all, every epoch is recorded once.

    ``explain`` (models with a head): ``all`` records integrated gradients and layer conductance of each
    sample with each snapshot (:mod:`glassbert.recording.attribution`), ``ig`` the first only, ``none`` neither.
    """

    samples: tuple[int, ...] | None = None
    epochs: tuple[int, ...] = ()
    last: bool = False
    steps: tuple[int, ...] = ()
    every: int | None = None
    every_steps: int | None = None
    explain: str = "all"

    @classmethod
    def parse(cls, spec: str | None) -> "RecordSpec":
        if spec is None or not spec.strip():
            return cls()
        fields: dict[str, Any] = {}
        for part in re.split(r"[;\s]+", spec.strip()):
            if not part:
                continue
            if "=" not in part:
                raise InputError(f"--record: {part!r} is not key=value (keys: {KEYS})")
            key, value = (s.strip() for s in part.split("=", 1))
            key = key.replace("-", "_")
            if key in fields or (key == "epochs" and "last" in fields):
                raise InputError(f"--record: {key!r} given twice")
            if key in ("samples", "steps", "epochs"):
                items = [v.strip() for v in value.split(",") if v.strip()]
                if not items:
                    raise InputError(f"--record: {key}= needs at least one value")
                numbers = []
                for v in items:
                    if key == "epochs" and v.lower() == "last":
                        fields["last"] = True
                        continue
                    if not re.fullmatch(r"\d+", v):
                        raise InputError(f"--record: {key}= takes non-negative integers"
                                         f"{' or last' if key == 'epochs' else ''}, got {v!r}")
                    numbers.append(int(v))
                fields[key] = tuple(sorted(set(numbers)))
            elif key in ("every", "every_steps"):
                if not re.fullmatch(r"\d+", value) or int(value) < 1:
                    raise InputError(f"--record: {key}= takes a positive integer, got {value!r}")
                fields[key] = int(value)
            elif key == "explain":
                if value not in EXPLAIN:
                    raise InputError(f"--record: explain= takes {', '.join(EXPLAIN)}, got {value!r}")
                fields[key] = value
            else:
                raise InputError(f"--record: unknown key {key!r} (keys: {KEYS})")
        return cls(**fields)

    @property
    def unconditional(self) -> bool:
        return not (self.epochs or self.last or self.steps or self.every or self.every_steps)

    def planned(self) -> int | None:
        """How many snapshots the spec asks for, when that is known up front."""
        if self.every or self.every_steps or self.unconditional:
            return None
        return len(self.epochs) + len(self.steps) + int(self.last)

    def planned_for(self, total_steps: int, steps_per_epoch: int) -> int:
        """How many snapshots the spec takes in a run of ``total_steps`` steps of ``steps_per_epoch`` each
        (an epoch's snapshot falls on its first step; conditions that meet on one step make one snapshot)."""
        spe = max(1, steps_per_epoch)
        last_epoch = total_steps // spe
        epochs = set(self.epochs) | set(range(0, last_epoch + 1, self.every) if self.every else ())
        if self.unconditional:
            epochs = set(range(last_epoch + 1))
        steps = {e * spe for e in epochs if e <= last_epoch} | {s for s in self.steps if s <= total_steps}
        if self.every_steps:
            steps |= set(range(0, total_steps + 1, self.every_steps))
        if self.last:
            steps.add(total_steps)
        return max(1, len(steps))

    def __str__(self) -> str:
        parts = []
        if self.samples is not None:
            parts.append("samples=" + ",".join(map(str, self.samples)))
        epochs = [str(e) for e in self.epochs] + (["last"] if self.last else [])
        if epochs:
            parts.append("epochs=" + ",".join(epochs))
        if self.steps:
            parts.append("steps=" + ",".join(map(str, self.steps)))
        if self.every:
            parts.append(f"every={self.every}")
        if self.every_steps:
            parts.append(f"every_steps={self.every_steps}")
        if self.explain != "all":
            parts.append(f"explain={self.explain}")
        return ";".join(parts)


def parse_record_spec(spec: str | None) -> RecordSpec:
    """Parse the CLI's ``--record`` string, e.g. ``"samples=0,1;epochs=0,10,100,1000,last"``."""
    return RecordSpec.parse(spec)


__all__ = ["RecordSpec", "parse_record_spec"]
