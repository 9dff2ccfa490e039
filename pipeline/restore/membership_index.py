"""Backed-up memberships regrouped by their user's shard, so a restore adds each user's groups right after the user.

The backup lists memberships group by group (one ListUsersInGroup chain per group) and records each member's
``sub``; a restore creates users shard by shard (``sub`` prefixes). IndexMemberships reads the membership parts
and writes into the restore's workspace one sealed object per shard, ``{"username", "groups"}`` per member.
A pass holds at most ``PASS_MEMBERSHIPS`` memberships in memory; bigger backups take several passes, each over
its own range of shards, so memory stays bounded whatever the pool's size.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from pipeline.core.errors import IntegrityError
from pipeline.core.layout import BackupLocation

PASS_MEMBERSHIPS = 2_000_000


def key(workspace: BackupLocation, shard: str) -> str:
    return f"{workspace.root}memberships/{shard or 'all'}.bin"


def passes_for(memberships: int) -> int:
    return max(1, math.ceil(memberships / PASS_MEMBERSHIPS))


def pass_shards(shards: Sequence[str], passes: int, index: int) -> list[str]:
    """The contiguous range of ``shards`` that pass ``index`` of ``passes`` indexes."""
    return list(shards[len(shards) * index // passes : len(shards) * (index + 1) // passes])


def group_by_user(
    records: Iterable[Mapping[str, str]], shards: Sequence[str], width: int
) -> dict[str, dict[str, list[str]]]:
    """``{shard: {username: [group, ...]}}`` for the memberships whose user's ``sub`` starts with one of ``shards``
    (``width`` hex digits; 0 for the single unsharded shard)."""
    wanted: dict[str, dict[str, list[str]]] = {shard: {} for shard in shards}
    for record in records:
        sub = record.get("sub")
        if not sub:
            raise IntegrityError("a membership record carries no sub: the backup cannot place it in a shard")
        members = wanted.get(sub[:width])
        if members is not None:
            members.setdefault(record["username"], []).append(record["group"])
    return wanted


def records(members: Mapping[str, list[str]]) -> list[dict[str, object]]:
    return [{"username": username, "groups": groups} for username, groups in members.items()]
