"""Restore approvals on moto: sealed task tokens, authenticated approvers, one decision, audited.

Most tests hand ``decide`` a stub Step Functions client that records what it was sent; two run a real
``waitForTaskToken`` execution on moto's interpreter (an SQS sendMessage task carries the token out) to show
the decision really resumes or fails the execution, and that a dead token becomes ApprovalExpired.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, cast

import boto3
import botocore.exceptions
import pytest
from moto import mock_aws

from pipeline.core.aws import Clients, caller_arn, make_clients
from pipeline.core.errors import (
    ApprovalAlreadyDecided,
    ApprovalExpired,
    ApprovalNotFound,
    EndpointUnreachable,
    InvalidRequest,
    SelfApprovalRefused,
    TamperedError,
)
from pipeline.restore import approval
from pipeline.restore import steps as restore_steps
from pipeline.restore.approval import (
    ApprovalRequest,
    confirm_approval,
    decide,
    decision_key,
    load,
    new_request_id,
    open_request,
    pending,
    principal_id,
    record_outcome,
    same_principal,
)
from pipeline.sealing.audit import AuditSink, put_document, read_records
from pipeline.sealing.audit import exists as audit_exists

BUCKET = "cb-approval-tests"
TOKEN = "task-token-secret-4f0c9e"
NOW = dt.datetime(2026, 11, 27, 20, 22, tzinfo=dt.UTC)
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:restore:run-1"


@dataclass
class Env:
    sink: AuditSink
    alice: str  # requester
    bob: str  # approver


@dataclass
class StubSFN:
    """Records send_task_success/failure; raises a ClientError with ``fail_code`` when set."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail_code: str | None = None
    status: str = "RUNNING"  # of the waiting execution; "UNREACHABLE" stands for an engine that is gone

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        if self.status == "UNREACHABLE":
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9/")
        return {"executionArn": executionArn, "status": self.status}

    def _call(self, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.fail_code is not None:
            raise botocore.exceptions.ClientError({"Error": {"Code": self.fail_code, "Message": "x"}}, name)
        self.calls.append((name, kwargs))
        return {}

    def send_task_success(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("SendTaskSuccess", kwargs)

    def send_task_failure(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("SendTaskFailure", kwargs)


def _decide(sink: AuditSink, sfn: Any, request_id: str, **kwargs: Any) -> dict[str, Any]:
    """decide() with a stub or a moto client (the stub is not an SFNClient to the type checker)."""
    return decide(sink, sfn, request_id, **kwargs)


def _fake_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv(approval.TOPIC_ENV, raising=False)


def _principal(name: str) -> Clients:
    """Clients authenticated as a fresh IAM user: moto's STS answers with that user's ARN."""
    iam = boto3.client("iam")
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    session = boto3.Session(
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        region_name="us-east-1",
    )
    return make_clients(session)


def _setup() -> Env:
    clients = make_clients(boto3.Session())
    key_arn = clients.kms.create_key(Description="backup key")["KeyMetadata"]["Arn"]
    clients.s3.create_bucket(Bucket=BUCKET)
    sink = AuditSink(clients=clients, bucket=BUCKET, kms_key_arn=key_arn)
    return Env(sink, caller_arn(_principal("alice")), caller_arn(_principal("bob")))


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    _fake_env(monkeypatch)
    with mock_aws():
        yield _setup()


def _request(
    env: Env, *, expires_in: dt.timedelta = dt.timedelta(hours=24), **changes: Any
) -> ApprovalRequest:
    request = ApprovalRequest(
        request_id=new_request_id(NOW),
        requested_by=env.alice,
        requested_at=NOW.isoformat(),
        expires_at=(NOW + expires_in).isoformat(),
        backup_uri="s3://cb-backups/backups/us-east-1_AbC123/20261127T202200Z-a1b2c3/",
        target={"mode": "same", "poolId": "us-east-1_AbC123", "poolName": "prod"},
        selective={"groups": ["admins"]},
        execution_arn=EXECUTION,
        snapshot_uri="s3://cb-backups/backups/us-east-1_AbC123/20261127T202100Z-000000/",
        engine_endpoint=None,
    )
    return replace(request, **changes)


def _events(env: Env, request_id: str) -> list[tuple[str, str]]:
    return [(r["event"], r["actor"]) for r in read_records(env.sink, subject_id=request_id)]


def _stored_bytes(env: Env) -> bytes:
    s3 = env.sink.clients.s3
    listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return b"".join(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed)


def test_caller_arns_come_from_sts(env: Env) -> None:
    assert env.alice == "arn:aws:iam::123456789012:user/alice"
    assert env.bob == "arn:aws:iam::123456789012:user/bob"


def test_request_id_shape() -> None:
    rid = new_request_id(NOW)
    assert rid.startswith("rr-20261127T202200Z-")
    assert approval.check_request_id(rid) == rid
    assert new_request_id(NOW) != rid
    for bad in ("rr-x", "../rr-20261127T202200Z-0123456789ab", "rr-20261127T202200Z-0123456789ab/decision"):
        with pytest.raises(InvalidRequest):
            approval.check_request_id(bad)


def test_request_round_trips_through_dict(env: Env) -> None:
    request = _request(env)
    data = request.to_dict()
    assert data["requestId"] == request.request_id and data["backupUri"] == request.backup_uri
    assert data["executionArn"] == EXECUTION and data["engineEndpoint"] is None
    assert ApprovalRequest.from_dict(data) == request
    with pytest.raises(InvalidRequest):
        ApprovalRequest.from_dict({**data, "expiresAt": "tomorrow"})
    with pytest.raises(InvalidRequest):
        ApprovalRequest.from_dict({k: v for k, v in data.items() if k != "target"})


def test_request_approve_confirm_flow(env: Env) -> None:
    request = _request(env)
    rid = request.request_id
    open_request(env.sink, request, TOKEN)

    assert [r.request_id for r in pending(env.sink, now=NOW)] == [rid]
    assert load(env.sink, rid) == (request, TOKEN)

    sfn = StubSFN()
    decision = _decide(env.sink, sfn, rid, approve=True, reason="ticket OPS-1", approver_arn=env.bob, now=NOW)

    assert decision == {
        "approved": True,
        "approvedBy": env.bob,
        "approvedAt": NOW.isoformat(timespec="microseconds"),
        "reason": "ticket OPS-1",
        "requestId": rid,
    }
    [(name, kwargs)] = sfn.calls
    assert name == "SendTaskSuccess"
    assert kwargs["taskToken"] == TOKEN
    assert json.loads(kwargs["output"]) == decision
    assert pending(env.sink, now=NOW) == []
    assert _events(env, rid) == [("restore.requested", env.alice), ("restore.approved", env.bob)]

    confirmed = confirm_approval(env.sink, rid, json.loads(kwargs["output"]))
    assert confirmed == {"approvedBy": env.bob, "approvedAt": decision["approvedAt"], "requestId": rid}

    key = record_outcome(env.sink, rid, "restore.completed", {"users": 10}, actor=EXECUTION)
    assert key.startswith("audit/")
    last = read_records(env.sink, subject_id=rid)[-1]
    assert (last["event"], last["actor"], last["details"]) == (
        "restore.completed",
        EXECUTION,
        {"users": 10, "requestId": rid},
    )


def test_token_and_request_are_sealed(env: Env) -> None:
    request = _request(env)
    open_request(env.sink, request, TOKEN)
    _decide(env.sink, StubSFN(), request.request_id, approve=True, reason=None, approver_arn=env.bob, now=NOW)
    stored = _stored_bytes(env)
    assert stored.count(b"CBK1") == 4  # request, decision, two audit records
    for plaintext in (TOKEN.encode(), b"us-east-1_AbC123", b"cb-backups", b"requestedBy", env.bob.encode()):
        assert plaintext not in stored


def test_self_approval_refused_and_audited(env: Env) -> None:
    request = _request(env)
    open_request(env.sink, request, TOKEN)
    sfn = StubSFN()
    with pytest.raises(SelfApprovalRefused) as info:
        _decide(env.sink, sfn, request.request_id, approve=True, reason=None, approver_arn=env.alice, now=NOW)
    assert "alice" not in str(info.value)
    assert sfn.calls == []
    assert [r.request_id for r in pending(env.sink, now=NOW)] == [request.request_id]
    events = read_records(env.sink, subject_id=request.request_id)
    assert [(r["event"], r["actor"]) for r in events][-1] == ("approval.refused", env.alice)
    assert events[-1]["details"]["reason"] == "self-approval"


def test_self_approval_refused_for_the_same_assumed_role_session(env: Env) -> None:
    requester = "arn:aws:sts::123456789012:assumed-role/RestoreOps/alice"
    request = _request(env, requested_by=requester)
    open_request(env.sink, request, TOKEN)
    sfn = StubSFN()
    same_session = "arn:aws:sts::123456789012:assumed-role/restoreops/ALICE"
    with pytest.raises(SelfApprovalRefused):
        _decide(
            env.sink, sfn, request.request_id, approve=True, reason=None, approver_arn=same_session, now=NOW
        )
    assert sfn.calls == []
    other_session = "arn:aws:sts::123456789012:assumed-role/RestoreOps/bob"
    _decide(env.sink, sfn, request.request_id, approve=True, reason=None, approver_arn=other_session, now=NOW)
    assert [name for name, _ in sfn.calls] == ["SendTaskSuccess"]


def test_principal_normalisation_rules() -> None:
    user = "arn:aws:iam::123456789012:user/alice"
    assert same_principal(user, "arn:aws:iam::123456789012:user/ops/Alice")  # path and case do not matter
    assert not same_principal(user, "arn:aws:iam::210987654321:user/alice")  # another account
    assert not same_principal(user, "arn:aws-cn:iam::123456789012:user/alice")  # another partition
    role = "arn:aws:sts::123456789012:assumed-role/Ops/s1"
    assert same_principal(role, "arn:aws:sts::123456789012:assumed-role/ops/S1")
    assert not same_principal(role, "arn:aws:sts::123456789012:assumed-role/Ops/s2")
    assert not same_principal(role, "arn:aws:sts::123456789012:assumed-role/Other/s1")
    assert not same_principal(role, "arn:aws:iam::123456789012:user/s1")
    assert principal_id(" not-an-arn ") == "not-an-arn"


def test_requester_may_cancel_by_rejecting(env: Env) -> None:
    request = _request(env)
    open_request(env.sink, request, TOKEN)
    sfn = StubSFN()
    decision = _decide(
        env.sink, sfn, request.request_id, approve=False, reason=None, approver_arn=env.alice, now=NOW
    )
    assert decision["approved"] is False and decision["rejectedBy"] == env.alice
    assert decision["withdrawn"] is True
    [(name, kwargs)] = sfn.calls
    assert (name, kwargs["error"], kwargs["cause"]) == (
        "SendTaskFailure",
        "ApprovalRejected",
        "withdrawn by the requester",
    )
    # Recorded as what it was: the requester withdrew the request, no approver rejected it.
    assert _events(env, request.request_id)[-1] == ("restore.withdrawn", env.alice)
    # The execution's RecordRejection step knows only that the token failed: its outcome record says withdrawn.
    settings = {"bucket": BUCKET, "prefix": "", "kmsKeyArn": env.sink.kms_key_arn}
    outcome = restore_steps.record_decision(
        env.sink.clients, cast(Any, {"requestId": request.request_id, "settings": settings}), "rejected", None
    )
    assert outcome == {"decision": "withdrawn"}
    last = read_records(env.sink, subject_id=request.request_id)[-1]
    assert (last["event"], last["details"]["decision"]) == ("restore.failed", "withdrawn")


def test_reject_sends_task_failure_and_is_audited(env: Env) -> None:
    request = _request(env)
    rid = request.request_id
    open_request(env.sink, request, TOKEN)
    sfn = StubSFN()
    decision = _decide(
        env.sink, sfn, rid, approve=False, reason="wrong backup", approver_arn=env.bob, now=NOW
    )
    assert decision["approved"] is False and decision["reason"] == "wrong backup"
    [(name, kwargs)] = sfn.calls
    assert name == "SendTaskFailure"
    assert kwargs == {"taskToken": TOKEN, "error": "ApprovalRejected", "cause": "wrong backup"}
    assert _events(env, rid) == [("restore.requested", env.alice), ("restore.rejected", env.bob)]
    assert pending(env.sink, now=NOW) == []
    # a rejected request cannot be confirmed as approved
    with pytest.raises(TamperedError):
        confirm_approval(env.sink, rid, {"approved": True, "approvedBy": env.bob, "requestId": rid})


def test_second_decision_is_refused(env: Env) -> None:
    request = _request(env)
    rid = request.request_id
    open_request(env.sink, request, TOKEN)
    sfn = StubSFN()
    carol = "arn:aws:iam::123456789012:user/carol"
    _decide(env.sink, sfn, rid, approve=True, reason=None, approver_arn=env.bob, now=NOW)
    with pytest.raises(ApprovalAlreadyDecided):
        _decide(env.sink, sfn, rid, approve=False, reason="no", approver_arn=carol, now=NOW)
    with pytest.raises(ApprovalAlreadyDecided):
        _decide(env.sink, sfn, rid, approve=True, reason=None, approver_arn=carol, now=NOW)
    with pytest.raises(ApprovalAlreadyDecided):
        _decide(env.sink, sfn, rid, approve=False, reason=None, approver_arn=env.bob, now=NOW)
    assert [name for name, _ in sfn.calls] == ["SendTaskSuccess"]
    assert [e for e, _ in _events(env, rid)] == ["restore.requested", "restore.approved"]
    # no new token can be attached to a decided request
    with pytest.raises(ApprovalAlreadyDecided):
        open_request(env.sink, request, "another-token")


def test_decision_write_is_the_race_guard(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two approvers that both saw no decision: IfNoneMatch lets only the first write win."""
    request = _request(env)
    rid = request.request_id
    open_request(env.sink, request, TOKEN)
    _decide(env.sink, StubSFN(), rid, approve=True, reason=None, approver_arn=env.bob, now=NOW)
    monkeypatch.setattr(approval, "_stored_decision", lambda *_: None)  # the loser's stale view
    sfn = StubSFN()
    with pytest.raises(ApprovalAlreadyDecided):
        _decide(
            env.sink,
            sfn,
            rid,
            approve=False,
            reason=None,
            approver_arn="arn:aws:iam::123456789012:user/c",
            now=NOW,
        )
    assert sfn.calls == []


def test_failed_delivery_can_be_repeated_by_the_same_approver(env: Env) -> None:
    request = _request(env)
    rid = request.request_id
    open_request(env.sink, request, TOKEN)
    flaky = StubSFN(fail_code="ServiceUnavailable")
    with pytest.raises(botocore.exceptions.ClientError):
        _decide(env.sink, flaky, rid, approve=True, reason="r", approver_arn=env.bob, now=NOW)
    sfn = StubSFN()
    later = NOW + dt.timedelta(minutes=5)
    again = _decide(env.sink, sfn, rid, approve=True, reason="other", approver_arn=env.bob, now=later)
    assert again["approvedAt"] == NOW.isoformat(timespec="microseconds")  # the stored decision, unchanged
    assert again["reason"] == "r"
    [(_, kwargs)] = sfn.calls
    assert json.loads(kwargs["output"]) == again


def test_expired_request_is_not_pending_and_refused(env: Env) -> None:
    request = _request(env, expires_in=dt.timedelta(hours=1))
    rid = request.request_id
    open_request(env.sink, request, TOKEN)
    assert [r.request_id for r in pending(env.sink, now=NOW)] == [rid]
    late = NOW + dt.timedelta(hours=1)
    assert pending(env.sink, now=late) == []
    sfn = StubSFN()
    with pytest.raises(ApprovalExpired):
        _decide(env.sink, sfn, rid, approve=True, reason=None, approver_arn=env.bob, now=late)
    assert sfn.calls == []
    with pytest.raises(ApprovalNotFound):
        confirm_approval(env.sink, new_request_id(NOW), {"approved": True})
    with pytest.raises(TamperedError):  # never decided
        confirm_approval(env.sink, rid, {"approved": True, "approvedBy": env.bob, "requestId": rid})


@pytest.mark.parametrize("code", ["TaskTimedOut", "InvalidToken", "TaskDoesNotExist"])
def test_dead_token_is_expired(env: Env, code: str) -> None:
    request = _request(env)
    rid = request.request_id
    open_request(env.sink, request, TOKEN)
    with pytest.raises(ApprovalExpired):
        _decide(
            env.sink, StubSFN(fail_code=code), rid, approve=True, reason=None, approver_arn=env.bob, now=NOW
        )
    events = read_records(env.sink, subject_id=rid)
    assert [r["event"] for r in events] == ["restore.requested", "restore.approved", "restore.expired"]
    assert events[-1]["details"]["cause"] == code


@pytest.mark.parametrize("status", ["ABORTED", "FAILED", "UNREACHABLE"])
def test_no_decision_is_recorded_for_a_restore_that_no_longer_waits(env: Env, status: str) -> None:
    """An interrupted or stopped restore: the decision would reach no one, so nothing of it is written."""
    request = _request(env)
    rid = request.request_id
    open_request(env.sink, request, TOKEN)
    sfn = StubSFN(status=status)
    expected = EndpointUnreachable if status == "UNREACHABLE" else ApprovalExpired
    with pytest.raises(expected):
        _decide(env.sink, sfn, rid, approve=True, reason=None, approver_arn=env.bob, now=NOW)
    assert sfn.calls == []
    assert [r["event"] for r in read_records(env.sink, subject_id=rid)] == ["restore.requested"]
    assert not audit_exists(env.sink, decision_key(env.sink, rid))


def test_unknown_request(env: Env) -> None:
    with pytest.raises(ApprovalNotFound):
        load(env.sink, new_request_id(NOW))
    with pytest.raises(ApprovalNotFound):
        _decide(env.sink, StubSFN(), new_request_id(NOW), approve=True, reason=None, approver_arn=env.bob)
    with pytest.raises(InvalidRequest):
        _decide(env.sink, StubSFN(), "rr-../../x", approve=True, reason=None, approver_arn=env.bob)


def test_confirm_detects_a_forged_output(env: Env) -> None:
    request = _request(env)
    rid = request.request_id
    open_request(env.sink, request, TOKEN)
    _decide(env.sink, StubSFN(), rid, approve=True, reason=None, approver_arn=env.bob, now=NOW)
    mallory = "arn:aws:iam::123456789012:user/mallory"
    with pytest.raises(TamperedError):
        confirm_approval(env.sink, rid, {"approved": True, "approvedBy": mallory, "requestId": rid})
    with pytest.raises(TamperedError):
        confirm_approval(
            env.sink, rid, {"approved": True, "approvedBy": env.bob, "requestId": new_request_id()}
        )
    refused = [r for r in read_records(env.sink, subject_id=rid) if r["event"] == "approval.refused"]
    task = caller_arn(env.sink.clients)  # the claim is not authenticated: the actor is the checking task
    assert [(r["actor"], r["details"]["reason"], r["details"]["claimedApprover"]) for r in refused] == [
        (task, "output-does-not-match-decision", mallory),
        (task, "output-does-not-match-decision", env.bob),
    ]


def test_confirm_detects_a_bypassed_decide(env: Env) -> None:
    """Someone with states:SendTaskSuccess and the token, but no decision.bin: RecordDecision refuses."""
    request = _request(env)
    rid = request.request_id
    open_request(env.sink, request, TOKEN)
    with pytest.raises(TamperedError):
        confirm_approval(env.sink, rid, {"approved": True, "approvedBy": env.alice, "requestId": rid})
    assert [e for e, _ in _events(env, rid)] == ["restore.requested", "approval.refused"]


def test_confirm_refuses_a_self_approved_decision(env: Env) -> None:
    """A decision.bin naming the requester (written by an older or bypassed tool) is still refused."""
    request = _request(env)
    rid = request.request_id
    open_request(env.sink, request, TOKEN)
    put_document(
        env.sink,
        approval.decision_key(env.sink, rid),
        {
            "requestId": rid,
            "decision": "approved",
            "approved": True,
            "decidedBy": env.alice,
            "decidedAt": "x",
        },
        approval.approval_context(rid, approval.DECISION_NAME),
        create_only=True,
    )
    with pytest.raises(SelfApprovalRefused):
        confirm_approval(env.sink, rid, {"approved": True, "approvedBy": env.alice, "requestId": rid})
    last = read_records(env.sink, subject_id=rid)[-1]
    assert (last["event"], last["details"]["reason"], last["details"]["claimedApprover"]) == (
        "approval.refused",
        "self-approval",
        env.alice,
    )


def test_retry_with_new_token_replaces_it_until_decided(env: Env) -> None:
    request = _request(env)
    rid = request.request_id
    open_request(env.sink, request, TOKEN)
    open_request(env.sink, request, TOKEN)  # same token: nothing new
    assert [e for e, _ in _events(env, rid)] == ["restore.requested"]

    open_request(env.sink, replace(request, expires_at=(NOW + dt.timedelta(hours=2)).isoformat()), "token-2")
    loaded, token = load(env.sink, rid)
    assert token == "token-2" and loaded.expires_at == (NOW + dt.timedelta(hours=2)).isoformat()
    records = read_records(env.sink, subject_id=rid)
    assert [r["details"]["tokenReissued"] for r in records] == [False, True]

    with pytest.raises(InvalidRequest):  # same id, another restore
        open_request(
            env.sink,
            replace(request, backup_uri="s3://elsewhere/p/us-east-1_X1/20261127T202200Z-a1b2c3/"),
            "t3",
        )
    sfn = StubSFN()
    _decide(env.sink, sfn, rid, approve=True, reason=None, approver_arn=env.bob, now=NOW)
    assert sfn.calls[0][1]["taskToken"] == "token-2"


def test_pending_lists_only_open_requests_in_order(env: Env) -> None:
    first = _request(env, requested_at=NOW.isoformat())
    second = _request(
        env, request_id=new_request_id(NOW), requested_at=(NOW + dt.timedelta(minutes=1)).isoformat()
    )
    decided = _request(env, request_id=new_request_id(NOW))
    for r in (second, decided, first):
        open_request(env.sink, r, TOKEN)
    _decide(
        env.sink, StubSFN(), decided.request_id, approve=False, reason=None, approver_arn=env.bob, now=NOW
    )
    env.sink.clients.s3.put_object(Bucket=BUCKET, Key="approvals/README", Body=b"not a request")
    assert [r.request_id for r in pending(env.sink, now=NOW)] == [first.request_id, second.request_id]


def test_record_outcome_checks_the_event_and_defaults_to_the_caller(env: Env) -> None:
    rid = new_request_id(NOW)
    record_outcome(env.sink, rid, "restore.failed", {"error": "Throttled"})
    [got] = read_records(env.sink, subject_id=rid)
    assert got["actor"] == caller_arn(env.sink.clients)
    with pytest.raises(InvalidRequest):
        record_outcome(env.sink, rid, "restore.approved", {})  # type: ignore[arg-type]


def test_notification_names_the_request_but_not_the_token(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="approvals")["TopicArn"]
    queue = sqs.create_queue(QueueName="approvers")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    monkeypatch.setenv(approval.TOPIC_ENV, topic)

    request = _request(env)
    open_request(env.sink, request, TOKEN)

    [message] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    text = json.loads(message["Body"])["Message"]
    assert request.request_id in text and request.backup_uri in text and "us-east-1_AbC123" in text
    assert f"cognito-backuper approve {request.request_id}" in text
    assert f"cognito-backuper reject {request.request_id}" in text
    assert TOKEN not in text and "admins" not in text


# A real waitForTaskToken execution on moto's interpreter.


@pytest.fixture
def engine_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Env, Any, Any, str, str]]:
    _fake_env(monkeypatch)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        env = _setup()
        sqs, sfn = boto3.client("sqs"), boto3.client("stepfunctions")
        queue = sqs.create_queue(QueueName="tokens")["QueueUrl"]
        role = boto3.client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        definition = {
            "StartAt": "RequestApproval",
            "States": {
                "RequestApproval": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                    "Parameters": {"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token"}},
                    "TimeoutSeconds": 60,
                    "End": True,
                }
            },
        }
        machine = sfn.create_state_machine(name="approve", definition=json.dumps(definition), roleArn=role)
        yield env, sqs, sfn, machine["stateMachineArn"], queue


def _start(sqs: Any, sfn: Any, machine: str, queue: str) -> tuple[str, str]:
    execution = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue).get("Messages", [])
        if messages:
            return execution, json.loads(messages[0]["Body"])["token"]
        time.sleep(0.05)
    raise AssertionError("the execution never reached RequestApproval")


def _finished(sfn: Any, execution: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.05)
    raise AssertionError("the execution did not finish")


def test_approval_resumes_a_real_execution(engine_env: Any) -> None:
    env, sqs, sfn, machine, queue = engine_env
    execution, token = _start(sqs, sfn, machine, queue)
    request = _request(env, execution_arn=execution)
    open_request(env.sink, request, token)

    decision = _decide(
        env.sink, sfn, request.request_id, approve=True, reason=None, approver_arn=env.bob, now=NOW
    )

    described = _finished(sfn, execution)
    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert output == decision
    assert confirm_approval(env.sink, request.request_id, output)["approvedBy"] == env.bob
    # delivered once: the same approver repeating it finds the token spent
    with pytest.raises(ApprovalAlreadyDecided):
        _decide(env.sink, sfn, request.request_id, approve=True, reason=None, approver_arn=env.bob, now=NOW)


def test_rejection_fails_a_real_execution_with_approval_rejected(engine_env: Any) -> None:
    env, sqs, sfn, machine, queue = engine_env
    execution, token = _start(sqs, sfn, machine, queue)
    request = _request(env, execution_arn=execution)
    open_request(env.sink, request, token)

    _decide(
        env.sink, sfn, request.request_id, approve=False, reason="not today", approver_arn=env.bob, now=NOW
    )

    described = _finished(sfn, execution)
    assert described["status"] == "FAILED"
    # moto 5.2.5 drops SendTaskFailure's cause; the stub test checks what decide sends
    assert described.get("error") == "ApprovalRejected"


def test_a_token_no_execution_waits_on_is_expired(engine_env: Any) -> None:
    env, sqs, sfn, machine, queue = engine_env
    execution, _ = _start(sqs, sfn, machine, queue)
    request = _request(env, execution_arn=execution)
    open_request(env.sink, request, "not-a-live-token")
    with pytest.raises(ApprovalExpired):
        _decide(env.sink, sfn, request.request_id, approve=True, reason=None, approver_arn=env.bob, now=NOW)
    assert [e for e, _ in _events(env, request.request_id)][-1] == "restore.expired"


def test_a_restore_that_is_gone_gets_no_decision_at_all(engine_env: Any) -> None:
    env, _, sfn, _, _ = engine_env
    request = _request(env)  # its execution ARN names no execution
    open_request(env.sink, request, "any-token")
    with pytest.raises(ApprovalExpired, match="GONE"):
        _decide(env.sink, sfn, request.request_id, approve=True, reason=None, approver_arn=env.bob, now=NOW)
    assert [e for e, _ in _events(env, request.request_id)] == ["restore.requested"]
