"""Each backup task on moto, driven in the order the state machine runs them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipeline.backup import steps as backup
from pipeline.core import layout
from pipeline.core.aws import Clients, make_clients
from pipeline.core.contracts import PoolState, ShardState, UserCursor
from pipeline.core.errors import (
    BackupExists,
    IncompleteBackup,
    IntegrityError,
    InvalidRequest,
    KeyAccessDenied,
    PoolNotFound,
)
from pipeline.operator import demo, seed
from pipeline.sealing.backup_reader import BackupReader
from tasks import (
    enumerate_pools,
    plan_shards,
    verify_backup,
    write_manifest,
)
from tests.helpers import task_chain


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
    return task_chain.run_backup(account.storage, pool_id, write=write)


def test_enumerate_pools_resolves_the_key_and_names_each_backup(world: Any) -> None:
    _, account, pool = world
    (job,) = task_chain.enumerate_jobs(
        {"poolIds": [pool.pool_id], "allPools": False, "storage": account.storage}
    )
    assert job["poolId"] == pool.pool_id
    layout.check_backup_id(job["backupId"])
    assert job["storage"]["kmsKeyArn"].startswith("arn:aws:kms:")
    all_pools = task_chain.enumerate_jobs({"poolIds": [], "allPools": True, "storage": account.storage})
    assert [j["poolId"] for j in all_pools] == [pool.pool_id]


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
    event: Any = {"poolIds": [], "allPools": False, "storage": account.storage, "run": "r", **change}
    with pytest.raises(error):
        enumerate_pools.handler(event)


def test_enumerate_pools_refuses_an_unusable_key(world: Any) -> None:
    clients, account, pool = world
    key = clients.kms.create_key()["KeyMetadata"]["Arn"]
    clients.kms.disable_key(KeyId=key.split("/")[-1])  # moto accepts only the id here
    storage = account.storage.copy()
    storage["kmsKeyArn"] = key
    with pytest.raises(KeyAccessDenied):
        enumerate_pools.handler(
            {"poolIds": [pool.pool_id], "allPools": False, "storage": storage, "run": "r"}
        )


def test_full_task_chain_writes_a_verified_backup(world: Any, caplog: pytest.LogCaptureFixture) -> None:
    _, account, pool = world
    caplog.set_level(logging.WARNING, logger="pipeline")
    state = _full_backup(account, pool.pool_id)
    # The capture's own work parts are cleaned up quietly: a warning means a task really left something behind.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert state["manifest"]["users"] == pool.users
    assert state["manifest"]["memberships"] == pool.memberships
    verified = verify_backup.handler({"job": state["job"], "manifest": state["manifest"]})
    assert verified["verified"] is True
    assert (verified["users"], verified["groups"]) == (pool.users, len(pool.groups))


def test_export_users_slices_resume_without_duplicates(world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clients, account, pool = world
    monkeypatch.setattr(backup, "USERS_PER_PART", 25)
    (job,) = task_chain.enumerate_jobs(
        {"poolIds": [pool.pool_id], "allPools": False, "storage": account.storage}
    )
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
    broken: PoolState = {**state, "shardResults": [None, *state["shardResults"][1:]]}
    with pytest.raises(IncompleteBackup):
        write_manifest.handler(broken)


def test_write_manifest_refuses_a_missing_group_slice(world: Any) -> None:
    _, account, pool = world
    state = _full_backup(account, pool.pool_id, write=False)
    assert len(state["plan"]["groupSlices"]) == len(pool.groups) > 1  # few groups: one slice each
    broken: PoolState = {**state, "sliceResults": state["sliceResults"][:-1]}
    with pytest.raises(IncompleteBackup, match="group slices"):
        write_manifest.handler(broken)


def test_write_manifest_refuses_memberships_the_slices_did_not_report(world: Any) -> None:
    _, account, pool = world
    state = _full_backup(account, pool.pool_id, write=False)
    first, *rest = state["sliceResults"]
    assert first is not None
    inflated: PoolState = {
        **state,
        "sliceResults": [{**first, "memberships": first["memberships"] + 1}, *rest],
    }
    with pytest.raises(IntegrityError, match="memberships"):
        write_manifest.handler(inflated)


def test_memberships_are_those_of_the_captured_groups(world: Any) -> None:
    clients, account, pool = world
    jobs = task_chain.enumerate_jobs(
        {"poolIds": [pool.pool_id], "allPools": False, "storage": account.storage}
    )
    state: PoolState = {"job": jobs[0]}
    state["config"] = task_chain.capture_config(state)
    state["plan"] = plan_shards.handler(state)
    # A group made after the configuration was captured is in neither the config nor the memberships.
    cognito = boto3.client("cognito-idp")
    cognito.create_group(UserPoolId=pool.pool_id, GroupName="aaa-late")
    someone = cognito.list_users(UserPoolId=pool.pool_id, Limit=1)["Users"][0]["Username"]
    cognito.admin_add_user_to_group(UserPoolId=pool.pool_id, Username=someone, GroupName="aaa-late")
    task_chain.export_all(state)
    state["manifest"] = write_manifest.handler(state)
    reader = BackupReader.open(clients, backup.location(state["job"]))
    assert {m["group"] for m in reader.memberships()} <= set(pool.groups)
    assert state["manifest"]["memberships"] == pool.memberships
    names = [o["name"] for o in reader.objects("memberships")]
    assert {n.split("/")[1] for n in names} == {f"{g['slice']:03d}" for g in state["plan"]["groupSlices"]}


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
    from pipeline.restore import steps as restore

    clients, account, _ = world
    sink = restore.audit_sink(clients, account.storage)
    prefix = account.storage["prefix"] + "/"
    assert sink.root.startswith(prefix)
    assert sink.approvals_root.startswith(prefix)
    assert restore.selection_key(account.storage, "x").startswith(prefix)
