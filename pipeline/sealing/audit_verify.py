"""Check the audit chain (pipeline.sealing.audit) and name every break in it, one finding per problem.

Reads every S3 version under ``<audit prefix>/chain/`` (ListObjectVersions), so an overwrite or a deletion is
seen even after the current object was replaced or removed. Findings:

- ``gap``: sequence numbers missing (a record deleted, or never written);
- ``deleted``: a record whose current version is a delete marker;
- ``overwritten``: a record with more than one version (its first version is the one the chain names);
- ``forged``: a record that does not authenticate under its own key's context, or names another sequence number,
  or an object under the chain prefix that is not a record;
- ``reordered``: a record whose ``prev`` is not the digest of its predecessor as stored (replaced, swapped or
  re-chained records);
- ``backdated``: a record dated before its predecessor, or more than :data:`MAX_CLOCK_DRIFT_S` away from the time
  S3 stored it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions

from pipeline.core.errors import PipelineError
from pipeline.sealing import audit
from pipeline.sealing.audit import AuditSink
from pipeline.sealing.envelope import open_sealed
from pipeline.sealing.store import bucket_errors

MAX_CLOCK_DRIFT_S = 900  # a record's own time vs S3's LastModified: a Lambda's clock is not that far off
_NAME = re.compile(r"(?P<seq>\d{12})\.bin", re.ASCII)


@dataclass(frozen=True)
class Finding:
    kind: str
    key: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "key": self.key, "message": self.message}


@dataclass
class ChainReport:
    records: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.findings


@dataclass
class _Versions:
    stored: list[Any] = field(default_factory=list)  # ObjectVersion entries, oldest first
    deleted: bool = False


def verify_chain(sink: AuditSink) -> ChainReport:
    root = audit.chain_root(sink)
    report = ChainReport()
    versions = _list_versions(sink, root, report)
    seqs = sorted(versions)
    expected = 0
    prev_digest: str | None = audit.GENESIS
    prev_at: dt.datetime | None = None
    for seq in seqs:
        key = audit.record_key(sink, seq)
        entry = versions[seq]
        if seq > expected:
            missing = f"{expected}" if seq - expected == 1 else f"{expected}-{seq - 1}"
            report.findings.append(Finding("gap", key, f"records {missing} are missing before {key}"))
            prev_digest, prev_at = None, None
        expected = seq + 1
        if entry.deleted:
            report.findings.append(
                Finding("deleted", key, f"{key} was deleted (its current version is a delete marker)")
            )
        if len(entry.stored) > 1:
            report.findings.append(
                Finding(
                    "overwritten", key, f"{key} has {len(entry.stored)} versions: a record is written once"
                )
            )
        if not entry.stored:
            prev_digest, prev_at = None, None
            continue
        report.records += 1
        first = entry.stored[0]
        blob = _read(sink, key, str(first["VersionId"]))
        document = _open(sink, key, blob)
        if document is None or document.get("seq") != seq:
            report.findings.append(
                Finding("forged", key, f"{key} does not authenticate as audit record {seq}")
            )
            prev_digest, prev_at = None, None
            continue
        if prev_digest is not None and document.get("prev") != prev_digest:
            report.findings.append(
                Finding(
                    "reordered", key, f"{key} does not name its predecessor's digest: the chain is broken"
                )
            )
        at = _time(document.get("at"))
        stored_at = first["LastModified"]
        if at is None or (prev_at is not None and at < prev_at):
            report.findings.append(Finding("backdated", key, f"{key} is dated before its predecessor"))
        elif abs((at - stored_at).total_seconds()) > MAX_CLOCK_DRIFT_S:
            report.findings.append(
                Finding(
                    "backdated",
                    key,
                    f"{key} claims {audit.iso(at)} but S3 stored it at {audit.iso(stored_at)}",
                )
            )
        prev_digest, prev_at = audit.digest(blob), at
    return report


def _list_versions(sink: AuditSink, root: str, report: ChainReport) -> dict[int, _Versions]:
    found: dict[int, _Versions] = {}
    paginator = sink.clients.s3.get_paginator("list_object_versions")
    with bucket_errors(sink.bucket):
        for page in paginator.paginate(Bucket=sink.bucket, Prefix=root):
            for version in page.get("Versions", []):
                match = _NAME.fullmatch(version["Key"][len(root) :])
                if match is None:
                    report.findings.append(
                        Finding("forged", version["Key"], f"{version['Key']} is not an audit record")
                    )
                    continue
                found.setdefault(int(match["seq"]), _Versions()).stored.append(version)
            for marker in page.get("DeleteMarkers", []):
                match = _NAME.fullmatch(marker["Key"][len(root) :])
                if match is not None and marker.get("IsLatest"):
                    found.setdefault(int(match["seq"]), _Versions()).deleted = True
    for entry in found.values():
        entry.stored.sort(key=lambda v: v["LastModified"])
    return found


def _read(sink: AuditSink, key: str, version_id: str) -> bytes:
    with bucket_errors(sink.bucket, missing=f"missing object {key}"):
        # Always the listed version ("null" in a bucket that was never versioned): never whatever is current.
        body: bytes = sink.clients.s3.get_object(Bucket=sink.bucket, Key=key, VersionId=version_id)[
            "Body"
        ].read()
    return body


def _open(sink: AuditSink, key: str, blob: bytes) -> dict[str, Any] | None:
    try:
        plaintext = open_sealed(
            sink.clients.kms, blob, audit.audit_context(key), key_id=sink.kms_key_arn or None
        )
        document = json.loads(plaintext)
    except (PipelineError, ValueError, botocore.exceptions.ClientError):
        return None
    return document if isinstance(document, dict) else None


def _time(value: Any) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
