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
