"""The demo's embedded account: a KMS key, a bucket with the seed's policy, and a realistic user pool."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.aws import Clients
from pipeline.core.contracts import Storage
from pipeline.sealing.envelope import BACKUP_KEY_ALIAS
from pipeline.sealing.manifest_mac import DEFAULT_MAC_KEY

DEMO_BUCKET = "cognito-backuper-demo"
DEMO_PREFIX = "backups"


@dataclass(frozen=True)
class DemoAccount:
    storage: Storage


def create_mac_key(clients: Clients) -> str:
    """The manifest MAC key under the alias the pipeline looks for, as the CDK app creates it (infra.signing)."""
    key = clients.kms.create_key(
        Description="cognito-backuper demo manifest MAC key",
        KeySpec="HMAC_256",
        KeyUsage="GENERATE_VERIFY_MAC",
    )["KeyMetadata"]
    clients.kms.create_alias(AliasName=DEFAULT_MAC_KEY, TargetKeyId=key["KeyId"])
    return key["Arn"]


def prepare_account(clients: Clients) -> DemoAccount:
    create_mac_key(clients)
    key = clients.kms.create_key(Description="cognito-backuper demo backup key", KeyUsage="ENCRYPT_DECRYPT")
    key_arn = key["KeyMetadata"]["Arn"]
    clients.kms.enable_key_rotation(KeyId=key_arn)
    # The alias the CDK app gives the backup key: approve, reject and approvals find the key by it.
    clients.kms.create_alias(AliasName=BACKUP_KEY_ALIAS, TargetKeyId=key_arn)
    if clients.region == "us-east-1":
        clients.s3.create_bucket(Bucket=DEMO_BUCKET)
    else:
        clients.s3.create_bucket(
            Bucket=DEMO_BUCKET,
            CreateBucketConfiguration={"LocationConstraint": clients.region},  # type: ignore[typeddict-item]
        )
    # Versioned as the CDK app's bucket is: a restore pins the manifest's S3 version id.
    clients.s3.put_bucket_versioning(Bucket=DEMO_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    clients.s3.put_public_access_block(
        Bucket=DEMO_BUCKET,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    clients.s3.put_bucket_encryption(
        Bucket=DEMO_BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key_arn,
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    # moto evaluates any conditional Deny as a plain Deny, so the seed's EnforceEncryption statement would refuse
    # every PutObject here; the CDK tests assert it on the deployed bucket, and every write asks for SSE-KMS anyway.
    return DemoAccount(storage={"bucket": DEMO_BUCKET, "kmsKeyArn": key_arn, "prefix": DEMO_PREFIX})


@dataclass(frozen=True)
class Accounting:
    """The backup's decrypted content compared with the live pool it came from."""

    users_live: int
    users_backed_up: int
    users_missing: int
    users_duplicated: int
    groups_live: int
    groups_backed_up: int
    memberships_live: int
    memberships_backed_up: int
    memberships_missing: int

    @property
    def complete(self) -> bool:
        return (
            self.users_missing == 0
            and self.users_duplicated == 0
            and self.users_live == self.users_backed_up
            and self.groups_live == self.groups_backed_up
            and self.memberships_missing == 0
            and self.memberships_live == self.memberships_backed_up
        )


def account_for(clients: Clients, pool_id: str, uri: str) -> Accounting:
    from pipeline.cognito import reading as cognito_read
    from pipeline.core.layout import parse_backup_uri
    from pipeline.sealing.backup_reader import BackupReader

    live_users: set[str] = set()
    token: str | None = None
    while True:
        page = cognito_read.list_users_page(clients.cognito, pool_id, token=token)
        live_users.update(u["username"] for u in page.users)
        token = page.next_token
        if token is None:
            break
    live_groups = [g["name"] for g in cognito_read.list_groups(clients.cognito, pool_id)]
    live_members: set[tuple[str, str]] = set()
    for group in live_groups:
        gtoken: str | None = None
        while True:
            members, gtoken = cognito_read.list_group_members_page(clients.cognito, pool_id, group, gtoken)
            live_members.update((group, m) for m in members)
            if gtoken is None:
                break

    reader = BackupReader.open(clients, parse_backup_uri(uri))
    backed_up = [u["username"] for u in reader.users()]
    backed_members = {(m["group"], m["username"]) for m in reader.memberships()}
    return Accounting(
        users_live=len(live_users),
        users_backed_up=len(set(backed_up)),
        users_missing=len(live_users - set(backed_up)),
        users_duplicated=len(backed_up) - len(set(backed_up)),
        groups_live=len(live_groups),
        groups_backed_up=len(reader.config()["groups"]),
        memberships_live=len(live_members),
        memberships_backed_up=len(backed_members),
        memberships_missing=len(live_members - backed_members),
    )
