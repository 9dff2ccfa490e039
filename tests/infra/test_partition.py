"""The app targets aws-cn too (cdk.json's target-partitions): no ARN the app writes may hard-code ``arn:aws:``."""

from __future__ import annotations

import json

from pipeline.sealing.bucket_policy import backup_bucket_policy, enforce_encryption_statement
from tests.helpers.synth import Synth


def test_bucket_policy_statements_use_the_partition_given() -> None:
    policy = json.dumps(backup_bucket_policy("backups", partition="aws-cn"))
    assert "arn:aws-cn:s3:::backups/*" in policy
    assert "arn:aws:" not in policy
    assert enforce_encryption_statement("b", partition="aws-us-gov")["Resource"] == "arn:aws-us-gov:s3:::b/*"


def test_the_deployed_enforce_encryption_statement_takes_the_stacks_partition(default_synth: Synth) -> None:
    policies = default_synth.resources("AWS::S3::BucketPolicy").values()
    enforce = [
        s
        for p in policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "EnforceEncryption"
    ]
    assert len(enforce) == 1
    rendered = json.dumps(enforce[0]["Resource"])
    assert '{"Ref": "AWS::Partition"}' in rendered
    assert "arn:aws:" not in rendered
