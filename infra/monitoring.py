"""Notifications, failure alerts, alarms and the operations dashboard (security guide 4.2: monitoring)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jsii
from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.interfaces.aws_events import IRuleRef
from constructs import Construct

from infra.naming import deployment_name
from infra.storage import scoped_key
from pipeline.core import metrics

METRICS_NAMESPACE = metrics.NAMESPACE
FAILED_STATUSES = ["FAILED", "TIMED_OUT", "ABORTED"]
# The daily schedule plus slack: a pool whose last verified backup is older than this is paged for.
BACKUP_MAX_AGE_HOURS = 26
# Cognito throttles the tasks absorbed in 5 minutes before someone should look (shared quota under pressure).
THROTTLE_ALARM_THRESHOLD = 50


def console_link() -> str:
    """The failed execution's page in the Step Functions console, filled in by the rule's input transformer."""
    region = events.EventField.region
    arn = events.EventField.from_path("$.detail.executionArn")
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{arn}"


class Notifications(Construct):
    """An encrypted, TLS-only topic for approval requests and failures."""

    def __init__(self, scope: Construct, construct_id: str, *, email: str | None) -> None:
        super().__init__(scope, construct_id)
        self.key = scoped_key(
            self,
            "TopicKey",
            alias=f"alias/{deployment_name('notifications')}",
            description="cognito-backuper: encrypts the notification topic",
        )
        # EventBridge and CloudWatch alarms publish to the encrypted topic; they need the key, for SNS only.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="PublishFromAlertServices",
                principals=[
                    iam.ServicePrincipal("events.amazonaws.com"),
                    iam.ServicePrincipal("cloudwatch.amazonaws.com"),
                ],
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=["*"],
            )
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=deployment_name("notifications"),
            display_name="cognito-backuper",
            master_key=self.key,
            enforce_ssl=True,
        )
        if email:
            self.topic.add_subscription(subs.EmailSubscription(email))


@jsii.implements(events.IRuleTarget)
class _TopicTarget:
    """Publishes to the topic under the topic policy below, without CDK's SnsTopic target, which would also
    add a ``kms:GenerateDataKey*`` wildcard grant to the topic key (the key policy names the exact actions).
    """

    def __init__(self, topic: sns.ITopic, message: events.RuleTargetInput) -> None:
        self._topic = topic
        self._message = message

    def bind(self, rule: IRuleRef, id: str | None = None) -> events.RuleTargetConfig:
        return events.RuleTargetConfig(arn=self._topic.topic_arn, input=self._message)


@dataclass(frozen=True)
class PendingApprovalAlarm:
    """The pending-approval alarm's settings and the function that measures the wait (infra.approval_watch)."""

    hours: int
    check_minutes: int
    check: lambda_.IFunction


