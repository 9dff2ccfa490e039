"""Backups under injected faults on the embedded local engine: each completes with the fault-free content."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from botocore.awsrequest import AWSResponse

from pipeline.backup import steps as backup
from pipeline.core.aws import Clients
from pipeline.core.contracts import ShardState, UserCursor
from pipeline.operator.local_engine import LocalEngine
from tests.helpers.faults import (
    COGNITO,
    S3,
    Call,
    FaultInjector,
    SeededRandom,
    World,
    contents,
    open_world,
    s3_error,
    throttled,
)
from tests.helpers.task_payloads import TaskPayloads, record_tasks

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small parts, so a few hundred users make several ExportUsers and ExportGroupMemberships rounds."""
    monkeypatch.setattr(backup, "USERS_PER_PART", 60)
    monkeypatch.setattr(backup, "MEMBERSHIPS_PER_PART", 100)


ASL = Path(__file__).resolve().parents[2] / "statemachines" / "backup.asl.json"


@pytest.fixture
def world() -> Iterator[World]:
    with LocalEngine(embedded=True) as engine:
        yield open_world(engine, users=240, seed_value=17)


def _failures(payloads: TaskPayloads) -> Counter[str]:
    """Task failures the state machine saw (and retried), by error name. They happen inside the pool's child
    execution, whose history moto's interpreter does not expose: read at the task handlers."""
    return Counter(
        str(result["errorType"])
        for _, _, result in payloads.calls
        if isinstance(result, dict) and "errorType" in result
    )


def test_random_throttling_of_30_percent_of_cognito_calls(world: World, faults: FaultInjector) -> None:
    baseline = contents(world.clients, world.backup_uri())
    assert sum(baseline.users.values()) == world.pool.users

    rng = SeededRandom(26)  # each stream's first draw is below 0.3: the first ListUsers(InGroup) is throttled

    def throttle_30_percent(call: Call) -> AWSResponse | None:
        return throttled() if call.service == COGNITO and rng(call.operation) < 0.3 else None

    faults.add(throttle_30_percent)
    faulted = contents(world.clients, world.backup_uri())

    assert faults.injected["ListUsers"] > 0
    assert faults.injected["ListUsersInGroup"] > 0
    assert sum(faults.injected.values()) > 10
    assert faulted == baseline


def test_a_burst_of_ten_throttles_on_list_users(
    world: World, faults: FaultInjector, monkeypatch: pytest.MonkeyPatch
) -> None:
    payloads = record_tasks(monkeypatch, [ASL.read_text()])
    baseline = contents(world.clients, world.backup_uri())
    lock = threading.Lock()
    left = [10]

    def burst(call: Call) -> AWSResponse | None:
        if call.operation != "ListUsers":
            return None
        with lock:
            if left[0] == 0:
                return None
            left[0] -= 1
        return throttled()

    faults.add(burst)
    outcome = world.backup()
    assert outcome.succeeded, outcome.message
    assert faults.injected["ListUsers"] == 10
    # Ten in a row outlast the client's own attempts: the task raised Throttled and the ASL's Retry took over.
    assert _failures(payloads)["Throttled"] >= 1
    assert contents(world.clients, outcome.backups[0]["uri"]) == baseline


class _LambdaServiceException(Exception):
    """What Step Functions reports when the Lambda service fails an invocation (here: after the function ran)."""


# The local Lambda endpoint reports a handler's exception class name as the errorType the ASL's Retry matches.
_LambdaServiceException.__name__ = "Lambda.ServiceException"


def test_a_lambda_failure_after_a_part_is_written_rewrites_the_same_part(
    world: World, faults: FaultInjector, monkeypatch: pytest.MonkeyPatch
) -> None:
    payloads = record_tasks(monkeypatch, [ASL.read_text()])
    baseline = contents(world.clients, world.backup_uri())
    real = backup.export_users
    seen: list[UserCursor] = []
    crashed: dict[str, Any] = {}
    lock = threading.Lock()

    def crash_once_after_writing(
        clients: Clients, state: ShardState, budget_s: float, **kw: Any
    ) -> UserCursor:
        out = real(clients, state, budget_s, **kw)  # the part is written
        with lock:
            seen.append(dict(state["cursor"]))  # type: ignore[arg-type]
            if not crashed and state["cursor"]["nextToken"] is not None:
                crashed.update(
                    cursor=dict(state["cursor"]),
                    key=backup.location(state["job"]).user_part_key(state["shard"], state["cursor"]["part"]),
                )
                raise _LambdaServiceException("the invocation's response was lost")
        return out

    puts: Counter[str] = Counter()

    def count_puts(call: Call) -> None:
        if call.service == S3 and call.operation == "PutObject":
            with lock:
                puts[unquote(urlsplit(call.request.url).path)] += 1

    faults.add(count_puts)
    monkeypatch.setattr(backup, "export_users", crash_once_after_writing)
    outcome = world.backup()
    assert outcome.succeeded, outcome.message

    assert crashed, "no ExportUsers invocation with a pagination token ran"
    assert _failures(payloads)["Lambda.ServiceException"] == 1
    # The retry ran with the very cursor of the failed invocation...
    index = seen.index(crashed["cursor"])
    assert seen[index + 1 :].count(crashed["cursor"]) == 1
    # ...and wrote the same key again; every other part was written once.
    rewritten = [path for path, n in puts.items() if n > 1]
    assert len(rewritten) == 1 and rewritten[0].endswith("/" + crashed["key"])
    assert contents(world.clients, outcome.backups[0]["uri"]) == baseline


def test_s3_500_and_503_on_puts_and_gets_are_absorbed_by_sdk_retries(
    world: World, faults: FaultInjector
) -> None:
    baseline = contents(world.clients, world.backup_uri())
    lock = threading.Lock()
    calls: Counter[str] = Counter()

    def flaky_s3(call: Call) -> AWSResponse | None:
        if call.service != S3 or call.operation not in {"PutObject", "GetObject"} or call.attempt > 1:
            return None
        if "If-None-Match" in call.request.headers:
            # moto stores a conditional put whose reply is faulted here, so its retry meets its own object
            # (412). The manifest's write is left alone; which put is faulted depends on the run's put order.
            return None
        with lock:
            calls[call.operation] += 1
            n = calls[call.operation]
        if n % 3 == 1:
            return s3_error("InternalError", 500) if n % 2 else s3_error("SlowDown", 503)
        return None

    faults.add(flaky_s3)
    outcome = world.backup()
    assert outcome.succeeded, outcome.message
    assert faults.injected["PutObject"] >= 3
    assert faults.injected["GetObject"] >= 3
    assert contents(world.clients, outcome.backups[0]["uri"]) == baseline
