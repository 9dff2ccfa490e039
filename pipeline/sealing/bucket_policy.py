"""The backup bucket's policy statements, from the seed security guide (section 3.2), shared by the CDK app and
the demo so that both put the same rules on the bucket."""

from __future__ import annotations

from typing import Any


def enforce_encryption_statement(bucket: str) -> dict[str, Any]:
    """Deny any PutObject that does not ask for SSE-KMS: the seed's EnforceEncryption statement, as written."""
    return {
        "Sid": "EnforceEncryption",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}},
    }


def deny_insecure_transport_statement(bucket: str) -> dict[str, Any]:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def backup_bucket_policy(bucket: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [enforce_encryption_statement(bucket), deny_insecure_transport_statement(bucket)],
    }
