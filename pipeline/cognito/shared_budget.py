"""One rate budget for every task process of a deployment: a token bucket per quota category, kept in one store.

Each Lambda process used to hold a fixed slice of the quota (the fraction divided by the tasks that may run at once),
and a slice was never handed on when its owner was idle or done. Here every process draws from the same bucket per
Cognito quota category, so whoever is running gets the whole share.

- **Leases.** A process reserves a few tokens per round trip (``lease``): the bucket refills from its stored
  timestamp at its stored rate, may go into debt, and gives each reserved token the time it becomes due, exactly as
  if the tokens had been taken one by one. A token is used no earlier than its due time and dropped when it is more
  than ``ttl`` late, so the calls in any window ``W`` never exceed ``burst + rate * (W + ttl)``. A crashed process
  loses at most one lease: its tokens fall due and pass; the bucket does not remember them.
- **Adaptive, together.** The item also holds the category's current rate and a window of outcomes reported by
  every process (piggybacked on leases; a throttle is reported at once). A window that saw at least
  ``SATURATION`` of its calls throttled cuts the rate towards what Cognito actually admitted (the window's
  successes per second), at most halving it; a window below that raises it by ``INCREASE`` up to the ceiling. A
  random throttle is not saturation: it leaves the rate alone, or cuts it to what was being used anyway.
- **Stores.** :class:`DynamoBucketStore` keeps one item per category in a DynamoDB table (conditional UpdateItem on
  a version number, ``ReturnValuesOnConditionCheckFailure`` to retry from the current item: no GetItem);
  :class:`MemoryBucketStore` is the same logic in one process (the benchmark's model of the table).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import botocore.exceptions

from pipeline.cognito.throttle import (
    BUDGET_TABLE_ENV,
    QUOTA_RPS,
    UNCATEGORIZED,
    Clock,
    RateBudget,
    Sleep,
    category_of,
)
from pipeline.core.errors import InvalidRequest, PipelineError

T = TypeVar("T")

TABLE_ENV = BUDGET_TABLE_ENV
# The table's name in the local engine (the stack lets CloudFormation name it).
LOCAL_TABLE = "cognito-backuper-rate-budget"
KEY = "category"

# The adaptive rule (see the module docstring). WINDOW_S and MIN_SAMPLES: a window closes after both.
WINDOW_S = 2.0
MIN_SAMPLES = 20
SATURATION = 0.05
INCREASE = 0.05
TARGET = 0.95  # after a cut, this much of the measured goodput
STALE_WINDOW_S = 30.0  # a window this old with too few samples starts again


@dataclass(frozen=True)
class BucketState:
    """One category's item: the bucket (``tokens`` at ``stamp``; negative is debt), its adaptive rate, the
    current outcome window, and the version the conditional write checks."""

    tokens: float
    stamp: float
    rate: float
    version: int = 0
    window_start: float = 0.0
    window_ok: int = 0
    window_throttled: int = 0
    cuts: int = 0

    @classmethod
    def fresh(cls, now: float, ceiling: float, burst: float) -> BucketState:
        return cls(tokens=burst, stamp=now, rate=ceiling, window_start=now)


@dataclass(frozen=True)
class Lease:
    due: tuple[float, ...]  # when each reserved token may be used, ascending
    rate: float


def take(
    state: BucketState, now: float, n: int, *, ceiling: float, burst: float, horizon: float = math.inf
) -> tuple[BucketState, Lease]:
    """Refill to ``now`` and reserve up to ``n`` tokens; token k is due when the refill has paid for it.

    No more than what falls due within ``horizon`` seconds is reserved, and when others already wait (the bucket
    is in debt: a process leases again only when its own tokens have all fallen due) a lease is one token, so
    every process gets its turn, one token each, in arrival order.
    """
    now = max(now, state.stamp)  # another process's clock a little ahead: never refill backwards
    rate = min(state.rate, ceiling)
    before = min(burst, state.tokens + (now - state.stamp) * rate)
    if before < 0:
        # Another process holds tokens not yet due: it waits too. One token each keeps the turns fair.
        n = 1
    elif horizon != math.inf:
        n = max(1, min(n, math.floor(before + rate * horizon)))
    due = tuple(now + max(0.0, (k - before) / rate) for k in range(1, n + 1))
    new = replace(state, tokens=before - n, stamp=now, rate=rate, version=state.version + 1)
    return new, Lease(due, rate)


def report(
    state: BucketState, now: float, ok: int, throttled: int, *, ceiling: float, floor: float, burst: float
) -> BucketState:
    """Fold outcomes into the window; when the window closes, cut (saturated) or raise (not) the shared rate."""
    now = max(now, state.stamp)
    # The rate may change at ``now``: settle the refill at the old rate first.
    tokens = min(burst, state.tokens + (now - state.stamp) * state.rate)
    state = replace(
        state,
        tokens=tokens,
        stamp=now,
        window_ok=state.window_ok + ok,
        window_throttled=state.window_throttled + throttled,
    )
    elapsed = now - state.window_start
    samples = state.window_ok + state.window_throttled
    if elapsed >= STALE_WINDOW_S and samples < MIN_SAMPLES:
        return replace(state, window_start=now, window_ok=ok, window_throttled=throttled)
    if elapsed < WINDOW_S or samples < MIN_SAMPLES:
        return state
    rate = state.rate
    cuts = state.cuts
    if state.window_throttled >= 2 and state.window_throttled >= SATURATION * samples:
        goodput = state.window_ok / elapsed
        rate = max(rate * 0.5, min(rate * 0.9, goodput * TARGET))
        cuts += 1
    else:
        rate = rate + max(ceiling * 0.01, rate * INCREASE)
    rate = max(min(floor, ceiling), min(ceiling, rate))
    return replace(state, rate=rate, window_start=now, window_ok=0, window_throttled=0, cuts=cuts)


class BucketStore(Protocol):
    """Read-modify-write of one category's item, atomically; ``requests`` counts round trips to the store."""

    requests: int

    def update(self, category: str, change: Callable[[BucketState | None], tuple[BucketState, T]]) -> T: ...


