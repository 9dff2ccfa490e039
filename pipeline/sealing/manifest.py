"""The backup manifest: what a backup holds, validated by a JSON Schema and authenticated with KMS.

A manifest names every object of a backup with its kind, record count, size and SHA-256, plus the totals.
It is authenticated by a KMS HMAC key that only WriteManifest may generate with (pipeline.sealing.manifest_mac),
and verified with the deployment's own MAC key, never the one it names. A manifest is written once and never
replaced; a restore pins the exact version it approved (its S3 version id and SHA-256, ``ManifestPin``).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import botocore.exceptions
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from pipeline import __version__
from pipeline.core.aws import Clients, error_code
from pipeline.core.errors import (
    AccessDenied,
    BackupExists,
    BackupNotFound,
    IntegrityError,
    InvalidRequest,
    KeyAccessDenied,
    ManifestInvalid,
    TamperedError,
)
from pipeline.core.layout import MANIFEST_NAME, BackupLocation, check_backup_id, check_pool_id
from pipeline.sealing import manifest_mac
from pipeline.sealing.store import StoredObject, put_if_absent, s3_errors

FORMAT_VERSION = 2  # 1: authenticated with a KMS data key, which any GenerateDataKey caller could mint
CONFIG_NAME = "config.bin"
UNSHARDED_DIR = "all"  # layout.user_part_key's directory for the single unsharded shard ""
_USERS_NAME = re.compile(r"users/([0-9a-f]{1,2}|all)/part-\d{5}\.bin", re.ASCII)
_MEMBERSHIPS_NAME = re.compile(r"memberships/\d{3}/part-\d{5}\.bin", re.ASCII)
_KIND_ORDER = {"config": 0, "users": 1, "memberships": 2}
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


def build_manifest(
    loc: BackupLocation,
    *,
    region: str,
    kms_key_arn: str,
    started_at: str,
    shards: Sequence[str],
    objects: Sequence[StoredObject],
    kinds: Mapping[str, str] | None = None,
    groups: int,
) -> dict[str, Any]:
    """The unauthenticated manifest; ``kinds`` overrides the kind derived from an object's name."""
    kinds = kinds or {}
    entries: list[dict[str, Any]] = []
    for obj in objects:
        kind = kinds.get(obj.name) or kind_of(obj.name)
        entry: dict[str, Any] = {
            "name": obj.name,
            "kind": kind,
            "records": obj.records,
            "sha256": obj.sha256,
            "size": obj.size,
        }
        if kind == "users":
            entry["shard"] = shard_of(obj.name)
        entries.append(entry)
    entries.sort(key=lambda e: (_KIND_ORDER.get(e["kind"], 9), e["name"]))
    return {
        "formatVersion": FORMAT_VERSION,
        "tool": f"cognito-backuper/{__version__}",
        "poolId": loc.pool_id,
        "backupId": loc.backup_id,
        "region": region,
        "startedAt": started_at,
        "completedAt": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "kmsKeyArn": kms_key_arn,
        "shards": list(shards),
        "counts": {
            "users": _records_of(entries, "users"),
            "groups": groups,
            "memberships": _records_of(entries, "memberships"),
            "parts": len(entries),
        },
        "objects": entries,
    }


def kind_of(name: str) -> str:
    if name == CONFIG_NAME:
        return "config"
    if _USERS_NAME.fullmatch(name):
        return "users"
    if _MEMBERSHIPS_NAME.fullmatch(name):
        return "memberships"
    raise InvalidRequest(f"not a backup object name: {name!r}")


def shard_of(name: str) -> str:
    """The shard a user part belongs to: its directory, with ``all`` standing for the unsharded ``""``."""
    directory = name.split("/")[1]
    return "" if directory == UNSHARDED_DIR else directory


def write_manifest(clients: Clients, loc: BackupLocation, manifest: dict[str, Any]) -> None:
    """Authenticate and store the manifest; a completed backup is never overwritten (BackupExists)."""
    body = {k: v for k, v in manifest.items() if k != "authentication"}
    validate(body, authenticated=False)
    if (body["poolId"], body["backupId"]) != (loc.pool_id, loc.backup_id):
        raise InvalidRequest(f"manifest names another pool or backup than {loc.uri}")
    check_consistency(body)
    key_arn: str = body["kmsKeyArn"]
    document = {**body, "authentication": manifest_mac.generate(clients, body)}
    validate(document)
    payload = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"

    def put() -> None:
        # IfNoneMatch makes the write itself conditional (no check-then-write race); moto honours it too.
        clients.s3.put_object(
            Bucket=loc.bucket,
            Key=loc.manifest_key,
            Body=payload,
            IfNoneMatch="*",
            ContentType="application/json",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=key_arn,
            ChecksumSHA256=base64.b64encode(hashlib.sha256(payload).digest()).decode("ascii"),
        )

    with s3_errors(loc):
        if not put_if_absent(put):
            raise BackupExists(f"a manifest already exists at {loc.uri}: backups are never overwritten")


