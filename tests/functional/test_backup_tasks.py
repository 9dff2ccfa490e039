"""Each backup task on moto, driven in the order the state machine runs them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipeline import backup, demo, layout, seed
from pipeline.aws import Clients, make_clients
from pipeline.backup_reader import BackupReader
from pipeline.contracts import PoolState, ShardState, UserCursor
from pipeline.errors import BackupExists, IncompleteBackup, InvalidRequest, KeyAccessDenied, PoolNotFound
from tasks import (
    capture_pool_config,
    enumerate_pools,
    export_group_memberships,
    export_users,
    plan_shards,
    verify_backup,
    write_manifest,
)


@pytest.fixture
def world() -> Iterator[tuple[Clients, demo.DemoAccount, seed.SeededPool]]:
    with mock_aws():
        clients = make_clients()
        account = demo.prepare_account(clients)
        pool = seed.seed_pool(boto3.client("cognito-idp"), users=120, seed=3)
        yield clients, account, pool


def _run_shard(state: ShardState, budget_s: float = 60.0) -> UserCursor:
    while not state["cursor"]["done"]:
        state["cursor"] = backup.export_users(make_clients(), state, budget_s=budget_s)
    return state["cursor"]


def _full_backup(account: demo.DemoAccount, pool_id: str, *, write: bool = True) -> PoolState:
    jobs = enumerate_pools.handler({"poolIds": [pool_id], "allPools": False, "storage": account.storage})
    state: PoolState = {"job": jobs["pools"][0]}
    state["config"] = capture_pool_config.handler(state)
    state["plan"] = plan_shards.handler(state)
    results: list[Any] = []
    for shard in state["plan"]["shards"]:
        shard_state: ShardState = {
            "job": state["job"],
            "shard": shard,
            "cursor": {"part": 0, "nextToken": None, "users": 0, "done": False},
        }
        while not shard_state["cursor"]["done"]:
            shard_state["cursor"] = export_users.handler(shard_state)
        c = shard_state["cursor"]
        results.append({"shard": shard, "parts": c["part"], "users": c["users"], "done": c["done"]})
    state["shardResults"] = results
    while "memberships" not in state or not state["memberships"]["done"]:
        state["memberships"] = export_group_memberships.handler(state)
    if write:
        state["manifest"] = write_manifest.handler(state)
    return state


def test_enumerate_pools_resolves_the_key_and_names_each_backup(world: Any) -> None:
    _, account, pool = world
    out = enumerate_pools.handler({"poolIds": [pool.pool_id], "allPools": False, "storage": account.storage})
    (job,) = out["pools"]
    assert job["poolId"] == pool.pool_id
    layout.check_backup_id(job["backupId"])
    assert job["storage"]["kmsKeyArn"].startswith("arn:aws:kms:")
    all_pools = enumerate_pools.handler({"poolIds": [], "allPools": True, "storage": account.storage})
    assert [j["poolId"] for j in all_pools["pools"]] == [pool.pool_id]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"poolIds": ["us-east-1_Missing1"]}, PoolNotFound),
        ({"poolIds": ["not a pool"]}, InvalidRequest),
        ({"poolIds": []}, InvalidRequest),
        ({"storage": {"bucket": "no-such-bucket", "kmsKeyArn": "", "prefix": "p"}}, InvalidRequest),
    ],
)
def test_enumerate_pools_rejects_bad_input(
    world: Any, change: dict[str, Any], error: type[Exception]
) -> None:
    _, account, _ = world
    event: Any = {"poolIds": [], "allPools": False, "storage": account.storage, **change}
    with pytest.raises(error):
        enumerate_pools.handler(event)


def test_enumerate_pools_refuses_an_unusable_key(world: Any) -> None:
    clients, account, pool = world
    key = clients.kms.create_key()["KeyMetadata"]["Arn"]
    clients.kms.disable_key(KeyId=key.split("/")[-1])  # moto accepts only the id here
    storage = {**account.storage, "kmsKeyArn": key}
    with pytest.raises(KeyAccessDenied):
        enumerate_pools.handler({"poolIds": [pool.pool_id], "allPools": False, "storage": storage})


def test_full_task_chain_writes_a_verified_backup(world: Any) -> None:
    _, account, pool = world
    state = _full_backup(account, pool.pool_id)
    assert state["manifest"]["users"] == pool.users
    assert state["manifest"]["memberships"] == pool.memberships
    verified = verify_backup.handler({"job": state["job"], "manifest": state["manifest"]})
    assert verified["verified"] is True
    assert (verified["users"], verified["groups"]) == (pool.users, len(pool.groups))


def test_export_users_slices_resume_without_duplicates(world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clients, account, pool = world
    monkeypatch.setattr(backup, "USERS_PER_PART", 25)
    (job,) = enumerate_pools.handler(
        {"poolIds": [pool.pool_id], "allPools": False, "storage": account.storage}
    )["pools"]
    state: ShardState = {
        "job": job,
        "shard": "",
        "cursor": {"part": 0, "nextToken": None, "users": 0, "done": False},
    }
    first = backup.export_users(clients, state, budget_s=60)
    # A crash after the part was written but before the state recorded it: the retry gets the same cursor.
    again = backup.export_users(clients, state, budget_s=60)
    assert first == again
    state["cursor"] = first
    final = _run_shard(state)
    assert final["users"] == pool.users
    loc = backup.location(job)
    keys = [
        o["Key"]
        for o in clients.s3.list_objects_v2(Bucket=loc.bucket, Prefix=loc.root + "users/")["Contents"]
    ]
    assert len(keys) == final["part"] > 1


def test_write_manifest_refuses_a_missing_shard(world: Any) -> None:
    _, account, pool = world
    state = _full_backup(account, pool.pool_id, write=False)
    broken: PoolState = {**state, "shardResults": [None, *state["shardResults"][1:]]}  # type: ignore[typeddict-item]
    with pytest.raises(IncompleteBackup):
        write_manifest.handler(broken)


def test_a_completed_backup_is_never_overwritten(world: Any) -> None:
    _, account, pool = world
    state = _full_backup(account, pool.pool_id)
    with pytest.raises(BackupExists):
        write_manifest.handler(state)


def test_backup_content_matches_the_pool_and_stays_encrypted(world: Any) -> None:
    clients, account, pool = world
    state = _full_backup(account, pool.pool_id)
    reader = BackupReader.open(clients, backup.location(state["job"]))
    users = list(reader.users())
    assert len({u["username"] for u in users}) == len(users) == pool.users
    emails = {u["attributes"]["email"] for u in users if "email" in u["attributes"]}
    assert emails == set(pool.emails)
    config = reader.config()
    assert {g["name"] for g in config["groups"]} == set(pool.groups)
    assert any(a["Name"].startswith("custom:") for a in config["pool"]["SchemaAttributes"])
    loc = backup.location(state["job"])
    for obj in clients.s3.list_objects_v2(Bucket=loc.bucket, Prefix=loc.root)["Contents"]:
        body = clients.s3.get_object(Bucket=loc.bucket, Key=obj["Key"])["Body"].read()
        assert not any(e.encode() in body for e in pool.emails), obj["Key"]


def test_everything_a_restore_keeps_lives_under_the_backup_prefix(world: Any) -> None:
    """The deployed roles may touch only <prefix>/*: audit, approvals and restore workspaces must stay there."""
    from pipeline import restore

    clients, account, _ = world
    sink = restore.audit_sink(clients, account.storage)
    prefix = account.storage["prefix"] + "/"
    assert sink.root.startswith(prefix)
    assert sink.approvals_root.startswith(prefix)
    assert restore.selection_key(account.storage, "x").startswith(prefix)
