"""CognitoBackuperStack: everything the product needs in one account and Region."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Aws, CfnOutput, Stack
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.access import AccessRoles
from infra.approval_watch import PendingApprovalWatch
from infra.asl import PROJECT_ROOT, MachineSpec, all_tasks, discover
from infra.audit import AuditTrail
from infra.budget import RateBudgetTable
from infra.bundling import PipLocalBundling
from infra.drill import DRILL_MACHINE, DrillTaskFunction, WeeklyDrillSchedule, is_drill_task
from infra.functions import PYTHON_VERSION, Targets, TaskFunction, function_code
from infra.monitoring import Alerts, Notifications, PendingApprovalAlarm, dashboard
from infra.orchestration import DailyBackupSchedule, ItemSource, Machine
from infra.settings import InfraConfigError, Settings
from infra.signing import grant_mac, manifest_mac_key
from infra.storage import BackupStorage
from pipeline.cognito.throttle import DEFAULT_FRACTION

_RETENTION = {
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}
BACKUP_MACHINE = "backup"
RESTORE_MACHINE = "restore"


def log_retention(days: int) -> logs.RetentionDays:
    try:
        return _RETENTION[days]
    except KeyError:
        raise InfraConfigError(f"context logRetentionDays must be one of {sorted(_RETENTION)}") from None


class CognitoBackuperStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        machines: list[MachineSpec] | None = None,
        project_root: Path = PROJECT_ROOT,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        specs = machines if machines is not None else discover(project_root / "statemachines")
        retention = log_retention(settings.log_retention_days)
        self.settings = settings

        self.storage = BackupStorage(self, "Storage", settings=settings)
        self.mac_key = manifest_mac_key(self, "ManifestMacKey")
        self.notifications = Notifications(self, "Notifications", email=settings.notification_email)
        self.rate_budget = RateBudgetTable(self, "RateBudget")
        targets = Targets(
            bucket=self.storage.bucket,
            prefix=settings.backup_prefix,
            key=self.storage.key,
            topic=self.notifications.topic,
            topic_key=self.notifications.key,
            audit_lock_days=settings.audit_lock_days if settings.object_lock_days else 0,
            budget_table=self.rate_budget.table,
            mac_key=self.mac_key,
        )

        code = function_code(project_root, PipLocalBundling(project_root, PYTHON_VERSION))
        self.functions = {
            task: (DrillTaskFunction if is_drill_task(task) else TaskFunction)(
                self,
                task,
                task=task,
                code=code,
                targets=targets,
                log_retention=retention,
                # One table-backed budget for every task: the whole share, not a 1/N slice each.
                quota_fraction=DEFAULT_FRACTION,
            )
            for task in all_tasks(specs)
        }

        substitutions = {
            "BackupBucket": self.storage.bucket.bucket_name,
            "KmsKeyArn": self.storage.key.key_arn,
            "BackupPrefix": settings.backup_prefix,
            "NotificationTopicArn": self.notifications.topic.topic_arn,
        }
        fns = {task: f.function for task, f in self.functions.items()}
        # discover() orders the specs so that a machine's nested machines already exist.
        self.machines: dict[str, Machine] = {}
        started: dict[str, tuple[MachineSpec, sfn.IStateMachine]] = {}
        for spec in specs:
            machine = Machine(
                self,
                f"{spec.construct_id}Machine",
                spec=spec,
                functions=fns,
                settings=substitutions,
                started=started,
                log_retention=retention,
                items=ItemSource(self.storage.bucket, self.storage.key, settings.backup_prefix),
            )
            self.machines[spec.name] = machine
            started[spec.name] = (spec, machine.state_machine)
        state_machines: dict[str, sfn.StateMachine] = {n: m.state_machine for n, m in self.machines.items()}

        if BACKUP_MACHINE not in state_machines:
            raise InfraConfigError(f"statemachines/{BACKUP_MACHINE}.asl.json is missing: nothing to schedule")
        self.schedule = DailyBackupSchedule(
            self, "DailyBackup", machine=state_machines[BACKUP_MACHINE], settings=settings
        )
        self.drill_schedule = (
            WeeklyDrillSchedule(self, "WeeklyDrill", machine=state_machines[DRILL_MACHINE], settings=settings)
            if DRILL_MACHINE in state_machines
            else None
        )
        # Restores waiting for approval: measured on a schedule, alarmed on in Alerts.
        self.approval_watch = None
        watched_fns = dict(fns)
        if RESTORE_MACHINE in state_machines:
            self.approval_watch = PendingApprovalWatch(
                self,
                "PendingApprovalWatch",
                restore=state_machines[RESTORE_MACHINE],
                restore_name=next(s.state_machine_name for s in specs if s.name == RESTORE_MACHINE),
                code=code,
                targets=targets,
                log_retention=retention,
                settings=settings,
            )
            watched_fns[self.approval_watch.task.task] = self.approval_watch.function
        self.alerts = Alerts(
            self,
            "Alerts",
            topic=self.notifications.topic,
            machines=state_machines,
            pool_ids=settings.backup_pool_ids,
            pending_approval=None
            if self.approval_watch is None
            else PendingApprovalAlarm(
                settings.pending_approval_alarm_hours,
                settings.pending_approval_check_minutes,
                self.approval_watch.function,
            ),
        )
        dashboard(self, "Dashboard", machines=state_machines, functions=watched_fns)

        self.access = None
        if settings.access_roles:
            self.access = AccessRoles(
                self,
                "Access",
                machines=state_machines,
                machine_names={spec.name: spec.state_machine_name for spec in specs},
                stack_arn=Aws.STACK_ID,
                bucket=self.storage.bucket,
                prefix=settings.backup_prefix,
                key=self.storage.key,
            )
            # verify, list, diff and restore read manifests: the operator verifies them, never mints one.
            grant_mac(self.mac_key, self.access.operator, ["VerifyMac"], "UseOperator")
        self.trail = (
            AuditTrail(self, "Audit", access_logs=self.storage.access_logs) if settings.enable_trail else None
        )

        CfnOutput(self, "BackupBucketName", value=self.storage.bucket.bucket_name)
        CfnOutput(self, "KmsKeyArn", value=self.storage.key.key_arn)
        CfnOutput(self, "MacKeyArn", value=self.mac_key.key_arn)
        CfnOutput(self, "BackupPrefix", value=settings.backup_prefix)
        CfnOutput(self, "NotificationTopicArn", value=self.notifications.topic.topic_arn)
        for spec in specs:
            CfnOutput(
                self,
                f"{spec.construct_id}StateMachineArn",
                value=state_machines[spec.name].state_machine_arn,
            )
        if self.access is not None:
            CfnOutput(self, "OperatorRoleArn", value=self.access.operator.role_arn)
            CfnOutput(self, "ApproverRoleArn", value=self.access.approver.role_arn)
