"""Append-only, encrypted audit trail of backups, restore requests, approvals and outcomes.

Each event is one object ``<prefix>/<yyyy>/<mm>/<dd>/<UTC time with µs>-<event>-<subject id>-<random>.bin`` in the
backup bucket: keys sort by time, and a subject's records are found from the key alone, without decrypting.
The body is a JSON document sealed with the backup KMS key (pipeline.sealing.envelope) under the encryption context
``{"app": "cognito-backuper", "audit": <key>}``: a context no backup part carries, bound to the key, so a record
can neither be moved nor passed off as another object. It is written with ``IfNoneMatch="*"``, so this code never
replaces a record, with SSE-KMS headers and a SHA-256 checksum that S3 verifies.

Append-only against this tool is not tamper-evident against an administrator: on AWS the CDK app turns on
versioning and S3 Object Lock (compliance retention) for the audit prefix, so no principal can rewrite or delete a
record within retention, and CloudTrail records who tried.

Details hold ids, counts, URIs and reasons, never user data; keeping it so is the caller's job, but values that
are not plain JSON (str/int/float/bool/None, lists and string-keyed dicts of those) are refused here.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from pipeline.core.aws import Clients, error_code
from pipeline.core.errors import (
    AuditRecordExists,
    IntegrityError,
    InvalidRequest,
    TamperedError,
)
from pipeline.sealing.envelope import APP, canonical_json, open_sealed, seal
from pipeline.sealing.store import MISSING_KEY_CODES, bucket_errors, put_if_absent

FORMAT_VERSION = 1
EVENTS = frozenset(
    {
        "backup.completed",
        "backup.failed",
        "backup.purged",
        "restore.requested",
        "restore.approved",
        "restore.rejected",
        "restore.withdrawn",
        "restore.expired",
        "restore.completed",
        "restore.failed",
        "approval.refused",
        "drill.passed",
        "drill.failed",
    }
)
MAX_DETAILS_BYTES = 16 * 1024  # ids and counts fit easily; a dump of records does not
CONTENT_TYPE = "application/octet-stream"
_TIME_FORMAT = "%Y%m%dT%H%M%S.%fZ"
_SUBJECT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,200}", re.ASCII)
_RECORD_NAME = re.compile(
    r"(?P<at>\d{8}T\d{6}\.\d{6}Z)-(?P<event>[a-z]+\.[a-z]+)-(?P<subject>[A-Za-z0-9_.:-]+)-(?P<rand>[0-9a-f]{8})\.bin",
    re.ASCII,
)


@dataclass(frozen=True)
class AuditSink:
    """Where audit records (and approval requests, see pipeline.restore.approval) are kept, and the key sealing them."""

    clients: Clients
    bucket: str
    kms_key_arn: str
    prefix: str = "audit"
    approvals_prefix: str = "approvals"  # pipeline.restore.approval keeps requests and decisions here

    @property
    def root(self) -> str:
        return self.prefix.strip("/") + "/"

    @property
    def approvals_root(self) -> str:
        return self.approvals_prefix.strip("/") + "/"


def audit_context(key: str) -> dict[str, str]:
    return {"app": APP, "audit": key}


def record(
    sink: AuditSink,
    event: str,
    subject_id: str,
    *,
    actor: str,
    details: Mapping[str, Any],
    now: dt.datetime | None = None,
) -> str:
    """Append one sealed record and return its key. ``actor`` is an authenticated principal ARN."""
    if event not in EVENTS:
        raise InvalidRequest(f"unknown audit event {event!r}")
    if not _SUBJECT_ID.fullmatch(subject_id):
        raise InvalidRequest("an audit subject id must be 1-200 characters of letters, digits and _.:-")
    if not actor:
        raise InvalidRequest("an audit record needs an actor")
    clean = check_details(details)
    at = _utc(now or dt.datetime.now(dt.UTC))
    key = f"{sink.root}{at:%Y/%m/%d}/{at.strftime(_TIME_FORMAT)}-{event}-{subject_id}-{_random_suffix()}.bin"
    document = {
        "version": FORMAT_VERSION,
        "event": event,
        "subjectId": subject_id,
        "actor": actor,
        "at": iso(at),
        "details": clean,
    }
    put_document(sink, key, document, audit_context(key), create_only=True)
    return key


def read_records(
    sink: AuditSink, *, subject_id: str | None = None, since: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Decrypted records, oldest first, each with its ``key``. A naive ``since`` is taken as UTC."""
    since_utc = _utc(since) if since is not None else None
    start_after = f"{sink.root}{since_utc:%Y/%m/%d}/" if since_utc is not None else None
    records: list[dict[str, Any]] = []
    for key in list_keys(sink, sink.root, start_after=start_after):
        match = _RECORD_NAME.fullmatch(key[len(sink.root) :].rpartition("/")[2])
        if match is None:
            continue  # not written by this module (e.g. an S3 inventory file); never decrypted
        at = dt.datetime.strptime(match["at"], _TIME_FORMAT).replace(tzinfo=dt.UTC)
        if subject_id is not None and match["subject"] != subject_id:
            continue
        if since_utc is not None and at < since_utc:
            continue
        document = get_document(sink, key, audit_context(key))
        if (document.get("event"), document.get("subjectId"), document.get("at")) != (
            match["event"],
            match["subject"],
            iso(at),
        ):
            raise TamperedError(f"audit record {key} does not match its key")
        records.append({**document, "key": key})
    records.sort(key=lambda r: (r["at"], r["key"]))
    return records


