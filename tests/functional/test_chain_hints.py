"""PlanShards starts the longest member chains first, from the pool's previous backup (moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipeline.backup import chain_hints
from pipeline.core import layout
from pipeline.core.aws import Clients, make_clients
from pipeline.operator import demo, seed
from tests.helpers import task_chain


@pytest.fixture
def world() -> Iterator[tuple[Clients, demo.DemoAccount, str]]:
    with mock_aws():
        clients = make_clients()
        account = demo.prepare_account(clients)
        cognito = boto3.client("cognito-idp")
        pool = seed.seed_pool(cognito, users=150, seed=5)
        # One group far larger than the others, sorting last by name: name order would start it last.
        cognito.create_group(UserPoolId=pool.pool_id, GroupName="zz-everyone")
        for user in cognito.list_users(UserPoolId=pool.pool_id, Limit=60)["Users"]:
            cognito.admin_add_user_to_group(
                UserPoolId=pool.pool_id, Username=user["Username"], GroupName="zz-everyone"
            )
        yield clients, account, pool.pool_id


def test_the_second_backup_starts_the_largest_group_first(world: Any) -> None:
    _, account, pool_id = world
    first = task_chain.run_backup(account.storage, pool_id)
    assert "previousSlices" not in first["config"]  # nothing to learn from yet
    groups = first["config"]["groups"]
    assert [s["slice"] for s in first["plan"]["groupSlices"]] == list(range(groups))
    largest = groups - 1  # zz-everyone: one group per slice, the last by name
    second = task_chain.run_backup(account.storage, pool_id)
    hint = second["config"]["previousSlices"]
    assert hint["groups"] == groups
    assert sum(hint["memberships"].values()) == first["manifest"]["memberships"]
    assert max(hint["memberships"], key=lambda k: hint["memberships"][k]) == str(largest)
    assert second["plan"]["groupSlices"][0]["slice"] == largest
    assert second["manifest"]["memberships"] == first["manifest"]["memberships"]  # only the order changed


def test_an_interrupted_backup_is_skipped_for_the_complete_one_before_it(world: Any) -> None:
    clients, account, pool_id = world
    first = task_chain.run_backup(account.storage, pool_id)
    # A later backup that never wrote its manifest: its folder holds parts only.
    later = first["job"]["backupId"][:-6] + "ffffff"
    loc = layout.BackupLocation(account.storage["bucket"], account.storage["prefix"], pool_id, later)
    clients.s3.put_object(Bucket=loc.bucket, Key=loc.config_key, Body=b"x")
    newest = layout.BackupLocation(loc.bucket, loc.prefix, pool_id, "29991231T235959Z-000000")
    hint = chain_hints.previous_slices(clients, newest)
    assert hint is not None and hint["groups"] == first["config"]["groups"]


def test_a_manifest_this_version_cannot_read_gives_no_hint(world: Any) -> None:
    clients, account, pool_id = world
    older = layout.BackupLocation(
        account.storage["bucket"], account.storage["prefix"], pool_id, "20260101T000000Z-aaaaaa"
    )
    clients.s3.put_object(Bucket=older.bucket, Key=older.manifest_key, Body=b"not json")
    now = layout.BackupLocation(older.bucket, older.prefix, pool_id, "20260102T000000Z-bbbbbb")
    assert chain_hints.previous_slices(clients, now) is None
    clients.s3.put_object(
        Bucket=older.bucket, Key=older.manifest_key, Body=json.dumps({"counts": {}, "objects": []}).encode()
    )
    assert chain_hints.previous_slices(clients, now) is None


def test_slices_of_sums_each_slices_parts() -> None:
    manifest = {
        "counts": {"groups": 3},
        "objects": [
            {"name": "config.bin", "records": 1},
            {"name": "users/all/part-00000.bin", "records": 90},
            {"name": "memberships/000/part-00000.bin", "records": 20_000},
            {"name": "memberships/000/part-00001.bin", "records": 7},
            {"name": "memberships/002/part-00000.bin", "records": 5},
        ],
    }
    assert chain_hints.slices_of(manifest) == {"groups": 3, "memberships": {"0": 20_007, "2": 5}}
