"""The state machines from statemachines/*.asl.json and the daily schedule that starts the backup."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.asl import MachineSpec
from infra.naming import deployment_name
from infra.settings import InfraConfigError, Settings
from infra.suppressions import (
    ANY_RESOURCE,
    DISTRIBUTED_CHILDREN,
    NESTED_EXECUTIONS,
    STATES_SERVICE,
    acknowledge,
    bucket_prefix_resource,
)
from pipeline.core import task_names

# Where EnumeratePools writes a run's pool list (pipeline.backup.run_objects), read by the Map's ItemReader.
RUNS_FOLDER = "runs"
RUN_OBJECTS = (
    "A backup run's pool list is written at run time under <prefix>/runs/<run>/; the state machine may "
    "only read (s3:GetObject) objects of that folder of this one bucket, for its distributed Map's ItemReader."
)


@dataclass(frozen=True)
class ItemSource:
    """The bucket, key and prefix where a distributed Map's ItemReader finds its items (SSE-KMS objects)."""

    bucket: s3.IBucket
    key: kms.IKey
    prefix: str


def reads_items(node: Any) -> bool:
    """Whether a definition has a Map with an ItemReader (its items come from S3, not from the state)."""
    if isinstance(node, dict):
        return "ItemReader" in node or any(reads_items(v) for v in node.values())
    if isinstance(node, list):
        return any(reads_items(v) for v in node)
    return False