def check_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-plain copy of ``details``; anything else (objects, bytes, datetimes) is refused by path, not value."""
    if not isinstance(details, Mapping):
        raise InvalidRequest("audit details must be a mapping")
    clean = _plain_mapping(details, "details")
    if len(canonical_json(clean)) > MAX_DETAILS_BYTES:
        raise InvalidRequest(
            f"audit details exceed {MAX_DETAILS_BYTES} bytes: record ids and counts, not data"
        )
    return clean


def _plain(value: Any, path: str) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidRequest(f"audit {path}: not a finite number")
        return value
    if isinstance(value, Mapping):
        return _plain_mapping(value, path)
    if isinstance(value, list | tuple):
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise InvalidRequest(f"audit {path}: unsupported type {type(value).__name__}")


def _plain_mapping(value: Mapping[Any, Any], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise InvalidRequest(f"audit {path}: keys must be strings")
        out[k] = _plain(v, f"{path}.{k}")
    return out


# Sealed JSON documents in the audit bucket; pipeline.restore.approval stores its requests and decisions the same way.


def put_document(
    sink: AuditSink, key: str, document: Mapping[str, Any], context: Mapping[str, str], *, create_only: bool
) -> None:
    """Seal and write ``document``; with ``create_only`` an existing key raises AuditRecordExists."""
    blob = seal(sink.clients.kms, sink.kms_key_arn, canonical_json(dict(document)), context)
    extra: dict[str, Any] = {"IfNoneMatch": "*"} if create_only else {}

    def put() -> None:
        sink.clients.s3.put_object(
            Bucket=sink.bucket,
            Key=key,
            Body=blob,
            ContentType=CONTENT_TYPE,
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=sink.kms_key_arn,
            ChecksumSHA256=base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii"),
            **extra,
        )

    with bucket_errors(sink.bucket):
        if not create_only:
            put()
        elif not put_if_absent(put):
            raise AuditRecordExists(f"{key} already exists and is never replaced")


def get_document(sink: AuditSink, key: str, context: Mapping[str, str]) -> dict[str, Any]:
    """Read, decrypt (the context is checked exactly) and parse one sealed document. Missing -> IntegrityError."""
    with bucket_errors(sink.bucket, missing=f"missing object {key}"):
        blob = sink.clients.s3.get_object(Bucket=sink.bucket, Key=key)["Body"].read()
    plaintext = open_sealed(sink.clients.kms, blob, context, key_id=sink.kms_key_arn)
    try:
        document = json.loads(plaintext)
    except ValueError as exc:
        raise IntegrityError(f"{key} is not a JSON document") from exc
    if not isinstance(document, dict):
        raise IntegrityError(f"{key} is not a JSON object")
    return document


def exists(sink: AuditSink, key: str) -> bool:
    with bucket_errors(sink.bucket):
        try:
            sink.clients.s3.head_object(Bucket=sink.bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in MISSING_KEY_CODES:
                return False
            raise
    return True


def list_keys(sink: AuditSink, prefix: str, *, start_after: str | None = None) -> Iterator[str]:
    paginator = sink.clients.s3.get_paginator("list_objects_v2")
    kwargs: dict[str, Any] = {"Bucket": sink.bucket, "Prefix": prefix}
    if start_after is not None:
        kwargs["StartAfter"] = start_after
    with bucket_errors(sink.bucket):
        for page in paginator.paginate(**kwargs):
            for item in page.get("Contents", []):
                yield item["Key"]


def iso(value: dt.datetime) -> str:
    """UTC ISO-8601 with microseconds, so the strings sort as the times do."""
    return _utc(value).isoformat(timespec="microseconds")


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _random_suffix() -> str:
    # Two records of the same event and subject in the same microsecond still get distinct keys.
    return secrets.token_hex(4)
