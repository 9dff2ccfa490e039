"""The benchmark's emulator, virtual clock and approaches, at tiny scale (no timing assertions)."""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

import botocore.exceptions
import pytest

from bench import approaches, history
from bench.emulator import CognitoClient, Emulator, PoolSpec, generate_pool, pipeline_budget
from bench.vclock import VirtualClock
from pipeline.cognito import reading as cognito_read
from pipeline.core.errors import Throttled

POOL = "us-east-1_Bench0001"


@pytest.fixture(autouse=True)
def _fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def _emulator(users: int = 300, groups: int = 5) -> Emulator:
    emulator = Emulator(VirtualClock())
    emulator.add_pool(generate_pool(POOL, PoolSpec(users=users, groups=groups)))
    return emulator


def test_virtual_clock_runs_sleepers_in_time_order() -> None:
    clock = VirtualClock()
    order: list[tuple[str, float]] = []

    def sleeper(name: str, seconds: float) -> str:
        clock.sleep(seconds)
        order.append((name, clock.now()))
        return name

    assert clock.run([lambda: sleeper("slow", 5.0), lambda: sleeper("fast", 2.0)]) == ["slow", "fast"]
    assert order == [("fast", 2.0), ("slow", 5.0)]


def test_virtual_clock_caps_concurrency() -> None:
    clock = VirtualClock()
    clock.run([lambda: clock.sleep(1.0) for _ in range(6)], concurrency=2)
    assert clock.now() == pytest.approx(3.0)


def test_sub_prefix_shards_partition_the_pool_page_by_page() -> None:
    emulator = _emulator()
    client = cast(Any, CognitoClient(emulator))
    seen: list[str] = []
    for prefix in "0123456789abcdef":
        token = None
        while True:
            page = cognito_read.list_users_page(client, POOL, sub_prefix=prefix, token=token, limit=7)
            assert all(u["attributes"]["sub"].startswith(prefix) for u in page.users)
            seen += [u["username"] for u in page.users]
            token = page.next_token
            if token is None:
                break
    assert sorted(seen) == sorted(emulator.pools[POOL].names)


def test_group_members_match_memberships_per_user() -> None:
    emulator = _emulator()
    client = cast(Any, CognitoClient(emulator))
    pool = emulator.pools[POOL]
    by_group = Counter[tuple[str, str]]()
    for group in cognito_read.list_groups(client, POOL):
        token = None
        while True:
            members, token = cognito_read.list_group_members_page(client, POOL, group["name"], token, limit=9)
            by_group.update((group["name"], m) for m in members)
            if token is None:
                break
    per_user = Counter((g, pool.names[i]) for i in range(len(pool.names)) for g in pool.user_groups[i])
    assert by_group == per_user
    assert sum(by_group.values()) == pool.memberships > 0


def test_server_throttles_beyond_the_quota_with_the_real_error_shape() -> None:
    emulator = Emulator(VirtualClock(), latency={}, default_latency=0.0)  # the clock never moves
    emulator.add_pool(generate_pool(POOL, PoolSpec(users=10, groups=5)))
    client = CognitoClient(emulator, max_attempts=1)  # no client-side budget: nothing paces the calls
    for _ in range(15):  # one second of burst at 15 DescribeUserPool per second
        client.describe_user_pool(UserPoolId=POOL)
    with pytest.raises(Throttled) as info:
        client.describe_user_pool(UserPoolId=POOL)
    assert emulator.throttled["DescribeUserPool"] == 1
    assert emulator.calls["DescribeUserPool"] == 16  # one second of burst, then the throttled one
    cause = info.value.__cause__
    assert isinstance(cause, botocore.exceptions.ClientError)
    assert cause.response["Error"]["Code"] == "TooManyRequestsException"
    assert cause.response["ResponseMetadata"]["HTTPStatusCode"] == 429


def test_unknown_pool_is_a_client_error() -> None:
    client = CognitoClient(_emulator(users=1))
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.list_users(UserPoolId="us-east-1_Missing01")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_the_pipeline_budget_keeps_parallel_workers_unthrottled() -> None:
    emulator = _emulator(users=5)
    budget = pipeline_budget(emulator.clock)
    client = CognitoClient(emulator, budget=budget)
    emulator.clock.run([lambda: [client.describe_user_pool(UserPoolId=POOL) for _ in range(10)]] * 8)
    assert emulator.throttled.total() == 0
    assert budget.calls["DescribeUserPool"] == 80
    assert emulator.clock.now() >= 80 / 15 - 1  # paced at the UserPoolRead quota


