"""User and membership restore on moto: fidelity, re-runs, merges, selective and e-mail-username pools."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pipeline.restore import passwords, user_restore
from pipeline.restore.diff import diff_pool
from pipeline.restore.pool_restore import restore_pool_config
from pipeline.restore.user_restore import UserOutcome, restore_user, restore_user_groups
from tests.helpers.restore_world import World, backup_pool, make_world, restore

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient

POLICY = {"MinimumLength": 12}


@pytest.fixture
def world() -> Iterator[World]:
    yield from make_world(users=40)


@pytest.fixture
def email_world() -> Iterator[World]:
    yield from make_world(users=30, email=True, seed_value=5)


def _users(cognito: CognitoIdentityProviderClient, pool_id: str) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"UserPoolId": pool_id, "Limit": 60}
    while True:
        page = cognito.list_users(**kwargs)
        users.extend(dict(u) for u in page["Users"])
        if not page.get("PaginationToken"):
            return users
        kwargs["PaginationToken"] = page["PaginationToken"]


def _record(
    username: str, status: str = "CONFIRMED", enabled: bool = True, **attributes: str
) -> dict[str, Any]:
    return {
        "username": username,
        "attributes": {"sub": "00000000-old", "email": f"{username}@example.com", **attributes},
        "enabled": enabled,
        "status": status,
    }


def test_restore_into_a_new_pool_is_faithful(world: World) -> None:
    cognito = world.cognito
    reader = backup_pool(world)
    done = restore(cognito, reader, new_pool_name="restored")
    new_pool = done.config.pool_id

    assert Counter(o.result for o in done.outcomes) == {"created": world.pool.users}
    assert all(o.note is None for o in done.outcomes)  # UNCONFIRMED went through SignUp, no fallback
    assert done.memberships == (world.pool.memberships, 0, 0)
    statuses = Counter(u["UserStatus"] for u in _users(cognito, new_pool))
    assert statuses["UNCONFIRMED"] == world.pool.unconfirmed > 0
    assert sum(not u["Enabled"] for u in _users(cognito, new_pool)) == world.pool.disabled > 0
    # Cognito assigns new subs; the outcomes carry both for the old -> new map.
    assert all(o.old_sub and o.new_sub and o.old_sub != o.new_sub for o in done.outcomes)
    report = diff_pool(cognito, reader, new_pool, extra_allowed=False)
    assert report.identical, report.counts()
    assert report.users_compared == world.pool.users


def test_second_run_creates_nothing(world: World) -> None:
    cognito = world.cognito
    reader = backup_pool(world)
    first = restore(cognito, reader, new_pool_name="restored", finalize=False)
    again = restore(cognito, reader, new_pool_name="restored", finalize=False)
    assert again.config.pool_id == first.config.pool_id
    assert Counter(o.result for o in again.outcomes) == {"existing": world.pool.users}
    assert all(o.note is None for o in again.outcomes)
    assert again.username_map == first.username_map
    assert again.memberships == (0, world.pool.memberships, 0)
    assert len(_users(cognito, first.config.pool_id)) == world.pool.users
    assert diff_pool(cognito, reader, first.config.pool_id, extra_allowed=False).identical


def test_restore_into_the_same_pool_brings_back_only_what_was_lost(world: World) -> None:
    cognito = world.cognito
    pool_id = world.pool.pool_id
    reader = backup_pool(world)
    records = {r["username"]: r for r in reader.users()}
    memberships = list(reader.memberships())
    disabled = next(u for u, r in records.items() if not r["enabled"])
    member = memberships[0]
    plain = [
        u
        for u, r in records.items()
        if r["enabled"] and r["status"] == "CONFIRMED" and u != member["username"]
    ]
    deleted = [disabled, *plain[:2]]
    for username in deleted:
        cognito.admin_delete_user(UserPoolId=pool_id, Username=username)
    cognito.admin_remove_user_from_group(
        UserPoolId=pool_id, Username=member["username"], GroupName=member["group"]
    )
    untouched = {u["Username"]: u for u in _users(cognito, pool_id)}

    done = restore(cognito, reader, target_pool_id=pool_id)

    assert done.config.conflicts == []
    results = {o.old_username: o.result for o in done.outcomes}
    assert sorted(u for u, r in results.items() if r == "created") == sorted(deleted)
    assert Counter(results.values())["existing"] == world.pool.users - 3
    lost = 1 + sum(m["username"] in deleted for m in memberships)
    assert done.memberships == (lost, world.pool.memberships - lost, 0)
    assert diff_pool(cognito, reader, pool_id, extra_allowed=False).identical
    after = {u["Username"]: u for u in _users(cognito, pool_id)}
    for username, user in untouched.items():  # nothing else changed
        assert after[username]["UserLastModifiedDate"] == user["UserLastModifiedDate"]
        assert after[username]["Attributes"] == user["Attributes"]


def test_selective_restore_of_one_user(world: World) -> None:
    cognito = world.cognito
    reader = backup_pool(world)
    memberships = list(reader.memberships())
    chosen = memberships[0]["username"]
    done = restore(cognito, reader, new_pool_name="one", users={chosen})
    assert [(o.old_username, o.result) for o in done.outcomes] == [(chosen, "created")]
    users = _users(cognito, done.config.pool_id)
    assert [u["Username"] for u in users] == [chosen]
    assert done.memberships[0] == sum(m["username"] == chosen for m in memberships)
    report = diff_pool(cognito, reader, done.config.pool_id, users={chosen}, extra_allowed=False)
    assert report.identical and report.users_compared == 1


def test_email_username_pool(email_world: World) -> None:
    cognito = email_world.cognito
    reader = backup_pool(email_world)
    done = restore(cognito, reader, new_pool_name="restored", finalize=False)
    again = restore(cognito, reader, new_pool_name="restored", finalize=False)
    assert Counter(o.result for o in done.outcomes) == {"created": email_world.pool.users}
    assert Counter(o.result for o in again.outcomes) == {"existing": email_world.pool.users}
    assert again.username_map == done.username_map
    # Usernames in such pools are opaque ids: new ones, never the e-mail address.
    assert all(new != old and "@" not in new for old, new in done.username_map.items())
    pool_id = done.config.pool_id
    assert len(_users(cognito, pool_id)) == email_world.pool.users
    assert diff_pool(cognito, reader, pool_id, username_map=done.username_map, extra_allowed=False).identical
    assert diff_pool(cognito, reader, pool_id, extra_allowed=False).identical  # matched by e-mail


def test_the_random_passwords_never_surface(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    issued: list[str] = []

    def recording(policy: Any) -> str:
        issued.append(passwords.random_password(policy))
        return issued[-1]

    monkeypatch.setattr(user_restore, "random_password", recording)
    cognito = world.cognito
    reader = backup_pool(world)
    done = restore(cognito, reader, new_pool_name="restored")
    pool_id = done.config.pool_id
    assert len(issued) >= world.pool.users
    visible = [json.dumps(_users(cognito, pool_id), default=str), repr(done)]
    for user in _users(cognito, pool_id):
        got = cognito.admin_get_user(UserPoolId=pool_id, Username=user["Username"])
        visible.append(json.dumps(got, default=str))
    text = "\n".join(visible)
    assert not [p for p in issued if p in text]


def test_unconfirmed_without_a_temporary_client_falls_back_and_says_so(world: World) -> None:
    cognito = world.cognito
    target = cognito.create_user_pool(PoolName="plain")["UserPool"]["Id"]
    kwargs: dict[str, Any] = {"username_attributes": [], "password_policy": POLICY, "temp_client_id": None}
    unconfirmed = restore_user(cognito, target, _record("u1", "UNCONFIRMED"), **kwargs)
    reset = restore_user(cognito, target, _record("u2", "RESET_REQUIRED"), **kwargs)
    assert (unconfirmed.result, reset.result) == ("created", "created")
    assert unconfirmed.note and "instead of UNCONFIRMED" in unconfirmed.note
    assert reset.note and "instead of RESET_REQUIRED" in reset.note
    for username in ("u1", "u2"):
        user = cognito.admin_get_user(UserPoolId=target, Username=username)
        assert user["UserStatus"] == "FORCE_CHANGE_PASSWORD"


def test_an_interrupted_creation_is_finished_and_a_live_user_left_alone(world: World) -> None:
    cognito = world.cognito
    target = cognito.create_user_pool(PoolName="plain")["UserPool"]["Id"]
    kwargs: dict[str, Any] = {"username_attributes": [], "password_policy": POLICY, "temp_client_id": None}
    # A run that stopped right after AdminCreateUser: neither disabled nor confirmed yet.
    cognito.admin_create_user(UserPoolId=target, Username="half", MessageAction="SUPPRESS")
    outcome = restore_user(cognito, target, _record("half", enabled=False), **kwargs, owns_pool=True)
    assert outcome.result == "existing"
    assert outcome.note == "finished an interrupted restore: confirmed with a random password, disabled"
    user = cognito.admin_get_user(UserPoolId=target, Username="half")
    assert (user["UserStatus"], user["Enabled"]) == ("CONFIRMED", False)


def test_a_merge_never_changes_a_user_that_drifted_since_the_backup(world: World) -> None:
    """Someone else's pool: a user re-enabled since the backup, who never signed in, looks half-created; the
    dry run calls it 'existing that differ (left as they are)', and the restore leaves it so."""
    cognito = world.cognito
    target = cognito.create_user_pool(PoolName="production")["UserPool"]["Id"]
    kwargs: dict[str, Any] = {"username_attributes": [], "password_policy": POLICY, "temp_client_id": None}
    cognito.admin_create_user(UserPoolId=target, Username="drifted", MessageAction="SUPPRESS")
    outcome = restore_user(cognito, target, _record("drifted", enabled=False), **kwargs)
    assert (outcome.result, outcome.note) == ("existing", None)
    user = cognito.admin_get_user(UserPoolId=target, Username="drifted")
    assert (user["UserStatus"], user["Enabled"]) == ("FORCE_CHANGE_PASSWORD", True)
    # A user who has signed in (CONFIRMED) and was re-enabled since the backup: a merge never changes it.
    cognito.admin_create_user(UserPoolId=target, Username="live", MessageAction="SUPPRESS")
    cognito.admin_set_user_password(
        UserPoolId=target, Username="live", Password="Aa1!" + "x" * 16, Permanent=True
    )
    outcome = restore_user(cognito, target, _record("live", enabled=False), **kwargs)
    assert (outcome.result, outcome.note) == ("existing", None)
    assert cognito.admin_get_user(UserPoolId=target, Username="live")["Enabled"] is True


def test_federated_and_unusable_records_are_reported(world: World) -> None:
    cognito = world.cognito
    target = cognito.create_user_pool(PoolName="email", UsernameAttributes=["email"])["UserPool"]["Id"]
    kwargs: dict[str, Any] = {
        "username_attributes": ["email"],
        "password_policy": POLICY,
        "temp_client_id": None,
    }
    federated = _record("Google_123", "EXTERNAL_PROVIDER", identities='[{"providerName":"Google"}]')
    assert restore_user(cognito, target, federated, **kwargs).result == "federated"
    no_email = {
        "username": "x",
        "attributes": {"given_name": "Nobody"},
        "enabled": True,
        "status": "CONFIRMED",
    }
    outcome = restore_user(cognito, target, no_email, **kwargs)
    assert outcome.result == "failed"
    assert outcome.note and "Nobody" not in outcome.note
    assert _users(cognito, target) == []


def test_a_rejected_user_fails_alone_without_its_data_in_the_note(world: World) -> None:
    cognito = world.cognito
    target = cognito.create_user_pool(PoolName="email", UsernameAttributes=["email"])["UserPool"]["Id"]
    kwargs: dict[str, Any] = {
        "username_attributes": ["email"],
        "password_policy": POLICY,
        "temp_client_id": None,
    }
    bad = _record("u", email="not-an-email")
    outcome = restore_user(cognito, target, bad, **kwargs)
    assert outcome.result == "failed"
    assert outcome.note == "AdminCreateUser: InvalidParameterException"


def test_groups_follow_their_user_and_skip_what_is_missing(world: World) -> None:
    cognito = world.cognito
    reader = backup_pool(world)
    some = next(iter(reader.memberships()))
    target = cognito.create_user_pool(PoolName="t")["UserPool"]["Id"]
    restore_pool_config(cognito, reader.config(), source="a/b", target_pool_id=target, groups={some["group"]})
    record = next(u for u in reader.users() if u["username"] == some["username"])
    kwargs: dict[str, Any] = {"username_attributes": [], "password_policy": None, "temp_client_id": None}
    created = restore_user(cognito, target, record, **kwargs)
    assert created.result == "created"
    missing: set[str] = set()
    groups = [some["group"], "no-such-group"]
    assert restore_user_groups(cognito, target, created, groups, missing) == (1, 0, 1)
    assert missing == {"no-such-group"}
    # Run again (a retried slice): the user now exists, its groups are looked up and nothing is added twice.
    again = restore_user(cognito, target, record, **kwargs)
    assert again.result == "existing"
    assert restore_user_groups(cognito, target, again, groups, missing) == (0, 1, 1)
    members = cognito.list_users_in_group(UserPoolId=target, GroupName=some["group"])["Users"]
    assert [m["Username"] for m in members] == [some["username"]]
    # A user that was not restored gets none of its groups.
    failed = UserOutcome(
        some["username"], None, None, None, "failed", "AdminCreateUser: InvalidParameterException"
    )
    assert restore_user_groups(cognito, target, failed, groups, set()) == (0, 0, 2)
    # A user deleted meanwhile is skipped, and its group is not taken for missing.
    cognito.admin_delete_user(UserPoolId=target, Username=some["username"])
    assert restore_user_groups(cognito, target, created, [some["group"]], missing) == (0, 0, 1)
    assert some["group"] not in missing


def test_throttled_pipeline_client_works_too() -> None:
    """The library through the pipeline's rate-budgeted client (what the tasks pass)."""
    for world in make_world(users=6):
        reader = backup_pool(world)
        done = restore(world.clients.cognito, reader, new_pool_name="restored")
        assert Counter(o.result for o in done.outcomes) == {"created": 6}
        assert diff_pool(world.clients.cognito, reader, done.config.pool_id).identical
