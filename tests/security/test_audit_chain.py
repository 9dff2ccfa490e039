"""Attacks on the record: deleting, overwriting, reordering, forging and back-dating audit records.

Each attack is played on moto with the powers it needs (a principal that may write the bucket and use the key:
an administrator, or a compromised task), then ``cognito-backuper audit --verify`` must name it, one line each,
and exit 4. On the parent commit (24dbc05) records were independent objects with no chain and there was no
``audit`` command: every test here fails there (``audit --verify`` is an unknown command, exit 2).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import redirect_stdout
from io import StringIO
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipeline.core.aws import make_clients
from pipeline.operator.cli import main
from pipeline.sealing import audit
from pipeline.sealing.audit import AuditSink, put_document, record
from pipeline.sealing.audit_verify import verify_chain

BUCKET = "cb-security-audit"
PREFIX = "backups"
ACTOR = "arn:aws:sts::123456789012:assumed-role/RecordDecisionRole/cognito-backuper-record-decision"


@pytest.fixture
def sink() -> Iterator[AuditSink]:
    with mock_aws():
        clients = make_clients(boto3.Session())
        key_arn = clients.kms.create_key(Description="backup key")["KeyMetadata"]["Arn"]
        clients.s3.create_bucket(Bucket=BUCKET)
        clients.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        sink = AuditSink(clients=clients, bucket=BUCKET, kms_key_arn=key_arn, prefix=f"{PREFIX}/audit")
        for i, event in enumerate(
            ("restore.requested", "restore.approved", "restore.completed", "restore.requested")
        ):
            record(sink, event, f"rr-{i}", actor=ACTOR, details={"i": i})
        yield sink


def _cli_verify() -> tuple[int, dict[str, Any]]:
    out = StringIO()
    with redirect_stdout(out):
        code = main(["audit", "--verify", "--bucket", BUCKET, "--prefix", PREFIX, "--json"])
    return code, json.loads(out.getvalue())


def _kinds(sink: AuditSink) -> list[tuple[str, str]]:
    return [(f.kind, f.key.rsplit("/", 1)[-1]) for f in verify_chain(sink).findings]


def _blob(sink: AuditSink, seq: int) -> bytes:
    body: bytes = sink.clients.s3.get_object(Bucket=BUCKET, Key=audit.record_key(sink, seq))["Body"].read()
    return body


def test_an_untouched_chain_verifies(sink: AuditSink) -> None:
    code, out = _cli_verify()
    assert (code, out) == (0, {"intact": True, "records": 4, "findings": []})


def test_a_deleted_record_is_a_gap_or_a_delete_marker(sink: AuditSink) -> None:
    key = audit.record_key(sink, 1)
    sink.clients.s3.delete_object(Bucket=BUCKET, Key=key)  # versioned: a delete marker
    assert _kinds(sink) == [("deleted", "000000000001.bin")]
    # Every version removed (what governance Object Lock refuses without s3:BypassGovernanceRetention).
    for version in sink.clients.s3.list_object_versions(Bucket=BUCKET, Prefix=key).get("Versions", []):
        sink.clients.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=version["VersionId"])
    for marker in sink.clients.s3.list_object_versions(Bucket=BUCKET, Prefix=key).get("DeleteMarkers", []):
        sink.clients.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=marker["VersionId"])
    assert _kinds(sink) == [("gap", "000000000002.bin")]
    code, out = _cli_verify()
    assert code == 4 and out["intact"] is False
    assert out["findings"][0]["message"] == f"records 1 are missing before {audit.record_key(sink, 2)}"


def test_an_overwritten_record_is_reported(sink: AuditSink) -> None:
    # A writer re-seals record 1 with other details (it would need If-None-Match off: the bucket policy refuses).
    key = audit.record_key(sink, 1)
    document = {**audit.get_document(sink, key, audit.audit_context(key)), "details": {"i": "rewritten"}}
    put_document(sink, key, document, audit.audit_context(key), create_only=False)
    assert ("overwritten", "000000000001.bin") in _kinds(sink)
    code, _ = _cli_verify()
    assert code == 4


def test_a_reordered_or_rechained_record_breaks_the_chain(sink: AuditSink) -> None:
    # A compromised task appends after deleting the last record, naming a stale predecessor.
    key = audit.record_key(sink, 4)
    document = {
        "version": 1,
        "seq": 4,
        "prev": audit.digest(_blob(sink, 2)),  # skips record 3
        "event": "restore.approved",
        "subjectId": "rr-x",
        "actor": ACTOR,
        "at": audit.iso(dt.datetime.now(dt.UTC)),
        "details": {},
    }
    put_document(sink, key, document, audit.audit_context(key), create_only=True)
    assert _kinds(sink) == [("reordered", "000000000004.bin")]


def test_a_swapped_or_forged_record_fails_authentication(sink: AuditSink) -> None:
    # Record 2's bytes copied over record 3 (a reorder by copy): sealed for another key, it no longer opens.
    sink.clients.s3.put_object(Bucket=BUCKET, Key=audit.record_key(sink, 3), Body=_blob(sink, 2))
    sink.clients.s3.put_object(Bucket=BUCKET, Key=audit.record_key(sink, 4), Body=b"CBK1 forged record")
    sink.clients.s3.put_object(Bucket=BUCKET, Key=f"{audit.chain_root(sink)}notes.txt", Body=b"x")
    kinds = _kinds(sink)
    assert ("forged", "000000000003.bin") in kinds and ("overwritten", "000000000003.bin") in kinds
    assert ("forged", "000000000004.bin") in kinds and ("forged", "notes.txt") in kinds
    code, out = _cli_verify()
    assert code == 4 and len(out["findings"]) == len(kinds)


def test_a_backdated_record_is_reported(sink: AuditSink) -> None:
    # A writer with the key appends a record dated last week (e.g. an approval "before" the request).
    record(
        sink,
        "restore.approved",
        "rr-0",
        actor=ACTOR,
        details={},
        now=dt.datetime.now(dt.UTC) - dt.timedelta(days=7),
    )
    assert _kinds(sink) == [("backdated", "000000000004.bin")]


def test_concurrent_writers_never_share_a_sequence_number(sink: AuditSink) -> None:
    import threading

    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            record(sink, "restore.requested", f"rr-c{n}", actor=ACTOR, details={"n": n})
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and not any(t.is_alive() for t in threads)
    report = verify_chain(sink)
    assert report.intact and report.records == 10


def test_records_are_locked_for_the_audit_retention(monkeypatch: pytest.MonkeyPatch) -> None:
    """With Object Lock on, a record's version cannot be deleted within its own (audit) retention."""
    monkeypatch.setenv(audit.LOCK_DAYS_ENV, "400")
    with mock_aws():
        clients = make_clients(boto3.Session())
        key_arn = clients.kms.create_key(Description="backup key")["KeyMetadata"]["Arn"]
        clients.s3.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
        sink = AuditSink(clients=clients, bucket=BUCKET, kms_key_arn=key_arn, prefix=f"{PREFIX}/audit")
        key = record(sink, "restore.requested", "rr-1", actor=ACTOR, details={})
        head = clients.s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE"
        days = (head["ObjectLockRetainUntilDate"] - dt.datetime.now(dt.UTC)).days
        assert 398 <= days <= 400
        with pytest.raises(clients.s3.exceptions.ClientError, match="AccessDenied"):
            clients.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=head["VersionId"])
        assert verify_chain(sink).intact
