"""The one length-sorted batcher: longest first, stable, every index once, results back in order."""
from __future__ import annotations

import pytest

from glassbert.batching import longest_first, map_sorted, sorted_batches


def test_longest_first_is_stable_and_batches_cover_every_index_once() -> None:
    lengths = [3, 7, 3, 1, 7, 5]
    assert longest_first(lengths) == [1, 4, 5, 0, 2, 3]
    batches = list(sorted_batches(lengths, 4))
    assert batches == [[1, 4, 5, 0], [2, 3]]
    assert list(sorted_batches([], 4)) == []
    with pytest.raises(ValueError, match="batch_size must be"):
        list(sorted_batches(lengths, 0))


def test_map_sorted_restores_the_callers_order() -> None:
    texts = ["bb", "a", "dddd", "ccc", "a"]
    seen: list[list[int]] = []

    def run(rows: list[int]) -> list[str]:
        seen.append(rows)
        return [texts[i].upper() for i in rows]

    assert map_sorted([len(t) for t in texts], 2, run) == ["BB", "A", "DDDD", "CCC", "A"]
    assert seen == [[2, 3], [0, 1], [4]]
    with pytest.raises(ValueError, match="returned 1 results for a batch of 2"):
        map_sorted([1, 1], 2, lambda rows: ["x"])
