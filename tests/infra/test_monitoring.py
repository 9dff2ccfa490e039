"""The dashboard graphs exactly what the tasks emit, the alarms page the topic, and the names are per deployment."""

from __future__ import annotations

import json
import re
from pathlib import Path

from infra.monitoring import BACKUP_MAX_AGE_HOURS, MAP_RUN_LABELS
from pipeline.core import metrics
from tests.helpers.synth import Synth, flatten

STATEMACHINES = Path(__file__).resolve().parents[2] / "statemachines"


def _dashboard(synth: Synth) -> tuple[str, str]:
    (board,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    props = board["Properties"]
    return flatten(props["DashboardName"]), flatten(props["DashboardBody"])


def test_the_dashboard_graphs_every_emitted_metric_and_nothing_else(default_synth: Synth) -> None:
    _, body = _dashboard(default_synth)
    graphed = set(re.findall(r'MetricName=\\"(\w+)\\"', body))
    widgets = json.loads(body)["widgets"]
    plain = {
        m[1]
        for w in widgets
        for m in w["properties"].get("metrics", [])
        if isinstance(m, list) and len(m) > 1 and m[0] == metrics.NAMESPACE
    }
    assert graphed | plain == metrics.NAMES
    # Each SEARCH names the exact dimension set its metric is emitted with.
    for m in metrics.ALL:
        if m.dimensions:
            assert "{" + ",".join([metrics.NAMESPACE, *m.dimensions]) + "}" in body


def test_the_dashboard_has_lambda_errors_durations_and_the_labelled_map_runs(default_synth: Synth) -> None:
    _, body = _dashboard(default_synth)
    functions = default_synth.resources("AWS::Lambda::Function")
    assert body.count('"Errors"') >= len(functions) and body.count('"Duration"') >= len(functions)
    for machine, labels in MAP_RUN_LABELS.items():
        asl = (STATEMACHINES / f"{machine}.asl.json").read_text()
        for label in labels:
            assert f'"Label": "{label}"' in asl  # the labels the ASL gives its distributed Maps
            assert f"/{label}" in body and f"{label} ExecutionsFailed" in body


def test_the_alarms_page_the_topic(default_synth: Synth) -> None:
    alarms = {
        flatten(a["Properties"]["AlarmName"]): a["Properties"]
        for a in default_synth.resources("AWS::CloudWatch::Alarm").values()
    }
    topics = default_synth.resources("AWS::SNS::Topic")
    (topic_id,) = topics
    for name, props in alarms.items():
        assert name.startswith("{AWS::StackName}-{AWS::Region}-"), name
        assert props["AlarmActions"] == [{"Ref": topic_id}]
    stale = alarms["{AWS::StackName}-{AWS::Region}-NoVerifiedBackup"]
    assert (stale["MetricName"], stale["Namespace"]) == (metrics.VERIFIED_BACKUPS.name, metrics.NAMESPACE)
    assert stale["Period"] * stale["EvaluationPeriods"] == BACKUP_MAX_AGE_HOURS * 3600
    assert (
        stale["DatapointsToAlarm"] == stale["EvaluationPeriods"] and stale["TreatMissingData"] == "breaching"
    )
    assert stale["ComparisonOperator"] == "LessThanThreshold" and stale["Threshold"] == 1
    failed_pools = alarms["{AWS::StackName}-{AWS::Region}-PoolBackupFailed"]
    assert failed_pools["MetricName"] == metrics.FAILED_POOLS.name
    throttled = alarms["{AWS::StackName}-{AWS::Region}-CognitoThrottled"]
    (expression,) = [m["Expression"] for m in throttled["Metrics"] if "Expression" in m]
    assert metrics.COGNITO_THROTTLES.name in expression and "{CognitoBackuper,Category}" in expression
    assert {"{AWS::StackName}-{AWS::Region}-backup-executions-failed"} <= set(alarms)


def test_a_failed_execution_announces_its_console_link(default_synth: Synth) -> None:
    (rule,) = [
        r
        for r in default_synth.resources("AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("detail", {}).get("status")
    ]
    (target,) = rule["Properties"]["Targets"]
    transformer = target["InputTransformer"]
    template = flatten(transformer["InputTemplate"])
    paths = transformer["InputPathsMap"]
    assert paths["detail-executionArn"] == "$.detail.executionArn" and paths["region"] == "$.region"
    assert (
        "https://<region>.console.aws.amazon.com/states/home?region=<region>#/v2/executions/details/"
        "<detail-executionArn>"
    ) in template


def test_account_wide_names_carry_the_stack_and_region(default_synth: Synth) -> None:
    name, _ = _dashboard(default_synth)
    assert name == "{AWS::StackName}-{AWS::Region}-operations"
    (topic,) = default_synth.resources("AWS::SNS::Topic").values()
    assert flatten(topic["Properties"]["TopicName"]) == "{AWS::StackName}-{AWS::Region}-notifications"


def test_role_names_carry_the_stack_and_region_and_fit_iam(options_synth: Synth) -> None:
    from infra.naming import LONGEST_REGION, ROLE_NAME_MAX

    named = [
        flatten(r["Properties"]["RoleName"])
        for r in options_synth.resources("AWS::IAM::Role").values()
        if "RoleName" in r["Properties"]
    ]
    assert sorted(named) == [
        "CognitoBackuperStack-{AWS::Region}-approver",
        "CognitoBackuperStack-{AWS::Region}-operator",
    ]
    assert all(len(n.replace("{AWS::Region}", "r" * LONGEST_REGION)) <= ROLE_NAME_MAX for n in named)


def test_a_stack_name_too_long_for_a_role_name_stops_the_synth() -> None:
    import pytest
    from aws_cdk import App, Stack

    from infra.naming import role_name
    from infra.settings import InfraConfigError

    stack = Stack(App(), "S" * 40)
    assert role_name(Stack(App(), "Short"), "operator").startswith("Short-")
    with pytest.raises(InfraConfigError, match="over IAM's 64"):
        role_name(stack, "cross-account-restore")


def test_each_scheduled_pool_has_its_own_staleness_alarm(options_synth: Synth) -> None:
    from tests.helpers.synth import OPTIONS

    found = options_synth.resources("AWS::CloudWatch::Alarm").values()
    per_pool = {
        a["Properties"]["Dimensions"][0]["Value"]: a["Properties"]
        for a in found
        if a["Properties"].get("MetricName") == metrics.POOL_VERIFIED.name
    }
    assert sorted(per_pool) == sorted(OPTIONS["backupPoolIds"])
    for pool_id, props in per_pool.items():
        assert flatten(props["AlarmName"]) == f"{{AWS::StackName}}-{{AWS::Region}}-NoVerifiedBackup-{pool_id}"
        assert props["Dimensions"] == [{"Name": metrics.POOL, "Value": pool_id}]
        assert props["Period"] * props["EvaluationPeriods"] == BACKUP_MAX_AGE_HOURS * 3600
        assert props["TreatMissingData"] == "breaching"
