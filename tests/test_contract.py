"""Contract between the ASL files, the task modules, the error tree and the deployment settings."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest

from pipeline.core import errors, task_names
from tests.helpers.asl import ASL_FILES, walk_states

ROOT = Path(__file__).resolve().parents[1]
# Placeholders that are settings, not functions: the CDK app and the local engine both fill these.
SETTINGS = {"BackupBucket", "KmsKeyArn", "BackupPrefix"}
# ``${XStateMachineArn}`` names another state machine of this folder (statemachines/x.asl.json).
MACHINE_SUFFIX = "StateMachineArn"
SERVICE_ERRORS = re.compile(r"^(States|Lambda|StepFunctions)\.[A-Za-z]+$")
FORBIDDEN_IN_NAMES = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/]")


@pytest.fixture(params=ASL_FILES, ids=lambda p: p.name)
def asl(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    text = request.param.read_text()
    return text, json.loads(text)


def test_there_is_a_backup_state_machine() -> None:
    assert "backup.asl.json" in [p.name for p in ASL_FILES]


def test_every_placeholder_is_a_task_module_or_a_setting(asl: tuple[str, dict[str, Any]]) -> None:
    text, _ = asl
    for placeholder in task_names.placeholders(text):
        if placeholder in SETTINGS:
            continue
        if placeholder.endswith(MACHINE_SUFFIX):
            machine = task_names.module_name(placeholder[: -len(MACHINE_SUFFIX)])
            assert (ROOT / "statemachines" / f"{machine}.asl.json").is_file(), placeholder
            continue
        module = importlib.import_module("tasks." + task_names.module_name(task_names.task_name(placeholder)))
        handler = module.handler
        assert list(inspect.signature(handler).parameters) == ["event", "context"], placeholder


def test_every_task_module_is_used_by_some_state_machine_or_a_schedule() -> None:
    from infra.approval_watch import SCHEDULED_TASKS

    used = {
        task_names.module_name(task_names.task_name(p))
        for path in ASL_FILES
        for p in task_names.function_placeholders(path.read_text())
    }
    scheduled = {task_names.module_name(t) for t in SCHEDULED_TASKS}
    assert not used & scheduled  # a scheduled task is in no state machine
    on_disk = {p.stem for p in (ROOT / "tasks").glob("*.py") if p.stem != "__init__"}
    assert on_disk == used | scheduled
    for task in SCHEDULED_TASKS:
        handler = importlib.import_module("tasks." + task_names.module_name(task)).handler
        assert list(inspect.signature(handler).parameters) == ["event", "context"], task


def test_the_pending_approval_check_watches_the_restores_waiting_state() -> None:
    from pipeline.restore.approval_watch import APPROVAL_STATE

    doc = json.loads((ROOT / "statemachines" / "restore.asl.json").read_text())
    states = dict(walk_states(doc["States"]))
    # Top level, so its entry is the execution's newest state event while it waits.
    assert APPROVAL_STATE in doc["States"]
    assert states[APPROVAL_STATE]["Resource"].endswith(".waitForTaskToken")


def test_every_task_has_retry_and_catch(asl: tuple[str, dict[str, Any]]) -> None:
    _, doc = asl
    tasks = [(n, s) for n, s in walk_states(doc["States"]) if s["Type"] == "Task"]
    assert tasks
    for name, state in tasks:
        assert state.get("Retry"), f"{name} has no Retry"
        assert state.get("Catch"), f"{name} has no Catch"
        retried = {e for r in state["Retry"] for e in r["ErrorEquals"]}
        if "FunctionArn}" in json.dumps(state):  # a Lambda task
            assert "Lambda.ServiceException" in retried, name
        throttle_rules = [r for r in state["Retry"] if "Throttled" in r["ErrorEquals"]]
        if throttle_rules:
            assert throttle_rules[0].get("JitterStrategy") == "FULL", name
            assert throttle_rules[0].get("BackoffRate", 1) > 1, name


def test_retry_and_catch_name_real_errors(asl: tuple[str, dict[str, Any]]) -> None:
    _, doc = asl
    for name, state in walk_states(doc["States"]):
        for rule in state.get("Retry", []) + state.get("Catch", []):
            for error in rule["ErrorEquals"]:
                if SERVICE_ERRORS.match(error):
                    continue
                cls = getattr(errors, error, None)
                assert isinstance(cls, type) and issubclass(cls, errors.PipelineError), f"{name}: {error}"


def test_state_names_are_valid_and_transitions_resolve(asl: tuple[str, dict[str, Any]]) -> None:
    _, doc = asl

    def check(states: dict[str, Any], start: str) -> None:
        assert start in states
        for name, state in states.items():
            assert len(name) <= 80 and not FORBIDDEN_IN_NAMES.search(name), name
            targets = [state.get("Next"), state.get("Default")]
            targets += [c["Next"] for c in state.get("Choices", [])]
            targets += [c["Next"] for c in state.get("Catch", [])]
            for target in filter(None, targets):
                assert target in states, f"{name} -> {target}"
            for inner in [state.get("ItemProcessor"), *state.get("Branches", [])]:
                if inner:
                    check(inner["States"], inner["StartAt"])

    check(doc["States"], doc["StartAt"])


def test_fail_states_report_the_caught_error(asl: tuple[str, dict[str, Any]]) -> None:
    _, doc = asl
    for name, state in walk_states(doc["States"]):
        if state["Type"] == "Fail":
            assert state.get("ErrorPath") or state.get("Error"), name


def test_the_drill_machine_runs_only_drill_tasks_and_no_other_machine_runs_them() -> None:
    """The drill's roles are the tag-scoped ones (infra.drill): a restore task in the drill would write with an
    unscoped role, and a drill task elsewhere would be refused on every untagged pool."""
    from infra.drill import DRILL_TASK_NEEDS

    tasks = {
        path.name: {task_names.task_name(p) for p in task_names.function_placeholders(path.read_text())}
        for path in ASL_FILES
    }
    assert tasks["drill.asl.json"] == set(DRILL_TASK_NEEDS)
    assert all(
        not (found & set(DRILL_TASK_NEEDS)) for name, found in tasks.items() if name != "drill.asl.json"
    )
