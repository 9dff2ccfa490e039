"""Readers whose pagination token never leaves the call use boto3 paginators, and every page still draws from the
rate budget (the budget is a hook on the client, so a paginator's page is one budgeted call)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipeline.cognito import throttle
from pipeline.cognito.pool_config import capture_pool_config
from pipeline.cognito.reading import PAGE_LIMIT, list_groups, list_pool_ids
from pipeline.restore.user_restore import _groups_of


@pytest.fixture
def cognito(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A budgeted client (fast quotas: the pages are counted, not timed) and its budget as ``cognito.budget``."""
    monkeypatch.setattr(throttle, "PER_POOL_OPERATION_RPS", {})
    with mock_aws():
        client: Any = boto3.client("cognito-idp")
        budget = throttle.RateBudget(quotas={category: 10_000.0 for category in throttle.QUOTA_RPS})
        throttle.install(client, budget)
        client.budget = budget
        yield client


def test_pools_and_groups_are_read_in_full_one_budgeted_call_per_page(cognito: Any) -> None:
    pool_ids = {cognito.create_user_pool(PoolName=f"p{i}")["UserPool"]["Id"] for i in range(PAGE_LIMIT + 5)}
    pool_id = sorted(pool_ids)[0]
    names = {f"g{i:03d}" for i in range(2 * PAGE_LIMIT + 1)}
    for name in names:
        cognito.create_group(UserPoolId=pool_id, GroupName=name)
    cognito.admin_create_user(UserPoolId=pool_id, Username="u1", MessageAction="SUPPRESS")
    for name in sorted(names)[: PAGE_LIMIT + 1]:
        cognito.admin_add_user_to_group(UserPoolId=pool_id, Username="u1", GroupName=name)
    budget = cognito.budget
    before = dict(budget.calls)

    assert set(list_pool_ids(cognito)) == pool_ids
    assert {g["name"] for g in list_groups(cognito, pool_id)} == names
    assert _groups_of(cognito, pool_id, "u1") == set(sorted(names)[: PAGE_LIMIT + 1])

    calls = {op: n - before.get(op, 0) for op, n in budget.calls.items()}
    assert calls["ListUserPools"] == 2
    assert calls["ListGroups"] == 3
    assert calls["AdminListGroupsForUser"] == 2


def test_the_config_capture_reads_every_page(cognito: Any) -> None:
    pool_id = cognito.create_user_pool(PoolName="config")["UserPool"]["Id"]
    for i in range(61):
        cognito.create_user_pool_client(UserPoolId=pool_id, ClientName=f"c{i}")
    for i in range(51):
        cognito.create_resource_server(UserPoolId=pool_id, Identifier=f"https://api{i}", Name=f"api{i}")
    budget = cognito.budget
    before = dict(budget.calls)

    config = capture_pool_config(cognito, pool_id)

    assert len(config["appClients"]) == 61
    assert len(config["resourceServers"]) == 51
    assert budget.calls["ListUserPoolClients"] - before.get("ListUserPoolClients", 0) == 2
    assert budget.calls["ListResourceServers"] - before.get("ListResourceServers", 0) == 2
