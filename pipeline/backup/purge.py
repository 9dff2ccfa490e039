"""Removing what an interrupted or failed backup left: a backup folder with parts but no manifest.

The PurgeIncompleteBackup task does the deleting, with the pipeline's own role: operators get no s3:DeleteObject.
The task checks the folder itself (the CLI's check is only for a quick, clear error), so it can never be used to
delete a completed backup: a folder with a manifest is refused, and so is one whose objects were written recently,
since that may be a backup still running (on AWS, interrupting the CLI does not stop the execution; every running
backup writes an object at least once per Lambda invocation, 15 minutes at most).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pipeline.core import layout
from pipeline.core.aws import Clients, caller_arn
from pipeline.core.contracts import PurgeIncompleteEvent, PurgeIncompleteResult, Storage
from pipeline.core.errors import BackupNotFound, InvalidRequest
from pipeline.sealing import audit
from pipeline.sealing.store import s3_errors

DEFAULT_MIN_IDLE_S = 3600
_DELETE_BATCH = 1000  # DeleteObjects' limit per request


@dataclass(frozen=True)
class Folder:
    """One backup folder as a listing shows it."""

    loc: layout.BackupLocation
    keys: list[str]
    bytes: int
    has_manifest: bool
    newest: dt.datetime | None

    @property
    def incomplete(self) -> bool:
        return bool(self.keys) and not self.has_manifest


def location(storage: Storage, pool_id: str, backup_id: str) -> layout.BackupLocation:
    """Exactly one backup folder: both ids are checked, so the prefix can never widen to another folder."""
    return layout.BackupLocation(
        storage["bucket"], storage["prefix"], layout.check_pool_id(pool_id), layout.check_backup_id(backup_id)
    )


def inspect(clients: Clients, loc: layout.BackupLocation) -> Folder:
    keys: list[str] = []
    size = 0
    newest: dt.datetime | None = None
    with s3_errors(loc):
        for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.root):
            for item in page.get("Contents", []):
                keys.append(item["Key"])
                size += int(item.get("Size", 0))
                modified = item.get("LastModified")
                if modified is not None and (newest is None or modified > newest):
                    newest = modified
    return Folder(loc, keys, size, loc.manifest_key in keys, newest)


def check_purgeable(folder: Folder, min_idle_s: int, now: dt.datetime | None = None) -> None:
    """One-line refusals for anything but an idle folder with parts and no manifest."""
    uri = folder.loc.uri
    if not folder.keys:
        raise BackupNotFound(f"no objects under {uri}: nothing to purge")
    if folder.has_manifest:
        raise InvalidRequest(
            f"{uri} has a manifest: it is a completed backup, and purge-incomplete only removes folders without one"
        )
    if folder.newest is not None and min_idle_s > 0:
        idle = ((now or dt.datetime.now(dt.UTC)) - folder.newest).total_seconds()
        if idle < min_idle_s:
            raise InvalidRequest(
                f"{uri} was written {max(int(idle), 0)} s ago: its backup may still be running; purge it once it "
                f"has been idle for {min_idle_s} s (or with a shorter --idle-minutes when you know it stopped)"
            )


def purge_incomplete(clients: Clients, event: PurgeIncompleteEvent) -> PurgeIncompleteResult:
    """Re-check the folder, delete its objects (and nothing outside it), and record ``backup.purged``."""
    request = event["purgeIncomplete"]
    storage = event["storage"]
    loc = location(storage, request["poolId"], request["backupId"])
    min_idle_s = int(request.get("minIdleSeconds", DEFAULT_MIN_IDLE_S))
    if min_idle_s < 0:
        raise InvalidRequest("minIdleSeconds must not be negative")
    folder = inspect(clients, loc)
    check_purgeable(folder, min_idle_s)
    with s3_errors(loc):
        for i in range(0, len(folder.keys), _DELETE_BATCH):
            batch: list[Any] = [
                {"Key": k} for k in folder.keys[i : i + _DELETE_BATCH] if k.startswith(loc.root)
            ]
            clients.s3.delete_objects(Bucket=loc.bucket, Delete={"Objects": batch, "Quiet": True})
    sink = audit.AuditSink(
        clients,
        storage["bucket"],
        storage["kmsKeyArn"],
        prefix="/".join(p for p in (storage["prefix"].strip("/"), "audit") if p),
    )
    details: dict[str, Any] = {
        "uri": loc.uri,
        "poolId": loc.pool_id,
        "objects": len(folder.keys),
        "bytes": folder.bytes,
        "requestedBy": request.get("requestedBy"),
        "executionArn": event.get("executionArn"),
    }
    key = audit.record(sink, "backup.purged", loc.backup_id, actor=caller_arn(clients), details=details)
    return {
        "uri": loc.uri,
        "poolId": loc.pool_id,
        "backupId": loc.backup_id,
        "objects": len(folder.keys),
        "bytes": folder.bytes,
        "auditKey": key,
    }