class Machine(Construct):
    """One ASL file deployed as is, placeholders filled by CloudFormation, its role limited to its tasks."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: MachineSpec,
        functions: Mapping[str, lambda_.IFunction],
        settings: Mapping[str, str],
        started: Mapping[str, tuple[MachineSpec, sfn.IStateMachine]],
        log_retention: logs.RetentionDays,
        items: ItemSource | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        substitutions = {name: settings[name] for name in spec.settings}
        for task in spec.tasks:
            substitutions[task + task_names.FUNCTION_SUFFIX] = functions[task].function_arn
        for name in spec.starts:
            started_spec, machine = started[name]
            substitutions[started_spec.placeholder] = machine.state_machine_arn
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            # The /aws/vendedlogs/ prefix keeps CloudWatch Logs' resource policy small.
            log_group_name=f"/aws/vendedlogs/states/{spec.state_machine_name}",
            retention=log_retention,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description=f"cognito-backuper {spec.name} state machine: invokes its own tasks only",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="InvokeOwnTasks",
                actions=["lambda:InvokeFunction"],
                resources=[functions[t].function_arn for t in spec.tasks],
            )
        )
        for name in spec.starts:
            started_spec, machine = started[name]
            for statement in nested_execution_statements(started_spec, machine):
                self.role.add_to_policy(statement)
            acknowledge(
                self.role,
                "IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
                f"{started_spec.state_machine_name}:*]",
                NESTED_EXECUTIONS,
            )
        if spec.distributed:
            for statement in distributed_map_statements(spec):
                self.role.add_to_policy(statement)
            acknowledge(
                self.role,
                "IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
                f"{spec.state_machine_name}/*]",
                DISTRIBUTED_CHILDREN,
            )
        if reads_items(json.loads(spec.path.read_text(encoding="utf-8"))):
            if items is None:
                raise InfraConfigError(
                    f"{spec.name}: a Map reads items from S3; give the machine its ItemSource"
                )
            for statement in item_reader_statements(items):
                self.role.add_to_policy(statement)
            # The key policy names the role too: the key trusts no one by default (infra.storage.scoped_key).
            items.key.add_to_resource_policy(item_reader_key_statement(spec, self.role))
            acknowledge(
                self.role, bucket_prefix_resource(items.bucket, f"{items.prefix}/{RUNS_FOLDER}"), RUN_OBJECTS
            )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=spec.state_machine_name,
            definition_body=sfn.DefinitionBody.from_file(str(spec.path)),
            definition_substitutions=substitutions,
            role=self.role,
            tracing_enabled=True,
            # Execution data holds ids and S3 keys only, but the logs never need it: ids are in the history.
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False
            ),
        )
        acknowledge(self.role, ANY_RESOURCE, STATES_SERVICE)


def distributed_map_statements(spec: MachineSpec) -> list[iam.PolicyStatement]:
    """A DISTRIBUTED Map starts child executions of its own machine: start it, follow and stop those children.
    The ARN is built from the fixed name, since the role cannot refer to the machine it belongs to."""
    prefix = f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}"
    return [
        iam.PolicyStatement(
            sid="StartOwnMapRuns",
            actions=["states:StartExecution"],
            resources=[f"{prefix}:stateMachine:{spec.state_machine_name}"],
        ),
        iam.PolicyStatement(
            sid="FollowOwnMapRuns",
            actions=["states:DescribeExecution", "states:StopExecution"],
            resources=[f"{prefix}:execution:{spec.state_machine_name}/*"],
        ),
    ]


def _via_s3() -> dict[str, dict[str, str]]:
    return {"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}}


def item_reader_statements(items: ItemSource) -> list[iam.PolicyStatement]:
    """The ItemReader's s3:getObject of a run's pool list, an SSE-KMS object: read it, and decrypt through S3."""
    return [
        iam.PolicyStatement(
            sid="ReadMapItems",
            actions=["s3:GetObject"],
            resources=[items.bucket.arn_for_objects(f"{items.prefix}/{RUNS_FOLDER}/*")],
        ),
        iam.PolicyStatement(
            sid="DecryptMapItems",
            actions=["kms:Decrypt"],
            resources=[items.key.key_arn],
            conditions=_via_s3(),
        ),
    ]


def item_reader_key_statement(spec: MachineSpec, role: iam.IRole) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid=f"DecryptMapItemsFor{spec.construct_id}Machine",
        principals=[role],
        actions=["kms:Decrypt"],
        resources=["*"],
        conditions=_via_s3(),
    )


def nested_execution_statements(spec: MachineSpec, machine: sfn.IStateMachine) -> list[iam.PolicyStatement]:
    """``states:startExecution.sync:2`` on one machine: start it, follow and stop its executions, and the
    managed EventBridge rule Step Functions uses to learn that the child finished."""
    executions = (
        f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:execution:{spec.state_machine_name}:*"
    )
    sync_rule = (
        f"arn:{Aws.PARTITION}:events:{Aws.REGION}:{Aws.ACCOUNT_ID}:rule/"
        "StepFunctionsGetEventsForStepFunctionsExecutionRule"
    )
    return [
        iam.PolicyStatement(
            sid=f"Start{spec.construct_id}",
            actions=["states:StartExecution"],
            resources=[machine.state_machine_arn],
        ),
        iam.PolicyStatement(
            sid=f"Follow{spec.construct_id}",
            actions=["states:DescribeExecution", "states:StopExecution"],
            resources=[executions],
        ),
        iam.PolicyStatement(
            sid="SyncExecutionRule",
            actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            resources=[sync_rule],
        ),
    ]


class MachineSchedule(Construct):
    """EventBridge Scheduler starts one state machine with a fixed input; its role may start that machine only.

    The schedule's name is ``<stack>-<Region>-<suffix>`` (infra.naming): schedule names are unique per account,
    Region and group, so two deployments can live side by side.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        machine: sfn.IStateMachine,
        suffix: str,
        description: str,
        expression: str,
        timezone: str,
        payload: dict[str, object],
        enabled: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"),
            description=f"cognito-backuper schedule ({suffix}): starts one state machine only",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="StartMachine", actions=["states:StartExecution"], resources=[machine.state_machine_arn]
            )
        )
        self.input = payload
        self.schedule = scheduler.CfnSchedule(
            self,
            "Schedule",
            name=deployment_name(suffix),
            description=description,
            schedule_expression=expression,
            schedule_expression_timezone=timezone,
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED" if enabled else "DISABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=machine.state_machine_arn,
                role_arn=self.role.role_arn,
                input=json.dumps(self.input),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_event_age_in_seconds=3600, maximum_retry_attempts=3
                ),
            ),
        )
        # The first run must find the role's policy in place (the GetAtt only orders the role itself).
        policy = self.role.node.try_find_child("DefaultPolicy")
        if policy is not None:
            self.schedule.node.add_dependency(policy)


class DailyBackupSchedule(MachineSchedule):
    """The daily backup of the configured pools (or of every pool)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, machine: sfn.IStateMachine, settings: Settings
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            machine=machine,
            suffix="daily-backup",
            description="Daily backup of Cognito user pools",
            expression=settings.schedule_expression,
            timezone=settings.schedule_timezone,
            payload={"poolIds": list(settings.backup_pool_ids), "allPools": settings.all_pools},
        )
