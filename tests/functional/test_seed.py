"""The demo pool seeder, checked against what moto then holds."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from pipeline.core.errors import InvalidRequest
from pipeline.operator.seed import GROUPS, seed_pool


def _users(cognito: Any, pool_id: str) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"UserPoolId": pool_id, "Limit": 60}
    for _ in range(1_000):
        page = cognito.list_users(**kwargs)
        users.extend(page["Users"])
        if not page.get("PaginationToken"):
            return users
        kwargs["PaginationToken"] = page["PaginationToken"]
    raise AssertionError("pagination did not end")


def _members(cognito: Any, pool_id: str, group: str) -> list[str]:
    kwargs: dict[str, Any] = {"UserPoolId": pool_id, "GroupName": group, "Limit": 60}
    names: list[str] = []
    for _ in range(1_000):
        page = cognito.list_users_in_group(**kwargs)
        names.extend(u["Username"] for u in page["Users"])
        if not page.get("NextToken"):
            return names
        kwargs["NextToken"] = page["NextToken"]
    raise AssertionError("pagination did not end")


def test_seeded_pool_matches_its_report(cognito: Any) -> None:
    progress: list[tuple[int, int]] = []
    seeded = seed_pool(
        cognito, users=240, name="demo-pool", seed=11, on_progress=lambda d, t: progress.append((d, t))
    )

    assert progress[-1] == (240, 240)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    users = _users(cognito, seeded.pool_id)
    assert len(users) == seeded.users == 240
    statuses = Counter(u["UserStatus"] for u in users)
    assert statuses == {"CONFIRMED": 240 - seeded.unconfirmed, "UNCONFIRMED": seeded.unconfirmed}
    assert seeded.unconfirmed == 12  # 5%
    assert sum(not u["Enabled"] for u in users) == seeded.disabled == 12
    disabled_states = {u["UserStatus"] for u in users if not u["Enabled"]}
    assert disabled_states == {"CONFIRMED"}

    attrs = [{a["Name"]: a["Value"] for a in u["Attributes"]} for u in users]
    assert sorted(a["email"] for a in attrs) == sorted(seeded.emails)
    assert sorted(a["phone_number"] for a in attrs) == sorted(seeded.phones)
    assert all(e.endswith("@example.com") for e in seeded.emails)
    assert all(p.startswith("+1555") and len(p) == 12 for p in seeded.phones)
    assert all(a["custom:plan"] in {"free", "pro", "enterprise"} for a in attrs)
    assert all(a["custom:seats"].isdigit() for a in attrs)
    verified = sum(a.get("email_verified") == "true" for a in attrs)
    assert 0.75 * 228 < verified < 228  # most, not all, of the admin-created users

    for group, count in seeded.groups.items():
        assert len(_members(cognito, seeded.pool_id, group)) == count
    assert sum(seeded.groups.values()) == seeded.memberships
    per_user = Counter(name for group in seeded.groups for name in _members(cognito, seeded.pool_id, group))
    assert 0.45 * 240 < len(per_user) < 0.75 * 240  # about 60% of the users are in a group
    assert max(per_user.values()) <= 3
    assert any(v > 1 for v in per_user.values())  # memberships overlap


def test_pool_configuration(cognito: Any) -> None:
    seeded = seed_pool(cognito, users=3, name="Demo Pool", seed=1)
    pool = cognito.describe_user_pool(UserPoolId=seeded.pool_id)["UserPool"]
    assert pool["MfaConfiguration"] == "OFF"
    assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] == 12
    schema = {a["Name"]: a for a in pool["SchemaAttributes"]}
    assert schema["custom:tenant_id"]["AttributeDataType"] == "String"
    assert schema["custom:seats"]["AttributeDataType"] == "Number"
    assert "AutoVerifiedAttributes" not in pool or pool["AutoVerifiedAttributes"] == []
    domain = cognito.describe_user_pool_domain(Domain=pool["Domain"])["DomainDescription"]
    assert domain["UserPoolId"] == seeded.pool_id
    assert pool["Domain"].startswith("demo-pool-")
    clients = cognito.list_user_pool_clients(UserPoolId=seeded.pool_id, MaxResults=60)["UserPoolClients"]
    assert sorted(c["ClientName"] for c in clients) == ["demo-backend", "demo-web"]
    groups = {g["GroupName"]: g for g in cognito.list_groups(UserPoolId=seeded.pool_id)["Groups"]}
    assert set(groups) == {g[0] for g in GROUPS}
    assert [n for n, g in groups.items() if g.get("RoleArn")] == ["admins"]


def test_same_seed_same_data(cognito: Any) -> None:
    a = seed_pool(cognito, users=40, name="a", seed=9)
    b = seed_pool(cognito, users=40, name="b", seed=9)
    c = seed_pool(cognito, users=40, name="c", seed=10)
    assert a.pool_id != b.pool_id
    assert (a.emails, a.groups, a.disabled, a.unconfirmed) == (b.emails, b.groups, b.disabled, b.unconfirmed)
    assert (a.emails, a.groups) != (c.emails, c.groups)


def test_email_as_username(cognito: Any) -> None:
    seeded = seed_pool(cognito, users=30, seed=2, username_attribute_email=True)
    pool = cognito.describe_user_pool(UserPoolId=seeded.pool_id)["UserPool"]
    assert pool["UsernameAttributes"] == ["email"]
    users = _users(cognito, seeded.pool_id)
    assert len(users) == 30
    for u in users:
        attrs = {a["Name"]: a["Value"] for a in u["Attributes"]}
        assert u["Username"] == attrs["sub"]  # Cognito names such users by their sub
        assert attrs["email"] in seeded.emails
    assert Counter(u["UserStatus"] for u in users)["UNCONFIRMED"] == seeded.unconfirmed
    members = sum(len(_members(cognito, seeded.pool_id, g)) for g in seeded.groups)
    assert members == seeded.memberships


def test_empty_and_invalid(cognito: Any) -> None:
    seeded = seed_pool(cognito, users=0)
    assert (seeded.users, seeded.memberships, seeded.emails) == (0, 0, [])
    with pytest.raises(InvalidRequest):
        seed_pool(cognito, users=-1)


def _snapshot(cognito: Any, pool_id: str) -> dict[str, Any]:
    """Users as the API lists them (every generated value left out: sub, dates), and the groups' members."""
    users = {}
    for u in _users(cognito, pool_id):
        attrs = {a["Name"]: a["Value"] for a in u["Attributes"] if a["Name"] != "sub"}
        users[u["Username"]] = (attrs, u["UserStatus"], u["Enabled"])
    groups = {g[0]: sorted(_members(cognito, pool_id, g[0])) for g in GROUPS}
    return {"users": users, "groups": groups}