class MemoryBucketStore:
    """The items in this process, one round trip of ``latency`` seconds per update (slept on ``sleep``)."""

    def __init__(self, *, latency: float = 0.0, sleep: Sleep = time.sleep) -> None:
        self._items: dict[str, BucketState] = {}
        self._lock = threading.Lock()
        self._latency = latency
        self._sleep = sleep
        self.requests = 0

    def update(self, category: str, change: Callable[[BucketState | None], tuple[BucketState, T]]) -> T:
        self._sleep(self._latency / 2)  # the request's way there
        with self._lock:
            self.requests += 1
            new, result = change(self._items.get(category))
            self._items[category] = new
        self._sleep(self._latency / 2)
        return result

    def item(self, category: str) -> BucketState | None:
        with self._lock:
            return self._items.get(category)


class BudgetTableError(PipelineError):
    """The rate budget's table cannot be used."""


_FIELDS = {
    "tokens": "tokens",
    "stamp": "stamp",
    "rate": "rate",
    "version": "version",
    "window_start": "windowStart",
    "window_ok": "windowOk",
    "window_throttled": "windowThrottled",
    "cuts": "cuts",
}
_INT_FIELDS = {"version", "window_ok", "window_throttled", "cuts"}


def _to_item(state: BucketState) -> dict[str, Any]:
    return {attr: {"N": repr(getattr(state, field))} for field, attr in _FIELDS.items()}


def _from_item(item: Mapping[str, Any] | None) -> BucketState | None:
    if not item or "version" not in item:
        return None
    values: dict[str, Any] = {}
    for field, attr in _FIELDS.items():
        raw = item.get(attr, {"N": "0"})["N"]
        values[field] = int(float(raw)) if field in _INT_FIELDS else float(raw)
    return BucketState(**values)


