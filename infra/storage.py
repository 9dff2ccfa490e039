"""The backup key and buckets: SSE-KMS with the seed's EnforceEncryption statement, TLS only, access logs.

Security guide 2.1 (SSE-KMS, keys in KMS), 3.2 (bucket policy), 4.1 (S3 access logging), 5.1 (lifecycle).
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.settings import Settings
from pipeline.sealing.bucket_policy import append_only_statements, enforce_encryption_statement

# Key administration without kms:* and without data-plane use: the account can manage, rotate, re-scope and
# schedule deletion of the key, but only the roles named in the key policy can encrypt or decrypt with it.
# No kms:CreateGrant: a grant is data-plane use by another name (an admin could grant itself Decrypt). Changing
# who may decrypt goes through PutKeyPolicy, which CloudTrail records as a policy change.
KEY_ADMIN_ACTIONS = [
    "kms:CancelKeyDeletion",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListGrants",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateKeyDescription",
]


def scoped_key(scope: Construct, construct_id: str, *, alias: str, description: str) -> kms.Key:
    """A rotating symmetric key whose policy starts with account administration only."""
    policy = iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                sid="KeyAdministration",
                principals=[iam.AccountRootPrincipal()],
                actions=KEY_ADMIN_ACTIONS,
                resources=["*"],
            )
        ]
    )
    return kms.Key(
        scope,
        construct_id,
        alias=alias,
        description=description,
        enable_key_rotation=True,
        policy=policy,
        removal_policy=RemovalPolicy.RETAIN,
    )


class BackupStorage(Construct):
    """The backup key, the backup bucket and the bucket that receives its server access logs."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings) -> None:
        super().__init__(scope, construct_id)
        self.key = scoped_key(
            self,
            "BackupKey",
            alias="alias/cognito-backuper",
            description="cognito-backuper: envelope encryption of backups and SSE-KMS of the backup bucket",
        )
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            # S3 server access logging can only deliver to SSE-S3 buckets.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=False,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireAccessLogs",
                    expiration=Duration.days(settings.access_log_retention_days or 365),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        lock_days = settings.object_lock_days
        # Object Lock can only be turned on when a bucket is created; on by default (governance), so every
        # version of every object, audit records included, outlives a deletion for its retention.
        self.bucket = s3.Bucket(
            self,
            "BackupBucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="backup-bucket/",
            lifecycle_rules=backup_lifecycle(settings),
            object_lock_enabled=bool(lock_days) or None,
            object_lock_default_retention=_retention(settings) if lock_days else None,
            removal_policy=RemovalPolicy.RETAIN,
        )
        # The seed's statement exactly (security guide 3.2), from the module the demo also uses.
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement.from_json(
                enforce_encryption_statement(self.bucket.bucket_name, partition=Aws.PARTITION)
            )
        )
        for statement in append_only_statements(
            self.bucket.bucket_name, settings.backup_prefix, partition=Aws.PARTITION
        ):
            self.bucket.add_to_resource_policy(iam.PolicyStatement.from_json(statement))


def _retention(settings: Settings) -> s3.ObjectLockRetention:
    days = Duration.days(settings.object_lock_days)
    if settings.object_lock_mode == "COMPLIANCE":
        return s3.ObjectLockRetention.compliance(days)
    return s3.ObjectLockRetention.governance(days)


def backup_lifecycle(settings: Settings) -> list[s3.LifecycleRule]:
    """Backups age into Glacier Instant Retrieval (restores stay fast), expire, and old versions go too.

    S3 lifecycle filters select by prefix and cannot exclude one, so each rule names what it covers: the
    backups (``<prefix>/<Region>_``: pool ids start with the stack's Region), the pipeline's working objects
    (runs, restores, approvals), and the audit trail, whose rule has its own, longer expiry
    (``auditRetentionDays``; 0 keeps records for ever).
    """
    transitions = []
    if settings.glacier_transition_days:
        transitions.append(
            s3.Transition(
                storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                transition_after=Duration.days(settings.glacier_transition_days),
            )
        )
    noncurrent = (
        Duration.days(settings.noncurrent_expiration_days) if settings.noncurrent_expiration_days else None
    )
    expiry = Duration.days(settings.retention_days) if settings.retention_days else None
    prefix = settings.backup_prefix
    rules = [
        s3.LifecycleRule(
            id="BackupRetention",
            prefix=f"{prefix}/{Aws.REGION}_",
            transitions=transitions or None,
            expiration=expiry,
            noncurrent_version_expiration=noncurrent,
            abort_incomplete_multipart_upload_after=Duration.days(7),
        )
    ]
    for name in ("runs", "restores", "approvals"):
        rules.append(
            s3.LifecycleRule(
                id=f"{name.title()}Retention",
                prefix=f"{prefix}/{name}/",
                expiration=expiry,
                noncurrent_version_expiration=noncurrent,
                abort_incomplete_multipart_upload_after=Duration.days(7),
            )
        )
    audit_days = settings.audit_retention_days
    rules.append(
        s3.LifecycleRule(
            id="AuditRetention",
            prefix=f"{prefix}/audit/",
            expiration=Duration.days(audit_days) if audit_days else None,
            # A record is written once: an older version exists only after an overwrite, kept as evidence as
            # long as the record itself.
            noncurrent_version_expiration=Duration.days(audit_days) if audit_days else None,
        )
    )
    return rules
