"""Which task results the local engine replays for progress: only those hidden in distributed Map children."""

from __future__ import annotations

import json

from pipeline.operator.local_engine.hidden_tasks import HiddenTask, hidden_task_event, hidden_tasks
from tests.helpers.asl import ROOT


def _definition(name: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((ROOT / "statemachines" / f"{name}.asl.json").read_text())
    return loaded


def test_the_backup_pools_tasks_are_hidden_and_the_parents_are_not() -> None:
    hidden = hidden_tasks(_definition("backup"))
    assert hidden["cognito-backuper-export-users"] == HiddenTask("ExportUsers", "$.cursor")
    assert "cognito-backuper-enumerate-pools" not in hidden
    assert "cognito-backuper-collect-backups" not in hidden


def test_a_task_that_also_runs_in_the_visible_history_is_never_replayed() -> None:
    # RestoreUsers runs in the inline RestoreShards Map too: replaying it would count its users twice.
    assert hidden_tasks(_definition("restore")) == {}


def test_the_event_holds_the_result_at_the_states_result_path() -> None:
    event = hidden_task_event(HiddenTask("ExportUsers", "$.cursor"), {"job": {"poolId": "p"}}, {"users": 7})
    details = event["stateExitedEventDetails"]
    assert details["name"] == "ExportUsers"
    assert json.loads(details["output"]) == {"job": {"poolId": "p"}, "cursor": {"users": 7}}
