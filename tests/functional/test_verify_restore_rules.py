"""VerifyRestore on what real Cognito does: listings that lag behind writes, and differences a restore makes on
purpose (federated, RESET_REQUIRED and UNCONFIRMED-fallback users), which must not fail a faithful restore."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.core.contracts import RestoreRequest, TargetPool
from pipeline.restore import steps
from pipeline.restore.diff import diff_pool
from tests.helpers.real_aws_doubles import answer_call
from tests.helpers.restore_world import World, backup_pool, make_world, pinned, restore


@pytest.fixture
def world() -> Iterator[World]:
    yield from make_world(users=20)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _restored(world: World) -> tuple[RestoreRequest, TargetPool]:
    reader = backup_pool(world)
    done = restore(world.cognito, reader, new_pool_name="restored")
    request: dict[str, Any] = {
        "requestId": "rr-20260101T000000Z-000000000000",
        "backupUri": reader.loc.uri,
        "settings": world.account.storage,
        "target": {"mode": "new", "poolId": None, "poolName": "restored"},
        "shards": reader.doc["shards"],
        "selectionKey": None,
        **pinned(reader),
    }
    target: TargetPool = {
        "poolId": done.config.pool_id,
        "created": True,
        "groupsCreated": done.config.groups_created,
        "conflicts": 0,
        "tempClientId": None,
    }
    return request, target  # type: ignore[return-value]


def _stale_listings(world: World, times: int) -> list[int]:
    """The next ``times`` ListUsers calls answer as a listing that has not caught up yet: no users."""
    served: list[int] = []

    def rule(_params: dict[str, Any], operation: str) -> dict[str, Any] | None:
        if operation != "ListUsers" or len(served) >= times:
            return None
        served.append(1)
        return {"Users": []}

    answer_call(world.clients.cognito, rule)
    return served


def _verify(world: World, request: RestoreRequest, target: TargetPool, **kwargs: Any) -> tuple[Any, int]:
    """VerifyRestore called as the state machine's Choice loop calls it; the verification and the call count."""
    shard_results = [{"done": True}] * len(request["shards"])
    cursor = None
    for calls in range(1, 1000):
        cursor = steps.verify_restore(world.clients, request, target, shard_results, cursor, **kwargs)
        if cursor["done"]:
            return cursor["verification"], calls
    raise AssertionError("VerifyRestore never finished")


def test_a_briefly_stale_listing_is_read_again(world: World) -> None:
    request, target = _restored(world)
    stale = _stale_listings(world, times=2)
    clock = _Clock()
    verification, _ = _verify(world, request, target, clock=clock, sleep=clock.sleep, wall=clock)
    assert len(stale) == 2
    assert verification["passed"] is True, verification
    assert verification["usersCompared"] == world.pool.users
    assert clock.slept == [2.0, 4.0]


def test_a_listing_that_never_catches_up_fails_at_the_deadline(world: World) -> None:
    request, target = _restored(world)
    _stale_listings(world, times=10_000)
    clock = _Clock()
    verification, _ = _verify(world, request, target, settle_s=60, clock=clock, sleep=clock.sleep, wall=clock)
    assert verification["passed"] is False
    assert verification["differences"]["users_missing"] == world.pool.users
    assert 0 < sum(clock.slept) <= 60


def test_verification_pages_in_slices_and_resumes(world: World) -> None:
    """No call depends on the pool's size: with no time to spare, each call reads one page and returns."""
    request, target = _restored(world)
    per_call: list[int] = [0]

    def count(model: Any, **_: Any) -> None:
        if model.name in ("ListUsers", "ListUsersInGroup"):
            per_call[-1] += 1

    world.clients.cognito.meta.events.register_first("before-call.cognito-identity-provider", count)
    shard_results = [{"done": True}] * len(request["shards"])
    cursor = None
    while cursor is None or not cursor["done"]:
        per_call.append(0)
        cursor = steps.verify_restore(world.clients, request, target, shard_results, cursor, budget_s=0)
    verification = cursor["verification"]
    assert verification is not None and verification["passed"] is True, verification
    assert max(per_call) == 1  # one page per call, whatever the pool's size
    pages_of_groups = len(world.pool.groups)  # each group's members fit one page here
    assert len(per_call) - 1 >= 1 + pages_of_groups
    sliced = verification["usersCompared"]
    one_go, calls = _verify(world, request, target)
    assert (one_go["usersCompared"], one_go["passed"]) == (sliced, True)
    assert calls == 1  # with time to spare, one call does it all


