"""How CheckPendingApprovals reads a history the way AWS pages it: newest first, a page at a time.

moto ignores reverseOrder and maxResults (tests/functional/test_pending_approvals.py runs the checker there); this
stub answers as the Step Functions API documents it, so the paging and the "newest state event" rule are tested
as AWS behaves.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pipeline.restore import approval_watch

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
ARN = "arn:aws:states:us-east-1:123456789012:execution:cognito-backuper-restore:x"


def _event(i: int, kind: str, name: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"id": i, "type": kind, "timestamp": T0 + dt.timedelta(minutes=i)}
    if name is not None:
        event["stateEnteredEventDetails"] = {"name": name}
    return event


class PagedHistory:
    """GetExecutionHistory with reverseOrder: newest events first, ``page`` events per call."""

    def __init__(self, events: list[dict[str, Any]], page: int) -> None:
        self.events = sorted(events, key=lambda e: -int(e["id"]))
        self.page = page
        self.requests: list[dict[str, Any]] = []

    def get_execution_history(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        assert kwargs["reverseOrder"] is True and kwargs["includeExecutionData"] is False
        start = int(kwargs.get("nextToken", 0))
        chunk = self.events[start : start + self.page]
        more = start + self.page < len(self.events)
        return {"events": chunk, **({"nextToken": str(start + self.page)} if more else {})}


def _waiting_with_retries() -> list[dict[str, Any]]:
    events = [
        _event(1, "ExecutionStarted"),
        _event(2, "PassStateEntered", "Snapshot"),
        _event(3, "PassStateExited"),
        _event(4, "TaskStateEntered", approval_watch.APPROVAL_STATE),
    ]
    # Three failed Lambda attempts, retried within the state, then the token handed out.
    i = 5
    for kind in ["TaskScheduled", "TaskStarted", "TaskFailed"] * 3 + ["TaskScheduled", "TaskStarted"]:
        events.append(_event(i, kind))
        i += 1
    events.append(_event(i, "TaskSubmitted"))
    return events


def test_a_wait_found_past_the_first_page_dates_from_entering_the_state() -> None:
    stub = PagedHistory(_waiting_with_retries(), page=4)
    assert approval_watch.waiting_since(stub, ARN) == T0 + dt.timedelta(minutes=4)  # type: ignore[arg-type]
    assert len(stub.requests) == 4 and stub.requests[-1]["nextToken"] == "12"


def test_a_newer_state_event_means_it_no_longer_waits() -> None:
    events = [
        *_waiting_with_retries(),
        _event(99, "TaskStateExited"),
        _event(100, "TaskStateEntered", "Next"),
    ]
    stub = PagedHistory(events, page=50)
    assert approval_watch.waiting_since(stub, ARN) is None  # type: ignore[arg-type]
    assert len(stub.requests) == 1


def test_a_history_without_a_state_event_in_the_bound_is_not_counted() -> None:
    events = [_event(1, "TaskStateEntered", approval_watch.APPROVAL_STATE)]
    events += [_event(i, "TaskScheduled") for i in range(2, 2 + approval_watch.MAX_HISTORY_PAGES * 3)]
    stub = PagedHistory(events, page=3)
    assert approval_watch.waiting_since(stub, ARN) is None  # type: ignore[arg-type]
    assert len(stub.requests) == approval_watch.MAX_HISTORY_PAGES