def exists(clients: Clients, loc: BackupLocation) -> bool:
    """Whether the backup at ``loc`` is complete (its manifest was written)."""
    with s3_errors(loc):
        try:
            clients.s3.head_object(Bucket=loc.bucket, Key=loc.manifest_key)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in _MISSING_CODES:
                return False
            raise
    return True


@dataclass(frozen=True)
class ManifestPin:
    """The exact manifest a restore was approved for: its S3 version and the SHA-256 of its bytes."""

    sha256: str
    version_id: str | None  # None only where the bucket is not versioned (S3 answers no version id)


def read_manifest(
    clients: Clients, loc: BackupLocation, expected_key_arn: str | None = None
) -> dict[str, Any]:
    """The manifest at ``loc``, validated and authenticated. ``expected_key_arn`` pins the key if known."""
    return read_pinned(clients, loc, expected_key_arn)[0]


def read_pinned(
    clients: Clients,
    loc: BackupLocation,
    expected_key_arn: str | None = None,
    pin: ManifestPin | None = None,
) -> tuple[dict[str, Any], ManifestPin]:
    """The manifest and its pin; with ``pin``, exactly that version, refused if its bytes are not the pinned ones."""
    with s3_errors(loc):
        try:
            if pin is not None and pin.version_id:
                response = clients.s3.get_object(
                    Bucket=loc.bucket, Key=loc.manifest_key, VersionId=pin.version_id
                )
            else:
                response = clients.s3.get_object(Bucket=loc.bucket, Key=loc.manifest_key)
            payload = response["Body"].read()
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in _MISSING_CODES | {"NoSuchVersion"}:
                if pin is not None:
                    raise TamperedError(
                        f"the approved manifest version of {loc.uri} is gone: the backup changed after approval"
                    ) from exc
                raise BackupNotFound(f"no backup at {loc.uri} (no {MANIFEST_NAME})") from exc
            raise
    found = ManifestPin(sha256=hashlib.sha256(payload).hexdigest(), version_id=response.get("VersionId"))
    if pin is not None and found != pin:
        raise TamperedError(
            f"manifest of {loc.uri} is not the one approved (SHA-256 or S3 version differs): "
            "the backup changed after approval"
        )
    try:
        document = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestInvalid(f"manifest at {loc.uri} is not JSON") from exc
    if not isinstance(document, dict):
        raise ManifestInvalid(f"manifest at {loc.uri} is not a JSON object")
    validate(document, where=loc.uri)
    if (document["poolId"], document["backupId"]) != (loc.pool_id, loc.backup_id):
        raise TamperedError(f"manifest at {loc.uri} names another pool or backup")
    if expected_key_arn is not None and document["kmsKeyArn"] != expected_key_arn:
        raise TamperedError(f"manifest at {loc.uri} names another KMS key than this deployment's backup key")
    body = {k: v for k, v in document.items() if k != "authentication"}
    manifest_mac.verify(clients, body, document["authentication"], loc.uri)
    check_consistency(document, where=loc.uri)
    return document, found


def list_backups(
    clients: Clients, bucket: str, prefix: str, pool_id: str | None = None
) -> list[dict[str, Any]]:
    """Every backup under ``prefix`` (or one pool's); an unreadable one is listed with its ``error``."""
    search = "/".join(p for p in (prefix.strip("/"), check_pool_id(pool_id) if pool_id else "") if p)
    search = search + "/" if search else ""
    locations: list[BackupLocation] = []
    probe = BackupLocation(bucket, prefix, pool_id or "", "")
    with s3_errors(probe):
        for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=search):
            for item in page.get("Contents", []):
                found = _location_of(bucket, item["Key"])
                # Only backups directly under the prefix: restores/, audit/, approvals/ hold none.
                if found is not None and found.prefix == prefix.strip("/"):
                    locations.append(found)
    entries = [_summary(clients, found) for found in locations]
    return sorted(entries, key=lambda e: (e["poolId"], e["backupId"], e["uri"]))


