"""Optional piece: a CloudTrail trail (security guide 4.1).

There is no cross-account restore role: it let any principal of the trusted account restore into every pool
without an approval. Restore into another account by deploying the stack there (SECURITY.md, section 1.2).
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_cloudtrail as cloudtrail
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.storage import scoped_key


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
