"""Following one execution to its end, the same way for the local engine and for Step Functions itself."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.core.errors import EngineError

RUNNING = "RUNNING"
Event = dict[str, Any]


@dataclass(frozen=True)
class Finished:
    """A terminal DescribeExecution, its output parsed, and how many history events were passed on."""

    status: str
    output: Any
    error: str | None
    cause: str | None
    events: int


def follow_execution(
    describe: Callable[[], Mapping[str, Any]],
    read_events: Callable[[], Iterable[Event]],
    *,
    timeout_s: float,
    poll_s: float,
    still_running: str,
    on_event: Callable[[Event], None] | None = None,
    on_poll: Callable[[], None] | None = None,
    pause_per_event_s: float = 0.0,
    max_pause_s: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Finished:
    """Poll until the execution ends, passing each history event once, in id order, to ``on_event``.

    ``read_events`` may return events already passed on (a whole history, or a page read again): only ids above
    the last one seen go through. ``on_poll`` runs after every poll, events or not (a progress heartbeat).
    ``pause_per_event_s`` stretches the pause as the history grows (up to ``max_pause_s``), for an engine that
    returns the whole history on every read.
    Raises EngineError with ``still_running`` when ``timeout_s`` passes first.
    """
    deadline = clock() + timeout_s
    last_id = 0
    seen = 0
    while True:
        # Status first: if it is terminal, the history read after it already holds every event.
        described = describe()
        for event in read_events():
            if int(event["id"]) <= last_id:
                continue
            last_id = int(event["id"])
            seen += 1
            if on_event is not None:
                on_event(event)
        if on_poll is not None:
            on_poll()
        status = str(described["status"])
        if status != RUNNING:
            raw = described.get("output")
            return Finished(
                status=status,
                output=json.loads(raw) if raw else None,
                error=described.get("error"),
                cause=described.get("cause"),
                events=seen,
            )
        remaining = deadline - clock()
        if remaining <= 0:
            raise EngineError(still_running)
        sleep(min(max(poll_s, min(seen * pause_per_event_s, max_pause_s)), remaining))
