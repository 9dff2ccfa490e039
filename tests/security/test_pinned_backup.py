"""A restore is pinned to exactly what was approved.

ValidateRequest records the manifest's S3 version id and SHA-256; the approver is shown them with the backup's
pool, time and counts; every later task re-reads that version and re-checks the digest. The attacker here holds
WriteManifest's powers (it may write a manifest that authenticates), or an administrator's (it may delete object
versions), and acts between the approval and the restore.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import redirect_stdout
from io import StringIO
from typing import Any

import pytest

from pipeline.core.contracts import IndexCursor, RestoreRequest
from pipeline.core.errors import IntegrityError, InvalidRequest
from pipeline.core.layout import BackupLocation
from pipeline.operator.cli import main
from pipeline.restore import approval, membership_index
from pipeline.restore import steps as restore
from pipeline.sealing import manifest, store
from pipeline.sealing.backup_reader import BackupReader
from tests.helpers.restore_flow import proof
from tests.helpers.restore_world import World, backup_pool, make_world
from tests.security import attacks


def _start() -> IndexCursor:
    return {"next": 0, "passes": 0, "done": False}


@pytest.fixture
def world() -> Iterator[World]:
    yield from make_world(users=12)


def _validated(world: World, reader: BackupReader) -> RestoreRequest:
    event: Any = {
        "backupUri": reader.loc.uri,
        "settings": dict(world.account.storage),
        "targetPoolId": world.pool.pool_id,
        "requesterProof": proof(world.clients, "restore", "x"),
        "executionName": "x",
        "executionArn": "arn:aws:states:us-east-1:123456789012:execution:restore:x",
        "approvalTimeoutSeconds": 600,
    }
    return restore.validate_request(world.clients, event)


def _swap_manifest(world: World, reader: BackupReader) -> None:
    """As WriteManifest: a new, authenticated manifest for the same backup, without its memberships."""
    body = {k: v for k, v in attacks.genuine_manifest(reader).items() if k != "authentication"}
    body["objects"] = [o for o in body["objects"] if o["kind"] != "memberships"]
    body["counts"] = {**body["counts"], "memberships": 0, "parts": len(body["objects"])}
    # The version under it stays; only the latest is replaced (the role may not delete versions).
    world.clients.s3.delete_object(Bucket=reader.loc.bucket, Key=reader.loc.manifest_key)
    manifest.write_manifest(world.clients, reader.loc, body)


def _indexed_memberships(world: World, request: RestoreRequest) -> int:
    restore.index_memberships(world.clients, request, _start())
    ws = restore.workspace(request)
    return sum(
        len(r["groups"])
        for shard in request["shards"]
        for r in store.get_sealed(world.clients, ws, membership_index.key(ws, shard))
    )


def test_a_manifest_swapped_after_approval_is_not_what_the_restore_uses(world: World) -> None:
    reader = backup_pool(world)
    approved = reader.doc["counts"]["memberships"]
    assert approved > 0
    request = _validated(world, reader)
    _swap_manifest(world, reader)
    assert manifest.read_manifest(world.clients, reader.loc)["counts"]["memberships"] == 0  # the swap took
    # The restore reads the approved version, not the latest one.
    assert _indexed_memberships(world, request) == approved


def test_a_restore_whose_approved_manifest_is_gone_fails_with_an_integrity_error(world: World) -> None:
    reader = backup_pool(world)
    request = _validated(world, reader)
    _swap_manifest(world, reader)
    versions = world.clients.s3.list_object_versions(Bucket=reader.loc.bucket, Prefix=reader.loc.manifest_key)
    for version in versions.get("Versions", []):
        if version["VersionId"] == request.get("manifestVersionId"):
            world.clients.s3.delete_object(
                Bucket=reader.loc.bucket, Key=reader.loc.manifest_key, VersionId=version["VersionId"]
            )
    with pytest.raises(IntegrityError, match="changed after approval"):
        restore.index_memberships(world.clients, request, _start())


def test_a_request_whose_pinned_digest_does_not_match_is_refused(world: World) -> None:
    """Where no version id is known (an unversioned bucket), the SHA-256 alone must still catch a swap."""
    reader = backup_pool(world)
    request = _validated(world, reader)
    _swap_manifest(world, reader)
    unversioned: Any = {**request, "manifestVersionId": None}
    with pytest.raises(IntegrityError, match="not the one approved"):
        restore.index_memberships(world.clients, unversioned, _start())


def test_the_approver_sees_the_pinned_backup(world: World) -> None:
    reader = backup_pool(world)
    request = _validated(world, reader)
    restore.request_approval(world.clients, request, {}, "token-1")
    (pending,) = approval.pending(restore.audit_sink(world.clients, request["settings"]))
    shown = pending.backup
    assert shown["manifestSha256"] == request.get("manifestSha256")
    assert shown["manifestVersionId"] == request.get("manifestVersionId")
    assert shown["manifestSha256"] == attacks.sha256_of_manifest(reader)
    counts = reader.doc["counts"]
    assert (shown["poolId"], shown["completedAt"]) == (reader.loc.pool_id, reader.doc["completedAt"])
    assert (shown["users"], shown["groups"], shown["memberships"]) == (
        counts["users"],
        counts["groups"],
        counts["memberships"],
    )


def test_a_genuine_backup_copied_under_restores_is_not_a_backup(world: World) -> None:
    """The operator copies a real backup (every byte authentic) into restores/selections/, its writable area."""
    reader = backup_pool(world)
    planted = BackupLocation(
        reader.loc.bucket,
        f"{reader.loc.prefix}/restores/selections",
        reader.loc.pool_id,
        reader.loc.backup_id,
    )
    attacks.copy_backup(world.clients, reader.loc, planted)

    listed = manifest.list_backups(world.clients, reader.loc.bucket, reader.loc.prefix)
    assert [b["uri"] for b in listed] == [reader.loc.uri]
    with pytest.raises(InvalidRequest, match=r"backup prefix|restores"):
        _validated(world, BackupReader(world.clients, planted, reader.doc))
    out = StringIO()
    with redirect_stdout(out):
        code = main(["verify", planted.uri, "--json"])
    assert code == 2, out.getvalue()
    assert "restores/" in json.loads(out.getvalue())["message"]
