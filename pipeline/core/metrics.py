"""Every CloudWatch metric the pipeline emits: names, units, dimensions, and the one helper that emits them.

Tasks write metrics as Embedded Metric Format lines on stdout (aws-lambda-powertools' EMF provider): Lambda sends
them to CloudWatch Logs, which extracts the metrics, so no task needs cloudwatch:PutMetricData. The dashboard and
the alarms (infra/monitoring.py) import the definitions below, so they graph exactly what is emitted.

Dimensions hold pool ids, task names and quota categories only, never user data. Outside Lambda (the CLI's local
engine runs the tasks in-process) nothing is printed: stdout carries the CLI's results.
"""

from __future__ import annotations

import contextvars
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

NAMESPACE = "CognitoBackuper"
POOL, TASK, CATEGORY = "PoolId", "Task", "Category"
# Set by Lambda in every function's environment: metrics are emitted only there.
LAMBDA_ENV = "AWS_LAMBDA_FUNCTION_NAME"


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # a CloudWatch unit, as EMF spells it
    dimensions: tuple[str, ...]
    description: str


USERS_EXPORTED = Metric("UsersExported", "Count", (POOL,), "users written to encrypted parts")
MEMBERSHIPS_EXPORTED = Metric("MembershipsExported", "Count", (POOL,), "group memberships written")
BYTES_WRITTEN = Metric("BytesWritten", "Bytes", (TASK,), "sealed bytes put to S3 by a task")
COGNITO_CALLS = Metric("CognitoCalls", "Count", (CATEGORY,), "Cognito requests sent, retries included")
COGNITO_THROTTLES = Metric("CognitoThrottles", "Count", (CATEGORY,), "Cognito requests throttled")
RATE_ACHIEVED = Metric(
    "CognitoRateAchieved", "Count/Second", (CATEGORY,), "requests per second a task achieved"
)
RATE_ALLOWED = Metric(
    "CognitoRateAllowed", "Count/Second", (CATEGORY,), "the rate budget's ceiling for the category"
)
VERIFIED_BACKUPS = Metric("VerifiedBackups", "Count", (), "pools with a new verified backup")
POOL_VERIFIED = Metric("PoolBackupVerified", "Count", (POOL,), "1 when the pool's backup is verified")
FAILED_POOLS = Metric("FailedPoolBackups", "Count", (), "pools of a run without a verified backup")
BACKUP_AGE = Metric(
    "BackupAgeSeconds",
    "Seconds",
    (POOL,),
    "age of the pool's newest verified backup when its run ended (capture start to the run's end)",
)
USERS_RESTORED = Metric("UsersRestored", "Count", (POOL,), "users created or found in the target pool")
USERS_NOT_RESTORED = Metric("UsersNotRestored", "Count", (POOL,), "users a restore could not create")
MEMBERSHIPS_RESTORED = Metric("MembershipsRestored", "Count", (POOL,), "memberships added or found")
DRILL_PASSED = Metric(
    "RestoreDrillPassed", "Count", (POOL,), "1 when the pool's restore drill passed, 0 when not"
)
DRILL_DURATION = Metric(
    "RestoreDrillDurationSeconds", "Seconds", (POOL,), "how long the pool's restore drill took"
)
DRILL_SAMPLE = Metric(
    "RestoreDrillSampleSize", "Count", (POOL,), "users the restore drill restored and compared"
)
PENDING_APPROVALS = Metric(
    "PendingApprovals", "Count", (), "restore executions waiting in RequestApproval for a person's decision"
)
OLDEST_PENDING_APPROVAL = Metric(
    "OldestPendingApprovalSeconds",
    "Seconds",
    (),
    "how long the longest-waiting restore has waited in RequestApproval (0: none waits)",
)

ALL: tuple[Metric, ...] = (
    USERS_EXPORTED,
    MEMBERSHIPS_EXPORTED,
    BYTES_WRITTEN,
    COGNITO_CALLS,
    COGNITO_THROTTLES,
    RATE_ACHIEVED,
    RATE_ALLOWED,
    VERIFIED_BACKUPS,
    POOL_VERIFIED,
    FAILED_POOLS,
    BACKUP_AGE,
    USERS_RESTORED,
    USERS_NOT_RESTORED,
    MEMBERSHIPS_RESTORED,
    DRILL_PASSED,
    DRILL_DURATION,
    DRILL_SAMPLE,
    PENDING_APPROVALS,
    OLDEST_PENDING_APPROVAL,
)
NAMES = frozenset(m.name for m in ALL)

Printer = Callable[[str], None]


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def emit(metric: Metric, value: float, printer: Printer | None = None, **dimensions: str) -> None:
    """One EMF line; the dimensions must be exactly the metric's (a typo would make a series nobody graphs)."""
    if set(dimensions) != set(metric.dimensions):
        raise ValueError(f"{metric.name} takes dimensions {metric.dimensions}, got {sorted(dimensions)}")
    if printer is None and LAMBDA_ENV not in os.environ:
        return
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
        AmazonCloudWatchEMFProvider,
    )

    provider = AmazonCloudWatchEMFProvider(namespace=NAMESPACE)
    provider.service = ""  # POWERTOOLS_SERVICE_NAME would add a "service" dimension to every series
    provider.add_metric(name=metric.name, unit=metric.unit, value=float(value))
    for name in metric.dimensions:
        provider.add_dimension(name=name, value=dimensions[name])
    document = provider.serialize_metric_set()
    (printer or _print)(json.dumps(document, separators=(",", ":")))


