"""Optional pieces: the cross-account restore role (security guide 1.2) and a CloudTrail trail (4.1)."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_cloudtrail as cloudtrail
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.functions import pass_role_to_cognito, user_pool_arns
from infra.naming import role_name
from infra.permissions import COGNITO_ACCOUNT_WIDE, restore_cognito_actions, restore_passes_roles
from infra.storage import scoped_key
from infra.suppressions import (
    ACCOUNT_ROLES_RESOURCE,
    ACCOUNT_WIDE_COGNITO,
    ANY_RESOURCE,
    ROLE_HANDOVER,
    USER_POOL_RESOURCE,
    USER_POOLS,
    acknowledge,
)

# The role name is <stack name>-<Region>-<suffix> (infra.naming); the stack output gives its ARN.
CROSS_ACCOUNT_ROLE_SUFFIX = "cross-account-restore"


def cross_account_restore_role(scope: Construct, *, trusted_account_id: str, external_id: str) -> iam.Role:
    """Assumable from the trusted account with the agreed external id only; restore's Cognito needs only."""
    role = iam.Role(
        scope,
        "CrossAccountRestoreRole",
        role_name=role_name(scope, CROSS_ACCOUNT_ROLE_SUFFIX),
        description="cognito-backuper: restore into this account's user pools from the trusted account",
        assumed_by=iam.AccountPrincipal(trusted_account_id).with_conditions(
            {"StringEquals": {"sts:ExternalId": external_id}}
        ),
        max_session_duration=Duration.hours(1),
    )
    actions = restore_cognito_actions()
    scoped = [a for a in actions if a not in COGNITO_ACCOUNT_WIDE]
    account_wide = [a for a in actions if a in COGNITO_ACCOUNT_WIDE]
    if scoped:
        acknowledge(role, USER_POOL_RESOURCE, USER_POOLS)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RestoreOnUserPools",
                actions=[f"cognito-idp:{a}" for a in scoped],
                resources=[user_pool_arns()],
            )
        )
    if account_wide:
        acknowledge(role, ANY_RESOURCE, ACCOUNT_WIDE_COGNITO)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RestoreAccountWide", actions=[f"cognito-idp:{a}" for a in account_wide], resources=["*"]
            )
        )
    if restore_passes_roles():
        acknowledge(role, ACCOUNT_ROLES_RESOURCE, ROLE_HANDOVER)
        role.add_to_policy(pass_role_to_cognito())
    return role


class AuditTrail(Construct):
    """A multi-Region trail with log file validation, KMS-encrypted, into its own TLS-only bucket.

    Off by default: most accounts already have an organization trail, and a second trail costs money for
    copies of the same events.
    """

    def __init__(self, scope: Construct, construct_id: str, *, access_logs: s3.IBucket) -> None:
        super().__init__(scope, construct_id)
        self.key = scoped_key(
            self,
            "TrailKey",
            alias="alias/cognito-backuper-trail",
            description="cognito-backuper: encrypts the CloudTrail log files",
        )
        trail_arn = f"arn:{Aws.PARTITION}:cloudtrail:{Aws.REGION}:{Aws.ACCOUNT_ID}:trail/cognito-backuper"
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudTrailEncrypt",
                principals=[iam.ServicePrincipal("cloudtrail.amazonaws.com")],
                actions=["kms:GenerateDataKey", "kms:DescribeKey"],
                resources=["*"],
                conditions={
                    "StringEquals": {"aws:SourceArn": trail_arn},
                    "StringLike": {
                        "kms:EncryptionContext:aws:cloudtrail:arn": (
                            f"arn:{Aws.PARTITION}:cloudtrail:*:{Aws.ACCOUNT_ID}:trail/*"
                        )
                    },
                },
            )
        )
        self.bucket = s3.Bucket(
            self,
            "TrailBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="trail-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireTrailLogs",
                    expiration=Duration.days(365),
                    noncurrent_version_expiration=Duration.days(30),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.trail = cloudtrail.Trail(
            self,
            "Trail",
            trail_name="cognito-backuper",
            bucket=self.bucket,
            encryption_key=self.key,
            enable_file_validation=True,
            is_multi_region_trail=True,
            include_global_service_events=True,
        )
