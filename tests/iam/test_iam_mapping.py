"""The contract's own parts, without the scenario: calls become the IAM requests AWS documents, and the evaluator
really refuses what the deployed policies would refuse (so a green contract means something)."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.iam.iam_contract import (
    Authorization,
    ResolvedTemplate,
    World,
    authorizations,
    evaluate,
    node_harness,
)
from tests.iam.iam_recorder import Call

WORLD = World(
    "us-east-1", "123456789012", "backups-bucket", "arn:aws:kms:us-east-1:123456789012:key/k-1", "backups"
)
ROLE = "arn:aws:sts::123456789012:assumed-role/task/session"
LISTING = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ListBackupPrefix",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::backups-bucket",
            "Condition": {"StringLike": {"s3:prefix": ["", "backups", "backups/*"]}},
        }
    ],
}


def _call(service: str, operation: str, **params: object) -> Call:
    return Call("task:T", service, operation, "us-east-1", json.dumps(params, sort_keys=True))


def test_head_bucket_is_list_bucket_without_a_prefix_key() -> None:
    (auth,) = authorizations(_call("s3", "HeadBucket", Bucket="backups-bucket"), WORLD)
    assert auth.action == "s3:ListBucket" and auth.resource == "arn:aws:s3:::backups-bucket"
    assert "s3:prefix" not in auth.context
    (listing,) = authorizations(
        _call("s3", "ListObjectsV2", Bucket="backups-bucket", Prefix="backups/p/"), WORLD
    )
    assert listing.action == "s3:ListBucket" and listing.context["s3:prefix"] == "backups/p/"


def test_head_object_is_get_object_and_a_sealed_put_asks_kms_through_s3() -> None:
    (head,) = authorizations(_call("s3", "HeadObject", Bucket="backups-bucket", Key="backups/a"), WORLD)
    assert (head.action, head.resource) == ("s3:GetObject", "arn:aws:s3:::backups-bucket/backups/a")
    put, kms = authorizations(
        _call(
            "s3",
            "PutObject",
            Bucket="backups-bucket",
            Key="backups/a",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=WORLD.key_arn,
            IfNoneMatch="*",
        ),
        WORLD,
    )
    assert put.context["s3:x-amz-server-side-encryption"] == "aws:kms"
    assert put.context["s3:if-none-match"] == "*"
    assert (kms.action, kms.resource, kms.context["kms:ViaService"]) == (
        "kms:GenerateDataKey",
        WORLD.key_arn,
        "s3.us-east-1.amazonaws.com",
    )


def test_kms_calls_carry_their_encryption_context() -> None:
    call = _call("kms", "Decrypt", EncryptionContext={"pool": "p", "backup": "b"})
    (auth,) = authorizations(call, WORLD)
    assert auth.context["kms:EncryptionContext:pool"] == "p"
    assert auth.context["kms:EncryptionContextKeys"] == ["backup", "pool"]
    assert auth.resource_policy == f"kms:{WORLD.key_arn}"


def test_sts_identity_and_sign_up_need_no_permission() -> None:
    assert authorizations(_call("sts", "GetCallerIdentity"), WORLD) == []
    assert authorizations(_call("cognito-idp", "SignUp"), WORLD) == []


def test_the_evaluator_refuses_head_bucket_under_a_prefix_condition() -> None:
    head = Authorization("s3:ListBucket", "arn:aws:s3:::backups-bucket", {"aws:SecureTransport": "true"})
    listing = Authorization(
        "s3:ListBucket",
        "arn:aws:s3:::backups-bucket",
        {"s3:prefix": "backups/", "aws:SecureTransport": "true"},
    )
    outside = Authorization("s3:ListBucket", "arn:aws:s3:::backups-bucket", {"s3:prefix": "other/"})
    decisions = evaluate(
        [(ROLE, WORLD.account, a, ["listing"]) for a in (head, listing, outside)], {"listing": LISTING}
    )
    assert [d.result for d in decisions] == ["ImplicitlyDenied", "Allowed", "ImplicitlyDenied"]
    assert "ListBackupPrefix" in decisions[1].explain()


def test_the_evaluator_applies_the_bucket_policy_deny() -> None:
    allow = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}],
    }
    bucket = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "EnforceEncryption",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::backups-bucket/*",
                "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}},
            }
        ],
    }
    plain = Authorization("s3:PutObject", "arn:aws:s3:::backups-bucket/backups/a", {}, "s3:backups-bucket")
    (decision,) = evaluate(
        [(ROLE, WORLD.account, plain, ["allow"])], {"allow": allow, "s3:backups-bucket": bucket}
    )
    assert decision.result == "ExplicitlyDenied"
    assert "EnforceEncryption" in decision.explain()


def test_intrinsics_resolve_to_concrete_arns() -> None:
    template = {
        "Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {}},
            "Key": {"Type": "AWS::KMS::Key", "Properties": {}},
        },
        "Outputs": {},
    }
    resolved = ResolvedTemplate(template, WORLD, {"Bucket": {"Ref": "backups-bucket"}})
    value = {"Fn::Join": ["", [{"Fn::GetAtt": ["Bucket", "Arn"]}, "/backups/*"]]}
    assert resolved.resolve(value) == "arn:aws:s3:::backups-bucket/backups/*"
    sub = {"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:x:*"}
    assert resolved.resolve(sub) == "arn:aws:states:us-east-1:123456789012:execution:x:*"
    assert resolved.resolve({"Fn::GetAtt": ["Key", "Arn"]}).startswith(
        "arn:aws:kms:us-east-1:123456789012:key/"
    )


def test_a_missing_node_fails_the_contract_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(RuntimeError, match=r"needs Node\.js"):
        node_harness()


def test_a_read_that_finds_nothing_also_needs_list_bucket_with_the_key_as_prefix() -> None:
    found = _call("s3", "HeadObject", Bucket="backups-bucket", Key="backups/approvals/r/decision.bin")
    missing = Call(found.actor, found.service, found.operation, found.region, found.params, missing=True)
    assert [a.action for a in authorizations(found, WORLD)] == ["s3:GetObject"]
    get, listing = authorizations(missing, WORLD)
    assert get.action == "s3:GetObject"
    assert (listing.action, listing.context["s3:prefix"]) == (
        "s3:ListBucket",
        "backups/approvals/r/decision.bin",
    )
    (decision,) = evaluate([(ROLE, WORLD.account, listing, ["listing"])], {"listing": LISTING})
    assert decision.allowed
