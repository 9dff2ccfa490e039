"""The deployment-wide rate budget: many processes (one SharedRateBudget each) on one DynamoDB table in moto.

Time is the benchmark's virtual clock: it advances only when every worker thread sleeps on it, so the assertions
count tokens per virtual window, never wall-clock seconds.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bench.vclock import VirtualClock
from pipeline.cognito import shared_budget, throttle
from pipeline.cognito.shared_budget import (
    BucketState,
    DynamoBucketStore,
    MemoryBucketStore,
    SharedRateBudget,
    report,
    take,
)
from pipeline.operator.local_engine import moto_compat

TABLE = "cognito-backuper-rate-budget"
CEILING = throttle.QUOTA_RPS["UserList"] * 0.5  # 15 calls/s: the deployed 50% of UserList


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    moto_compat.install_dynamodb_lock()  # DynamoDB's per-item atomicity, which moto lacks under threads
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        shared_budget.create_table(client, TABLE)
        yield client


def _budget(client: Any, clock: VirtualClock, **kwargs: Any) -> SharedRateBudget:
    return SharedRateBudget(
        DynamoBucketStore(client, TABLE), fraction=0.5, clock=clock.now, sleep=clock.sleep, **kwargs
    )


def _most_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(bisect.bisect_right(times, t + window) - i for i, t in enumerate(times))


def test_many_processes_never_exceed_the_cap_and_use_all_of_it(dynamodb: Any) -> None:
    clock = VirtualClock()
    used: list[float] = []
    lock = threading.Lock()
    budgets: list[SharedRateBudget] = []

    def process() -> None:
        budget = _budget(dynamodb, clock)
        with lock:
            budgets.append(budget)
        for _ in range(30):
            budget.acquire("ListUsers")
            with lock:
                used.append(clock.now())
            clock.sleep(0.1)  # the call's latency

    clock.run([process] * 16)
    assert len(used) == 480
    ttl = 1.0
    for window in (1.0, 5.0, 20.0):
        # The bucket's envelope: burst 1 token, plus what a lease may use up to its ttl late.
        assert _most_in_window(used, window) <= CEILING * (window + ttl) + 1
    # The whole share was taken: tokens used, plus those each process leased and did not need at its end.
    unused = sum(b.unused() for b in budgets)
    assert unused <= 16 * 3
    assert (len(used) + unused) / clock.now() >= 0.97 * CEILING
    assert sum(b.expired["UserList"] for b in budgets) == 0


def test_a_crashed_process_loses_one_lease_and_its_share_returns(dynamodb: Any) -> None:
    clock = VirtualClock()
    crashed = _budget(dynamodb, clock, lease_s=10.0, max_lease=10)
    crashed.acquire("ListUsers")  # leases 10 tokens, uses one, and is never heard of again
    survivor = _budget(dynamodb, clock)
    start = clock.now()
    times: list[float] = []
    for _ in range(150):
        survivor.acquire("ListUsers")
        times.append(clock.now())
    # The survivor waited at most for the 9 orphaned tokens to fall due, then had the whole share.
    assert times[0] - start <= 10 / CEILING + 1e-6
    assert (times[-1] - times[0]) * CEILING <= 150
    late = [t for t in times if t >= times[0] + 1.0]
    assert len(late) / (times[-1] - late[0]) >= 0.95 * CEILING


def test_processes_get_comparable_shares(dynamodb: Any) -> None:
    clock = VirtualClock()
    counts: Counter[int] = Counter()
    stop = clock.now() + 20.0

    def process(i: int) -> None:
        budget = _budget(dynamodb, clock)
        while True:
            budget.acquire("ListUsers")
            if clock.now() >= stop:
                return
            counts[i] += 1
            clock.sleep(0.05)

    clock.run([lambda i=i: process(i) for i in range(6)])  # type: ignore[misc]
    assert sum(counts.values()) >= 0.95 * CEILING * 20 - 6
    assert min(counts.values()) >= 0.75 * max(counts.values())


def test_a_finished_process_hands_its_share_to_the_others(dynamodb: Any) -> None:
    clock = VirtualClock()
    times: dict[str, list[float]] = {"short": [], "long": []}

    def process(name: str, calls: int) -> None:
        budget = _budget(dynamodb, clock)
        for _ in range(calls):
            budget.acquire("ListUsers")
            times[name].append(clock.now())

    store = DynamoBucketStore(dynamodb, TABLE)
    clock.run([lambda: process("short", 40), lambda: process("long", 300)])
    after = [t for t in times["long"] if t > max(times["short"]) + 1.0]
    # Alone, the long task draws the whole 15/s, not the half it had while both ran.
    assert len(after) / (after[-1] - after[0]) >= 0.95 * CEILING
    # Uncontended, a lease covers several calls: fewer DynamoDB requests than Cognito calls.
    alone = SharedRateBudget(store, fraction=0.5, clock=clock.now, sleep=clock.sleep)
    for _ in range(60):
        alone.acquire("ListUsers")
    assert store.requests <= 60 / 3


def test_stats_count_calls_and_throttles_per_category() -> None:
    clock = VirtualClock()
    budget = SharedRateBudget(MemoryBucketStore(), fraction=0.5, clock=clock.now, sleep=clock.sleep)
    for op in ("ListUsers", "ListUsersInGroup", "AdminGetUser"):
        budget.acquire(op)
    budget.on_throttle("UserList")
    assert budget.stats() == {
        "UserList": {"calls": 2, "throttles": 1},
        "UserRead": {"calls": 1, "throttles": 0},
    }


# --- the adaptive rate ------------------------------------------------------------------------------------------


def _window(state: BucketState, now: float, ok: int, throttled: int) -> BucketState:
    return report(state, now, ok, throttled, ceiling=CEILING, floor=1.0, burst=1.0)


def test_saturation_cuts_the_shared_rate_to_what_cognito_admitted() -> None:
    state = BucketState.fresh(0.0, CEILING, 1.0)
    # Cognito let 6 calls/s through and throttled the rest: the window's goodput is 6/s.
    state = _window(state, 2.0, ok=12, throttled=18)
    assert state.rate == pytest.approx(CEILING * 0.5)  # at most halved per window
    state = _window(state, 4.0, ok=12, throttled=9)
    assert state.rate == pytest.approx(6 * 0.95)


def test_a_random_throttle_is_not_saturation() -> None:
    state = BucketState.fresh(0.0, CEILING, 1.0)
    state = _window(state, 2.0, ok=29, throttled=1)
    assert state.rate == CEILING
    lower = BucketState(tokens=0, stamp=0.0, rate=10.0, window_start=0.0)
    state = _window(lower, 2.0, ok=29, throttled=1)
    assert state.rate > 10.0  # still recovering


def test_the_rate_recovers_to_the_ceiling_within_a_few_quiet_windows() -> None:
    state = BucketState(tokens=0, stamp=0.0, rate=6.0, window_start=0.0)
    now = 0.0
    for _ in range(25):
        now += 2.0
        state = _window(state, now, ok=30, throttled=0)
    assert state.rate == CEILING


def test_every_process_slows_down_and_recovers_together() -> None:
    clock = VirtualClock()
    store = MemoryBucketStore()
    a, b = (SharedRateBudget(store, fraction=0.5, clock=clock.now, sleep=clock.sleep) for _ in range(2))
    b.acquire("ListUsers")
    for _ in range(20):
        a.acquire("ListUsers")
        a.on_success("UserList")
    clock.sleep(2.0)
    for _ in range(20):
        a.on_throttle("UserList")
    clock.sleep(2.0)
    a.on_throttle("UserList")  # closes a window of throttles only
    cut = store.item("UserList")
    assert cut is not None and cut.rate == CEILING / 2
    b._held.clear()  # its lease is spent: the next one reads the shared rate
    b.acquire("ListUsers")
    assert b.rate("UserList") == cut.rate
    for _ in range(20):
        clock.sleep(2.0)
        for _ in range(shared_budget.MIN_SAMPLES):
            b.acquire("ListUsers")
            b.on_success("UserList")
    a._held.clear()
    a.acquire("ListUsers")
    assert a.rate("UserList") == CEILING


def test_take_gives_each_token_the_time_the_refill_pays_for_it() -> None:
    state = BucketState(tokens=0.5, stamp=10.0, rate=4.0, window_start=10.0)
    new, lease = take(state, 10.0, 3, ceiling=4.0, burst=1.0)
    assert lease.due == pytest.approx((10.125, 10.375, 10.625))
    assert new.tokens == -2.5 and new.version == 1


def test_a_lease_is_one_token_while_others_wait() -> None:
    waiting = BucketState(tokens=-2.0, stamp=10.0, rate=4.0, window_start=10.0)
    new, lease = take(waiting, 10.0, 3, ceiling=4.0, burst=1.0, horizon=0.5)
    assert lease.due == pytest.approx((10.75,))
    assert new.tokens == -3.0
