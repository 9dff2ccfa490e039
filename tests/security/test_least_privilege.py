"""The synthesized stack, judged by a real IAM evaluator: who may mint a manifest, and where each task may write.

Each request is what the attacker's call would ask of IAM (tests/iam/iam_contract.authorizations: the action,
the resource, the condition keys the real request carries, and the KMS request S3 makes for SSE-KMS), decided
against the role's own policies, the bucket policy and the key policy of the template ``cdk synth`` produces.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.access import APPROVER_ROLE_SUFFIX, OPERATOR_ROLE_SUFFIX
from infra.permissions import TASK_NEEDS
from pipeline.core import task_names
from tests.iam.iam_contract import Authorization, ResolvedTemplate, World, authorizations, evaluate
from tests.iam.iam_recorder import Call

ACCOUNT = "123456789012"
REGION = "us-east-1"
PREFIX = "backups"
BACKUP = f"{PREFIX}/us-east-1_AbC123/20260101T000000Z-a1b2c3"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> ResolvedTemplate:
    from infra.app import SKIP_BUNDLING, STACK_NAME, build_app

    outdir: Path = tmp_path_factory.mktemp("least-privilege")
    app, _ = build_app({**SKIP_BUNDLING}, outdir=str(outdir))
    app.synth()
    raw = json.loads((outdir / f"{STACK_NAME}.template.json").read_text())
    keys = {lid: r for lid, r in raw["Resources"].items() if r["Type"] == "AWS::KMS::Key"}
    # No MAC key (versions before it): the MAC tests then find no one allowed, the write tests still judge.
    mac = next((lid for lid, r in keys.items() if r["Properties"].get("KeySpec") == "HMAC_256"), "none")
    backup_key = raw["Outputs"]["KmsKeyArn"]["Value"]["Fn::GetAtt"][0]
    bucket = raw["Outputs"]["BackupBucketName"]["Value"]["Ref"]
    world = World(REGION, ACCOUNT, "backup-bucket", _key(backup_key), PREFIX, _key(mac))
    physical = {bucket: {"Ref": "backup-bucket", "Arn": "arn:aws:s3:::backup-bucket"}}
    return ResolvedTemplate(raw, world, physical)


# The people's roles, by the suffix of their per-deployment names (<stack>-<Region>-<suffix>).
OPERATOR_ROLE_NAME, APPROVER_ROLE_NAME = OPERATOR_ROLE_SUFFIX, APPROVER_ROLE_SUFFIX


def _key(logical: str) -> str:
    return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{logical}"


def _role(template: ResolvedTemplate, who: str) -> str:
    if who in (OPERATOR_ROLE_NAME, APPROVER_ROLE_NAME):
        return next(
            lid
            for lid, r in template.resources.items()
            if r["Type"] == "AWS::IAM::Role"
            and str(template.resolve(r["Properties"].get("RoleName"))).endswith(f"-{who}")
        )
    return template.role_of_function(task_names.function_name(who))


def _decide(template: ResolvedTemplate, who: str, call: Call) -> list[tuple[Authorization, bool]]:
    """Every IAM request of ``call`` made by ``who`` (a task or a person's role), with IAM's answer."""
    role = _role(template, who)
    identity = template.identity_policies(role)
    policies = {**template.resource_policies(), **identity}
    principal = f"arn:aws:sts::{ACCOUNT}:assumed-role/{template.role_arn(role).rsplit('/', 1)[-1]}/attacker"
    auths = authorizations(call, template.world)
    for auth in auths:
        auth.context.setdefault("aws:PrincipalArn", template.role_arn(role))
        auth.context.setdefault("aws:PrincipalAccount", ACCOUNT)
    decisions = evaluate([(principal, ACCOUNT, a, sorted(identity)) for a in auths], policies)
    return [(a, d.allowed) for a, d in zip(auths, decisions, strict=True)]


def _allowed(template: ResolvedTemplate, who: str, service: str, operation: str, **params: object) -> bool:
    call = Call(f"attack:{who}", service, operation, REGION, json.dumps(params, sort_keys=True))
    return all(allowed for _, allowed in _decide(template, who, call))


def _mac(template: ResolvedTemplate) -> dict[str, object]:
    return {"KeyId": template.world.mac_key_arn, "Message": "x", "MacAlgorithm": "HMAC_SHA_256"}


PEOPLE = (OPERATOR_ROLE_NAME, APPROVER_ROLE_NAME)


def test_only_write_manifest_may_generate_a_manifest_mac(template: ResolvedTemplate) -> None:
    minters = [
        who
        for who in (*sorted(TASK_NEEDS), *PEOPLE)
        if _allowed(template, who, "kms", "GenerateMac", **_mac(template))
    ]
    assert minters == ["WriteManifest"]


def test_readers_verify_the_manifest_mac_without_minting_one(template: ResolvedTemplate) -> None:
    verifiers = {"VerifyBackup", "CollectBackups", "ValidateRequest", "RestoreUsers", OPERATOR_ROLE_NAME}
    for who in sorted(verifiers):
        assert _allowed(template, who, "kms", "VerifyMac", **_mac(template), Mac="eA=="), who


def _put(key: str) -> dict[str, object]:
    return {
        "Bucket": "backup-bucket",
        "Key": key,
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "alias/cognito-backuper",
    }


@pytest.mark.parametrize(
    ("task", "own", "foreign"),
    [
        ("ExportUsers", f"{BACKUP}/users/0/part-00000.bin", f"{BACKUP}/manifest.json"),
        (
            "ExportGroupMemberships",
            f"{BACKUP}/memberships/000/part-00000.bin",
            f"{BACKUP}/users/0/part-00000.bin",
        ),
        ("CapturePoolConfig", f"{BACKUP}/config.bin", f"{BACKUP}/manifest.json"),
        (
            "RestoreUsers",
            f"{PREFIX}/restores/us-east-1_AbC123/rr-x/idmap/0/part.bin",
            f"{BACKUP}/manifest.json",
        ),
        ("VerifyRestore", f"{PREFIX}/restores/us-east-1_AbC123/rr-x/diff.bin", f"{PREFIX}/audit/2026/x.bin"),
        ("ValidateRequest", f"{PREFIX}/restores/us-east-1_AbC123/rr-x/selection.bin", f"{BACKUP}/config.bin"),
        ("WriteManifest", f"{BACKUP}/manifest.json", f"{PREFIX}/restores/selections/x.bin"),
    ],
)
def test_a_task_role_cannot_write_outside_its_own_objects(
    template: ResolvedTemplate, task: str, own: str, foreign: str
) -> None:
    assert _allowed(template, task, "s3", "PutObject", **_put(own))
    assert not _allowed(template, task, "s3", "PutObject", **_put(foreign))


def test_write_manifest_deletes_only_its_capture_parts(template: ResolvedTemplate) -> None:
    delete = {"Bucket": "backup-bucket"}
    assert _allowed(
        template, "WriteManifest", "s3", "DeleteObject", **delete, Key=f"{BACKUP}/work/config-00000.bin"
    )
    protected = (
        f"{BACKUP}/manifest.json",
        f"{PREFIX}/audit/chain/000000000000.bin",
        f"{PREFIX}/approvals/rr-x/decision.bin",
    )
    for key in protected:
        assert not _allowed(template, "WriteManifest", "s3", "DeleteObject", **delete, Key=key), key
    # The purge of a folder without a manifest (purge-incomplete) also removes its config.bin, nothing more.
    assert _allowed(
        template, "PurgeIncompleteBackup", "s3", "DeleteObject", **delete, Key=f"{BACKUP}/config.bin"
    )
    for key in protected:
        assert not _allowed(template, "PurgeIncompleteBackup", "s3", "DeleteObject", **delete, Key=key), key
    deleters = [t for t, needs in sorted(TASK_NEEDS.items()) if "DeleteObject" in needs.s3]
    assert deleters == ["PurgeIncompleteBackup", "WriteManifest"]


def _part(backup: str, name: str) -> dict[str, str]:
    return {"app": "cognito-backuper", "pool": "us-east-1_AbC123", "backup": backup, "object": name}


BACKUP_ID = "20260101T000000Z-a1b2c3"
REQUEST_ID = "rr-20260101T000000Z-0123456789ab"
AUDIT = {"app": "cognito-backuper", "audit": f"{PREFIX}/audit/2026/01/01/x.bin"}
APPROVAL = {"app": "cognito-backuper", "approval": REQUEST_ID, "object": "decision.bin"}


SELECTION = {"app": "cognito-backuper", "selection": f"{PREFIX}/restores/selections/x.bin"}


@pytest.mark.parametrize(
    ("who", "own", "foreign"),
    [
        ("ExportUsers", _part(BACKUP_ID, "users/0/part-00000.bin"), AUDIT),
        ("ExportGroupMemberships", _part(BACKUP_ID, "memberships/000/part-00000.bin"), APPROVAL),
        ("CapturePoolConfig", _part(BACKUP_ID, "config.bin"), SELECTION),
        ("RestoreUsers", _part(REQUEST_ID, "idmap/all/part-00000-0000000.bin"), AUDIT),
        ("VerifyRestore", _part(REQUEST_ID, "diff.bin"), APPROVAL),
        ("RestorePoolConfig", _part(REQUEST_ID, "pool-config-00000.bin"), APPROVAL),
        ("RequestApproval", APPROVAL, _part(BACKUP_ID, "users/0/part-00000.bin")),
        ("RecordDecision", AUDIT, _part(REQUEST_ID, "report.bin")),
        (OPERATOR_ROLE_NAME, SELECTION, _part(BACKUP_ID, "users/0/part-00000.bin")),
        (OPERATOR_ROLE_NAME, SELECTION, {**_part(BACKUP_ID, "users/0/p.bin"), "selection": "x"}),
    ],
)
def test_a_role_cannot_seal_for_another_purpose(
    template: ResolvedTemplate, who: str, own: dict[str, str], foreign: dict[str, str]
) -> None:
    """kms:GenerateDataKey is bound by encryption-context conditions to what the role itself writes."""
    key = template.world.key_arn
    assert _allowed(
        template, who, "kms", "GenerateDataKey", KeyId=key, KeySpec="AES_256", EncryptionContext=own
    )
    assert not _allowed(
        template, who, "kms", "GenerateDataKey", KeyId=key, KeySpec="AES_256", EncryptionContext=foreign
    )


@pytest.mark.parametrize("task", ["WriteManifest", "CollectBackups", "EnumeratePools"])
def test_tasks_that_seal_nothing_use_the_data_key_only_through_s3(
    template: ResolvedTemplate, task: str
) -> None:
    key = template.world.key_arn
    context = _part(BACKUP_ID, "users/0/part-00000.bin")
    assert not _allowed(
        template, task, "kms", "GenerateDataKey", KeyId=key, KeySpec="AES_256", EncryptionContext=context
    )
    assert _allowed(
        template,
        task,
        "s3",
        "PutObject",
        **_put(f"{PREFIX}/runs/r/pools.json" if task != "WriteManifest" else f"{BACKUP}/manifest.json"),
    )
