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


def test_a_batch_ends_where_the_next_item_is_less_than_half_its_longest() -> None:
    # A 300-token text among short ones does not pad thirty rows to 300.
    lengths = [20, 300, 25, 140, 160, 70, 22, 30]
    # 300 and 160 | 140 and 70 (not less than half of 140) | 30, 25, 22, 20
    assert list(sorted_batches(lengths, 32)) == [[1, 4], [3, 5], [7, 2, 6, 0]]
    # Short items are never split off (below SPLIT_FLOOR the fixed cost of a call outweighs the padding).
    assert list(sorted_batches([60, 5, 1, 30], 32)) == [[0, 3, 1, 2]]
    # The split still honours batch_size, and every index appears once.
    batches = list(sorted_batches([400] * 5 + [100] * 3, 2))
    assert batches == [[0, 1], [2, 3], [4], [5, 6], [7]]
