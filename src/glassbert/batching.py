"""The one length-sorted batcher: embedding and evaluation run their inputs longest first.

Sorting by length means each batch pads little (and a long batch, the memory peak, comes first);
callers put the results back in the caller's order by index. Both :class:`glassbert.embed.Embedder`
and the fine-tuning tasks' evaluation go through here.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from .errors import InputError
from .progress import progress_bar

T = TypeVar("T")


def longest_first(lengths: Sequence[int]) -> list[int]:
    """Indices of ``lengths`` from the longest to the shortest; equal lengths keep their order."""
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


def sorted_batches(lengths: Sequence[int], batch_size: int, *, progress: bool = False, desc: str | None = None,
                   unit: str = "it", leave: bool = True) -> Iterator[list[int]]:
    """Batches of at most ``batch_size`` indices, longest items first (see :func:`longest_first`); a batch
    also ends where the next item is less than half as long as its longest (see :func:`too_short`).

    With ``progress``, a bar (progress.py) counts the items, advanced once the caller is done with a batch.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be ≥ 1, got {batch_size}")
    order = longest_first(lengths)
    with progress_bar(total=len(order), desc=desc, unit=unit, disable=not progress, leave=leave) as bar:
        rows: list[int] = []
        for i in order:
            if rows and (len(rows) == batch_size or too_short(lengths[i], lengths[rows[0]])):
                yield rows
                bar.update(len(rows))
                rows = []
            rows.append(i)
        if rows:
            yield rows
            bar.update(len(rows))


# A batch is padded to its longest item, and attention runs on the padded (B, T) block, so one long text among
# short ones makes every row pay for its length: a few texts of 300 tokens among thirty of 20 spend most of a
# batch's attention on padding. A batch therefore ends, before batch_size, where the next item is shorter than
# half the batch's longest (padding at most doubles each row's attention). Items shorter than SPLIT_FLOOR are
# never split off: there, a forward call's fixed cost weighs more than the padding it would save.
SPLIT_FLOOR = 64


def too_short(length: int, longest: int) -> bool:
    """Whether an item of ``length`` should start a new batch rather than join one whose longest is ``longest``."""
    return longest >= SPLIT_FLOOR and 2 * length < longest


def map_sorted(lengths: Sequence[int], batch_size: int, run: Callable[[list[int]], Sequence[T]],
               **bar: Any) -> list[T]:
    """``run(indices)`` over :func:`sorted_batches` (one result per index, in the indices' order);
    returns the results in the original order. ``bar`` takes sorted_batches' progress options."""
    results: list[Any] = [None] * len(lengths)
    for rows in sorted_batches(lengths, batch_size, **bar):
        outputs = run(rows)
        if len(outputs) != len(rows):
            raise ValueError(f"run() returned {len(outputs)} results for a batch of {len(rows)}")
        for index, output in zip(rows, outputs):
            results[index] = output
    return results


__all__ = ["longest_first", "sorted_batches", "map_sorted"]
