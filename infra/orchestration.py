"""The state machines from statemachines/*.asl.json and the daily schedule that starts the backup."""

from __future__ import annotations

import json
from collections.abc import Mapping

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.asl import MachineSpec
from infra.settings import Settings
from infra.suppressions import (
    ANY_RESOURCE,
    DISTRIBUTED_CHILDREN,
    NESTED_EXECUTIONS,
    STATES_SERVICE,
    acknowledge,
)
from pipeline.core import task_names


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


class DailyBackupSchedule(Construct):
    """EventBridge Scheduler starts the backup machine; its role may start that machine and nothing else."""

    def __init__(
        self, scope: Construct, construct_id: str, *, machine: sfn.IStateMachine, settings: Settings
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"),
            description="cognito-backuper schedule: starts the backup state machine only",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="StartBackup", actions=["states:StartExecution"], resources=[machine.state_machine_arn]
            )
        )
        self.input = {"poolIds": list(settings.backup_pool_ids), "allPools": settings.all_pools}
        self.schedule = scheduler.CfnSchedule(
            self,
            "Schedule",
            name="cognito-backuper-daily-backup",
            description="Daily backup of Cognito user pools",
            schedule_expression=settings.schedule_expression,
            schedule_expression_timezone=settings.schedule_timezone,
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED",
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
