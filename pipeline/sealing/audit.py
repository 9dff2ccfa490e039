"""Append-only, encrypted, hash-chained audit trail of restore requests, approvals and outcomes.

Record ``n`` is the object ``<prefix>/chain/<n, 12 digits>.bin`` in the backup bucket. Its body is a JSON document
sealed with the backup KMS key (pipeline.sealing.envelope) under the encryption context
``{"app": "cognito-backuper", "audit": <key>}``, so a record can neither be moved nor passed off as another object,
and it names ``prev``: the SHA-256 of record ``n-1`` as stored (record 0 names :data:`GENESIS`). Records are written
with ``IfNoneMatch="*"`` (the bucket policy refuses any other PUT under the audit prefix), so a sequence number is
taken exactly once even by concurrent writers; SSE-KMS headers and a SHA-256 checksum S3 verifies ride along.

Tamper-evident, not tamper-proof: ``cognito-backuper audit --verify`` (pipeline.sealing.audit_verify) reads every
version of every record and reports a gap (a deleted record), a reorder or replaced record (a broken chain), an
overwrite (more than one S3 version), a forged record (fails authentication or names another key) and a back-dated
one. On AWS, Object Lock (governance) retains every version for the audit retention, and only the pipeline's own
task roles may write here (infra/access.py, infra/permissions.py).

Details hold ids, counts, URIs and reasons, never user data; keeping it so is the caller's job, but values that
are not plain JSON (str/int/float/bool/None, lists and string-keyed dicts of those) are refused here.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
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
_SUBJECT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,200}", re.ASCII)
CHAIN_DIR = "chain"
SEQ_DIGITS = 12  # zero-padded, so keys sort as the sequence does
GENESIS = "0" * 64  # the predecessor digest of record 0
APPEND_ATTEMPTS = 50
APPEND_BASE_DELAY_S = 0.05
# Set by the CDK app on the tasks that write records (infra/functions.py): each record is locked (Object Lock,
# governance) for this many days, the audit trail's own retention, longer than the bucket's default.
LOCK_DAYS_ENV = "AUDIT_LOCK_DAYS"
_CHAIN_NAME = re.compile(r"\d{12}\.bin", re.ASCII)


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


def chain_root(sink: AuditSink) -> str:
    return f"{sink.root}{CHAIN_DIR}/"


def record_key(sink: AuditSink, seq: int) -> str:
    return f"{chain_root(sink)}{seq:0{SEQ_DIGITS}d}.bin"


def digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def record(
    sink: AuditSink,
    event: str,
    subject_id: str,
    *,
    actor: str,
    details: Mapping[str, Any],
    now: dt.datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Append one sealed record to the chain and return its key. ``actor`` is an authenticated principal ARN.

    The record takes the next sequence number after the chain's head and names the head's digest. Two writers
    that read the same head race for the same key: S3's If-None-Match lets exactly one win; the other gets 412,
    reads the new head and tries again (at most :data:`APPEND_ATTEMPTS` times).
    """
    if event not in EVENTS:
        raise InvalidRequest(f"unknown audit event {event!r}")
    if not _SUBJECT_ID.fullmatch(subject_id):
        raise InvalidRequest("an audit subject id must be 1-200 characters of letters, digits and _.:-")
    if not actor:
        raise InvalidRequest("an audit record needs an actor")
    clean = check_details(details)
    for attempt in range(APPEND_ATTEMPTS):
        seq, prev = _head(sink)
        key = record_key(sink, seq)
        at = _utc(now or dt.datetime.now(dt.UTC))
        document = {
            "version": FORMAT_VERSION,
            "seq": seq,
            "prev": prev,
            "event": event,
            "subjectId": subject_id,
            "actor": actor,
            "at": iso(at),
            "details": clean,
        }
        try:
            put_document(
                sink, key, document, audit_context(key), create_only=True, retain_until=_retain_until(at)
            )
        except AuditRecordExists:
            sleep(APPEND_BASE_DELAY_S * (attempt + 1) * secrets.randbelow(1000) / 1000)
            continue
        return key
    raise AuditRecordExists(f"could not append to the audit chain after {APPEND_ATTEMPTS} attempts")


def _retain_until(at: dt.datetime) -> dt.datetime | None:
    days = int(os.environ.get(LOCK_DAYS_ENV) or 0)
    return at + dt.timedelta(days=days) if days > 0 else None


def _head(sink: AuditSink) -> tuple[int, str]:
    """The next sequence number and the digest of the last record (GENESIS for an empty chain)."""
    last: str | None = None
    for key in list_keys(sink, chain_root(sink)):
        if _CHAIN_NAME.fullmatch(key[len(chain_root(sink)) :]):
            last = key if last is None or key > last else last
    if last is None:
        return 0, GENESIS
    with bucket_errors(sink.bucket, missing=f"missing object {last}"):
        blob = sink.clients.s3.get_object(Bucket=sink.bucket, Key=last)["Body"].read()
    return int(last[len(chain_root(sink)) :].split(".")[0]) + 1, digest(blob)


def read_records(
    sink: AuditSink, *, subject_id: str | None = None, since: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Decrypted records in chain order, each with its ``key``. A naive ``since`` is taken as UTC."""
    since_utc = _utc(since) if since is not None else None
    records: list[dict[str, Any]] = []
    for key in list_keys(sink, chain_root(sink)):
        if not _CHAIN_NAME.fullmatch(key[len(chain_root(sink)) :]):
            continue  # not written by this module (e.g. an S3 inventory file); never decrypted
        document = get_document(sink, key, audit_context(key))
        if record_key(sink, int(document.get("seq", -1))) != key:
            raise TamperedError(f"audit record {key} does not match its key")
        if subject_id is not None and document.get("subjectId") != subject_id:
            continue
        if since_utc is not None and dt.datetime.fromisoformat(str(document["at"])) < since_utc:
            continue
        records.append({**document, "key": key})
    records.sort(key=lambda r: int(r["seq"]))
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
    sink: AuditSink,
    key: str,
    document: Mapping[str, Any],
    context: Mapping[str, str],
    *,
    create_only: bool,
    if_match: str | None = None,
    retain_until: dt.datetime | None = None,
) -> bytes:
    """Seal and write ``document``; return the stored bytes.

    With ``create_only`` an existing key raises AuditRecordExists; with ``if_match`` (an ETag) the object is
    replaced only if it is still that version (S3 answers 412 otherwise). The bucket policy refuses any
    unconditional write under the audit and approvals prefixes.
    """
    blob = seal(sink.clients.kms, sink.kms_key_arn, canonical_json(dict(document)), context)
    extra: dict[str, Any] = {"IfNoneMatch": "*"} if create_only else {}
    if if_match is not None:
        extra["IfMatch"] = if_match
    if retain_until is not None:
        # S3 requires Content-MD5 or x-amz-sdk-checksum-algorithm on a PUT that sets a retention period.
        extra |= {
            "ObjectLockMode": "GOVERNANCE",
            "ObjectLockRetainUntilDate": retain_until,
            "ChecksumAlgorithm": "SHA256",
        }

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
    return blob


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