class DynamoBucketStore:
    """One item per quota category (partition key ``category``) in an on-demand DynamoDB table.

    The write is one UpdateItem conditioned on the version read before (or on the item's absence). A lost race
    fails with ConditionalCheckFailedException carrying the current item (ReturnValuesOnConditionCheckFailure
    ALL_OLD), and the change is recomputed from it, so an update usually costs one request and a contended one two.
    The last item seen is kept per category; the first write of a process assumes the item absent, so no
    GetItem is ever needed (and none is granted).
    """

    MAX_CONFLICTS = 100

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table
        self._seen: dict[str, BucketState | None] = {}
        self._lock = threading.Lock()
        self.requests = 0
        self.conflicts = 0

    def _count(self, conflict: bool = False) -> None:
        with self._lock:
            self.requests += 1
            self.conflicts += conflict

    def _error(self, exc: botocore.exceptions.ClientError) -> BudgetTableError:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            return BudgetTableError(f"the rate budget table {self._table} does not exist ({TABLE_ENV})")
        return BudgetTableError(f"the rate budget table {self._table} answered {code or 'an error'}")

    def update(self, category: str, change: Callable[[BucketState | None], tuple[BucketState, T]]) -> T:
        with self._lock:
            # Never read: a first write assumes the item absent, and a lost bet returns the current item.
            state = self._seen.get(category)
        for _ in range(self.MAX_CONFLICTS):
            new, result = change(state)
            item = _to_item(new)
            names = {f"#{attr}": attr for attr in item}
            values = {f":{attr}": value for attr, value in item.items()}
            condition = "attribute_not_exists(#version)"
            if state is not None:
                condition = "#version = :expected"
                values[":expected"] = {"N": str(state.version)}
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key={KEY: {"S": category}},
                    UpdateExpression="SET " + ", ".join(f"#{attr} = :{attr}" for attr in item),
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except botocore.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise self._error(exc) from exc
                self._count(conflict=True)
                state = _from_item(exc.response.get("Item"))  # type: ignore[arg-type]
                if state is None:
                    raise BudgetTableError(
                        f"the rate budget table {self._table} returned no item on a failed condition"
                    ) from exc
                continue
            self._count()
            with self._lock:
                self._seen[category] = new
            return result
        raise BudgetTableError(
            f"the rate budget item {category} kept changing under {self.MAX_CONFLICTS} writers"
        )


