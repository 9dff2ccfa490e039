"""Where a backup's objects live in S3, and how backup ids and URIs are formed.

``<prefix>/<pool-id>/<backup-id>/`` holds ``config.bin``, ``users/<shard>/part-00000.bin`` …,
``memberships/<slice>/part-00000.bin`` … and ``manifest.json``. Part keys are deterministic, so a retried task rewrites
the same key instead of adding a duplicate.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass

from pipeline.core.errors import InvalidRequest

MANIFEST_NAME = "manifest.json"
_BACKUP_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}", re.ASCII)
_POOL_ID = re.compile(r"[\w-]+_[0-9a-zA-Z]+", re.ASCII)
_SHARD = re.compile(r"[0-9a-f]{0,2}", re.ASCII)
# Restore requests (rr-) and drills (rd-): sortable by time, an unguessable suffix.
_STAMPED_SUFFIX = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{12}", re.ASCII)
# CreateUserPool's PoolName: 1 to 128 of these characters (Cognito API reference).
_POOL_NAME = re.compile(r"[\w\s+=,.@-]{1,128}")


def new_backup_id(now: dt.datetime | None = None) -> str:
    """Sortable by time, unique by a random suffix: ``20261127T202200Z-a1b2c3``."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def new_stamped_id(prefix: str, now: dt.datetime | None = None) -> str:
    """``<prefix>20261127T202200Z-0123456789ab``: sortable by time, unguessable suffix."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{prefix}{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(6)}"


def is_stamped_id(prefix: str, value: str) -> bool:
    """Exactly what :func:`new_stamped_id` makes with ``prefix`` (ids name S3 keys and pools)."""
    return value.startswith(prefix) and bool(_STAMPED_SUFFIX.fullmatch(value[len(prefix) :]))


def is_pool_name(name: str) -> bool:
    return bool(_POOL_NAME.fullmatch(name))


def check_pool_id(pool_id: str) -> str:
    if not _POOL_ID.fullmatch(pool_id):
        raise InvalidRequest(f"not a user pool id: {pool_id!r} (expected REGION_ID, like eu-west-1_AbC123)")
    return pool_id


def check_backup_id(backup_id: str) -> str:
    if not _BACKUP_ID.fullmatch(backup_id):
        raise InvalidRequest(f"not a backup id: {backup_id!r}")
    return backup_id


@dataclass(frozen=True)
class BackupLocation:
    bucket: str
    prefix: str
    pool_id: str
    backup_id: str

    @property
    def root(self) -> str:
        parts = [p for p in (self.prefix.strip("/"), self.pool_id, self.backup_id) if p]
        return "/".join(parts) + "/"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.root}"

    @property
    def manifest_key(self) -> str:
        return self.root + MANIFEST_NAME

    @property
    def config_key(self) -> str:
        return self.root + "config.bin"

    def user_part_key(self, shard: str, part: int) -> str:
        if not _SHARD.fullmatch(shard):
            raise InvalidRequest(f"not a shard id: {shard!r}")
        return f"{self.root}users/{shard or 'all'}/part-{part:05d}.bin"

    def membership_part_key(self, group_slice: int, part: int) -> str:
        if not 0 <= group_slice <= 999:
            raise InvalidRequest(f"not a group slice: {group_slice!r}")
        return f"{self.root}memberships/{group_slice:03d}/part-{part:05d}.bin"

    def relative(self, key: str) -> str:
        """The key as the manifest names it, relative to the backup root."""
        if not key.startswith(self.root):
            raise InvalidRequest(f"object outside the backup: {key!r}")
        return key[len(self.root) :]


def parse_backup_uri(uri: str) -> BackupLocation:
    """``s3://bucket/[prefix/]pool-id/backup-id[/][manifest.json]`` to a location."""
    if not uri.startswith("s3://"):
        raise InvalidRequest(f"not an s3:// URI: {uri!r}")
    bucket, _, path = uri[5:].partition("/")
    parts = [p for p in path.split("/") if p]
    if parts and parts[-1] == MANIFEST_NAME:
        parts.pop()
    if not bucket or len(parts) < 2:
        raise InvalidRequest(f"not a backup URI: {uri!r} (expected s3://BUCKET/[PREFIX/]POOL_ID/BACKUP_ID/)")
    return BackupLocation(
        bucket=bucket,
        prefix="/".join(parts[:-2]),
        pool_id=check_pool_id(parts[-2]),
        backup_id=check_backup_id(parts[-1]),
    )


# Where the pipeline keeps what is not a backup, beside the backups under the same prefix.
RESERVED_AREAS = ("restores", "audit", "approvals", "runs")


def check_deployed_prefix(loc: BackupLocation, prefix: str) -> BackupLocation:
    """Backups are accepted only directly under the deployment's backup prefix: an object planted under
    ``restores/``, ``audit/`` or ``approvals/`` (or anywhere else) is never a backup."""
    check_backup_area(loc)
    if loc.prefix.strip("/") != prefix.strip("/"):
        raise InvalidRequest(
            f"{loc.uri} is not under this deployment's backup prefix {prefix.strip('/') or '(none)'}/: "
            "only backups written there are accepted"
        )
    return loc


def check_backup_area(loc: BackupLocation) -> BackupLocation:
    """Where no deployment prefix is known (the CLI's own reads): a backup is never inside the pipeline's own
    areas, so a copy planted under ``<prefix>/restores/…`` is not taken for one."""
    reserved = [p for p in loc.prefix.split("/") if p in RESERVED_AREAS]
    if reserved:
        raise InvalidRequest(
            f"{loc.uri} is inside the pipeline's {reserved[0]}/ area, not a backup prefix: backups are never "
            "accepted from restores/, audit/, approvals/ or runs/"
        )
    return loc
