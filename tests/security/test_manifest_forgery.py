"""Forged manifests: a backup of the attacker's choosing must never verify, list as sound, or be restored.

Actors: the operator (kms:GenerateDataKey and Decrypt on the backup key, PutObject under restores/selections/) and
a compromised backup task (PutObject under the backup prefix, GenerateDataKey). Both can seal parts and compute
any HMAC with a data key; neither may call kms:GenerateMac on the manifest MAC key (test_least_privilege).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline.backup.verify import verify_backup
from pipeline.core.errors import IntegrityError, InvalidRequest, PipelineError
from pipeline.core.layout import BackupLocation
from pipeline.restore import steps
from pipeline.sealing import manifest
from pipeline.sealing.backup_reader import BackupReader
from tests.helpers.restore_flow import proof
from tests.helpers.restore_world import World, backup_pool, make_world
from tests.security import attacks


@pytest.fixture
def world() -> Iterator[World]:
    yield from make_world(users=12)


def _request_event(world: World, uri: str) -> dict[str, object]:
    return {
        "backupUri": uri,
        "settings": dict(world.account.storage),
        "targetPoolId": world.pool.pool_id,
        "requesterProof": proof(world.clients, "restore", "x"),
        "executionName": "x",
        "executionArn": "arn:aws:states:us-east-1:123456789012:execution:restore:x",
        "approvalTimeoutSeconds": 60,
    }


def _forge(world: World, genuine: BackupReader, at: BackupLocation) -> None:
    storage = world.account.storage
    body = attacks.plant_backup(world.clients, genuine, at, storage["kmsKeyArn"], with_intruder=True)
    auth = attacks.genuine_manifest(genuine)["authentication"]
    forged = attacks.authenticate_with_data_key(world.clients, at, body, auth)
    attacks.put_manifest(world.clients, at, forged)


def test_a_manifest_minted_with_a_data_key_does_not_verify(world: World) -> None:
    """A compromised task with PutObject under the backup prefix plants a backup holding its own user."""
    genuine = backup_pool(world)
    forged = BackupLocation(
        genuine.loc.bucket, genuine.loc.prefix, genuine.loc.pool_id, attacks.FORGED_BACKUP_ID
    )
    _forge(world, genuine, forged)

    with pytest.raises(IntegrityError, match="failed authentication"):
        verify_backup(world.clients, forged)
    listed = {b["backupId"]: b for b in manifest.list_backups(world.clients, forged.bucket, forged.prefix)}
    assert "error" in listed[attacks.FORGED_BACKUP_ID] and "users" not in listed[attacks.FORGED_BACKUP_ID]
    with pytest.raises(IntegrityError):
        steps.validate_request(world.clients, _request_event(world, forged.uri))  # type: ignore[arg-type]


def test_the_operator_cannot_plant_a_backup_under_restores_selections(world: World) -> None:
    """The operator's only writable place: a forged backup there is neither listed nor accepted for a restore."""
    genuine = backup_pool(world)
    planted = BackupLocation(
        genuine.loc.bucket,
        f"{genuine.loc.prefix}/restores/selections",
        genuine.loc.pool_id,
        attacks.FORGED_BACKUP_ID,
    )
    _forge(world, genuine, planted)

    listed = manifest.list_backups(world.clients, genuine.loc.bucket, genuine.loc.prefix)
    assert [b["backupId"] for b in listed] == [genuine.loc.backup_id]
    with pytest.raises(PipelineError) as refused:
        steps.validate_request(world.clients, _request_event(world, planted.uri))  # type: ignore[arg-type]
    assert isinstance(refused.value, InvalidRequest | IntegrityError)
    with pytest.raises(IntegrityError, match="failed authentication"):
        verify_backup(world.clients, planted)


def test_a_manifest_naming_a_foreign_key_is_refused(world: World) -> None:
    """The attacker re-seals the backup under a key of their own and authenticates it with that key's powers."""
    genuine = backup_pool(world)
    own_key = world.clients.kms.create_key(Description="attacker's key")["KeyMetadata"]["Arn"]
    forged = BackupLocation(
        genuine.loc.bucket, genuine.loc.prefix, genuine.loc.pool_id, attacks.FORGED_BACKUP_ID
    )
    body = attacks.plant_backup(world.clients, genuine, forged, own_key, with_intruder=True)
    auth = attacks.genuine_manifest(genuine)["authentication"]
    if "encryptedKey" in auth:  # a data-key MAC: the attacker's own key makes one
        document = attacks.authenticate_with_data_key(world.clients, forged, body, auth)
    else:  # a KMS HMAC: the attacker's own HMAC key makes one, and the manifest names it
        document = attacks.authenticate_with_own_hmac_key(world.clients, body)
    attacks.put_manifest(world.clients, forged, document)

    with pytest.raises(IntegrityError, match=r"another KMS key|failed authentication"):
        steps.validate_request(world.clients, _request_event(world, forged.uri))  # type: ignore[arg-type]


def test_a_manifest_tagged_with_another_hmac_key_is_refused(world: World) -> None:
    """Even naming the deployment's backup key, a tag made with any MAC key but the deployment's fails."""
    genuine = backup_pool(world)
    forged = BackupLocation(
        genuine.loc.bucket, genuine.loc.prefix, genuine.loc.pool_id, attacks.FORGED_BACKUP_ID
    )
    body = attacks.plant_backup(
        world.clients, genuine, forged, world.account.storage["kmsKeyArn"], with_intruder=True
    )
    auth = attacks.genuine_manifest(genuine)["authentication"]
    if "encryptedKey" in auth:
        document = attacks.authenticate_with_data_key(world.clients, forged, body, auth)
    else:
        document = attacks.authenticate_with_own_hmac_key(world.clients, body)
    attacks.put_manifest(world.clients, forged, document)

    with pytest.raises(IntegrityError, match="failed authentication"):
        BackupReader.open(world.clients, forged)
