"""What AWS needs of the state machines beyond what the local engine checks.

- Lambda's Invoke can fail with ``Lambda.ClientExecutionTimeoutException`` (the client side of the Invoke timed
  out); AWS lists it among the errors every Lambda Task should retry, next to ServiceException and friends.
- An execution without a top-level ``TimeoutSeconds`` can run for a year if a task hangs in a loop.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.asl import ASL_FILES, walk_states

LAMBDA_TRANSIENT = "Lambda.ClientExecutionTimeoutException"
DAY = 86_400


def _doc(name: str) -> dict[str, Any]:
    path = next(p for p in ASL_FILES if p.name == name)
    loaded: dict[str, Any] = json.loads(Path(path).read_text())
    return loaded


def _is_lambda_task(state: dict[str, Any]) -> bool:
    resource = str(state.get("Resource", ""))
    return state["Type"] == "Task" and (
        "FunctionArn}" in resource or resource.startswith("arn:aws:states:::lambda:")
    )


@pytest.mark.parametrize("name", [p.name for p in ASL_FILES])
def test_every_lambda_task_retries_client_execution_timeouts(name: str) -> None:
    tasks = [(n, s) for n, s in walk_states(_doc(name)["States"]) if _is_lambda_task(s)]
    assert tasks
    for state_name, state in tasks:
        retried = [rule for rule in state.get("Retry", []) if LAMBDA_TRANSIENT in rule["ErrorEquals"]]
        assert retried, f"{name} {state_name} does not retry {LAMBDA_TRANSIENT}"
        assert "Lambda.ServiceException" in retried[0]["ErrorEquals"], f"{name} {state_name}"


def test_the_backup_machine_times_out_after_a_day() -> None:
    assert _doc("backup.asl.json").get("TimeoutSeconds") == DAY


def test_the_restore_machine_outlives_the_longest_approval_wait_and_a_snapshot() -> None:
    from pipeline.restore.steps import MAX_APPROVAL_S

    timeout = _doc("restore.asl.json").get("TimeoutSeconds")
    assert isinstance(timeout, int)
    # The approval may wait MAX_APPROVAL_S; the snapshot is a backup (a day at most); the users need days more.
    assert timeout >= MAX_APPROVAL_S + DAY + 7 * DAY
    assert timeout <= 365 * DAY  # Step Functions' own limit for a standard execution


def test_a_drill_times_out_before_the_next_weekly_drill_starts() -> None:
    from pipeline.drill.steps import STALE_AFTER

    timeout = _doc("drill.asl.json").get("TimeoutSeconds")
    assert isinstance(timeout, int) and DAY <= timeout < 7 * DAY
    assert timeout < STALE_AFTER.total_seconds()  # only a timed-out drill's pool counts as stale
