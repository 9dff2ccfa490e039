"""The audit trail on moto: sealed, append-only, chained records, read back filtered and in chain order."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipeline.core.aws import make_clients
from pipeline.core.errors import AuditRecordExists, InvalidRequest, TamperedError
from pipeline.sealing import audit
from pipeline.sealing.audit import AuditSink, read_records, record

BUCKET = "cb-audit-tests"
ACTOR = "arn:aws:iam::123456789012:user/alice"
T0 = dt.datetime(2026, 11, 27, 20, 22, 0, 123456, tzinfo=dt.UTC)


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditSink]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        clients = make_clients(boto3.Session())
        key_arn = clients.kms.create_key(Description="backup key")["KeyMetadata"]["Arn"]
        clients.s3.create_bucket(Bucket=BUCKET)
        yield AuditSink(clients=clients, bucket=BUCKET, kms_key_arn=key_arn)


def _body(sink: AuditSink, key: str) -> bytes:
    return sink.clients.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_record_round_trip_and_key_layout(sink: AuditSink) -> None:
    details = {"backupUri": "s3://b/p/us-east-1_AbC123/x/", "users": 12, "ok": True, "shards": ["0", "1"]}
    key = record(sink, "backup.completed", "us-east-1_AbC123", actor=ACTOR, details=details, now=T0)

    assert key == "audit/chain/000000000000.bin"
    [got] = read_records(sink)
    assert got == {
        "version": 1,
        "seq": 0,
        "prev": audit.GENESIS,
        "event": "backup.completed",
        "subjectId": "us-east-1_AbC123",
        "actor": ACTOR,
        "at": "2026-11-27T20:22:00.123456+00:00",
        "details": details,
        "key": key,
    }


def test_record_is_sealed_with_sse_kms_and_checksum(sink: AuditSink) -> None:
    sent: list[dict[str, str]] = []

    def capture(request: Any, **_: Any) -> None:
        sent.append(
            {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        )

    sink.clients.s3.meta.events.register("before-send.s3.PutObject", capture)
    key = record(sink, "restore.failed", "rr-x", actor=ACTOR, details={"reason": "reason-marker-51f"})

    body = _body(sink, key)
    assert body.startswith(b"CBK1")
    for plaintext in (b"reason-marker-51f", b'"event"', b"restore.failed", ACTOR.encode()):
        assert plaintext not in body
    head = sink.clients.s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == sink.kms_key_arn
    [headers] = sent
    assert headers["if-none-match"] == "*"
    assert headers["x-amz-checksum-sha256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()


def test_an_existing_record_is_never_replaced(sink: AuditSink, monkeypatch: pytest.MonkeyPatch) -> None:
    key = record(sink, "restore.approved", "rr-1", actor=ACTOR, details={"n": 1}, now=T0)
    original = _body(sink, key)
    # A concurrent writer that read the chain before record 0 existed races for the same key: it loses (412),
    # reads the new head and appends after it.
    heads = iter([(0, audit.GENESIS)])
    real_head = audit._head
    monkeypatch.setattr(audit, "_head", lambda s: next(heads, None) or real_head(s))
    second = record(
        sink, "restore.approved", "rr-1", actor=ACTOR, details={"n": 2}, now=T0, sleep=lambda _: None
    )

    assert _body(sink, key) == original
    assert second == "audit/chain/000000000001.bin"
    records = read_records(sink)
    assert [r["details"] for r in records] == [{"n": 1}, {"n": 2}]
    assert records[1]["prev"] == audit.digest(original)

    monkeypatch.setattr(audit, "_head", lambda s: (0, audit.GENESIS))  # a head that never moves
    with pytest.raises(AuditRecordExists):
        record(sink, "restore.approved", "rr-1", actor=ACTOR, details={"n": 3}, sleep=lambda _: None)


def test_same_instant_same_subject_gets_distinct_keys(sink: AuditSink) -> None:
    first = record(sink, "restore.requested", "rr-1", actor=ACTOR, details={}, now=T0)
    second = record(sink, "restore.requested", "rr-1", actor=ACTOR, details={}, now=T0)
    assert first != second
    assert len(read_records(sink)) == 2


def test_read_filters_by_subject_and_time_and_sorts(sink: AuditSink) -> None:
    day = dt.timedelta(days=1)
    # written out of order, across days and months
    record(sink, "restore.completed", "rr-b", actor=ACTOR, details={"i": 3}, now=T0 + 5 * day)
    record(sink, "restore.requested", "rr-a", actor=ACTOR, details={"i": 0}, now=T0 - 40 * day)
    record(sink, "restore.approved", "rr-a", actor=ACTOR, details={"i": 1}, now=T0)
    record(sink, "restore.requested", "rr-b", actor=ACTOR, details={"i": 2}, now=T0 + dt.timedelta(seconds=1))

    assert [r["details"]["i"] for r in read_records(sink)] == [3, 0, 1, 2]  # chain order: as written
    assert [r["details"]["i"] for r in read_records(sink, subject_id="rr-a")] == [0, 1]
    assert [r["details"]["i"] for r in read_records(sink, since=T0)] == [3, 1, 2]
    assert [r["details"]["i"] for r in read_records(sink, since=T0 + dt.timedelta(microseconds=1))] == [3, 2]
    assert [r["details"]["i"] for r in read_records(sink, subject_id="rr-b", since=T0 + 2 * day)] == [3]
    naive = (T0 + 2 * day).replace(tzinfo=None)  # taken as UTC
    assert [r["details"]["i"] for r in read_records(sink, since=naive)] == [3]
    assert read_records(sink, subject_id="rr-c") == []


def test_custom_prefix(sink: AuditSink) -> None:
    other = AuditSink(clients=sink.clients, bucket=BUCKET, kms_key_arn=sink.kms_key_arn, prefix="/ops/audit/")
    key = record(other, "backup.failed", "us-east-1_AbC123", actor=ACTOR, details={"error": "Throttled"})
    assert key.startswith("ops/audit/")
    assert read_records(sink) == []
    assert [r["key"] for r in read_records(other)] == [key]


def test_moved_or_copied_record_fails_authentication(sink: AuditSink) -> None:
    key = record(sink, "restore.rejected", "rr-1", actor=ACTOR, details={}, now=T0)
    moved = audit.record_key(sink, 1)
    sink.clients.s3.copy_object(Bucket=BUCKET, Key=moved, CopySource={"Bucket": BUCKET, "Key": key})
    with pytest.raises(TamperedError):
        read_records(sink, subject_id="rr-1")


def test_foreign_objects_under_the_prefix_are_ignored(sink: AuditSink) -> None:
    sink.clients.s3.put_object(Bucket=BUCKET, Key="audit/inventory/manifest.json", Body=b"{}")
    record(sink, "backup.completed", "us-east-1_AbC123", actor=ACTOR, details={})
    assert [r["event"] for r in read_records(sink)] == ["backup.completed"]


@pytest.mark.parametrize(
    "details",
    [
        {"raw": b"bytes"},
        {"when": T0},
        {"nested": {"deeper": [1, {"x": object()}]}},
        {"set": {1, 2}},
        {"nan": float("nan")},
        {1: "non-string key"},
        {"big": "x" * (audit.MAX_DETAILS_BYTES + 1)},
    ],
)
def test_details_must_be_plain_small_json(sink: AuditSink, details: dict[Any, Any]) -> None:
    with pytest.raises(InvalidRequest):
        record(sink, "backup.completed", "us-east-1_AbC123", actor=ACTOR, details=details)
    assert read_records(sink) == []


def test_error_messages_name_paths_not_values(sink: AuditSink) -> None:
    with pytest.raises(InvalidRequest) as info:
        record(sink, "backup.completed", "p", actor=ACTOR, details={"user": {"email": b"alice@example.com"}})
    assert "details.user.email" in str(info.value)
    assert "alice" not in str(info.value)


@pytest.mark.parametrize(
    ("event", "subject", "actor"),
    [
        ("restore.deleted", "rr-1", ACTOR),
        ("backup.completed", "../escape", ACTOR),
        ("backup.completed", "", ACTOR),
        ("backup.completed", "rr-1", ""),
    ],
)
def test_event_subject_and_actor_are_checked(sink: AuditSink, event: str, subject: str, actor: str) -> None:
    with pytest.raises(InvalidRequest):
        record(sink, event, subject, actor=actor, details={})
    assert read_records(sink) == []
