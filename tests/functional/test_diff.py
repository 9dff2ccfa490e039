"""Backup-vs-pool diff on moto: it finds each kind of difference, and names users and attributes, never values."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.restore.diff import DiffReport, diff_pool
from tests.helpers.restore_world import World, backup_pool, make_world


@pytest.fixture
def world() -> Iterator[World]:
    yield from make_world(users=20)


def _pick(reader: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    users = [u for u in reader.users() if u["enabled"] and u["status"] == "CONFIRMED"]
    membership = next(iter(reader.memberships()))
    first = next(u for u in users if u["username"] != membership["username"])
    second = next(u for u in users if u["username"] not in (first["username"], membership["username"]))
    return first, second, membership


def test_a_fresh_backup_matches_its_pool(world: World) -> None:
    reader = backup_pool(world)
    report = diff_pool(world.cognito, reader, world.pool.pool_id, extra_allowed=False)
    assert report.identical
    assert report.users_compared == world.pool.users
    assert set(report.counts().values()) == {0, world.pool.users}


def test_each_kind_of_difference_is_found(world: World) -> None:
    cognito, pool_id = world.cognito, world.pool.pool_id
    reader = backup_pool(world)
    changed, disabled, membership = _pick(reader)
    cognito.admin_update_user_attributes(
        UserPoolId=pool_id,
        Username=changed["username"],
        UserAttributes=[{"Name": "custom:plan", "Value": "changed-plan-value"}],
    )
    cognito.admin_disable_user(UserPoolId=pool_id, Username=disabled["username"])
    cognito.admin_remove_user_from_group(
        UserPoolId=pool_id, Username=membership["username"], GroupName=membership["group"]
    )
    cognito.admin_create_user(
        UserPoolId=pool_id,
        Username="newcomer",
        MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "email", "Value": "newcomer@example.com"}],
    )
    cognito.update_group(UserPoolId=pool_id, GroupName="viewers", Precedence=99)

    report = diff_pool(cognito, reader, pool_id)

    assert report.attribute_differences == {changed["username"]: ["custom:plan"]}
    assert report.enabled_differences == [disabled["username"]]
    assert report.memberships_missing == [(membership["group"], membership["username"])]
    assert report.users_extra == ["newcomer"]
    assert report.group_setting_differences == ["viewers: precedence"]
    assert report.users_missing == report.status_differences == []
    assert report.memberships_extra == []
    assert not report.identical
    counts = report.counts()
    assert (counts["attribute_differences"], counts["users_extra"], counts["users_compared"]) == (
        1,
        1,
        world.pool.users,
    )
    # The report carries names only: no attribute value of any user.
    text = repr(report)
    assert "changed-plan-value" not in text and "newcomer@example.com" not in text
    assert not any(email in text for email in world.pool.emails)


def test_extras_count_only_when_not_allowed(world: World) -> None:
    cognito, pool_id = world.cognito, world.pool.pool_id
    reader = backup_pool(world)
    cognito.admin_create_user(UserPoolId=pool_id, Username="newcomer", MessageAction="SUPPRESS")
    cognito.create_group(UserPoolId=pool_id, GroupName="extra-group")
    allowed = diff_pool(cognito, reader, pool_id)
    strict = diff_pool(cognito, reader, pool_id, extra_allowed=False)
    assert allowed.users_extra == strict.users_extra == ["newcomer"]
    assert allowed.groups_extra == ["extra-group"]
    assert allowed.identical
    assert not strict.identical


def test_missing_users_and_status_differences(world: World) -> None:
    cognito, pool_id = world.cognito, world.pool.pool_id
    reader = backup_pool(world)
    gone, reset, _ = _pick(reader)
    cognito.admin_delete_user(UserPoolId=pool_id, Username=gone["username"])
    cognito.admin_set_user_password(
        UserPoolId=pool_id, Username=reset["username"], Password="Aa1!" + "y" * 16, Permanent=False
    )
    report = diff_pool(cognito, reader, pool_id)
    assert report.users_missing == [gone["username"]]
    assert report.status_differences == [reset["username"]]
    assert report.users_compared == world.pool.users - 1
    assert not report.identical


def test_selection_restricts_the_comparison(world: World) -> None:
    cognito, pool_id = world.cognito, world.pool.pool_id
    reader = backup_pool(world)
    changed, other, _ = _pick(reader)
    cognito.admin_disable_user(UserPoolId=pool_id, Username=other["username"])
    cognito.delete_group(UserPoolId=pool_id, GroupName="billing")
    only = diff_pool(
        cognito, reader, pool_id, users={changed["username"]}, groups={"admins"}, extra_allowed=False
    )
    assert only.identical  # the other user, the other group and every extra are out of scope
    assert only.users_compared == 1
    wider = diff_pool(cognito, reader, pool_id, groups={"billing"})
    assert wider.groups_missing == ["billing"]
    assert wider.enabled_differences == [other["username"]]


def test_empty_report_is_identical() -> None:
    report = DiffReport()
    assert report.identical
    assert report.counts()["users_missing"] == 0
    report.memberships_extra.append(("g", "u"))
    assert report.identical
    report.extra_allowed = False
    assert not report.identical
