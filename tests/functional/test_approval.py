"""Restore approvals on moto: sealed task tokens, proven people, one decision recorded by the pipeline, audited.

Most tests hand ``decide`` (the CLI side) a stub Step Functions client that records what it was sent, then hand
that message to ``record_decision`` (RecordDecision, the pipeline side), which executes its identity proof against
moto's STS. Four run a real ``waitForTaskToken`` execution on moto's interpreter (an SQS sendMessage task carries
the token out). The attacks on this flow are in tests/security.
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

from pipeline.core import identity_proof
from pipeline.core.aws import Clients, caller_arn, make_clients
from pipeline.core.errors import (
    ApprovalAlreadyDecided,
    ApprovalExpired,
    ApprovalNotFound,
    EndpointUnreachable,
    InvalidRequest,
    SelfApprovalRefused,
)
from pipeline.restore import approval
from pipeline.restore import steps as restore_steps
from pipeline.restore.approval import (
    ApprovalRequest,
    decide,
    load,
    new_request_id,
    open_request,
    pending,
    principal_id,
    record_decision,
    record_outcome,
    same_principal,
)
from pipeline.sealing.audit import AuditSink, read_records
from tests.helpers.restore_flow import proof, remember

BUCKET = "cb-approval-tests"
TOKEN = "task-token-secret-4f0c9e"
NOW = dt.datetime(2026, 11, 27, 20, 22, tzinfo=dt.UTC)
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:restore:run-1"


@dataclass
class Env:
    sink: AuditSink
    alice: str  # requester
    bob: str  # approver
    alice_clients: Clients
    bob_clients: Clients


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


def _decide(
    sink: AuditSink, sfn: Any, request_id: str, who: Clients, *, approve: bool, reason: str | None = None
) -> dict[str, Any]:
    """decide() as ``who``, with a fresh proof (the stub is not an SFNClient to the type checker)."""
    kind = "approve" if approve else "reject"
    return decide(
        sink,
        sfn,
        request_id,
        approve=approve,
        reason=reason,
        decider_arn=caller_arn(who),
        proof=proof(who, kind, request_id),
        now=NOW,
    )


def _sent_message(sfn: StubSFN) -> tuple[bool, dict[str, Any]]:
    name, kwargs = sfn.calls[-1]
    if name == "SendTaskSuccess":
        return True, json.loads(kwargs["output"])
    return False, json.loads(kwargs["cause"])


def _record(env: Env, request_id: str, sfn: StubSFN) -> dict[str, Any]:
    approved, message = _sent_message(sfn)
    return record_decision(env.sink, request_id, approved=approved, message=message, verify=_verify)


def _verify(p: Any, purpose: str) -> str:
    return identity_proof.verify_proof(p, purpose, region="us-east-1")


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
    return remember(session)


def _setup() -> Env:
    clients = make_clients(boto3.Session())
    key_arn = clients.kms.create_key(Description="backup key")["KeyMetadata"]["Arn"]
    clients.s3.create_bucket(Bucket=BUCKET)
    sink = AuditSink(clients=clients, bucket=BUCKET, kms_key_arn=key_arn)
    alice, bob = _principal("alice"), _principal("bob")
    return Env(sink, caller_arn(alice), caller_arn(bob), alice, bob)


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


def test_request_approve_record_flow(env: Env) -> None:
    request = _request(env)
    rid = request.request_id
    open_request(env.sink, request, TOKEN)

    assert [r.request_id for r in pending(env.sink, now=NOW)] == [rid]
    assert load(env.sink, rid) == (request, TOKEN)

    sfn = StubSFN()
    sent = _decide(env.sink, sfn, rid, env.bob_clients, approve=True, reason="ticket OPS-1")
    assert sent["decision"] == "approved"
    [(name, kwargs)] = sfn.calls
    assert name == "SendTaskSuccess" and kwargs["taskToken"] == TOKEN
    # The CLI wrote nothing: still pending, one audit record (the request).
    assert [r.request_id for r in pending(env.sink, now=NOW)] == [rid]
    assert _events(env, rid) == [("restore.requested", env.alice)]

    confirmed = _record(env, rid, sfn)
    assert confirmed["approvedBy"] == env.bob and confirmed["requestId"] == rid
    assert pending(env.sink, now=NOW) == []
    assert _events(env, rid) == [("restore.requested", env.alice), ("restore.approved", env.bob)]
    assert _record(env, rid, sfn) == confirmed  # a retried RecordDecision finds its own decision

    key = record_outcome(env.sink, rid, "restore.completed", {"users": 10}, actor=EXECUTION)
    assert key.startswith("audit/chain/")
    last = read_records(env.sink, subject_id=rid)[-1]
    assert (last["event"], last["actor"], last["details"]) == (
        "restore.completed",
        EXECUTION,
        {"users": 10, "requestId": rid},
    )


def test_token_and_request_are_sealed(env: Env) -> None:
    request = _request(env)
    open_request(env.sink, request, TOKEN)
    sfn = StubSFN()
    _decide(env.sink, sfn, request.request_id, env.bob_clients, approve=True)
    _record(env, request.request_id, sfn)
    stored = _stored_bytes(env)
    assert stored.count(b"CBK1") == 4  # request, decision, two audit records
    for plaintext in (TOKEN.encode(), b"us-east-1_AbC123", b"cb-backups", b"requestedBy", env.bob.encode()):
        assert plaintext not in stored


def test_the_cli_refuses_self_approval_before_sending(env: Env) -> None:
    request = _request(env)
    open_request(env.sink, request, TOKEN)
    sfn = StubSFN()
    with pytest.raises(SelfApprovalRefused) as info:
        _decide(env.sink, sfn, request.request_id, env.alice_clients, approve=True)
    assert "alice" not in str(info.value)
    assert sfn.calls == []
    assert [r.request_id for r in pending(env.sink, now=NOW)] == [request.request_id]


def test_person_rules() -> None:
    user = "arn:aws:iam::123456789012:user/alice"
    assert same_principal(user, "arn:aws:iam::123456789012:user/ops/Alice")  # path and case do not matter
    assert not same_principal(user, "arn:aws:iam::210987654321:user/alice")  # another account
    assert not same_principal(user, "arn:aws-cn:iam::123456789012:user/alice")  # another partition
    role = "arn:aws:sts::123456789012:assumed-role/operator/alice"
    assert same_principal(role, "arn:aws:sts::123456789012:assumed-role/approver/ALICE")  # another role
    assert same_principal(role, user)  # the session name is the pinned user name
    assert not same_principal(role, "arn:aws:sts::123456789012:assumed-role/operator/alice-2")
    assert not same_principal(role, "arn:aws:sts::123456789012:assumed-role/operator/bob")
    assert not same_principal("", "")
    assert principal_id(" not-an-arn ") == "not-an-arn"


def test_requester_may_withdraw_by_rejecting(env: Env) -> None:
    request = _request(env)
    open_request(env.sink, request, TOKEN)
    sfn = StubSFN()
    sent = _decide(env.sink, sfn, request.request_id, env.alice_clients, approve=False)
    assert sent["withdrawn"] is True
    [(name, kwargs)] = sfn.calls
    assert (name, kwargs["error"]) == ("SendTaskFailure", "ApprovalRejected")
    # The execution's RecordRejection proves who rejected from the cause, and records a withdrawal.
    settings = {"bucket": BUCKET, "prefix": "", "kmsKeyArn": env.sink.kms_key_arn}
    outcome = restore_steps.record_decision(
        env.sink.clients,
        cast(Any, {"requestId": request.request_id, "settings": settings}),
        "rejected",
        None,
        {"Error": "ApprovalRejected", "Cause": kwargs["cause"]},
    )
    assert outcome == {"decision": "withdrawn"}
    events = read_records(env.sink, subject_id=request.request_id)
    assert [(r["event"], r["actor"]) for r in events][1] == ("restore.withdrawn", env.alice)
    assert (events[-1]["event"], events[-1]["details"]["decision"]) == ("restore.failed", "withdrawn")


def test_reject_is_recorded_as_the_proven_rejecter(env: Env) -> None:
    request = _request(env)
    open_request(env.sink, request, TOKEN)
    sfn = StubSFN()
    _decide(env.sink, sfn, request.request_id, env.bob_clients, approve=False, reason="not today")
    assert _record(env, request.request_id, sfn) == {"decision": "rejected", "decidedBy": env.bob}
    [_, rejected] = read_records(env.sink, subject_id=request.request_id)
    assert (rejected["event"], rejected["actor"], rejected["details"]["reason"]) == (
        "restore.rejected",
        env.bob,
        "not today",
    )
    assert approval.stored_verdict(env.sink, request.request_id) == "rejected"


def test_a_decided_request_is_not_sent_again(env: Env) -> None:
    request = _request(env)
    open_request(env.sink, request, TOKEN)
    sfn = StubSFN()
    _decide(env.sink, sfn, request.request_id, env.bob_clients, approve=True)
    _record(env, request.request_id, sfn)
    carol = _principal("carol")
    with pytest.raises(ApprovalAlreadyDecided):
        _decide(env.sink, sfn, request.request_id, carol, approve=False)
    assert len(sfn.calls) == 1


def test_expired_request_is_not_pending_and_refused(env: Env) -> None:
    request = _request(env, expires_in=dt.timedelta(minutes=1))
    open_request(env.sink, request, TOKEN)
    late = NOW + dt.timedelta(minutes=2)
    assert pending(env.sink, now=late) == []
    sfn = StubSFN()
    with pytest.raises(ApprovalExpired):
        decide(
            env.sink,
            cast(Any, sfn),
            request.request_id,
            approve=True,
            reason=None,
            decider_arn=env.bob,
            proof=proof(env.bob_clients, "approve", request.request_id),
            now=late,
        )
    assert sfn.calls == []


@pytest.mark.parametrize("code", ["TaskTimedOut", "InvalidToken", "TaskDoesNotExist"])
def test_dead_token_is_expired(env: Env, code: str) -> None:
    request = _request(env)
    open_request(env.sink, request, TOKEN)
    with pytest.raises(ApprovalExpired):
        _decide(env.sink, StubSFN(fail_code=code), request.request_id, env.bob_clients, approve=True)
    assert approval.stored_verdict(env.sink, request.request_id) is None


@pytest.mark.parametrize("status", ["ABORTED", "FAILED", "SUCCEEDED", "GONE", "UNREACHABLE"])
def test_no_decision_is_sent_for_a_restore_that_no_longer_waits(env: Env, status: str) -> None:
    request = _request(env)
    open_request(env.sink, request, TOKEN)
    sfn = StubSFN(status=status)
    error = EndpointUnreachable if status == "UNREACHABLE" else ApprovalExpired
    with pytest.raises(error):
        _decide(env.sink, sfn, request.request_id, env.bob_clients, approve=True)
    assert sfn.calls == []
    assert approval.stored_verdict(env.sink, request.request_id) is None


def test_unknown_request(env: Env) -> None:
    with pytest.raises(ApprovalNotFound):
        _decide(env.sink, StubSFN(), new_request_id(NOW), env.bob_clients, approve=True)
    with pytest.raises(InvalidRequest):
        approval.check_request_id("rr-../../x")


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
    _decide(env.sink, sfn, rid, env.bob_clients, approve=True)
    assert sfn.calls[0][1]["taskToken"] == "token-2"


def test_pending_lists_only_open_requests_in_order(env: Env) -> None:
    first = _request(env, requested_at=NOW.isoformat())
    second = _request(
        env, request_id=new_request_id(NOW), requested_at=(NOW + dt.timedelta(minutes=1)).isoformat()
    )
    decided = _request(env, request_id=new_request_id(NOW))
    for r in (second, decided, first):
        open_request(env.sink, r, TOKEN)
    sfn = StubSFN()
    _decide(env.sink, sfn, decided.request_id, env.bob_clients, approve=False)
    _record(env, decided.request_id, sfn)
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

    _decide(env.sink, sfn, request.request_id, env.bob_clients, approve=True)

    described = _finished(sfn, execution)
    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    confirmed = record_decision(env.sink, request.request_id, approved=True, message=output, verify=_verify)
    assert confirmed["approvedBy"] == env.bob
    # delivered once: repeating it finds the decision recorded
    with pytest.raises(ApprovalAlreadyDecided):
        _decide(env.sink, sfn, request.request_id, env.bob_clients, approve=True)


def test_rejection_fails_a_real_execution_with_approval_rejected(engine_env: Any) -> None:
    env, sqs, sfn, machine, queue = engine_env
    execution, token = _start(sqs, sfn, machine, queue)
    request = _request(env, execution_arn=execution)
    open_request(env.sink, request, token)

    _decide(env.sink, sfn, request.request_id, env.bob_clients, approve=False, reason="not today")

    described = _finished(sfn, execution)
    assert described["status"] == "FAILED"
    assert described.get("error") == "ApprovalRejected"


def test_a_token_no_execution_waits_on_is_expired(engine_env: Any) -> None:
    env, sqs, sfn, machine, queue = engine_env
    execution, _ = _start(sqs, sfn, machine, queue)
    request = _request(env, execution_arn=execution)
    open_request(env.sink, request, "not-a-live-token")
    with pytest.raises(ApprovalExpired):
        _decide(env.sink, sfn, request.request_id, env.bob_clients, approve=True)
    assert [e for e, _ in _events(env, request.request_id)] == ["restore.requested"]


def test_a_restore_that_is_gone_gets_no_decision_at_all(engine_env: Any) -> None:
    env, _, sfn, _, _ = engine_env
    request = _request(env)  # its execution ARN names no execution
    open_request(env.sink, request, "any-token")
    with pytest.raises(ApprovalExpired, match="GONE"):
        _decide(env.sink, sfn, request.request_id, env.bob_clients, approve=True)
    assert [e for e, _ in _events(env, request.request_id)] == ["restore.requested"]
