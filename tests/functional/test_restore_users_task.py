"""IndexMemberships and RestoreUsers on moto, as the restore state machine calls them, without the engine."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.core.contracts import RestoreCursor, RestoreRequest, TargetPool
from pipeline.core.layout import parse_backup_uri
from pipeline.restore import membership_index
from pipeline.restore import steps as restore
from pipeline.restore.pool_restore import restore_pool_config
from pipeline.sealing import store
from pipeline.sealing.backup_reader import BackupReader
from tests.helpers.restore_world import World, backup_pool, make_world, pinned


@pytest.fixture
def world() -> Iterator[World]:
    yield from make_world(users=40)


def _request(world: World, uri: str, shards: list[str], memberships: int) -> RestoreRequest:
    request: dict[str, Any] = {
        **pinned(BackupReader.open(world.clients, parse_backup_uri(uri))),
        "requestId": "rr-20260101T000000Z-000000000000",
        "backupUri": uri,
        "settings": world.account.storage,
        "target": {"mode": "existing", "poolId": None, "poolName": None},
        "shards": shards,
        "selectionKey": None,
        "backupMemberships": memberships,
    }
    return request  # type: ignore[return-value]


def _cursor() -> RestoreCursor:
    counts = dict.fromkeys(restore._CURSOR_COUNTS, 0)
    return {"part": 0, "offset": 0, **counts, "done": False}  # type: ignore[typeddict-item]


def test_each_user_comes_back_with_its_groups(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = backup_pool(world)
    memberships = list(reader.memberships())
    request = _request(world, reader.loc.uri, reader.doc["shards"], len(memberships))
    # Two passes over the one shard would be pointless: passes never outnumber the shards.
    monkeypatch.setattr(membership_index, "PASS_MEMBERSHIPS", 1)
    index = restore.index_memberships(world.clients, request, {"next": 0, "passes": 0, "done": False})
    assert index == {"next": 1, "passes": 1, "done": True}
    ws = restore.workspace(request)
    (indexed,) = [store.get_sealed(world.clients, ws, membership_index.key(ws, s)) for s in request["shards"]]
    assert sorted((r["username"], g) for r in indexed for g in r["groups"]) == sorted(
        (m["username"], m["group"]) for m in memberships
    )

    target_id = world.cognito.create_user_pool(PoolName="target")["UserPool"]["Id"]
    config = restore_pool_config(world.cognito, reader.config(), source="a/b", target_pool_id=target_id)
    target: TargetPool = {
        "poolId": target_id,
        "created": False,
        "groupsCreated": config.groups_created,
        "conflicts": 0,
        "tempClientId": None,
    }
    cursor = _cursor()
    while not cursor["done"]:
        cursor = restore.restore_users(world.clients, request, target, "", cursor, budget_s=60)
    assert cursor["created"] == world.pool.users
    assert cursor["membershipsAdded"] == len(memberships)
    for group in world.pool.groups:
        members = world.cognito.list_users_in_group(UserPoolId=target_id, GroupName=group, Limit=60)["Users"]
        assert {u["Username"] for u in members} == {m["username"] for m in memberships if m["group"] == group}

    # A second run finds every user and every membership there already, and adds nothing.
    again = _cursor()
    while not again["done"]:
        again = restore.restore_users(world.clients, request, target, "", again, budget_s=60)
    assert (again["created"], again["existing"]) == (0, world.pool.users)
    assert (again["membershipsAdded"], again["membershipsExisting"]) == (0, len(memberships))
