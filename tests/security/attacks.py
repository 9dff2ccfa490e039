"""What an insider can do with the powers the stack gives them, written as the attacker would, on moto.

Written against the pipeline's public pieces only (store, manifest building, the S3 and KMS APIs), so the same
attacks also run against older versions of the pipeline: there they succeed, which is what the tests prove
is no longer true.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from pipeline.core.aws import Clients
from pipeline.core.layout import MANIFEST_NAME, BackupLocation
from pipeline.sealing import manifest, store
from pipeline.sealing.backup_reader import BackupReader
from pipeline.sealing.envelope import canonical_json, encryption_context

FORGED_BACKUP_ID = "20260101T000000Z-bad000"
INTRUDER = "mallory"


def plant_backup(
    clients: Clients, genuine: BackupReader, target: BackupLocation, key_arn: str, *, with_intruder: bool
) -> dict[str, Any]:
    """Re-seal the genuine backup's records (plus, optionally, a user of the attacker's choosing) at ``target``
    under ``key_arn``, and return the unauthenticated manifest of that copy."""
    objects: list[store.StoredObject] = []
    for obj in genuine.doc["objects"]:
        records = genuine.read(obj)
        if with_intruder and obj["kind"] == "users" and not any(o.name.startswith("users/") for o in objects):
            intruder = json.loads(json.dumps(records[0]))
            intruder["username"] = INTRUDER
            records = [*records, intruder]
        objects.append(store.put_sealed(clients, target, key_arn, target.root + obj["name"], records))
    return manifest.build_manifest(
        target,
        region=clients.region,
        kms_key_arn=key_arn,
        started_at=genuine.doc["startedAt"],
        shards=genuine.doc["shards"],
        objects=objects,
        groups=genuine.doc["counts"]["groups"],
    )


def authenticate_with_data_key(
    clients: Clients, loc: BackupLocation, body: dict[str, Any], genuine_auth: dict[str, Any]
) -> dict[str, Any]:
    """What any holder of kms:GenerateDataKey on the manifest's key can do: make a MAC key and tag the body,
    in the shape of the genuine manifest's ``authentication``."""
    context = encryption_context(loc.pool_id, loc.backup_id, MANIFEST_NAME)
    data_key = clients.kms.generate_data_key(
        KeyId=body["kmsKeyArn"], KeySpec="AES_256", EncryptionContext=context
    )
    auth = dict(genuine_auth)
    auth["mac"] = base64.b64encode(
        hmac.new(data_key["Plaintext"], canonical_json(body), hashlib.sha256).digest()
    ).decode("ascii")
    if "encryptedKey" in auth:
        auth["encryptedKey"] = base64.b64encode(data_key["CiphertextBlob"]).decode("ascii")
    return {**body, "authentication": auth}


def put_manifest(clients: Clients, loc: BackupLocation, document: dict[str, Any]) -> None:
    """A plain PutObject: a new version of the manifest on a versioned bucket."""
    clients.s3.put_object(
        Bucket=loc.bucket,
        Key=loc.manifest_key,
        Body=json.dumps(document).encode("utf-8"),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=document["kmsKeyArn"],
    )


def copy_backup(clients: Clients, source: BackupLocation, target: BackupLocation) -> None:
    """Copy every object of a backup, manifest included, byte for byte."""
    listing = clients.s3.list_objects_v2(Bucket=source.bucket, Prefix=source.root)
    for item in listing.get("Contents", []):
        clients.s3.copy_object(
            Bucket=target.bucket,
            Key=target.root + item["Key"][len(source.root) :],
            CopySource={"Bucket": source.bucket, "Key": item["Key"]},
        )


def genuine_manifest(reader: BackupReader) -> dict[str, Any]:
    raw = reader.clients.s3.get_object(Bucket=reader.loc.bucket, Key=reader.loc.manifest_key)["Body"].read()
    document: dict[str, Any] = json.loads(raw)
    return document


def authenticate_with_own_hmac_key(clients: Clients, body: dict[str, Any]) -> dict[str, Any]:
    """An HMAC KMS key the attacker created (and may use): a valid tag, from the wrong key, naming that key."""
    from pipeline.sealing import manifest_mac

    key = clients.kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    tag = clients.kms.generate_mac(
        KeyId=key["Arn"], Message=manifest_mac.message(body), MacAlgorithm=manifest_mac.ALGORITHM
    )["Mac"]
    auth = {
        "algorithm": manifest_mac.ALGORITHM,
        "macKeyId": key["Arn"],
        "mac": base64.b64encode(tag).decode(),
    }
    return {**body, "authentication": auth}


def sha256_of_manifest(reader: BackupReader) -> str:
    raw = reader.clients.s3.get_object(Bucket=reader.loc.bucket, Key=reader.loc.manifest_key)["Body"].read()
    return hashlib.sha256(raw).hexdigest()
