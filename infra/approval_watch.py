"""The pending-approval watch: a schedule runs CheckPendingApprovals, whose metric the alarm in
infra/monitoring.py compares with the deployment's pendingApprovalAlarmHours.

CheckPendingApprovals (pipeline.restore.approval_watch) is in no state machine. Its role may list the restore
machine's executions and read their histories (what Step Functions says is waiting in RequestApproval), nothing
else: no bucket, no key, no task token, no write. EMF metrics go out through its log group, like every task's.
"""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.functions import Targets, TaskFunction
from infra.naming import deployment_name
from infra.permissions import TaskNeeds
from infra.settings import Settings
from infra.suppressions import acknowledge
from pipeline.restore.approval_watch import MACHINE_ENV

TASK = "CheckPendingApprovals"
# Tasks that a schedule runs, outside every state machine (the contract tests know them by this).
SCHEDULED_TASKS = frozenset({TASK})
# Step Functions' IAM actions this task's role holds, and on what (tests/iam proves the calls need them all).
STATES_ACTIONS = {"ListExecutions": "stateMachine", "GetExecutionHistory": "execution"}

RESTORE_EXECUTIONS = (
    "Restore executions are created at run time; GetExecutionHistory is limited to executions of the one "
    "restore state machine (arn:...:execution:<restore machine>:*)."
)


def restore_executions_arn(machine_name: str) -> str:
    return f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:execution:{machine_name}:*"


class PendingApprovalWatch(Construct):
    """CheckPendingApprovals and the schedule that runs it every ``pending_approval_check_minutes``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        restore: sfn.IStateMachine,
        restore_name: str,
        code: lambda_.Code,
        targets: Targets,
        log_retention: logs.RetentionDays,
        settings: Settings,
    ) -> None:
        super().__init__(scope, construct_id)
        self.task = TaskFunction(
            self,
            TASK,
            task=TASK,
            code=code,
            targets=targets,
            log_retention=log_retention,
            quota_fraction=0.0,
            needs=TaskNeeds(),  # no Cognito, S3, KMS or topic: only the Step Functions reads below
        )
        self.function = self.task.function
        self.function.add_environment(MACHINE_ENV, restore.state_machine_arn)
        self.task.role.add_to_policy(
            iam.PolicyStatement(
                sid="ListRestores", actions=["states:ListExecutions"], resources=[restore.state_machine_arn]
            )
        )
        self.task.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadRestoreHistories",
                actions=["states:GetExecutionHistory"],
                resources=[restore_executions_arn(restore_name)],
            )
        )
        acknowledge(
            self.task.role,
            "IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            f"{restore_name}:*]",
            RESTORE_EXECUTIONS,
        )

        self.schedule_role = iam.Role(
            self,
            "ScheduleRole",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"),
            description="cognito-backuper pending-approval schedule: invokes CheckPendingApprovals only",
        )
        self.schedule_role.add_to_policy(
            iam.PolicyStatement(
                sid="InvokeCheck", actions=["lambda:InvokeFunction"], resources=[self.function.function_arn]
            )
        )
        minutes = settings.pending_approval_check_minutes
        self.schedule = scheduler.CfnSchedule(
            self,
            "Schedule",
            name=deployment_name("pending-approvals"),
            description="Measures how long restores have waited for approval (the pending-approval alarm)",
            schedule_expression=f"rate({minutes} {'minute' if minutes == 1 else 'minutes'})",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=self.function.function_arn,
                role_arn=self.schedule_role.role_arn,
                # A missed check is replaced by the next one: no point retrying one older than the interval.
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_event_age_in_seconds=max(60, minutes * 60), maximum_retry_attempts=2
                ),
            ),
        )
        policy = self.schedule_role.node.try_find_child("DefaultPolicy")
        if policy is not None:
            self.schedule.node.add_dependency(policy)
