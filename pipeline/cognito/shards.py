"""Splitting a pool's users into shards that page independently.

Cognito's ``sub`` is a lowercase UUID and ListUsers accepts ``Filter: sub ^= "<prefix>"``, so the 16
one-digit or 256 two-digit hex prefixes partition every user exactly once. Shards let large pools export in
parallel and keep each pagination token's life short.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from pipeline.core.contracts import GroupSlice
from pipeline.core.errors import InvalidRequest

# Below this many users one unfiltered listing is cheapest.
SINGLE_SHARD_BELOW = 2_000
# Below this many users 16 shards suffice; beyond it 256 keep each shard's listing short.
SIXTEEN_SHARDS_BELOW = 500_000

# From this many shards a pool's shards run as child executions of a distributed Map: the parent's history
# and the inline Map's payloads stay small however many parts the shards write. 256 shards means >= 500k users.
# Operators may lower it per execution with the input's "distributedShardThreshold".
DISTRIBUTED_FROM_SHARDS = 256
THRESHOLD_INPUT_KEY = "distributedShardThreshold"

# Group memberships are listed by group (ListUsersInGroup), one token chain per group: a pool's groups are
# split into at most this many contiguous slices whose chains run in parallel, beside the user shards. One
# sequential loop over every group is latency-bound and cannot keep up with the shards' share of the quota.
MAX_GROUP_SLICES = 16

HEX_DIGITS = "0123456789abcdef"
_PREFIX = re.compile(r"[0-9a-f]{0,2}", re.ASCII)


def plan_shards(estimated_users: int) -> list[str]:
    """Shard prefixes for a pool of about ``estimated_users`` users ("" means one shard, no filter)."""
    if estimated_users < SINGLE_SHARD_BELOW:
        return [""]
    if estimated_users < SIXTEEN_SHARDS_BELOW:
        return list(HEX_DIGITS)
    return [a + b for a in HEX_DIGITS for b in HEX_DIGITS]


def plan_group_slices(
    groups: int, max_slices: int = MAX_GROUP_SLICES, expected: Mapping[int, int] | None = None
) -> list[GroupSlice]:
    """Contiguous, near-equal ranges over ``groups`` captured groups; none when the pool has no groups.

    ``expected`` (slice number to memberships, e.g. the previous backup's counts) orders the slices longest
    first: a group's members are one ListUsersInGroup token chain, so the longest chain bounds the backup unless
    it starts first. The Map is handed its items in this order (AWS documents no start order: a strong hint). A
    slice with no expectation counts as longest (nothing says it is short); without ``expected`` the slices keep
    name order.
    """
    count = min(groups, max_slices)
    bounds = [groups * i // count for i in range(count + 1)] if count else []
    planned: list[GroupSlice] = [{"slice": i, "first": bounds[i], "end": bounds[i + 1]} for i in range(count)]
    if expected:
        planned.sort(key=lambda s: -expected.get(s["slice"], math.inf))
    return planned


def expected_memberships(previous: Mapping[str, Any] | None, groups: int) -> dict[int, int] | None:
    """Memberships per slice from an earlier backup of the pool (``{"groups": n, "memberships": {slice: count}}``),
    or None when there is none or its slices were other ranges: the slice plan depends only on the group count."""
    if not previous or previous.get("groups") != groups:
        return None
    counts = previous.get("memberships") or {}
    return {int(k): int(v) for k, v in counts.items()} or None


def runs_distributed(shard_count: int, threshold: object = None) -> bool:
    """Whether ``shard_count`` shards take the distributed Map; ``threshold`` comes from the execution input."""
    if threshold is None:
        threshold = DISTRIBUTED_FROM_SHARDS
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise InvalidRequest(f"{THRESHOLD_INPUT_KEY} must be a positive whole number of shards")
    return shard_count >= threshold


def check_prefix(prefix: str) -> str:
    if not _PREFIX.fullmatch(prefix):
        raise InvalidRequest(f"not a shard prefix: {prefix!r} (expected 0-2 lowercase hex digits)")
    return prefix


def sub_filter(prefix: str) -> str | None:
    """The ListUsers filter selecting one shard, or None for the single unfiltered shard."""
    check_prefix(prefix)
    return f'sub ^= "{prefix}"' if prefix else None
