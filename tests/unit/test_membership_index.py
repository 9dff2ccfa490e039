"""Regrouping memberships by their user's shard: every membership lands in exactly one shard, pass by pass."""

from __future__ import annotations

import random
import uuid

import pytest

from pipeline.cognito.shards import plan_shards
from pipeline.core.errors import IntegrityError
from pipeline.core.layout import BackupLocation
from pipeline.restore import membership_index


def _records(n: int) -> list[dict[str, str]]:
    rng = random.Random(7)
    subs = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]
    return [
        {"group": group, "username": f"user-{i}", "sub": sub}
        for i, sub in enumerate(subs)
        for group in ("admins", "staff")[: 1 + i % 2]
    ]


@pytest.mark.parametrize(("users", "passes"), [(100, 1), (5_000, 1), (5_000, 3), (600_000, 7)])
def test_passes_cover_every_membership_once(users: int, passes: int) -> None:
    shards = plan_shards(users)
    width = len(shards[0])
    records = _records(min(users, 3_000))
    seen: list[tuple[str, str]] = []
    for index in range(passes):
        for shard, members in membership_index.group_by_user(
            records, membership_index.pass_shards(shards, passes, index), width
        ).items():
            for username, groups in members.items():
                sub = next(r["sub"] for r in records if r["username"] == username)
                assert sub.startswith(shard)
                seen.extend((username, g) for g in groups)
    assert sorted(seen) == sorted((r["username"], r["group"]) for r in records)


def test_pass_shards_split_the_shards_into_contiguous_ranges() -> None:
    shards = plan_shards(600_000)
    ranges = [membership_index.pass_shards(shards, 3, i) for i in range(3)]
    assert [s for r in ranges for s in r] == shards
    assert {len(r) for r in ranges} <= {85, 86}


def test_passes_grow_with_the_memberships() -> None:
    assert membership_index.passes_for(0) == 1
    assert membership_index.passes_for(membership_index.PASS_MEMBERSHIPS) == 1
    assert membership_index.passes_for(membership_index.PASS_MEMBERSHIPS + 1) == 2


def test_a_membership_without_sub_is_refused() -> None:
    with pytest.raises(IntegrityError, match="sub"):
        membership_index.group_by_user([{"group": "g", "username": "u"}], [""], 0)


def test_index_keys_live_in_the_restore_workspace() -> None:
    ws = BackupLocation(
        bucket="b", prefix="p/restores", pool_id="eu-west-1_abc", backup_id="20260101T000000Z-abcdef"
    )
    assert membership_index.key(ws, "") == ws.root + "memberships/all.bin"
    assert membership_index.key(ws, "0f") == ws.root + "memberships/0f.bin"
