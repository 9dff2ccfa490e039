"""CheckPendingApprovals: how long restores have been waiting for a person's decision.

A restore waits for approval in its RequestApproval state (``lambda:invoke.waitForTaskToken``) until someone
approves or rejects it, or the state's timeout expires it. Step Functions itself is the source of truth for "still
waiting": a decided request moved its execution on, an expired one failed it, a stopped or finished execution is
no longer RUNNING. So the check reads Step Functions only: the restore machine's RUNNING executions
(ListExecutions) and, for each, the newest state-level event of its history (GetExecutionHistory, newest first,
without execution data). An execution whose newest state event is entering RequestApproval waits since that
event's timestamp.

It reads nothing from the backup bucket and no KMS key: the sealed requests hold the task tokens, which this
check does not need. It writes nothing; it emits two dimensionless metrics (pipeline.core.metrics), so no request
id, pool or person appears in them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.core import metrics
from pipeline.core.aws import sdk_errors

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

# The restore ASL's waiting state (statemachines/restore.asl.json); tests/unit ties the two together.
APPROVAL_STATE = "RequestApproval"
MACHINE_ENV = "RESTORE_STATE_MACHINE_ARN"
# Newest events first, a page at a time: the newest state event is almost always on the first page (a waiting
# RequestApproval's own events after its entry are a few Task* events, 4 per Lambda retry). The bound keeps one
# pathological history from making the check slow; such an execution is then not counted as waiting.
HISTORY_PAGE = 50
MAX_HISTORY_PAGES = 4


@dataclass(frozen=True)
class PendingApprovals:
    count: int
    oldest_s: float  # 0.0 when none waits

    def to_dict(self) -> dict[str, Any]:
        return {"pendingApprovals": self.count, "oldestPendingApprovalSeconds": round(self.oldest_s, 3)}


def _state_event(events: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The newest StateEntered/StateExited event of a page. Sorted by id (ids grow with time), not by position:
    moto ignores reverseOrder and answers the whole history oldest first."""
    found = [e for e in events if str(e.get("type", "")).endswith(("StateEntered", "StateExited"))]
    return max(found, key=lambda e: int(e["id"])) if found else None


def waiting_since(sfn: SFNClient, execution_arn: str) -> dt.datetime | None:
    """When the execution entered RequestApproval, if that is where it is now; None otherwise."""
    kwargs: dict[str, Any] = {
        "executionArn": execution_arn,
        "reverseOrder": True,
        "maxResults": HISTORY_PAGE,
        "includeExecutionData": False,  # ids, types, names and times only: no payloads
    }
    for _ in range(MAX_HISTORY_PAGES):
        with sdk_errors():
            page = sfn.get_execution_history(**kwargs)
        newest = _state_event(page.get("events", []))
        if newest is not None:
            entered = str(newest["type"]).endswith("StateEntered")
            name = (newest.get("stateEnteredEventDetails") or {}).get("name")
            if entered and name == APPROVAL_STATE:
                timestamp: dt.datetime = newest["timestamp"]
                return timestamp
            return None
        token = page.get("nextToken")
        if not token:
            return None
        kwargs["nextToken"] = token
    return None


def pending_approvals(sfn: SFNClient, state_machine_arn: str, now: dt.datetime) -> PendingApprovals:
    """The restores of ``state_machine_arn`` waiting for a decision, and the longest wait at ``now``."""
    waits: list[float] = []
    paginator = sfn.get_paginator("list_executions")
    with sdk_errors():
        pages = list(paginator.paginate(stateMachineArn=state_machine_arn, statusFilter="RUNNING"))
    for page in pages:
        for execution in page.get("executions", []):
            since = waiting_since(sfn, execution["executionArn"])
            if since is not None:
                waits.append(max((now - since).total_seconds(), 0.0))
    return PendingApprovals(len(waits), max(waits, default=0.0))


def check_pending_approvals(
    sfn: SFNClient,
    state_machine_arn: str,
    *,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    printer: metrics.Printer | None = None,
) -> dict[str, Any]:
    """Measure and emit; the result (counts only) is the task's output and log line."""
    found = pending_approvals(sfn, state_machine_arn, now())
    metrics.emit_pending_approvals(found.count, found.oldest_s, printer)
    return found.to_dict()
