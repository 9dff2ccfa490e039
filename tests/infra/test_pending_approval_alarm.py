"""The pending-approval alarm on the synthesized template: schedule, checker role, alarm and its settings."""

from __future__ import annotations

from typing import Any

import pytest

from infra.approval_watch import TASK
from infra.settings import InfraConfigError, Settings, settings_from_context
from pipeline.core import metrics, task_names
from pipeline.restore.approval_watch import MACHINE_ENV
from tests.helpers.synth import OPTIONS, Synth, as_list, statements

RESTORE_MACHINE = "cognito-backuper-restore"


def _hours_and_minutes(synth: Synth, options: bool) -> tuple[int, int]:
    if options:
        return int(OPTIONS["pendingApprovalAlarmHours"]), int(OPTIONS["pendingApprovalCheckMinutes"])
    defaults = Settings()
    return defaults.pending_approval_alarm_hours, defaults.pending_approval_check_minutes


def _alarm(synth: Synth, suffix: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        a["Properties"]
        for a in synth.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["AlarmName"]["Fn::Join"][1][-1] == f"-{suffix}"
    ]
    assert len(found) == 1, suffix
    return found[0]


def _check_function(synth: Synth) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (lid, f)
        for lid, f in synth.resources("AWS::Lambda::Function").items()
        if f["Properties"].get("FunctionName") == task_names.function_name(TASK)
    ]
    return found


def _restore_machine(synth: Synth) -> str:
    (lid,) = [
        lid
        for lid, m in synth.resources("AWS::StepFunctions::StateMachine").items()
        if m["Properties"]["StateMachineName"] == RESTORE_MACHINE
    ]
    return lid


def _role_statements(synth: Synth, role: str) -> list[dict[str, Any]]:
    return [
        s
        for p in synth.resources("AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
        for s in statements(p["Properties"]["PolicyDocument"])
    ]


@pytest.mark.parametrize("variant", ["default", "options"])
def test_a_restore_waiting_longer_than_the_setting_pages_the_topic(
    variant: str, request: pytest.FixtureRequest
) -> None:
    synth: Synth = request.getfixturevalue(f"{variant}_synth")
    hours, minutes = _hours_and_minutes(synth, variant == "options")
    alarm = _alarm(synth, "PendingApprovalTooOld")
    (topic,) = synth.resources("AWS::SNS::Topic")
    assert alarm["AlarmActions"] == [{"Ref": topic}]
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        metrics.NAMESPACE,
        metrics.OLDEST_PENDING_APPROVAL.name,
    )
    assert "Dimensions" not in alarm  # as emitted: no request id, pool or person
    assert alarm["Statistic"] == "Maximum" and alarm["Period"] == minutes * 60
    assert alarm["Threshold"] == hours * 3600 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 1
    # A check that did not run is not a late approval; the next alarm covers a check that fails.
    assert alarm["TreatMissingData"] == "notBreaching"
    assert f"{hours} hours" in alarm["AlarmDescription"]

    failing = _alarm(synth, "PendingApprovalCheckFailing")
    check, _ = _check_function(synth)
    assert failing["AlarmActions"] == [{"Ref": topic}]
    assert (failing["Namespace"], failing["MetricName"]) == ("AWS/Lambda", "Errors")
    assert failing["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": check}}]
    assert failing["Period"] == minutes * 60 and failing["EvaluationPeriods"] == 3


@pytest.mark.parametrize("variant", ["default", "options"])
def test_the_check_runs_on_its_schedule_and_nothing_else_invokes_it(
    variant: str, request: pytest.FixtureRequest
) -> None:
    synth: Synth = request.getfixturevalue(f"{variant}_synth")
    _, minutes = _hours_and_minutes(synth, variant == "options")
    check, _ = _check_function(synth)
    (schedule,) = [
        s["Properties"]
        for s in synth.resources("AWS::Scheduler::Schedule").values()
        if s["Properties"]["Target"]["Arn"] == {"Fn::GetAtt": [check, "Arn"]}
    ]
    assert schedule["ScheduleExpression"] == f"rate({minutes} minutes)" and schedule["State"] == "ENABLED"
    role = schedule["Target"]["RoleArn"]["Fn::GetAtt"][0]
    assert _role_statements(synth, role) == [
        {
            "Action": "lambda:InvokeFunction",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [check, "Arn"]},
            "Sid": "InvokeCheck",
        }
    ]
    assert not synth.resources("AWS::Lambda::Permission") or all(
        p["Properties"]["FunctionName"] not in ({"Ref": check}, {"Fn::GetAtt": [check, "Arn"]})
        for p in synth.resources("AWS::Lambda::Permission").values()
    )


def test_the_check_reads_the_restore_executions_and_nothing_else(default_synth: Synth) -> None:
    _, function = _check_function(default_synth)
    props = function["Properties"]
    machine = _restore_machine(default_synth)
    assert props["Environment"]["Variables"][MACHINE_ENV] == {"Ref": machine}
    assert props["Handler"] == "tasks.check_pending_approvals.handler"
    role = props["Role"]["Fn::GetAtt"][0]
    granted = {
        action: s["Resource"]
        for s in _role_statements(default_synth, role)
        for action in as_list(s["Action"])
    }
    logs = {a for a in granted if a.startswith("logs:")}
    assert set(granted) - logs == {"states:ListExecutions", "states:GetExecutionHistory"}
    assert granted["states:ListExecutions"] == {"Ref": machine}
    history = granted["states:GetExecutionHistory"]["Fn::Join"][1]
    assert history[-1] == f":execution:{RESTORE_MACHINE}:*"
    # No managed policy, no inline policy beyond the statements above.
    role_props = default_synth.template["Resources"][role]["Properties"]
    assert "ManagedPolicyArns" not in role_props and "Policies" not in role_props


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"pendingApprovalAlarmHours": 0}, "pendingApprovalAlarmHours"),
        ({"pendingApprovalAlarmHours": 169}, "pendingApprovalAlarmHours"),
        ({"pendingApprovalAlarmHours": "four"}, "pendingApprovalAlarmHours"),
        ({"pendingApprovalCheckMinutes": 0}, "pendingApprovalCheckMinutes"),
        ({"pendingApprovalCheckMinutes": 61}, "pendingApprovalCheckMinutes"),
    ],
)
def test_bad_pending_approval_settings_stop_the_synth(values: dict[str, Any], key: str) -> None:
    with pytest.raises(InfraConfigError, match=key):
        settings_from_context(values.get)


def test_pending_approval_settings_accept_cli_strings() -> None:
    s = settings_from_context({"pendingApprovalAlarmHours": "8", "pendingApprovalCheckMinutes": "5"}.get)
    assert (s.pending_approval_alarm_hours, s.pending_approval_check_minutes) == (8, 5)
