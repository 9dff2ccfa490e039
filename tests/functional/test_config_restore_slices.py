"""RestorePoolConfig in slices on moto: with no time left, every slice still makes one step, the slices add up to
the one-shot restore, and a retried slice duplicates nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipeline.cognito.pool_config import capture_pool_config
from pipeline.operator import seed
from pipeline.restore import pool_restore


@pytest.fixture
def cognito() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("cognito-idp")


def test_zero_budget_slices_restore_every_client_and_group_once(cognito: Any) -> None:
    client = cognito
    pool = seed.seed_pool(client, users=0, seed=2)
    config = capture_pool_config(client, pool.pool_id)
    assert len(config["appClients"]) >= 2 and len(config["groups"]) >= 3

    def run(phase: str, index: int, pool_id: str | None, created: bool) -> pool_restore.ConfigSlice:
        return pool_restore.restore_pool_config_slice(
            client,
            config,
            source=f"{pool.pool_id}/b",
            new_pool_name="sliced",
            phase=phase,
            index=index,
            pool_id=pool_id,
            created=created,
            deadline=0.0,
            clock=lambda: 1.0,  # always out of time
        )

    phase, index, pool_id, created = pool_restore.POOL_PHASE, 0, None, False
    groups_created = clients_created = slices = 0
    while phase != pool_restore.DONE_PHASE:
        done = run(phase, index, pool_id, created)
        assert (done.phase, done.index) != (phase, index), "a slice made no progress"
        if slices == 2:
            again = run(phase, index, pool_id, created)  # the same slice retried
            assert (again.result.groups_created, again.result.app_clients_created) == (0, 0)
        groups_created += done.result.groups_created
        clients_created += done.result.app_clients_created
        phase, index, pool_id, created = done.phase, done.index, done.result.pool_id, done.result.created
        slices += 1

    # One slice for the pool, one per app client and one per group: none did more than one step.
    assert slices == 1 + len(config["appClients"]) + len(config["groups"])
    assert groups_created == len(config["groups"])
    assert clients_created == len(config["appClients"])
    live_groups = client.list_groups(UserPoolId=pool_id)["Groups"]
    assert sorted(g["GroupName"] for g in live_groups) == sorted(g["name"] for g in config["groups"])
    live_clients = client.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]
    names = sorted(c["ClientName"] for c in live_clients)
    assert names == sorted([c["ClientName"] for c in config["appClients"]] + [pool_restore.TEMP_CLIENT_NAME])