def test_virtual_clock_runs_pools_side_by_side_with_their_own_caps() -> None:
    clock = VirtualClock()

    def task(seconds: float) -> float:
        clock.sleep(seconds)
        return clock.now()

    slow = [lambda: task(1.0) for _ in range(4)]
    fast = [lambda: task(0.75) for _ in range(3)]
    slow_done, fast_done = clock.run_pools([(slow, 2), (fast, 1)])
    assert slow_done == pytest.approx([1.0, 1.0, 2.0, 2.0])  # two at a time
    assert fast_done == pytest.approx([0.75, 1.5, 2.25])  # one at a time, beside them


def test_pipeline_backup_reads_every_user_and_membership_once() -> None:
    emulator = _emulator(users=2_500, groups=6)  # 16 shards
    run = approaches.backup_pipeline(emulator, POOL)
    pool = emulator.pools[POOL]
    assert (run.users, run.memberships, run.shards) == (2_500, pool.memberships, 16)
    assert run.throttled == 0
    assert "AdminListGroupsForUser" not in run.calls
    # config.bin and its capture slice's work part, one part per shard, one memberships part per group slice
    assert run.s3_puts == 2 + 16 + 6
    assert run.invocations["ExportUsers"] == 16


def test_other_approaches_count_the_same_pool() -> None:
    emulator = _emulator(users=400)
    pool = emulator.pools[POOL]
    cli = approaches.backup_cli(emulator, POOL)
    reference = approaches.backup_reference(emulator, POOL)
    assert (cli.users, cli.memberships) == (reference.users, reference.memberships) == (400, pool.memberships)
    assert cli.calls["AdminListGroupsForUser"] == 400
    assert "AdminListGroupsForUser" not in reference.calls


def test_extrapolated_cli_run_is_labelled() -> None:
    emulator = _emulator(users=600)
    run = approaches.backup_cli(emulator, POOL, max_users=120)
    assert run.extrapolated_from == 120
    assert run.users == 600
    assert run.calls["AdminListGroupsForUser"] == 600


def test_restore_recreates_users_states_and_memberships() -> None:
    emulator = _emulator(users=200)
    source = emulator.pools[POOL]
    run = approaches.restore_pipeline(emulator, source, "us-east-1_Target001")
    target = emulator.pools["us-east-1_Target001"]
    assert run.users == len(target.names) == 200
    assert run.memberships == target.memberships == source.memberships
    disabled = sum(not e for e in source.enabled)
    assert run.calls["AdminDisableUser"] == disabled == sum(not e for e in target.enabled)
    assert run.calls["AdminSetUserPassword"] == source.status.count("CONFIRMED")


def test_sequential_restore_gives_the_same_pool() -> None:
    emulator = _emulator(users=150)
    source = emulator.pools[POOL]
    approaches.restore_sequential(emulator, source, "us-east-1_Target002")
    target = emulator.pools["us-east-1_Target002"]
    assert sorted(target.names) == sorted(source.names)
    assert target.memberships == source.memberships


def test_history_inline_map_exceeds_the_quota_where_distributed_does_not() -> None:
    est = history.estimate(10_000_000, 12_000_000, concurrency=256)
    assert est.shards == 256
    assert est.inline_events > history.HISTORY_QUOTA
    assert est.distributed_parent_events < history.HISTORY_QUOTA
    assert est.distributed_child_events < 1_000


def test_restore_history_needs_the_distributed_map_in_the_millions() -> None:
    small = history.restore_estimate(100_000, concurrency=8, users_per_second=11.6)
    assert small.shards == 16 and small.inline_events < history.HISTORY_QUOTA
    large = history.restore_estimate(10_000_000, concurrency=8, users_per_second=11.6)
    assert large.shards == 256
    assert large.inline_events > history.HISTORY_QUOTA
    assert large.distributed_parent_events < 200
    assert large.distributed_child_events < 1_000
