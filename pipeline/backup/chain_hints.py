"""What the pool's previous backup says about its member chains: memberships per group slice.

Cognito gives no group sizes, and a group's members are one ListUsersInGroup token chain, so the longest chain
bounds a backup unless it starts first. The previous complete backup's manifest counts each membership part's
records and names its slice, so one listing and one GET tell PlanShards which slices to start first.

Only an ordering hint: a wrong or missing one costs time, never data. The manifest is therefore read without its
KMS authentication, and any failure to read it plans in name order, with a warning.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import botocore.exceptions

from pipeline.core.aws import Clients, error_code
from pipeline.core.contracts import PreviousSlices
from pipeline.core.layout import MANIFEST_NAME, BackupLocation

log = logging.getLogger(__name__)

_SLICE_PART = re.compile(r"memberships/(\d{3})/part-\d{5}\.bin", re.ASCII)
# Backups without a manifest (interrupted) are skipped; past this many, the hint is not worth more requests.
MAX_MANIFESTS_TRIED = 3


def _earlier_backups(clients: Clients, loc: BackupLocation) -> list[str]:
    """The pool's backup folders older than this one, newest first (backup ids sort by time)."""
    pool_root = loc.root[: -len(loc.backup_id) - 1]
    folders: list[str] = []
    paginator = clients.s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=loc.bucket, Prefix=pool_root, Delimiter="/"):
        folders += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    return sorted((f for f in folders if f[len(pool_root) : -1] < loc.backup_id), reverse=True)


def slices_of(manifest: Any) -> PreviousSlices | None:
    """Memberships per slice from a manifest document; None when it is not one this version reads."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("objects"), list):
        return None
    groups = (manifest.get("counts") or {}).get("groups")
    if not isinstance(groups, int) or isinstance(groups, bool):
        return None
    counts: dict[str, int] = {}
    for entry in manifest["objects"]:
        match = _SLICE_PART.fullmatch(str(entry.get("name", ""))) if isinstance(entry, dict) else None
        records = entry.get("records") if match else None
        if match and isinstance(records, int):
            counts[str(int(match.group(1)))] = counts.get(str(int(match.group(1))), 0) + records
    return {"groups": groups, "memberships": counts}


def previous_slices(clients: Clients, loc: BackupLocation) -> PreviousSlices | None:
    """The newest earlier complete backup's memberships per slice, or None (none, unreadable)."""
    try:
        for folder in _earlier_backups(clients, loc)[:MAX_MANIFESTS_TRIED]:
            try:
                body = clients.s3.get_object(Bucket=loc.bucket, Key=folder + MANIFEST_NAME)["Body"].read()
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) == "NoSuchKey":
                    continue  # an interrupted backup: no manifest
                raise
            try:
                return slices_of(json.loads(body))
            except ValueError:
                return None
    except botocore.exceptions.ClientError as exc:
        log.warning(
            "previous backup unreadable; group slices planned in name order",
            extra={"pool": loc.pool_id, "error": error_code(exc)},
        )
    return None
