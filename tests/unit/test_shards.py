"""Shard planning: the hex prefixes partition every possible ``sub``."""

from __future__ import annotations

import uuid

import pytest

from pipeline.cognito.shards import (
    MAX_GROUP_SLICES,
    SINGLE_SHARD_BELOW,
    SIXTEEN_SHARDS_BELOW,
    expected_memberships,
    plan_group_slices,
    plan_shards,
    sub_filter,
)
from pipeline.core.errors import InvalidRequest


@pytest.mark.parametrize(
    ("users", "count"),
    [
        (0, 1),
        (SINGLE_SHARD_BELOW - 1, 1),
        (SINGLE_SHARD_BELOW, 16),
        (5_000, 16),
        (SIXTEEN_SHARDS_BELOW - 1, 16),
        (SIXTEEN_SHARDS_BELOW, 256),
        (40_000_000, 256),
    ],
)
def test_shard_count_grows_with_the_pool(users: int, count: int) -> None:
    shards = plan_shards(users)
    assert len(shards) == count
    assert len(set(shards)) == count


def test_single_shard_has_no_filter() -> None:
    assert plan_shards(10) == [""]
    assert sub_filter("") is None


@pytest.mark.parametrize("users", [5_000, 1_000_000])
def test_every_sub_matches_exactly_one_shard(users: int) -> None:
    shards = plan_shards(users)
    for _ in range(5_000):
        sub = str(uuid.uuid4())
        assert sum(sub.startswith(p) for p in shards) == 1
    # Including the extremes of the key space.
    for sub in ("00000000-0000-4000-8000-000000000000", "ffffffff-ffff-4fff-bfff-ffffffffffff"):
        assert sum(sub.startswith(p) for p in shards) == 1


def test_filter_strings() -> None:
    assert sub_filter("0") == 'sub ^= "0"'
    assert sub_filter("0a") == 'sub ^= "0a"'
    assert sub_filter("ff") == 'sub ^= "ff"'


@pytest.mark.parametrize("bad", ["A", "0A", "g", "abc", '0"', " 0", "-"])
def test_invalid_prefixes_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        sub_filter(bad)


@pytest.mark.parametrize("groups", [0, 1, 5, 16, 17, 100, 10_000])
def test_group_slices_cover_every_group_once_in_order(groups: int) -> None:
    slices = plan_group_slices(groups)
    assert len(slices) == min(groups, MAX_GROUP_SLICES)
    assert [s["slice"] for s in slices] == list(range(len(slices)))
    covered = [i for s in slices for i in range(s["first"], s["end"])]
    assert covered == list(range(groups))
    sizes = [s["end"] - s["first"] for s in slices]
    assert not sizes or (max(sizes) - min(sizes) <= 1 and min(sizes) >= 1)


def test_expected_memberships_start_the_longest_chain_first() -> None:
    # Group 13 of 16 (one group per slice) held most members last time: its chain starts first.
    expected = {i: 100 for i in range(16)} | {13: 290_000, 2: 50_000}
    slices = plan_group_slices(16, expected=expected)
    assert [s["slice"] for s in slices[:2]] == [13, 2]
    # Only the order changes: the same ranges, so part keys (per slice number) stay where they were.
    assert sorted(slices, key=lambda s: s["slice"]) == plan_group_slices(16)


def test_a_slice_without_expectation_is_taken_for_long() -> None:
    slices = plan_group_slices(4, expected={0: 10, 1: 5_000, 2: 20})
    assert [s["slice"] for s in slices] == [3, 1, 2, 0]


@pytest.mark.parametrize(
    ("previous", "groups", "expected"),
    [
        (None, 16, None),
        ({"groups": 16, "memberships": {"0": 5, "13": 900}}, 16, {0: 5, 13: 900}),
        # Another group count: the previous slices covered other ranges, so their counts say nothing.
        ({"groups": 15, "memberships": {"0": 5, "13": 900}}, 16, None),
        ({"groups": 16, "memberships": {}}, 16, None),
    ],
)
def test_previous_counts_apply_only_to_the_same_slicing(
    previous: dict[str, object] | None, groups: int, expected: dict[int, int] | None
) -> None:
    assert expected_memberships(previous, groups) == expected