class SharedRateBudget(RateBudget):
    """A :class:`RateBudget` whose per-category buckets live in a :class:`BucketStore` shared by every process.

    Per-pool buckets (the few configuration categories also capped per pool) stay in the process: only the task
    that captures or restores one pool's configuration calls them.
    """

    def __init__(
        self,
        store: BucketStore,
        *,
        fraction: float = 1.0,
        max_rps: float | None = None,
        quotas: Mapping[str, float] = QUOTA_RPS,
        lease_s: float = 0.5,
        max_lease: int = 10,
        ttl: float = 1.0,
        burst_s: float = 0.0,
        floor: float = 1.0,
        clock: Clock = time.time,
        sleep: Sleep = time.sleep,
    ) -> None:
        super().__init__(
            fraction=fraction, max_rps=max_rps, quotas=quotas, floor=floor, clock=clock, sleep=sleep
        )
        if lease_s <= 0 or max_lease < 1 or ttl <= 0:
            raise InvalidRequest("lease_s and ttl must be positive and max_lease at least 1")
        self.store = store
        self._lease_s = lease_s
        self._max_lease = max_lease
        self._ttl = ttl
        self._burst_s = burst_s
        self._held: dict[str, deque[float]] = {}
        self._rates: dict[str, float] = {}
        self._ok: Counter[str] = Counter()
        self._category_locks: dict[str, threading.Lock] = {}
        self.expired: Counter[str] = Counter()  # leased tokens dropped unused (too late to be safe)
        # This process's own pace per category (mean seconds between acquires): a lease covers about
        # ``lease_s`` of it, so a slow process does not reserve tokens it would use too late.
        self._last: dict[str, float] = {}
        self._interval: dict[str, float] = {}

    def ceiling(self, category: str) -> float:
        return self.ceilings.get(category, self.ceilings[UNCATEGORIZED])

    def _category_burst(self, category: str) -> float:
        return max(1.0, self.ceiling(category) * self._burst_s)

    def _category_lock(self, category: str) -> threading.Lock:
        with self._lock:
            return self._category_locks.setdefault(category, threading.Lock())

    def rate(self, category: str) -> float:
        with self._lock:
            return self._rates.get(category, self.ceiling(category))

    def unused(self) -> int:
        """Leased tokens not used yet: at the end of a task, what it reserved and leaves to fall due unused."""
        with self._lock:
            return sum(len(held) for held in self._held.values())

    def _lease(self, category: str) -> deque[float]:
        ceiling, burst = self.ceiling(category), self._category_burst(category)
        with self._lock:
            interval = self._interval.get(category)
        pace = (
            self.rate(category) if interval is None else min(self.rate(category), 1.0 / max(interval, 1e-3))
        )
        n = 1 if interval is None else max(1, min(self._max_lease, math.floor(pace * self._lease_s)))
        with self._lock:
            ok, self._ok[category] = self._ok[category], 0

        def change(state: BucketState | None) -> tuple[BucketState, Lease]:
            now = self._clock()
            current = state or BucketState.fresh(now, ceiling, burst)
            if ok:
                current = report(current, now, ok, 0, ceiling=ceiling, floor=self._floor, burst=burst)
            return take(current, now, n, ceiling=ceiling, burst=burst, horizon=self._lease_s)

        lease = self.store.update(category, change)
        with self._lock:
            self._rates[category] = lease.rate
        return deque(lease.due)

    def _note_pace(self, category: str, now: float) -> None:
        with self._lock:
            last = self._last.get(category)
            self._last[category] = now
            if last is not None:
                gap = now - last
                previous = self._interval.get(category)
                self._interval[category] = gap if previous is None else 0.7 * previous + 0.3 * gap

    def _next_due(self, category: str) -> float:
        self._note_pace(category, self._clock())
        with self._category_lock(category):
            held = self._held.get(category)
            while True:
                now = self._clock()
                while held:
                    due = held.popleft()
                    if due + self._ttl >= now:
                        return due
                    with self._lock:
                        self.expired[category] += 1
                held = self._held[category] = self._lease(category)

    def acquire(self, operation_name: str, pool_id: str | None = None) -> float:
        category = category_of(operation_name)
        with self._lock:
            self.calls[operation_name] += 1
        waited = max(0.0, self._next_due(category) - self._clock())
        if waited > 0:
            self._sleep(waited)
        if pool_id:
            pool_bucket = self._pool_bucket(operation_name, category, pool_id)
            if pool_bucket is not None:
                waited += pool_bucket.acquire()
        with self._lock:
            self.waited += waited
        return waited

    def on_throttle(self, category: str) -> None:
        ceiling, burst = self.ceiling(category), self._category_burst(category)
        with self._lock:
            self.throttles[category] += 1
            ok, self._ok[category] = self._ok[category], 0

        def change(state: BucketState | None) -> tuple[BucketState, float]:
            now = self._clock()
            new = report(
                state or BucketState.fresh(now, ceiling, burst),
                now,
                ok,
                1,
                ceiling=ceiling,
                floor=self._floor,
                burst=burst,
            )
            return replace(new, version=new.version + 1), new.rate

        rate = self.store.update(category, change)
        with self._lock:
            self._rates[category] = rate

    def on_success(self, category: str) -> None:
        with self._lock:
            self._ok[category] += 1


def for_table(table: str, *, fraction: float, max_rps: float | None) -> SharedRateBudget:
    """The deployment's shared budget over ``table``, with a DynamoDB client from the standard chain."""
    from pipeline.core.aws import SDK_CONFIG, standard_session

    client = standard_session().client("dynamodb", config=SDK_CONFIG)
    return SharedRateBudget(DynamoBucketStore(client, table), fraction=fraction, max_rps=max_rps)


def create_table(client: Any, table: str) -> None:
    """The table as the stack defines it (infra/budget.py), for the embedded local engine and tests."""
    client.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": KEY, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": KEY, "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
