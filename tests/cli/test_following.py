"""The one polling loop both engines follow an execution with."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.core.errors import EngineError
from pipeline.operator.following import follow_execution


class FakeExecution:
    """Runs for ``polls`` describes; its history grows by one event per describe and is re-read whole."""

    def __init__(self, polls: int) -> None:
        self.polls = polls
        self.described = 0
        self.now = 0.0

    def describe(self) -> dict[str, Any]:
        self.described += 1
        if self.described > self.polls:
            return {"status": "SUCCEEDED", "output": json.dumps({"ok": True})}
        return {"status": "RUNNING"}

    def history(self) -> list[dict[str, Any]]:
        return [{"id": i, "type": "StateEntered"} for i in range(1, self.described + 1)]

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_each_event_once_in_order_and_a_call_per_poll() -> None:
    execution = FakeExecution(polls=3)
    events: list[int] = []
    polls: list[float] = []
    done = follow_execution(
        execution.describe,
        execution.history,
        timeout_s=60,
        poll_s=2,
        still_running="late",
        on_event=lambda e: events.append(e["id"]),
        on_poll=lambda: polls.append(execution.now),
        clock=lambda: execution.now,
        sleep=execution.sleep,
    )
    assert (done.status, done.output, done.events) == ("SUCCEEDED", {"ok": True}, 4)
    assert events == [1, 2, 3, 4]
    assert polls == [0, 2, 4, 6]  # the heartbeat hook runs on every poll, with or without new state


def test_the_deadline_raises_the_callers_message() -> None:
    execution = FakeExecution(polls=1000)
    with pytest.raises(EngineError, match="still running after 5s"):
        follow_execution(
            execution.describe,
            execution.history,
            timeout_s=5,
            poll_s=2,
            still_running="still running after 5s",
            clock=lambda: execution.now,
            sleep=execution.sleep,
        )
    assert execution.now == 5
