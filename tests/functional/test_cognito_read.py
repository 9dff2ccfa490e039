"""Reading pools, users (whole and by shard), groups and memberships from moto."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from pipeline.cognito.reading import (
    describe_pool,
    estimated_users,
    list_group_members_page,
    list_groups,
    list_pool_ids,
    list_users_page,
    user_record,
)
from pipeline.cognito.shards import plan_shards
from pipeline.cognito.throttle import RateBudget, install
from pipeline.core.errors import PaginationTokenExpired, PoolNotFound
from pipeline.operator.seed import seed_pool
from tests.helpers.real_aws_doubles import refuse_call


def _all_users(cognito: Any, pool_id: str, prefix: str = "", limit: int = 60) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = []
    token = None
    for _ in range(10_000):  # a deadline on pages, never an endless loop
        page = list_users_page(cognito, pool_id, sub_prefix=prefix, token=token, limit=limit)
        users.extend(page.users)
        token = page.next_token
        if token is None:
            return users
    raise AssertionError("pagination did not end")


def test_list_pool_ids_follows_pages(cognito: Any) -> None:
    created = {cognito.create_user_pool(PoolName=f"p{i}")["UserPool"]["Id"] for i in range(65)}
    ids = list_pool_ids(cognito)
    assert len(ids) == 65
    assert set(ids) == created


def test_describe_and_estimate(cognito: Any) -> None:
    seeded = seed_pool(cognito, users=12, seed=1)
    pool = describe_pool(cognito, seeded.pool_id)
    assert pool["Id"] == seeded.pool_id
    json.dumps(pool)  # JSON-ready: datetimes became strings
    assert estimated_users(cognito, seeded.pool_id) == 12


def test_missing_pool_is_pool_not_found(cognito: Any) -> None:
    missing = "us-east-1_doesnotexist"
    with pytest.raises(PoolNotFound, match=missing):
        describe_pool(cognito, missing)
    with pytest.raises(PoolNotFound):
        list_users_page(cognito, missing)
    with pytest.raises(PoolNotFound):
        list_groups(cognito, missing)
    with pytest.raises(PoolNotFound):
        list_group_members_page(cognito, missing, "admins", None)


def test_users_are_listed_once_whole_and_through_16_shards(cognito: Any) -> None:
    seeded = seed_pool(cognito, users=300, seed=3)

    whole = _all_users(cognito, seeded.pool_id, limit=60)
    names = [u["username"] for u in whole]
    assert len(names) == 300
    assert len(set(names)) == 300

    by_shard: dict[str, list[str]] = {}
    for prefix in plan_shards(5_000):
        users = _all_users(cognito, seeded.pool_id, prefix=prefix, limit=7)
        assert all(u["attributes"]["sub"].startswith(prefix) for u in users)
        by_shard[prefix] = [u["username"] for u in users]
    flat = [n for shard in by_shard.values() for n in shard]
    assert len(flat) == 300
    assert set(flat) == set(names)
    assert sum(1 for shard in by_shard.values() if shard) > 8  # the subs really spread over the prefixes


def test_user_records_carry_state_and_all_attributes(cognito: Any) -> None:
    seeded = seed_pool(cognito, users=60, seed=5)
    users = _all_users(cognito, seeded.pool_id)
    statuses = Counter(u["status"] for u in users)
    assert statuses["UNCONFIRMED"] == seeded.unconfirmed
    assert statuses["CONFIRMED"] == seeded.users - seeded.unconfirmed
    assert sum(not u["enabled"] for u in users) == seeded.disabled
    for u in users:
        attrs = u["attributes"]
        assert {"sub", "email", "phone_number", "custom:tenant_id", "custom:plan", "custom:seats"} <= set(
            attrs
        )
        assert attrs["email"] in seeded.emails
        dt.datetime.fromisoformat(u["created"])
        dt.datetime.fromisoformat(u["modified"])
        assert "mfa" not in u  # moto returns no MFAOptions
    json.dumps(users)


def test_user_record_shape() -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    item = {
        "Username": "u1",
        "Attributes": [{"Name": "sub", "Value": "abc"}, {"Name": "email", "Value": "a@example.com"}],
        "UserCreateDate": when,
        "UserLastModifiedDate": when,
        "Enabled": False,
        "UserStatus": "CONFIRMED",
        "MFAOptions": [{"DeliveryMedium": "SMS", "AttributeName": "phone_number"}],
    }
    assert user_record(item) == {
        "username": "u1",
        "attributes": {"sub": "abc", "email": "a@example.com"},
        "enabled": False,
        "status": "CONFIRMED",
        "created": "2026-01-02T03:04:05+00:00",
        "modified": "2026-01-02T03:04:05+00:00",
        "mfa": [{"DeliveryMedium": "SMS", "AttributeName": "phone_number"}],
    }


def test_bad_pagination_token_is_token_expired(cognito: Any) -> None:
    seeded = seed_pool(cognito, users=5, seed=2)
    # moto answers InvalidToken; Cognito's reply is this one (see test_real_aws_rules).
    message = "Paging marker bm90LWEtdG9rZW4= is invalid for request 0000"
    refuse_call(
        cognito, lambda _p, op: ("InvalidParameterException", message, 400) if op == "ListUsers" else None
    )
    with pytest.raises(PaginationTokenExpired, match=seeded.pool_id) as caught:
        list_users_page(cognito, seeded.pool_id, sub_prefix="a", token="bm90LWEtdG9rZW4=")
    assert "@" not in str(caught.value)


def test_groups_and_memberships(cognito: Any) -> None:
    seeded = seed_pool(cognito, users=150, seed=4)
    cognito.create_group(UserPoolId=seeded.pool_id, GroupName="bare")
    groups = {g["name"]: g for g in list_groups(cognito, seeded.pool_id)}
    assert set(groups) == {*seeded.groups, "bare"}
    assert groups["bare"] == {"name": "bare", "description": None, "precedence": None, "roleArn": None}
    assert groups["admins"]["precedence"] == 1
    assert groups["admins"]["roleArn"].endswith(":role/cognito-backuper-demo-admins")
    assert groups["viewers"]["description"] == "Read-only access"
    assert groups["viewers"]["roleArn"] is None

    total = 0
    for name, expected in seeded.groups.items():
        members: list[str] = []
        token = None
        for _ in range(1_000):
            page, token = list_group_members_page(cognito, seeded.pool_id, name, token, limit=13)
            members.extend(page)
            if token is None:
                break
        assert len(members) == expected
        assert len(set(members)) == expected
        total += expected
    assert total == seeded.memberships
    assert list_group_members_page(cognito, seeded.pool_id, "bare", None) == ([], None)


def test_group_deleted_meanwhile_has_no_members(cognito: Any) -> None:
    seeded = seed_pool(cognito, users=5, seed=4)
    assert list_group_members_page(cognito, seeded.pool_id, "no-such-group", None) == ([], None)


def test_listing_survives_injected_throttling(cognito: Any) -> None:
    """Every third ListUsers attempt is throttled; the rate-limited client still reads every user once."""
    seeded = seed_pool(cognito, users=120, seed=6)
    body = json.dumps({"__type": "TooManyRequestsException", "message": "Rate exceeded"}).encode()
    attempts = Counter[str]()

    class _Raw:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield body

    def throttle_some(event_name: str, **_: Any) -> AWSResponse | None:
        if not event_name.endswith(".ListUsers"):
            return None
        attempts["ListUsers"] += 1
        if attempts["ListUsers"] % 3 == 0:
            headers = HTTPHeaders()
            headers["x-amzn-RequestId"] = "t"
            headers["Content-Type"] = "application/x-amz-json-1.1"
            return AWSResponse("https://cognito-idp.us-east-1.amazonaws.com/", 400, headers, _Raw())
        return None

    budget = RateBudget(fraction=1.0, sleep=lambda s: None)
    install(cognito, budget, sleep=lambda s: None)
    cognito.meta.events.register_first("before-send.cognito-idp", throttle_some)

    users = _all_users(cognito, seeded.pool_id, limit=10)

    assert sorted(u["username"] for u in users) == sorted({u["username"] for u in users})
    assert len(users) == 120
    assert budget.throttles["UserList"] == attempts["ListUsers"] // 3
    assert budget.calls["ListUsers"] == attempts["ListUsers"]