@pytest.mark.parametrize("email_usernames", [False, True])
def test_direct_user_writes_leave_the_pool_the_api_leaves(cognito: Any, email_usernames: bool) -> None:
    from moto.core.models import DEFAULT_ACCOUNT_ID

    from pipeline.operator.local_engine import moto_compat
    from pipeline.operator.local_engine.moto_seed import DirectCognito

    moto_compat.install()
    through_api = seed_pool(cognito, users=60, name="api", seed=3, username_attribute_email=email_usernames)
    direct = seed_pool(
        cognito,
        users=60,
        name="direct",
        seed=3,
        username_attribute_email=email_usernames,
        user_writes=DirectCognito(DEFAULT_ACCOUNT_ID, "us-east-1"),
    )
    assert direct.groups == through_api.groups
    assert (direct.disabled, direct.unconfirmed) == (through_api.disabled, through_api.unconfirmed)
    api_pool = _snapshot(cognito, through_api.pool_id)
    direct_pool = _snapshot(cognito, direct.pool_id)
    if email_usernames:  # usernames are generated ids there: compare by e-mail
        api_pool["users"] = sorted(api_pool["users"].values(), key=repr)
        direct_pool["users"] = sorted(direct_pool["users"].values(), key=repr)
        api_pool["groups"] = {g: len(m) for g, m in api_pool["groups"].items()}
        direct_pool["groups"] = {g: len(m) for g, m in direct_pool["groups"].items()}
    assert direct_pool == api_pool
    assert len(api_pool["users"]) == 60
