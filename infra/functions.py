"""One Lambda function and one role per task, the role holding exactly the task's row of infra.permissions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Aws, BundlingOptions, Duration, ILocalBundling, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.budget import TABLE_ACTIONS
from infra.bundling import ASSET_EXCLUDES
from infra.permissions import AUDIT_WRITERS, TaskNeeds, needs_for
from infra.sizing import memory_mb
from infra.suppressions import (
    ACCOUNT_ROLES_RESOURCE,
    ACCOUNT_WIDE_COGNITO,
    ANY_RESOURCE,
    BACKUP_PREFIX,
    ROLE_HANDOVER,
    USER_POOL_RESOURCE,
    USER_POOLS,
    acknowledge,
    bucket_prefix_resource,
)
from pipeline.cognito.throttle import BUDGET_TABLE_ENV, FRACTION_ENV
from pipeline.core import task_names
from pipeline.restore.approval import TOPIC_ENV
from pipeline.sealing.audit import LOCK_DAYS_ENV
from pipeline.sealing.manifest_mac import MAC_KEY_ENV

RUNTIME = lambda_.Runtime.PYTHON_3_14
PYTHON_VERSION = RUNTIME.name.removeprefix("python")
LONG_TIMEOUT = Duration.minutes(15)
SHORT_TIMEOUT = Duration.minutes(5)
# What s3:DeleteObject reaches under <prefix>/<pool>/<backup>/: parts, never manifest.json.
DELETABLE_FOLDERS = ("work", "users", "memberships")


def deletable(needs: TaskNeeds) -> list[str]:
    """Key patterns under <prefix>/ that the task's s3:DeleteObject reaches: a backup's parts; a purge (of a
    folder with no manifest) also its captured config.bin."""
    folders = [f"*/{folder}/*" for folder in DELETABLE_FOLDERS]
    return [*folders, "*/config.bin"] if needs.purges else folders


def user_pool_arns() -> str:
    return f"arn:{Aws.PARTITION}:cognito-idp:{Aws.REGION}:{Aws.ACCOUNT_ID}:userpool/*"


def pass_role_to_cognito() -> iam.PolicyStatement:
    """Group roles and SMS roles of a restored pool: any role of this account, but only handed to Cognito."""
    return iam.PolicyStatement(
        sid="PassRolesToCognito",
        actions=["iam:PassRole"],
        resources=[f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/*"],
        conditions={"StringEquals": {"iam:PassedToService": "cognito-idp.amazonaws.com"}},
    )


KeyUse = tuple[str, list[str], dict[str, Any]]


def key_uses(needs: TaskNeeds) -> list[KeyUse]:
    """The task's uses of the backup key, each bound to its purpose by a condition (role and key policy alike).

    SSE-KMS: only when S3 calls KMS for the task (kms:ViaService), for objects its S3 grants reach. Opening a sealed
    object: only contexts of this app. Sealing: only the kinds of document the task writes (TaskNeeds.seals).
    """
    uses: list[KeyUse] = []
    through_s3 = sorted(needs.kms & {"GenerateDataKey", "Decrypt"})
    if through_s3:
        via = {"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}}
        uses.append(("KeyThroughS3", [f"kms:{a}" for a in through_s3], via))
    if "Decrypt" in needs.kms:
        own = {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": ["app"]}}
        uses.append(("OpenSealed", ["kms:Decrypt"], own))
    for seal in needs.seals:
        kind = {
            "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": list(seal.keys)},
            "ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": [seal.marker]},
        }
        uses.append((f"Seal{seal.marker.capitalize()}", ["kms:GenerateDataKey"], kind))
    if "DescribeKey" in needs.kms:
        uses.append(("DescribeBackupKey", ["kms:DescribeKey"], {}))
    return uses


@dataclass(frozen=True)
class Targets:
    """The resources the task permissions point at."""

    bucket: s3.IBucket
    prefix: str
    key: kms.IKey
    topic: sns.ITopic
    topic_key: kms.IKey
    # Object Lock days for each audit record (0: the bucket's default retention only).
    audit_lock_days: int = 0
    # The shared rate budget's table (infra.budget); None: each Lambda process limits itself alone.
    budget_table: dynamodb.ITable | None = None
    mac_key: kms.IKey | None = None  # infra.signing: the manifest MAC key


def statements(needs: TaskNeeds, targets: Targets) -> list[iam.PolicyStatement]:
    """Explicit actions on explicit resources; nothing here is ever a wildcard action."""
    result: list[iam.PolicyStatement] = []
    if needs.cognito_pool_scoped:
        result.append(
            iam.PolicyStatement(
                sid="CognitoOnUserPools",
                actions=[f"cognito-idp:{a}" for a in needs.cognito_pool_scoped],
                resources=[user_pool_arns()],
            )
        )
    if needs.cognito_account_wide:
        result.append(
            iam.PolicyStatement(
                sid="CognitoAccountWide",
                actions=[f"cognito-idp:{a}" for a in needs.cognito_account_wide],
                resources=["*"],
            )
        )
    objects = sorted(needs.s3 - {"ListBucket", "DeleteObject", "PutObject"})
    if objects:
        result.append(
            iam.PolicyStatement(
                sid="BackupObjects",
                actions=[f"s3:{a}" for a in objects],
                resources=[targets.bucket.arn_for_objects(f"{targets.prefix}/*")],
            )
        )
    if "PutObject" in needs.s3:
        # Each task writes only its own kind of object (infra.permissions TaskNeeds.writes).
        result.append(
            iam.PolicyStatement(
                sid="WriteOwnObjects",
                actions=["s3:PutObject"],
                resources=[
                    targets.bucket.arn_for_objects(f"{targets.prefix}/{pattern}") for pattern in needs.writes
                ],
            )
        )
    if "DeleteObject" in needs.s3:
        # Only a backup's own parts (WriteManifest drops its capture's work parts and a restarted shard's
        # leftovers): never a manifest, an audit record, an approval or a restore's objects by name.
        result.append(
            iam.PolicyStatement(
                sid="DropBackupParts",
                actions=["s3:DeleteObject"],
                resources=[targets.bucket.arn_for_objects(f"{targets.prefix}/{p}") for p in deletable(needs)],
            )
        )
    if "ListBucket" in needs.s3 and needs.head_bucket:
        # HeadBucket carries no s3:prefix key: no prefix condition can match it (infra.permissions.TaskNeeds).
        result.append(
            iam.PolicyStatement(
                sid="CheckBackupBucket", actions=["s3:ListBucket"], resources=[targets.bucket.bucket_arn]
            )
        )
    elif "ListBucket" in needs.s3:
        result.append(
            iam.PolicyStatement(
                sid="ListBackupPrefix",
                actions=["s3:ListBucket"],
                resources=[targets.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": ["", targets.prefix, f"{targets.prefix}/*"]}},
            )
        )
    for sid, actions, conditions in key_uses(needs):
        result.append(
            iam.PolicyStatement(
                sid=sid, actions=actions, resources=[targets.key.key_arn], conditions=conditions or None
            )
        )
    if needs.mac and targets.mac_key is not None:
        result.append(
            iam.PolicyStatement(
                sid="ManifestMacKey",
                actions=[f"kms:{a}" for a in sorted(needs.mac)],
                resources=[targets.mac_key.key_arn],
            )
        )
    if needs.cognito and targets.budget_table is not None:
        result.append(
            iam.PolicyStatement(
                sid="SharedRateBudget",
                actions=list(TABLE_ACTIONS),
                resources=[targets.budget_table.table_arn],
            )
        )
    if needs.pass_role:
        result.append(pass_role_to_cognito())
    if needs.notify:
        result.append(
            iam.PolicyStatement(sid="Notify", actions=["sns:Publish"], resources=[targets.topic.topic_arn])
        )
        result.append(
            iam.PolicyStatement(
                sid="NotifyKey",
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[targets.topic_key.key_arn],
            )
        )
    return result


class TaskFunction(Construct):
    """A task handler with its own role and log group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        task: str,
        code: lambda_.Code,
        targets: Targets,
        log_retention: logs.RetentionDays,
        quota_fraction: float,
        needs: TaskNeeds | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        # ``needs``: a row from outside infra.permissions' table (the drill tasks', infra.drill).
        needs = needs or needs_for(task)
        self.task = task
        self.needs = needs
        name = task_names.function_name(task)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/lambda/{name}",
            retention=log_retention,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"cognito-backuper {task}: least privilege for this task only",
        )
        self.log_group.grant_write(self.role)
        for statement in statements(needs, targets):
            self.role.add_to_policy(statement)
        locks_audit = task in AUDIT_WRITERS and targets.audit_lock_days > 0
        if locks_audit:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="LockAuditRecords",
                    actions=["s3:PutObjectRetention"],
                    resources=[targets.bucket.arn_for_objects(f"{targets.prefix}/audit/*")],
                )
            )
            acknowledge(
                self.role,
                bucket_prefix_resource(targets.bucket, f"{targets.prefix}/audit"),
                "Audit records are created at run time under <prefix>/audit/; each is locked as it is written.",
            )
        # The key policy names this role, for the same uses and under the same conditions: a key policy that
        # names a principal grants on its own, so the purposes must be bound here (the key trusts no one else).
        for sid, actions, conditions in key_uses(needs):
            targets.key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"{task}{sid}",
                    principals=[self.role],
                    actions=actions,
                    resources=["*"],
                    conditions=conditions or None,
                )
            )
        if needs.mac and targets.mac_key is not None:
            targets.mac_key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"Use{task}",
                    principals=[self.role],
                    actions=[f"kms:{a}" for a in sorted(needs.mac)],
                    resources=["*"],
                )
            )
        if needs.notify:
            targets.topic_key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"Use{task}",
                    principals=[self.role],
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=["*"],
                )
            )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=name,
            description=f"cognito-backuper task {task}",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler=f"tasks.{task_names.module_name(task)}.handler",
            code=code,
            role=self.role,
            timeout=LONG_TIMEOUT if needs.long_running else SHORT_TIMEOUT,
            memory_size=memory_mb(task, long_running=needs.long_running),
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            environment={
                "POWERTOOLS_SERVICE_NAME": "cognito-backuper",
                "LOG_LEVEL": "INFO",
                # The deployment's share of each quota; with the shared table every task draws on it together
                # (pipeline.cognito.shared_budget), without it each process gets quota_fraction alone.
                **({FRACTION_ENV: f"{quota_fraction:.6f}"} if needs.cognito else {}),
                **(
                    {BUDGET_TABLE_ENV: targets.budget_table.table_name}
                    if needs.cognito and targets.budget_table is not None
                    else {}
                ),
                # The name pipeline.restore.approval reads to notify approvers.
                **({TOPIC_ENV: targets.topic.topic_arn} if needs.notify else {}),
                # How long pipeline.sealing.audit locks each record it writes.
                **({LOCK_DAYS_ENV: str(targets.audit_lock_days)} if locks_audit else {}),
                # The deployment's manifest MAC key: the one key a manifest must verify with.
                **({MAC_KEY_ENV: targets.mac_key.key_arn} if targets.mac_key is not None else {}),
            },
        )
        _acknowledge_wildcards(self.role, needs, targets)


