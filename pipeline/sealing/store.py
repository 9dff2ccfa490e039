"""S3 I/O of sealed backup objects: records in, encrypted parts out, and back.

Every PutObject carries SSE-KMS headers (the bucket policy denies anything else) and a SHA-256 checksum
that S3 verifies on receipt. The same SHA-256, of the sealed blob, is kept in the object's metadata and in
the manifest.
"""

from __future__ import annotations

import base64
import hashlib
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from pipeline.core import metrics
from pipeline.core.aws import Clients, error_code, sdk_errors
from pipeline.core.errors import AccessDenied, BucketNotFound, IntegrityError, KeyAccessDenied
from pipeline.core.layout import BackupLocation
from pipeline.sealing.envelope import encryption_context, open_sealed, seal
from pipeline.sealing.records import decode_records, encode_records

CONTENT_TYPE = "application/octet-stream"
MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# A conditional write (IfNoneMatch="*") answers 412 PreconditionFailed when the key exists, and 409
# ConditionalRequestConflict when another write or delete of the key was in flight: S3 asks for a retry then,
# and only the retry can tell whether the key exists.
KEY_EXISTS_CODE = "PreconditionFailed"
CONFLICT_CODE = "ConditionalRequestConflict"
CONFLICT_ATTEMPTS = 5
CONFLICT_BASE_DELAY_S = 0.2


@dataclass(frozen=True)
class StoredObject:
    key: str
    name: str  # relative to the backup root, as the manifest names it
    sha256: str  # hex digest of the sealed blob as stored
    size: int
    records: int


def context_for(loc: BackupLocation, key: str) -> dict[str, str]:
    """The encryption context an object must carry, derived from where it is (or is read from)."""
    return encryption_context(loc.pool_id, loc.backup_id, loc.relative(key))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put_sealed(
    clients: Clients,
    loc: BackupLocation,
    kms_key_arn: str,
    key: str,
    records: Sequence[Mapping[str, Any]],
) -> StoredObject:
    """Seal and write one part. Rewriting the same key is allowed: a retried task produces the same part."""
    name = loc.relative(key)
    blob = seal(clients.kms, kms_key_arn, encode_records(records), context_for(loc, key))
    digest = hashlib.sha256(blob)
    with s3_errors(loc):
        clients.s3.put_object(
            Bucket=loc.bucket,
            Key=key,
            Body=blob,
            ContentType=CONTENT_TYPE,
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=kms_key_arn,
            ChecksumSHA256=base64.b64encode(digest.digest()).decode("ascii"),
            Metadata={"records": str(len(records)), "sha256": digest.hexdigest()},
        )
    metrics.count_written(len(blob))
    return StoredObject(key=key, name=name, sha256=digest.hexdigest(), size=len(blob), records=len(records))


def put_if_absent(
    put: Callable[[], object],
    *,
    attempts: int = CONFLICT_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> bool:
    """Run ``put`` (a PutObject with ``IfNoneMatch="*"``); False when the key already exists.

    A 409 conflict is retried with full-jitter backoff; after ``attempts`` it is raised as it came.
    """
    for attempt in range(attempts):
        try:
            put()
        except botocore.exceptions.ClientError as exc:
            code = error_code(exc)
            if code == KEY_EXISTS_CODE:
                return False
            if code != CONFLICT_CODE or attempt + 1 >= attempts:
                raise
            sleep(CONFLICT_BASE_DELAY_S * (2**attempt) * jitter())
            continue
        return True
    raise AssertionError("unreachable: the last attempt returns or raises")


def get_blob(clients: Clients, loc: BackupLocation, key: str) -> bytes:
    """The stored bytes of one object. A missing object is an integrity failure of the backup."""
    name = loc.relative(key)
    with s3_errors(loc, missing=f"missing part {name}"):
        response = clients.s3.get_object(Bucket=loc.bucket, Key=key)
        return response["Body"].read()


def get_sealed(
    clients: Clients,
    loc: BackupLocation,
    key: str,
    expected_sha256: str | None = None,
    kms_key_arn: str | None = None,
) -> list[dict[str, Any]]:
    blob = get_blob(clients, loc, key)
    return open_blob(clients, loc, key, blob, expected_sha256, kms_key_arn)


def open_blob(
    clients: Clients,
    loc: BackupLocation,
    key: str,
    blob: bytes,
    expected_sha256: str | None = None,
    kms_key_arn: str | None = None,
) -> list[dict[str, Any]]:
    """Check, decrypt and decode bytes already read from ``key``; the context comes from ``key``."""
    name = loc.relative(key)
    if expected_sha256 is not None and sha256_hex(blob) != expected_sha256.lower():
        raise IntegrityError(f"hash mismatch in {name}")
    plaintext = open_sealed(clients.kms, blob, context_for(loc, key), key_id=kms_key_arn)
    try:
        return decode_records(plaintext)
    except IntegrityError as exc:
        raise IntegrityError(f"{name}: {exc}") from exc


def head_stored(clients: Clients, loc: BackupLocation, key: str) -> StoredObject:
    """What put_sealed recorded about an object, from its metadata (no download)."""
    name = loc.relative(key)
    with s3_errors(loc, missing=f"missing part {name}"):
        response = clients.s3.head_object(Bucket=loc.bucket, Key=key)
    metadata = response.get("Metadata", {})
    try:
        records = int(metadata["records"])
        sha256 = metadata["sha256"].lower()
    except (KeyError, ValueError) as exc:
        raise IntegrityError(f"part {name} lacks the metadata this tool writes") from exc
    if records < 0 or len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise IntegrityError(f"part {name} has malformed metadata")
    return StoredObject(key=key, name=name, sha256=sha256, size=response["ContentLength"], records=records)


@contextmanager
def bucket_errors(bucket: str, missing: str | None = None, where: str | None = None) -> Iterator[None]:
    """S3 failures in the pipeline's terms; ``missing`` is the message for an absent object."""
    with sdk_errors():
        try:
            yield
        except botocore.exceptions.ClientError as exc:
            code = error_code(exc)
            if code == "NoSuchBucket":
                raise BucketNotFound(f"bucket {bucket} does not exist") from exc
            if missing is not None and code in MISSING_KEY_CODES:
                raise IntegrityError(missing) from exc
            if code in {"403", "Forbidden"}:  # HEAD responses (and moto) carry no error body, only the status
                raise AccessDenied(f"access denied to {exc.operation_name} on bucket {bucket}") from exc
            if code.startswith("KMS.") or code == "KMSKeyNotAccessibleFault":
                raise KeyAccessDenied(f"S3 could not use the KMS key for {where or bucket} ({code})") from exc
            raise


@contextmanager
def s3_errors(loc: BackupLocation, missing: str | None = None) -> Iterator[None]:
    """:func:`bucket_errors` for the objects of one backup."""
    with bucket_errors(loc.bucket, missing, where=loc.uri):
        yield
