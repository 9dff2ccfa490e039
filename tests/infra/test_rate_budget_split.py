"""On AWS every Lambda process limits itself, so the account's share of the quotas is split between the tasks
that can call Cognito at the same time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.asl import MachineSpec, concurrent_cognito_tasks, discover
from infra.settings import InfraConfigError
from pipeline.cognito.throttle import DEFAULT_FRACTION, FRACTION_ENV
from pipeline.core.task_names import function_name
from tests.helpers.synth import Synth


def _env(synth: Synth, task: str) -> dict[str, str]:
    for res in synth.resources("AWS::Lambda::Function").values():
        if res["Properties"].get("FunctionName") == function_name(task):
            env: dict[str, str] = res["Properties"]["Environment"]["Variables"]
            return env
    raise AssertionError(task)


def test_concurrent_tasks_add_the_parallel_branches_maps() -> None:
    # ExportShards (MaxConcurrency 8) beside ExportGroupSlices (4), inside BackupEachPool (1).
    assert concurrent_cognito_tasks(discover()) == 12


def _task() -> dict[str, object]:
    return {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:111122223333:function:x", "End": True}


def _map(concurrency: int | None, inner: dict[str, object]) -> dict[str, object]:
    state: dict[str, object] = {"Type": "Map", "ItemProcessor": {"StartAt": "A", "States": {"A": inner}}}
    if concurrency is not None:
        state["MaxConcurrency"] = concurrency
    return state


def _spec(tmp_path: Path, states: dict[str, object]) -> list[MachineSpec]:
    path = tmp_path / "m.asl.json"
    path.write_text(json.dumps({"StartAt": next(iter(states)), "States": states}), encoding="utf-8")
    return [MachineSpec(name="m", path=path, tasks=(), settings=())]


def test_maps_multiply_and_parallel_branches_add(tmp_path: Path) -> None:
    branches = [
        {"StartAt": "M", "States": {"M": _map(3, _task())}},
        {"StartAt": "T", "States": {"T": _task()}},
    ]
    parallel = {"Type": "Parallel", "Branches": branches, "End": True}
    assert concurrent_cognito_tasks(_spec(tmp_path, {"P": _map(2, parallel)})) == 8  # 2 x (3 + 1)


def test_a_map_without_max_concurrency_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InfraConfigError, match="MaxConcurrency"):
        concurrent_cognito_tasks(_spec(tmp_path, {"M": _map(None, _task())}))


def test_cognito_tasks_get_their_share_and_others_none(default_synth: Synth) -> None:
    share = float(_env(default_synth, "ExportUsers")[FRACTION_ENV])
    assert abs(share * concurrent_cognito_tasks(discover()) - DEFAULT_FRACTION) < 1e-5
    assert float(_env(default_synth, "RestoreUsers")[FRACTION_ENV]) == share
    assert FRACTION_ENV not in _env(default_synth, "PlanShards")
