"""Rate limiting and throttling retries, with a fake clock and throttles injected into moto."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from pipeline.cognito.throttle import (
    OPERATION_CATEGORY,
    QUOTA_RPS,
    RateBudget,
    TokenBucket,
    backoff_delay,
    category_of,
    default_budget,
    install,
)
from pipeline.core.errors import InvalidRequest, Throttled


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# --- TokenBucket ---


def test_bucket_paces_at_its_rate() -> None:
    t = FakeTime()
    bucket = TokenBucket(10.0, burst=1.0, clock=t.clock, sleep=t.sleep)
    start = t.now
    stamps = []
    for _ in range(21):
        bucket.acquire()
        stamps.append(t.now - start)
    # The first token is free (burst 1); every next one costs 1/rate seconds.
    assert stamps[0] == 0.0
    assert stamps[-1] == pytest.approx(2.0)
    # In any window of one second, never more than rate + burst acquisitions.
    for i, s in enumerate(stamps):
        in_window = [x for x in stamps[i:] if x < s + 1.0]
        assert len(in_window) <= 11


def test_bucket_refills_while_idle_up_to_burst() -> None:
    t = FakeTime()
    bucket = TokenBucket(5.0, burst=3.0, clock=t.clock, sleep=t.sleep)
    for _ in range(3):
        assert bucket.acquire() == 0.0
    assert bucket.acquire() == pytest.approx(0.2)
    t.now += 100.0  # a long idle time refills only up to the burst
    for _ in range(3):
        assert bucket.acquire() == 0.0
    assert bucket.acquire() > 0.0


def test_bucket_reserves_in_order_across_threads() -> None:
    """With a frozen clock, each acquirer owes exactly one more token than the one before: no token is lost
    or handed out twice, whatever the interleaving."""
    frozen = 50.0
    waits: list[float] = []
    lock = threading.Lock()
    bucket = TokenBucket(100.0, burst=1.0, clock=lambda: frozen, sleep=lambda s: None)

    def worker() -> None:
        for _ in range(50):
            w = bucket.acquire()
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=30)
        assert not th.is_alive()
    assert sorted(round(w * 100) for w in waits) == list(range(400))


def test_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0.0)
    bucket = TokenBucket(1.0)
    with pytest.raises(ValueError, match="positive"):
        bucket.set_rate(-1.0)


# --- RateBudget ---


def test_categories_follow_the_quota_table() -> None:
    assert QUOTA_RPS["UserList"] == 30
    assert QUOTA_RPS["UserPoolRead"] == 15
    assert category_of("ListUsers") == "UserList"
    assert category_of("ListUsersInGroup") == "UserList"
    assert category_of("AdminListGroupsForUser") == "UserResourceRead"
    assert category_of("AdminGetUser") == "UserRead"
    assert category_of("ListGroups") == "UserPoolResourceRead"
    assert category_of("AdminCreateUser") == "UserCreation"
    assert category_of("AdminAddUserToGroup") == "UserResourceUpdate"
    assert category_of("AdminDisableUser") == "UserUpdate"
    assert category_of("CreateUserPool") == "UserPoolUpdate"
    assert category_of("DescribeUserPoolClient") == "UserPoolClientRead"
    assert category_of("SomethingNew") == "Uncategorized"
    assert set(OPERATION_CATEGORY.values()) <= set(QUOTA_RPS)


def test_budget_takes_a_fraction_or_a_cap() -> None:
    half = RateBudget(fraction=0.5)
    assert half.rate("UserList") == 15.0
    assert half.rate("UserPoolRead") == 7.5
    capped = RateBudget(max_rps=10.0)
    assert capped.rate("UserList") == 10.0
    assert capped.rate("UserPoolRead") == 10.0
    assert capped.rate("UserUpdate") == 10.0
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(InvalidRequest):
            RateBudget(fraction=bad)


def test_budget_paces_each_category_independently() -> None:
    t = FakeTime()
    budget = RateBudget(fraction=1.0, clock=t.clock, sleep=t.sleep)
    start = t.now
    for _ in range(31):
        budget.acquire("ListUsers")
    assert t.now - start == pytest.approx(1.0)  # 30 RPS: 31 calls need one second
    mark = t.now
    budget.acquire("AdminGetUser")  # another category has its own full bucket
    assert t.now == mark
    assert budget.calls["ListUsers"] == 31
    assert budget.calls["AdminGetUser"] == 1
    assert budget.total_calls() == 32


def test_per_pool_cap_applies_to_pool_resource_reads() -> None:
    t = FakeTime()
    budget = RateBudget(fraction=1.0, clock=t.clock, sleep=t.sleep)
    start = t.now
    for _ in range(11):
        budget.acquire("ListGroups", "us-east-1_pool1")
    assert t.now - start == pytest.approx(2.0)  # 5 RPS per operation per pool, not the account's 20
    mark = t.now
    budget.acquire("ListGroups", "us-east-1_pool2")
    assert t.now == mark  # another pool has its own per-pool bucket; the account bucket refilled meanwhile
    budget.acquire("ListGroups", "us-east-1_pool3")
    assert t.now - mark == pytest.approx(1 / 20)  # now the account-wide 20 RPS is what binds


def test_throttle_halves_the_rate_with_a_floor_and_success_recovers_it() -> None:
    budget = RateBudget(fraction=1.0)
    assert budget.rate("UserList") == 30
    budget.on_throttle("UserList")
    assert budget.rate("UserList") == 15
    for _ in range(10):
        budget.on_throttle("UserList")
    assert budget.rate("UserList") == 1.0
    assert budget.throttles["UserList"] == 11
    rates = []
    for _ in range(25):
        budget.on_success("UserList")
        rates.append(budget.rate("UserList"))
    assert rates[0] == pytest.approx(2.5)  # gradual: +5% of the ceiling per success
    assert rates == sorted(rates)
    assert rates[-1] == 30.0  # and never above the ceiling
    assert budget.rate("UserRead") == 120.0  # other categories untouched


def test_default_budget_is_a_process_singleton(monkeypatch: pytest.MonkeyPatch) -> None:
    default_budget.cache_clear()
    monkeypatch.setenv("COGNITO_BACKUPER_QUOTA_FRACTION", "0.25")
    try:
        first = default_budget()
        assert first is default_budget()
        assert first.rate("UserList") == 7.5
    finally:
        default_budget.cache_clear()


# --- backoff ---


def test_full_jitter_is_bounded_and_capped() -> None:
    for attempt in range(1, 12):
        cap = min(20.0, 0.2 * 2 ** (attempt - 1))
        assert backoff_delay(attempt, base_delay=0.2, max_delay=20.0, rng=lambda: 0.0) == 0.0
        top = backoff_delay(attempt, base_delay=0.2, max_delay=20.0, rng=lambda: 0.999999)
        assert 0 < top <= cap
        assert top == pytest.approx(cap, rel=1e-5)
    assert backoff_delay(30, base_delay=0.2, max_delay=20.0, rng=lambda: 0.5) == 10.0


# --- install() on a moto client with injected throttling ---


def _throttle_response() -> AWSResponse:
    body = json.dumps({"__type": "TooManyRequestsException", "message": "Rate exceeded"}).encode()

    class _Raw:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield body

    headers = HTTPHeaders()
    headers["x-amzn-RequestId"] = "throttled"
    headers["Content-Type"] = "application/x-amz-json-1.1"
    return AWSResponse("https://cognito-idp.us-east-1.amazonaws.com/", 400, headers, _Raw())


class Injector:
    """Answers the first ``count`` attempts of ``operation`` with throttling, ahead of moto."""

    def __init__(self, operation: str, count: int) -> None:
        self.operation = operation
        self.remaining = count
        self.sends = 0

    def __call__(self, event_name: str, **_: Any) -> AWSResponse | None:
        if not event_name.endswith("." + self.operation):
            return None
        self.sends += 1
        if self.remaining > 0:
            self.remaining -= 1
            return _throttle_response()
        return None


def _wire(cognito: Any, injector: Injector, **kwargs: Any) -> tuple[RateBudget, FakeTime, list[float]]:
    t = FakeTime()
    backoffs: list[float] = []
    budget = RateBudget(fraction=1.0, clock=t.clock, sleep=t.sleep)
    install(cognito, budget, sleep=backoffs.append, rng=lambda: 0.5, **kwargs)
    cognito.meta.events.register_first("before-send.cognito-idp", injector)
    return budget, t, backoffs


def test_throttled_calls_back_off_then_succeed(cognito: Any) -> None:
    pool_id = cognito.create_user_pool(PoolName="p")["UserPool"]["Id"]
    injector = Injector("DescribeUserPool", 3)
    budget, _, backoffs = _wire(cognito, injector)

    pool = cognito.describe_user_pool(UserPoolId=pool_id)["UserPool"]

    assert pool["Id"] == pool_id
    assert injector.sends == 4
    assert budget.calls["DescribeUserPool"] == 4  # every attempt took a token
    assert backoffs == pytest.approx([0.1, 0.2, 0.4])  # full jitter at rng=0.5: half of 0.2 * 2**(n-1)
    assert budget.throttles["UserPoolRead"] == 3
    # Three halvings (15 -> 1.875), then one success adds back 5% of the ceiling.
    assert budget.rate("UserPoolRead") == pytest.approx(15 * 0.5**3 + 0.75)


def test_persistent_throttling_raises_throttled(cognito: Any) -> None:
    injector = Injector("ListUserPools", 1000)
    budget, _, backoffs = _wire(cognito, injector, max_attempts=5)

    with pytest.raises(Throttled, match="ListUserPools after 5 attempts"):
        cognito.list_user_pools(MaxResults=10)

    assert injector.sends == 5  # ours, not botocore's 4, decided how many attempts
    assert len(backoffs) == 4
    assert budget.calls["ListUserPools"] == 5


def test_throttling_beyond_botocore_max_attempts_still_recovers(cognito: Any) -> None:
    injector = Injector("ListUserPools", 6)  # botocore's standard mode alone would give up after 4 attempts
    _, _, backoffs = _wire(cognito, injector, max_attempts=8)

    assert cognito.list_user_pools(MaxResults=10)["UserPools"] == []
    assert injector.sends == 7
    assert len(backoffs) == 6


def test_other_errors_are_not_retried_as_throttles(cognito: Any) -> None:
    injector = Injector("DescribeUserPool", 0)
    budget, _, backoffs = _wire(cognito, injector)

    with pytest.raises(botocore.exceptions.ClientError) as caught:
        cognito.describe_user_pool(UserPoolId="us-east-1_missing")

    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert injector.sends == 1
    assert backoffs == []
    assert budget.throttles == {}


def test_rate_limit_applies_to_every_call(cognito: Any) -> None:
    injector = Injector("ListUserPools", 0)
    t = FakeTime()
    budget = RateBudget(max_rps=2.0, clock=t.clock, sleep=t.sleep)
    install(cognito, budget)
    install(cognito, budget)  # a second install must not take two tokens per call
    cognito.meta.events.register_first("before-send.cognito-idp", injector)
    start = t.now
    for _ in range(5):
        cognito.list_user_pools(MaxResults=10)
    assert t.now - start == pytest.approx(2.0)
    assert budget.calls["ListUserPools"] == 5


def test_install_rejects_zero_attempts(cognito: Any) -> None:
    with pytest.raises(InvalidRequest):
        install(cognito, RateBudget(), max_attempts=0)
