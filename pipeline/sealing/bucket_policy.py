"""The backup bucket's policy statements, from the seed security guide (section 3.2), shared by the CDK app and
the demo so that both put the same rules on the bucket.

ARNs take the partition from the caller (the CDK app passes the stack's ``Aws.PARTITION``), since the app also
targets ``aws-cn`` and ``aws-us-gov``, where ``arn:aws:`` names nothing.
"""

from __future__ import annotations

from typing import Any


def _bucket_arn(bucket: str, partition: str) -> str:
    return f"arn:{partition}:s3:::{bucket}"


def enforce_encryption_statement(bucket: str, *, partition: str) -> dict[str, Any]:
    """Deny any PutObject that does not ask for SSE-KMS: the seed's EnforceEncryption statement, as written."""
    return {
        "Sid": "EnforceEncryption",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": f"{_bucket_arn(bucket, partition)}/*",
        "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}},
    }


def deny_insecure_transport_statement(bucket: str, *, partition: str) -> dict[str, Any]:
    arn = _bucket_arn(bucket, partition)
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def backup_bucket_policy(bucket: str, *, partition: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            enforce_encryption_statement(bucket, partition=partition),
            deny_insecure_transport_statement(bucket, partition=partition),
        ],
    }


def append_only_statements(bucket: str, prefix: str, *, partition: str) -> list[dict[str, Any]]:
    """Conditional writes only where the audit trail and approvals live (S3 condition keys ``s3:if-none-match``
    and ``s3:if-match``): an audit record is only ever created (If-None-Match), an approval object is created
    or replaced version-for-version (If-Match, a re-issued task token); a blind overwrite is refused for
    everyone, the pipeline's own roles included."""
    objects = f"{_bucket_arn(bucket, partition)}/{prefix}"
    return [
        {
            "Sid": "AuditRecordsAreCreatedOnly",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"{objects}/audit/*",
            "Condition": {"Null": {"s3:if-none-match": "true"}},
        },
        {
            "Sid": "ApprovalsAreWrittenConditionally",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"{objects}/approvals/*",
            # Both keys absent (a Condition block ANDs its keys): neither If-None-Match nor If-Match was sent.
            "Condition": {"Null": {"s3:if-none-match": "true", "s3:if-match": "true"}},
        },
    ]
