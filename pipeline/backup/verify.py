"""VerifyBackup: re-read every object of a backup and prove it matches its authenticated manifest.

Checks, per object: present, SHA-256 as recorded, decrypts under the context of the place it was read from
(so a moved or swapped part fails), decodes, and holds the recorded number of records. Across the backup: no
object the manifest does not name, per-kind totals equal the manifest's counts, and no user in two parts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.core.aws import Clients
from pipeline.core.errors import IntegrityError
from pipeline.core.layout import MANIFEST_NAME, BackupLocation
from pipeline.sealing.manifest import ManifestPin, read_pinned
from pipeline.sealing.store import get_blob, open_blob, s3_errors

ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class VerifyReport:
    uri: str
    users: int
    groups: int
    memberships: int
    objects: int


def verify_backup(
    clients: Clients,
    loc: BackupLocation,
    on_object: ProgressCallback | None = None,
    *,
    expected_key_arn: str | None = None,
    pin: ManifestPin | None = None,
) -> VerifyReport:
    """``expected_key_arn`` pins the backup key, ``pin`` the manifest's version (pipeline.sealing.manifest)."""
    manifest, _ = read_pinned(clients, loc, expected_key_arn, pin)
    objects: list[dict[str, Any]] = manifest["objects"]
    _check_listing(clients, loc, [o["name"] for o in objects])
    tally = _Tally()
    for done, obj in enumerate(objects, start=1):
        name = obj["name"]
        key = loc.root + name
        blob = get_blob(clients, loc, key)
        records = open_blob(
            clients, loc, key, blob, expected_sha256=obj["sha256"], kms_key_arn=manifest["kmsKeyArn"]
        )
        if len(blob) != obj["size"]:
            raise IntegrityError(f"size mismatch in {name}")
        if len(records) != obj["records"]:
            raise IntegrityError(f"{name} holds {len(records)} records, the manifest says {obj['records']}")
        tally.add(obj["kind"], name, records)
        if on_object is not None:
            on_object(name, done, len(objects))
    tally.compare(manifest["counts"])
    return VerifyReport(
        uri=loc.uri,
        users=tally.users,
        groups=tally.groups,
        memberships=tally.memberships,
        objects=len(objects),
    )


def _check_listing(clients: Clients, loc: BackupLocation, names: list[str]) -> None:
    """Every named object exists and nothing else does: a planted object is as wrong as a missing one."""
    present: set[str] = set()
    with s3_errors(loc):
        for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.root):
            present.update(loc.relative(item["Key"]) for item in page.get("Contents", []))
    expected = set(names)
    missing = sorted(expected - present)
    if missing:
        raise IntegrityError(f"missing part {missing[0]}" + _more(len(missing)))
    extra = sorted(present - expected - {MANIFEST_NAME})
    if extra:
        raise IntegrityError(f"object not named in the manifest: {extra[0]}" + _more(len(extra)))


def _more(count: int) -> str:
    return f" (and {count - 1} more)" if count > 1 else ""


class _Tally:
    """Running totals; usernames are kept only as short digests, to bound memory on pools of millions."""

    def __init__(self) -> None:
        self.users = 0
        self.memberships = 0
        self.groups = 0
        self._usernames: set[bytes] = set()

    def add(self, kind: str, name: str, records: list[dict[str, Any]]) -> None:
        if kind == "config":
            groups = records[0].get("groups") if len(records) == 1 else None
            if not isinstance(groups, list):
                raise IntegrityError(f"{name} does not hold one configuration record with a groups list")
            self.groups = len(groups)
        elif kind == "users":
            for record in records:
                username = record.get("username")
                if not isinstance(username, str) or not username:
                    raise IntegrityError(f"a user record in {name} has no username")
                digest = hashlib.blake2b(username.encode("utf-8"), digest_size=16).digest()
                if digest in self._usernames:
                    raise IntegrityError(f"duplicate user across parts (found again in {name})")
                self._usernames.add(digest)
            self.users += len(records)
        elif kind == "memberships":
            self.memberships += len(records)

    def compare(self, counts: Mapping[str, Any]) -> None:
        found = {"users": self.users, "groups": self.groups, "memberships": self.memberships}
        for field, value in found.items():
            if counts[field] != value:
                raise IntegrityError(f"the backup holds {value} {field}, the manifest says {counts[field]}")