class Alerts(Construct):
    """Every failed, timed-out or aborted execution is announced; each machine also has an alarm."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topic: sns.ITopic,
        machines: Mapping[str, sfn.StateMachine],
        pool_ids: Sequence[str] = (),
        pending_approval: PendingApprovalAlarm | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.rule = events.Rule(
            self,
            "ExecutionFailed",
            description="cognito-backuper: an execution failed, timed out or was aborted",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "status": FAILED_STATUSES,
                    "stateMachineArn": [m.state_machine_arn for m in machines.values()],
                },
            ),
        )
        # Only ids and status: the event also carries the execution's input and output, kept out of e-mail.
        message = events.RuleTargetInput.from_object(
            {
                "alert": "cognito-backuper execution did not succeed",
                "console": console_link(),
                "status": events.EventField.from_path("$.detail.status"),
                "executionArn": events.EventField.from_path("$.detail.executionArn"),
                "stateMachineArn": events.EventField.from_path("$.detail.stateMachineArn"),
                "region": events.EventField.region,
                "time": events.EventField.time,
            }
        )
        self.rule.add_target(_TopicTarget(topic, message))
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="PublishFailedExecutions",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={"ArnEquals": {"aws:SourceArn": self.rule.rule_arn}},
            )
        )
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="PublishAlarms",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:"
                        "alarm:*"
                    }
                },
            )
        )
        self.alarms: dict[str, cw.Alarm] = {}
        for name, machine in machines.items():
            alarm = cw.Alarm(
                self,
                f"{name}Failed",
                alarm_name=deployment_name(f"{name}-executions-failed"),
                alarm_description=f"cognito-backuper: a {name} execution failed",
                metric=machine.metric_failed(period=Duration.minutes(5), statistic="Sum"),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
            self.alarms[name] = alarm
        self.alarms["NoVerifiedBackup"] = self._alarm(
            "NoVerifiedBackup",
            topic,
            description=(
                f"cognito-backuper: no pool got a verified backup for {BACKUP_MAX_AGE_HOURS} hours "
                "(the daily run did not run, or every pool failed)"
            ),
            metric=_metric(metrics.VERIFIED_BACKUPS, Duration.hours(1), "Sum"),
            threshold=1,
            periods=BACKUP_MAX_AGE_HOURS,
            comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            missing=cw.TreatMissingData.BREACHING,
        )
        # The schedule names its pools: each gets its own staleness alarm (with every pool, only the total can).
        for index, pool_id in enumerate(pool_ids):
            self.alarms[f"NoVerifiedBackup-{pool_id}"] = self._alarm(
                f"NoVerifiedBackupPool{index}",
                topic,
                name=f"NoVerifiedBackup-{pool_id}",
                description=f"cognito-backuper: pool {pool_id} has no verified backup for {BACKUP_MAX_AGE_HOURS} hours",
                metric=cw.Metric(
                    namespace=metrics.NAMESPACE,
                    metric_name=metrics.POOL_VERIFIED.name,
                    dimensions_map={metrics.POOL: pool_id},
                    period=Duration.hours(1),
                    statistic="Sum",
                ),
                threshold=1,
                periods=BACKUP_MAX_AGE_HOURS,
                comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                missing=cw.TreatMissingData.BREACHING,
            )
        self.alarms["PoolBackupFailed"] = self._alarm(
            "PoolBackupFailed",
            topic,
            description="cognito-backuper: a pool of the daily run has no verified backup (see the run's summary)",
            metric=_metric(metrics.FAILED_POOLS, Duration.minutes(5), "Sum"),
            threshold=1,
            periods=1,
            comparison=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            missing=cw.TreatMissingData.NOT_BREACHING,
        )
        self.alarms["CognitoThrottled"] = self._alarm(
            "CognitoThrottled",
            topic,
            description=(
                f"cognito-backuper: more than {THROTTLE_ALARM_THRESHOLD} Cognito throttles in 5 minutes: the "
                "account's shared quota is under pressure (production traffic may be throttled too)"
            ),
            metric=cw.MathExpression(
                expression=_search(metrics.COGNITO_THROTTLES, "Sum", 300, total=True),
                label="CognitoThrottles (all categories)",
                period=Duration.minutes(5),
            ),
            threshold=THROTTLE_ALARM_THRESHOLD,
            periods=1,
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            missing=cw.TreatMissingData.NOT_BREACHING,
        )

        if pending_approval is not None:
            self._pending_approval_alarms(topic, pending_approval)

    def _pending_approval_alarms(self, topic: sns.ITopic, watch: PendingApprovalAlarm) -> None:
        hours, minutes = watch.hours, watch.check_minutes
        self.alarms["PendingApprovalTooOld"] = self._alarm(
            "PendingApprovalTooOld",
            topic,
            description=(
                f"cognito-backuper: a restore has waited more than {hours} hours for approval (list it with "
                "'cognito-backuper approvals', then approve or reject it; unanswered, it expires)"
            ),
            # The check runs every ``minutes``: one period per check, its largest wait.
            metric=_metric(metrics.OLDEST_PENDING_APPROVAL, Duration.minutes(minutes), "Maximum"),
            threshold=hours * 3600,
            periods=1,
            comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            # No data: the check did not run (the alarm below watches that), not a late approval.
            missing=cw.TreatMissingData.NOT_BREACHING,
        )
        # A check that keeps failing measures nothing, and the alarm above would stay silent: page for it too.
        self.alarms["PendingApprovalCheckFailing"] = self._alarm(
            "PendingApprovalCheckFailing",
            topic,
            description=(
                "cognito-backuper: CheckPendingApprovals failed 3 checks in a row, so late approvals are not "
                "detected (see its log group)"
            ),
            metric=watch.check.metric_errors(period=Duration.minutes(minutes), statistic="Sum"),
            threshold=1,
            periods=3,
            comparison=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            missing=cw.TreatMissingData.NOT_BREACHING,
        )

    def _alarm(
        self,
        construct_id: str,
        topic: sns.ITopic,
        *,
        name: str | None = None,
        description: str,
        metric: cw.IMetric,
        threshold: float,
        periods: int,
        comparison: cw.ComparisonOperator,
        missing: cw.TreatMissingData,
    ) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            construct_id,
            alarm_name=deployment_name(name or construct_id),
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            comparison_operator=comparison,
            treat_missing_data=missing,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(topic))
        return alarm


def _metric(metric: metrics.Metric, period: Duration, statistic: str) -> cw.Metric:
    """A metric without dimensions (the run's totals), as the tasks emit it."""
    if metric.dimensions:
        raise ValueError(f"{metric.name} has dimensions {metric.dimensions}: graph it with _search")
    return cw.Metric(namespace=metrics.NAMESPACE, metric_name=metric.name, period=period, statistic=statistic)


def _search(metric: metrics.Metric, statistic: str, period_s: int, *, total: bool = False) -> str:
    """Every series of ``metric`` under its exact dimension set (a pool, a task, a quota category)."""
    schema = ",".join([metrics.NAMESPACE, *metric.dimensions])
    search = f"SEARCH('{{{schema}}} MetricName=\"{metric.name}\"', '{statistic}', {period_s})"
    return f"SUM({search})" if total else search


# What the dashboard graphs of the tasks' own metrics, per widget; every name in pipeline.core.metrics appears.
TASK_METRIC_WIDGETS: tuple[tuple[str, tuple[metrics.Metric, ...], str], ...] = (
    ("Backups: verified and failed pools per run", (metrics.VERIFIED_BACKUPS, metrics.FAILED_POOLS), "Sum"),
    ("Backups: verified per pool", (metrics.POOL_VERIFIED,), "Sum"),
    ("Backups: age of the newest verified backup per pool", (metrics.BACKUP_AGE,), "Maximum"),
    (
        "Backups: users and memberships exported per pool",
        (metrics.USERS_EXPORTED, metrics.MEMBERSHIPS_EXPORTED),
        "Sum",
    ),
    ("Bytes written per task", (metrics.BYTES_WRITTEN,), "Sum"),
    (
        "Cognito calls and throttles per quota category",
        (metrics.COGNITO_CALLS, metrics.COGNITO_THROTTLES),
        "Sum",
    ),
    (
        "Cognito rate achieved vs allowed per category",
        (metrics.RATE_ACHIEVED, metrics.RATE_ALLOWED),
        "Maximum",
    ),
    (
        "Restore progress per target pool",
        (metrics.USERS_RESTORED, metrics.USERS_NOT_RESTORED, metrics.MEMBERSHIPS_RESTORED),
        "Sum",
    ),
    (
        "Restore drills: passed (1) or failed (0), sample size, duration per pool",
        (metrics.DRILL_PASSED, metrics.DRILL_SAMPLE, metrics.DRILL_DURATION),
        "Minimum",
    ),
    (
        "Restore approvals: waiting restores and the longest wait (s)",
        (metrics.PENDING_APPROVALS, metrics.OLDEST_PENDING_APPROVAL),
        "Maximum",
    ),
)
# The distributed Maps' labels (statemachines/*.asl.json): their child executions report under
# <state machine ARN>/<label>, so the dashboard graphs each labelled Map Run.
MAP_RUN_LABELS = {"backup": ("BackupPools", "ExportShards"), "restore": ("RestoreShards",)}


def _task_metric(metric: metrics.Metric, statistic: str, period: Duration) -> cw.IMetric:
    if not metric.dimensions:
        return _metric(metric, period, statistic)
    return cw.MathExpression(
        expression=_search(metric, statistic, int(period.to_seconds())), label=metric.name, period=period
    )


def dashboard(
    scope: Construct,
    construct_id: str,
    *,
    machines: Mapping[str, sfn.StateMachine],
    functions: Mapping[str, lambda_.IFunction],
) -> cw.Dashboard:
    board = cw.Dashboard(scope, construct_id, dashboard_name=deployment_name("operations"))
    period = Duration.minutes(5)
    for name, machine in machines.items():
        board.add_widgets(
            cw.GraphWidget(
                title=f"{name}: executions",
                left=[
                    machine.metric_started(period=period, statistic="Sum"),
                    machine.metric_succeeded(period=period, statistic="Sum"),
                    machine.metric_failed(period=period, statistic="Sum"),
                ],
                width=12,
            ),
            cw.GraphWidget(
                title=f"{name}: duration",
                left=[machine.metric_time(period=period, statistic="Average")],
                width=12,
            ),
        )
        labels = MAP_RUN_LABELS.get(name, ())
        if labels:
            board.add_widgets(
                cw.GraphWidget(
                    title=f"{name}: distributed Map Runs (child executions by label)",
                    left=[
                        cw.Metric(
                            namespace="AWS/States",
                            metric_name=kind,
                            dimensions_map={"StateMachineArn": f"{machine.state_machine_arn}/{label}"},
                            period=period,
                            statistic="Sum",
                            label=f"{label} {kind}",
                        )
                        for label in labels
                        for kind in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed")
                    ],
                    width=24,
                )
            )
    board.add_widgets(
        cw.GraphWidget(
            title="Lambda errors per task",
            left=[f.metric_errors(period=period, statistic="Sum", label=t) for t, f in functions.items()],
            width=8,
        ),
        cw.GraphWidget(
            title="Lambda duration per task (p90)",
            left=[f.metric_duration(period=period, statistic="p90", label=t) for t, f in functions.items()],
            width=8,
        ),
        cw.GraphWidget(
            title="Lambda throttles per task",
            left=[f.metric_throttles(period=period, statistic="Sum", label=t) for t, f in functions.items()],
            width=8,
        ),
    )
    board.add_widgets(
        *(
            cw.GraphWidget(
                title=title,
                left=[_task_metric(m, statistic, period) for m in shown],
                width=12,
            )
            for title, shown, statistic in TASK_METRIC_WIDGETS
        )
    )
    return board
