"""Reading a Step Functions execution history (``GetExecutionHistory`` events, local engine or AWS alike)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

ENTERED = "entered"
EXITED = "exited"

# Terminal events of an execution and the key holding their error and cause.
_FAILURE_DETAILS = {
    "ExecutionFailed": "executionFailedEventDetails",
    "ExecutionTimedOut": "executionTimedOutEventDetails",
    "ExecutionAborted": "executionAbortedEventDetails",
}


def _parse(raw: Any) -> Any:
    """Outputs are JSON text; an unparseable one is kept as text rather than lost."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def state_timeline(events: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """``(state name, "entered" | "exited")`` in history order; Map iterations interleave as they ran."""
    timeline: list[tuple[str, str]] = []
    for event in events:
        if "stateEnteredEventDetails" in event:
            timeline.append((str(event["stateEnteredEventDetails"]["name"]), ENTERED))
        elif "stateExitedEventDetails" in event:
            timeline.append((str(event["stateExitedEventDetails"]["name"]), EXITED))
    return timeline


def task_outputs(events: Iterable[Mapping[str, Any]], state_name: str) -> list[Any]:
    """Parsed outputs of every exit of ``state_name`` (after ResultSelector/ResultPath/OutputPath), in order.

    The exit event is the only one naming the state: Lambda/Task success events carry no state name, and
    inside a Map their ids interleave across iterations.
    """
    outputs: list[Any] = []
    for event in events:
        details = event.get("stateExitedEventDetails")
        if details and details.get("name") == state_name:
            outputs.append(_parse(details.get("output")))
    return outputs


def failure(events: Iterable[Mapping[str, Any]]) -> tuple[str, str] | None:
    """``(error, cause)`` of a failed, timed-out or aborted execution; None if it did not end that way."""
    found: tuple[str, str] | None = None
    for event in events:
        key = _FAILURE_DETAILS.get(str(event.get("type")))
        if key is not None:
            details = event.get(key) or {}
            found = (str(details.get("error") or event["type"]), str(details.get("cause") or ""))
    return found