# --- the rate budget's counters (pipeline.cognito.throttle), read through one accessor ---------------------


@dataclass(frozen=True)
class CategoryCounts:
    calls: int
    throttles: int
    allowed_rps: float


def budget_counts() -> dict[str, CategoryCounts]:
    """Calls and throttles so far per quota category, and each category's allowed rate, from the tasks' budget
    (the deployment's shared budget where one is configured: its counters are this process's own)."""
    from pipeline.cognito import throttle

    budget = throttle.task_budget()
    return {
        category: CategoryCounts(counts["calls"], counts["throttles"], budget.ceilings.get(category, 0.0))
        for category, counts in budget.stats().items()
    }


def emit_cognito_usage(
    before: Mapping[str, CategoryCounts],
    after: Mapping[str, CategoryCounts],
    elapsed_s: float,
    printer: Printer | None = None,
) -> None:
    """Per category a task used: its calls, throttles, the rate it achieved and the rate it was allowed."""
    for category, now in sorted(after.items()):
        then = before.get(category, CategoryCounts(0, 0, now.allowed_rps))
        calls, throttled = now.calls - then.calls, now.throttles - then.throttles
        if calls <= 0 and throttled <= 0:
            continue
        emit(COGNITO_CALLS, calls, printer, Category=category)
        emit(COGNITO_THROTTLES, throttled, printer, Category=category)
        emit(RATE_ACHIEVED, calls / max(elapsed_s, 1e-3), printer, Category=category)
        emit(RATE_ALLOWED, now.allowed_rps, printer, Category=category)


# --- bytes written during one task invocation ----------------------------------------------------------------

_written: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("bytes_written", default=None)


def count_written(size: int) -> None:
    """Called where sealed objects are put; counted only inside a measured task."""
    tally = _written.get()
    if tally is not None:
        tally[0] += size


Handler = TypeVar("Handler", bound=Callable[..., Any])


def measured(task: str) -> Callable[[Handler], Handler]:
    """Wraps a task's handler: after each invocation, its Cognito usage and the bytes it wrote."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def run(*args: Any, **kwargs: Any) -> Any:
            before, started = budget_counts(), time.monotonic()
            tally = [0]
            token = _written.set(tally)
            try:
                return handler(*args, **kwargs)
            finally:
                _written.reset(token)
                emit_cognito_usage(before, budget_counts(), time.monotonic() - started)
                if tally[0]:
                    emit(BYTES_WRITTEN, tally[0], Task=task)

        return run  # type: ignore[return-value]

    return wrap


def emit_restore_progress(
    pool_id: str, before: Mapping[str, Any], after: Mapping[str, Any], printer: Printer | None = None
) -> None:
    """What one RestoreUsers slice did to the target pool: the cursors' counts are cumulative per shard."""

    def grew(*keys: str) -> int:
        return sum(int(after.get(k) or 0) - int(before.get(k) or 0) for k in keys)

    emit(USERS_RESTORED, grew("created", "existing"), printer, PoolId=pool_id)
    emit(USERS_NOT_RESTORED, grew("failed"), printer, PoolId=pool_id)
    emit(MEMBERSHIPS_RESTORED, grew("membershipsAdded", "membershipsExisting"), printer, PoolId=pool_id)


def emit_run_outcome(verified: Mapping[str, float], failed: int, printer: Printer | None = None) -> None:
    """CollectBackups: per verified pool its flag and backup age, and the run's totals (alarms watch these)."""
    for pool_id, age_s in sorted(verified.items()):
        emit(POOL_VERIFIED, 1, printer, PoolId=pool_id)
        emit(BACKUP_AGE, age_s, printer, PoolId=pool_id)
    emit(VERIFIED_BACKUPS, len(verified), printer)
    emit(FAILED_POOLS, failed, printer)


def emit_drill(
    pool_id: str, *, passed: bool, duration_s: float, sample_size: int, printer: Printer | None = None
) -> None:
    """DrillRecord: the drill's verdict per pool (an alarm can watch RestoreDrillPassed), its duration and sample."""
    emit(DRILL_PASSED, 1 if passed else 0, printer, PoolId=pool_id)
    emit(DRILL_DURATION, round(duration_s, 3), printer, PoolId=pool_id)
    emit(DRILL_SAMPLE, sample_size, printer, PoolId=pool_id)


def emit_pending_approvals(count: int, oldest_s: float, printer: Printer | None = None) -> None:
    """CheckPendingApprovals: how many restores wait for a decision and the longest wait (an alarm watches it)."""
    emit(PENDING_APPROVALS, count, printer)
    emit(OLDEST_PENDING_APPROVAL, round(oldest_s, 3), printer)