# --- expected differences ----------------------------------------------------------------------------------------


class _Backup:
    """A backup reader's three reads, from records in memory."""

    def __init__(self, users: list[dict[str, Any]], memberships: list[dict[str, str]]) -> None:
        self._users, self._memberships = users, memberships

    def config(self) -> dict[str, Any]:
        return {
            "pool": {},
            "groups": [{"name": "staff", "description": None, "precedence": None, "roleArn": None}],
        }

    def users(self) -> Iterator[dict[str, Any]]:
        return iter(self._users)

    def memberships(self) -> Iterator[dict[str, str]]:
        return iter(self._memberships)


def _user(username: str, status: str, **attributes: str) -> dict[str, Any]:
    return {
        "username": username,
        "attributes": {"sub": f"old-{username}", **attributes},
        "enabled": True,
        "status": status,
    }


def _live_pool(world: World) -> str:
    cognito = world.cognito
    pool_id = str(cognito.create_user_pool(PoolName="target")["UserPool"]["Id"])
    cognito.create_group(UserPoolId=pool_id, GroupName="staff")
    for name in ("alice", "rita", "uma"):
        cognito.admin_create_user(UserPoolId=pool_id, Username=name, MessageAction="SUPPRESS")
    cognito.admin_set_user_password(
        UserPoolId=pool_id, Username="alice", Password="Aa1!" + "x" * 16, Permanent=True
    )
    cognito.admin_add_user_to_group(UserPoolId=pool_id, Username="alice", GroupName="staff")
    return pool_id


BACKED_UP = [
    _user("alice", "CONFIRMED"),
    _user("rita", "RESET_REQUIRED"),
    _user("uma", "UNCONFIRMED"),
    _user("Google_1234", "EXTERNAL_PROVIDER", identities='[{"providerName": "Google"}]'),
]
MEMBERSHIPS = [{"group": "staff", "username": "alice"}, {"group": "staff", "username": "Google_1234"}]


def test_what_a_restore_changes_on_purpose_is_classified_and_passes(world: World) -> None:
    pool_id = _live_pool(world)
    report = diff_pool(world.cognito, _Backup(BACKED_UP, MEMBERSHIPS), pool_id, extra_allowed=False)  # type: ignore[arg-type]
    assert report.identical, report
    assert report.expected == {
        "federated": ["Google_1234"],
        "federated_memberships": ["staff: Google_1234"],
        "reset_required": ["rita"],
        "unconfirmed_fallback": ["uma"],
    }
    counts = report.counts()
    assert (counts["expected_federated"], counts["expected_reset_required"]) == (1, 1)
    assert counts["users_missing"] == counts["status_differences"] == 0


def test_an_unexpected_difference_still_fails(world: World) -> None:
    pool_id = _live_pool(world)
    backed_up = [*BACKED_UP, _user("bob", "CONFIRMED"), _user("carl", "CONFIRMED")]
    world.cognito.admin_create_user(UserPoolId=pool_id, Username="carl", MessageAction="SUPPRESS")
    report = diff_pool(world.cognito, _Backup(backed_up, MEMBERSHIPS), pool_id, extra_allowed=False)  # type: ignore[arg-type]
    assert not report.identical
    assert report.users_missing == ["bob"]
    assert report.status_differences == [
        "carl"
    ]  # CONFIRMED restored as FORCE_CHANGE_PASSWORD is not expected