def _acknowledge_wildcards(role: iam.Role, needs: TaskNeeds, targets: Targets) -> None:
    if needs.cognito_account_wide:
        acknowledge(role, ANY_RESOURCE, ACCOUNT_WIDE_COGNITO)
    if needs.cognito_pool_scoped:
        acknowledge(role, USER_POOL_RESOURCE, USER_POOLS)
    if needs.s3 - {"ListBucket", "PutObject", "DeleteObject"}:
        acknowledge(role, bucket_prefix_resource(targets.bucket, targets.prefix), BACKUP_PREFIX)
    patterns = [*needs.writes, *(deletable(needs) if "DeleteObject" in needs.s3 else [])]
    for pattern in patterns:
        acknowledge(role, _object_finding(targets.bucket, f"{targets.prefix}/{pattern}"), BACKUP_PREFIX)
    if needs.pass_role:
        acknowledge(role, ACCOUNT_ROLES_RESOURCE, ROLE_HANDOVER)


def _object_finding(bucket: s3.IBucket, pattern: str) -> str:
    """cdk-nag's finding id for ``<bucket arn>/<pattern>`` (a pattern that may not end in ``/*``)."""
    return bucket_prefix_resource(bucket, "X").replace("/X/*]", f"/{pattern}]")


def function_code(project_root: Path, local: ILocalBundling) -> lambda_.Code:
    """One package shared by every function (they differ by handler only), built by ``local``, not Docker."""
    return lambda_.Code.from_asset(
        str(project_root),
        exclude=ASSET_EXCLUDES,
        bundling=BundlingOptions(image=RUNTIME.bundling_image, local=local),
    )
