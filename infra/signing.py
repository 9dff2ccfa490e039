"""The manifest MAC key: an HMAC KMS key that only WriteManifest may generate tags with.

Kept apart from the backup key so that no ``kms:GenerateDataKey`` caller can mint a manifest
(pipeline.sealing.manifest_mac). Its policy starts with the backup key's administration statement; every role
that uses it is named in it by ``grant_mac``: GenerateMac for WriteManifest's role, VerifyMac for readers.
HMAC keys cannot rotate automatically, so rotation is left off.
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.storage import KEY_ADMIN_ACTIONS
from pipeline.sealing.manifest_mac import DEFAULT_MAC_KEY

MAC_ACTIONS = frozenset({"GenerateMac", "VerifyMac"})


def manifest_mac_key(scope: Construct, construct_id: str) -> kms.Key:
    policy = iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                sid="KeyAdministration",
                principals=[iam.AccountRootPrincipal()],
                actions=[a for a in KEY_ADMIN_ACTIONS if "Rotation" not in a],
                resources=["*"],
            )
        ]
    )
    return kms.Key(
        scope,
        construct_id,
        alias=DEFAULT_MAC_KEY,
        description="cognito-backuper: authenticates backup manifests (GenerateMac: WriteManifest only)",
        key_spec=kms.KeySpec.HMAC_256,
        key_usage=kms.KeyUsage.GENERATE_VERIFY_MAC,
        enable_key_rotation=False,
        policy=policy,
        removal_policy=RemovalPolicy.RETAIN,
    )


def grant_mac(key: kms.IKey, role: iam.IRole, actions: Iterable[str], sid: str) -> None:
    """The role's own policy and the key policy both name the use: the key trusts no one by default."""
    names = sorted(set(actions))
    if not names or not set(names) <= MAC_ACTIONS:
        raise ValueError(f"not MAC key actions: {names}")
    granted = [f"kms:{a}" for a in names]
    role.add_to_principal_policy(
        iam.PolicyStatement(sid="ManifestMacKey", actions=granted, resources=[key.key_arn])
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(sid=sid, principals=[role], actions=granted, resources=["*"])
    )
