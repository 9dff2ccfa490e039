"""Notifications, failure alerts, alarms and the operations dashboard (security guide 4.2: monitoring)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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

from infra.storage import scoped_key

METRICS_NAMESPACE = "CognitoBackuper"
CUSTOM_METRICS = ("UsersBackedUp", "CognitoThrottles")
FAILED_STATUSES = ["FAILED", "TIMED_OUT", "ABORTED"]


class Notifications(Construct):
    """An encrypted, TLS-only topic for approval requests and failures."""

    def __init__(self, scope: Construct, construct_id: str, *, email: str | None) -> None:
        super().__init__(scope, construct_id)
        self.key = scoped_key(
            self,
            "TopicKey",
            alias="alias/cognito-backuper-notifications",
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
            topic_name="cognito-backuper-notifications",
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


class Alerts(Construct):
    """Every failed, timed-out or aborted execution is announced; each machine also has an alarm."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topic: sns.ITopic,
        machines: Mapping[str, sfn.StateMachine],
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
                alarm_name=f"{machine.node.id}-{name}-executions-failed".lower(),
                alarm_description=f"cognito-backuper: a {name} execution failed",
                metric=machine.metric_failed(period=Duration.minutes(5), statistic="Sum"),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
            self.alarms[name] = alarm


def dashboard(
    scope: Construct,
    construct_id: str,
    *,
    machines: Mapping[str, sfn.StateMachine],
    functions: Sequence[lambda_.IFunction],
) -> cw.Dashboard:
    board = cw.Dashboard(scope, construct_id, dashboard_name="cognito-backuper")
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
    board.add_widgets(
        cw.GraphWidget(
            title="Lambda throttles",
            left=[f.metric_throttles(period=period, statistic="Sum") for f in functions],
            width=12,
        ),
        cw.GraphWidget(
            title="Users backed up, Cognito throttles (emitted by the tasks)",
            # SEARCH graphs whatever dimensions the tasks emit the metrics with.
            left=[
                cw.MathExpression(
                    expression=f"SEARCH('{{{METRICS_NAMESPACE}}} MetricName=\"{metric}\"', 'Sum', 300)",
                    label=metric,
                    period=period,
                )
                for metric in CUSTOM_METRICS
            ],
            width=12,
        ),
    )
    return board
