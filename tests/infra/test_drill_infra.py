"""The drill in the synthesized template: its machine, its weekly schedule, and roles bound to the drill tag."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.drill import DRILL_TAG_VALUE, DRILL_TASK_NEEDS
from infra.settings import InfraConfigError, Settings, settings_from_context
from pipeline.core import task_names
from pipeline.drill.steps import DRILL_TAG
from tests.helpers.synth import Synth, as_list, flatten

ROOT = Path(__file__).resolve().parents[2]


def _role_statements(template: dict[str, Any], task: str) -> list[dict[str, Any]]:
    functions = template["Resources"]
    function = next(
        r
        for r in functions.values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"].get("FunctionName") == task_names.function_name(task)
    )
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    found: list[dict[str, Any]] = []
    for res in functions.values():
        if res["Type"] == "AWS::IAM::Policy" and {"Ref": role} in res["Properties"]["Roles"]:
            found.extend(res["Properties"]["PolicyDocument"]["Statement"])
    return found


def test_the_drill_machine_is_deployed_from_its_asl_file(default_synth: Synth) -> None:
    machines = default_synth.resources("AWS::StepFunctions::StateMachine")
    (drill,) = [
        m for m in machines.values() if m["Properties"]["StateMachineName"] == "cognito-backuper-drill"
    ]
    subs = drill["Properties"]["DefinitionSubstitutions"]
    assert set(subs) == task_names.placeholders((ROOT / "statemachines" / "drill.asl.json").read_text())
    assert {t + "FunctionArn" for t in DRILL_TASK_NEEDS} <= set(subs)


def test_the_drill_runs_weekly_on_its_own_schedule_with_the_default_sample(default_synth: Synth) -> None:
    schedules = default_synth.resources("AWS::Scheduler::Schedule")
    (drill,) = [
        s
        for s in schedules.values()
        if flatten(s["Properties"]["Name"]) == "{AWS::StackName}-{AWS::Region}-restore-drill"
    ]
    props = drill["Properties"]
    assert props["ScheduleExpression"] == Settings().drill_schedule_expression == "cron(0 5 ? * SUN *)"
    assert props["State"] == "ENABLED"
    assert json.loads(props["Target"]["Input"]) == {"sample": 1000}
    machine = props["Target"]["Arn"]["Ref"]
    assert (
        default_synth.template["Resources"][machine]["Properties"]["StateMachineName"]
        == "cognito-backuper-drill"
    )


def test_the_drill_schedule_and_sample_are_settings(tmp_path: Path) -> None:
    settings = settings_from_context(
        {"drillScheduleExpression": "rate(1 day)", "drillSampleSize": 50, "drillEnabled": False}.get
    )
    assert (settings.drill_schedule_expression, settings.drill_sample_size, settings.drill_enabled) == (
        "rate(1 day)",
        50,
        False,
    )
    with pytest.raises(InfraConfigError, match="drillSampleSize"):
        settings_from_context({"drillSampleSize": 0}.get)


def test_every_cognito_grant_of_a_drill_role_is_bound_to_the_drill_tag(default_synth: Synth) -> None:
    """Only ListUserPools, which IAM cannot scope (no resource type, no condition key), is unconditioned."""
    unbound = []
    for task in DRILL_TASK_NEEDS:
        for statement in _role_statements(default_synth.template, task):
            actions = [a for a in as_list(statement["Action"]) if a.startswith("cognito-idp:")]
            if not actions or actions == ["cognito-idp:ListUserPools"]:
                continue
            condition = statement.get("Condition", {}).get("StringLike", {})
            key = "aws:RequestTag" if actions == ["cognito-idp:CreateUserPool"] else "aws:ResourceTag"
            if condition != {f"{key}/{DRILL_TAG}": DRILL_TAG_VALUE} or statement["Effect"] != "Allow":
                unbound.append(f"{task}: {actions} {statement.get('Condition')}")
    assert unbound == []
    granted = {
        a
        for task in DRILL_TASK_NEEDS
        for s in _role_statements(default_synth.template, task)
        for a in as_list(s["Action"])
    }
    assert {
        "cognito-idp:CreateUserPool",
        "cognito-idp:DeleteUserPool",
        "cognito-idp:AdminCreateUser",
    } <= granted


def test_a_failed_drill_execution_has_its_alarm(default_synth: Synth) -> None:
    machines = default_synth.resources("AWS::StepFunctions::StateMachine")
    (drill,) = [
        k for k, m in machines.items() if m["Properties"]["StateMachineName"] == "cognito-backuper-drill"
    ]
    watched = [
        a["Properties"]
        for a in default_synth.resources("AWS::CloudWatch::Alarm").values()
        if {"Name": "StateMachineArn", "Value": {"Ref": drill}} in a["Properties"].get("Dimensions", [])
    ]
    assert [(a["MetricName"], a["ComparisonOperator"], a["Threshold"]) for a in watched] == [
        ("ExecutionsFailed", "GreaterThanOrEqualToThreshold", 1)
    ]
    assert watched[0]["AlarmActions"]
