"""On AWS every task that calls Cognito draws on one shared rate budget (a DynamoDB table) holding the whole
share; ``concurrent_cognito_tasks`` still counts the tasks that can run at once (the bench models them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.asl import MachineSpec, concurrent_cognito_tasks, discover
from infra.settings import InfraConfigError
from pipeline.cognito.throttle import BUDGET_TABLE_ENV, DEFAULT_FRACTION, FRACTION_ENV
from pipeline.core.task_names import function_name
from tests.helpers.synth import Synth, as_list, policy_documents, statements


def _env(synth: Synth, task: str) -> dict[str, str]:
    for res in synth.resources("AWS::Lambda::Function").values():
        if res["Properties"].get("FunctionName") == function_name(task):
            env: dict[str, str] = res["Properties"]["Environment"]["Variables"]
            return env
    raise AssertionError(task)


def test_concurrent_tasks_add_the_parallel_branches_maps() -> None:
    # The backup runs ExportShards (MaxConcurrency 2) beside ExportGroupSlices (2) inside BackupEachPool (1): 4;
    # the restore's RestoreUsers Map (8) is now the most tasks one machine runs at once.
    assert concurrent_cognito_tasks(discover()) == 8


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


def test_cognito_tasks_share_one_table_with_the_whole_share_and_others_none(default_synth: Synth) -> None:
    (table_id,) = default_synth.resources("AWS::DynamoDB::Table")
    table = default_synth.template["Resources"][table_id]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    for task in (
        "ExportUsers",
        "ExportGroupMemberships",
        "CapturePoolConfig",
        "RestoreUsers",
        "VerifyRestore",
    ):
        env = _env(default_synth, task)
        assert float(env[FRACTION_ENV]) == DEFAULT_FRACTION  # not a 1/12 slice
        table_ref: object = env[BUDGET_TABLE_ENV]  # a CloudFormation Ref in the template, not a string
        assert table_ref == {"Ref": table_id}
    assert FRACTION_ENV not in _env(default_synth, "PlanShards")
    assert BUDGET_TABLE_ENV not in _env(default_synth, "PlanShards")


def test_only_the_budget_table_and_only_update_item(default_synth: Synth) -> None:
    (table_id,) = default_synth.resources("AWS::DynamoDB::Table")
    granted = []
    for _lid, _kind, doc in policy_documents(default_synth.template):
        for statement in statements(doc):
            actions = [a for a in as_list(statement.get("Action", [])) if a.startswith("dynamodb:")]
            if actions:
                granted.append(statement)
                assert actions == ["dynamodb:UpdateItem"]
                assert as_list(statement["Resource"]) == [{"Fn::GetAtt": [table_id, "Arn"]}]
    cognito_tasks = [
        t
        for t in ("ExportUsers", "RestoreUsers", "CapturePoolConfig")
        if BUDGET_TABLE_ENV in _env(default_synth, t)
    ]
    assert len(cognito_tasks) == 3 and granted