def list_incomplete(
    clients: Clients, bucket: str, prefix: str, pool_id: str | None = None
) -> list[dict[str, Any]]:
    """Backup folders holding parts but no manifest: what an interrupted or failed backup leaves behind.

    ``list`` never shows them (without a manifest nothing vouches for them); each entry names the folder, its
    object count and size, so an operator can see what a re-run will not reuse."""
    root = "/".join(p for p in (prefix.strip("/"),) if p)
    search = "/".join(p for p in (root, check_pool_id(pool_id) if pool_id else "") if p)
    search = search + "/" if search else ""
    folders: dict[tuple[str, str], dict[str, Any]] = {}
    probe = BackupLocation(bucket, prefix, pool_id or "", "")
    with s3_errors(probe):
        for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=search):
            for item in page.get("Contents", []):
                rest = item["Key"][len(root) + 1 if root else 0 :].split("/")
                if len(rest) < 3:
                    continue
                try:
                    found = (check_pool_id(rest[0]), check_backup_id(rest[1]))
                except InvalidRequest:
                    continue  # approvals/, audit/, restores/ and anything else that is not a backup folder
                folder = folders.setdefault(found, {"objects": 0, "bytes": 0, "manifest": False})
                folder["objects"] += 1
                folder["bytes"] += int(item.get("Size", 0))
                folder["manifest"] |= rest[2:] == [MANIFEST_NAME]
    return [
        {
            "uri": BackupLocation(bucket, root, pool, backup).uri,
            "poolId": pool,
            "backupId": backup,
            "objects": folder["objects"],
            "bytes": folder["bytes"],
        }
        for (pool, backup), folder in sorted(folders.items())
        if not folder["manifest"]
    ]


def validate(document: Any, *, authenticated: bool = True, where: str = "") -> None:
    """Schema check with a one-line error naming the failing field (never its value)."""
    error = best_match(_validator(authenticated).iter_errors(document))
    if error is None:
        return
    place = f" at {where}" if where else ""
    raise ManifestInvalid(f"invalid manifest{place}: {_describe(error)}")


def check_consistency(document: Mapping[str, Any], where: str = "") -> None:
    """What the schema cannot say: unique names, shards matching names, totals matching the objects."""
    place = f" at {where}" if where else ""
    objects: list[dict[str, Any]] = document["objects"]
    names = [o["name"] for o in objects]
    if len(set(names)) != len(names):
        raise ManifestInvalid(f"invalid manifest{place}: an object is listed twice")
    if sum(1 for o in objects if o["kind"] == "config") != 1:
        raise ManifestInvalid(f"invalid manifest{place}: expected exactly one config object")
    shards = set(document["shards"])
    for obj in objects:
        if obj["kind"] == "users" and (obj["shard"] != shard_of(obj["name"]) or obj["shard"] not in shards):
            raise ManifestInvalid(f"invalid manifest{place}: {obj['name']} has an unplanned or wrong shard")
    counts = document["counts"]
    expected = {
        "users": _records_of(objects, "users"),
        "memberships": _records_of(objects, "memberships"),
        "parts": len(objects),
    }
    for field, value in expected.items():
        if counts[field] != value:
            raise ManifestInvalid(f"invalid manifest{place}: counts.{field} does not match its objects")


def _records_of(objects: Sequence[Mapping[str, Any]], kind: str) -> int:
    return sum(int(o["records"]) for o in objects if o["kind"] == kind)


def _location_of(bucket: str, key: str) -> BackupLocation | None:
    """``[prefix/]pool/backup/manifest.json`` to a location; anything else is not a backup."""
    parts = key.split("/")
    if len(parts) < 3 or parts[-1] != MANIFEST_NAME:
        return None
    try:
        pool_id, backup_id = check_pool_id(parts[-3]), check_backup_id(parts[-2])
    except InvalidRequest:
        return None
    return BackupLocation(bucket, "/".join(parts[:-3]), pool_id, backup_id)


def _summary(clients: Clients, loc: BackupLocation) -> dict[str, Any]:
    entry: dict[str, Any] = {"uri": loc.uri, "poolId": loc.pool_id, "backupId": loc.backup_id}
    try:
        document = read_manifest(clients, loc)
    except (IntegrityError, BackupNotFound, KeyAccessDenied, AccessDenied) as exc:
        # One broken backup must not hide the others; the error is already a one-line, data-free message.
        entry["error"] = str(exc)
        return entry
    counts = document["counts"]
    entry.update(
        completedAt=document["completedAt"],
        users=counts["users"],
        groups=counts["groups"],
        memberships=counts["memberships"],
        parts=counts["parts"],
    )
    return entry


@functools.cache
def _validator(authenticated: bool) -> Draft202012Validator:
    text = (
        resources.files("pipeline.sealing")
        .joinpath("schemas/manifest.schema.json")
        .read_text(encoding="utf-8")
    )
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    if not authenticated:  # the same schema, for the body before its MAC is added
        schema["required"] = [f for f in schema["required"] if f != "authentication"]
    return Draft202012Validator(schema)


def _describe(error: ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        required = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [str(f) for f in required if f not in error.instance]
        return f"missing field {'.'.join(filter(None, [path, missing[0] if missing else '?']))}"
    if error.validator == "additionalProperties":
        return f"unexpected field in {path or 'the top level'}"
    return f"field {path or '(document)'} fails its {error.validator!s} rule"
