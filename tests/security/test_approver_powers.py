"""Attacks on the decision: self-approval under another role or session name, an approval nobody proved, a decision
planted by the approver, and the powers the deployed roles give each person.

The flow is played on moto against RecordDecision's own code (pipeline.restore.approval.record_decision, which
executes the identity proof through moto's STS); the roles on the synthesized template. On the parent commit
(24dbc05) self-approval as ``approver/alice`` of ``operator/alice``'s request passed (two "principals"), a bare
SendTaskSuccess whose output named the sealed decision passed, and the approver role held s3:PutObject on
``approvals/*/decision.bin`` and ``audit/*`` and kms:GenerateDataKey: these tests fail there (checked by running
them against that tree; the imports of record_decision/identity_proof fail first).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipeline.core import identity_proof
from pipeline.core.aws import Clients, caller_arn, make_clients
from pipeline.core.errors import IdentityNotProven, SelfApprovalRefused, TamperedError
from pipeline.restore import approval
from pipeline.restore.approval import ApprovalRequest, new_request_id, open_request, record_decision
from pipeline.sealing import audit
from pipeline.sealing.audit import AuditSink, put_document, read_records
from tests.helpers.restore_flow import proof, remember
from tests.helpers.synth import Synth, as_list, role_name_of, statements

REGION = "us-east-1"
BUCKET = "cb-security-approvals"
TOKEN = "task-token-4f0c9e"
NOW = dt.datetime.now(dt.UTC)


def _verify(p: Any, purpose: str) -> str:
    return identity_proof.verify_proof(p, purpose, region=REGION)


def _role_session(role: str, session: str) -> Clients:
    """Credentials of an assumed-role session, as STS issues them (moto keeps the role and session name)."""
    iam = boto3.client("iam")
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_role(RoleName=role, AssumeRolePolicyDocument="{}")
    creds = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::123456789012:role/{role}", RoleSessionName=session
    )["Credentials"]
    return remember(
        boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=REGION,
        )
    )


@pytest.fixture
def sink() -> Iterator[AuditSink]:
    with mock_aws():
        clients = make_clients(boto3.Session())
        key_arn = clients.kms.create_key(Description="backup key")["KeyMetadata"]["Arn"]
        clients.s3.create_bucket(Bucket=BUCKET)
        yield AuditSink(clients=clients, bucket=BUCKET, kms_key_arn=key_arn)


def _open(sink: AuditSink, requester: Clients) -> str:
    request = ApprovalRequest(
        request_id=new_request_id(NOW),
        requested_by=caller_arn(requester),
        requested_at=NOW.isoformat(),
        expires_at=(NOW + dt.timedelta(hours=1)).isoformat(),
        backup_uri=f"s3://{BUCKET}/backups/us-east-1_AbC123/20261127T202200Z-a1b2c3/",
        target={"mode": "existing", "poolId": "us-east-1_Prod1", "poolName": None},
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:restore:x",
    )
    open_request(sink, request, TOKEN)
    return request.request_id


def _approval(who: Clients, request_id: str) -> dict[str, Any]:
    """What ``cognito-backuper approve`` sends as the task output."""
    return {
        "requestId": request_id,
        "approved": True,
        "reason": None,
        "proof": proof(who, "approve", request_id),
    }


def _last(sink: AuditSink, request_id: str) -> dict[str, Any]:
    return read_records(sink, subject_id=request_id)[-1]


@pytest.mark.parametrize(
    "approver",
    [("approver", "alice"), ("operator", "ALICE")],
    ids=["another-role-same-person", "same-role-other-case"],
)
def test_the_requester_cannot_approve_under_another_role(sink: AuditSink, approver: tuple[str, str]) -> None:
    requester = _role_session("operator", "alice")
    request_id = _open(sink, requester)
    # Alice, who asked as operator/alice, sends the token back herself with a valid proof of another session.
    with pytest.raises(SelfApprovalRefused, match="under any role or session"):
        record_decision(
            sink,
            request_id,
            approved=True,
            message=_approval(_role_session(*approver), request_id),
            verify=_verify,
        )
    refused = _last(sink, request_id)
    assert (refused["event"], refused["details"]["reason"]) == ("approval.refused", "self-approval")
    assert approval.stored_verdict(sink, request_id) is None  # nothing recorded as a decision


def test_another_person_may_approve(sink: AuditSink) -> None:
    request_id = _open(sink, _role_session("operator", "alice"))
    # alice-2 is another IAM user: the trust policies pin session names to the caller's own user name, so alice
    # cannot take it (test_trust_policies_pin_the_session_name_to_the_user below).
    bob = _role_session("approver", "alice-2")
    result = record_decision(
        sink, request_id, approved=True, message=_approval(bob, request_id), verify=_verify
    )
    assert result["approvedBy"] == caller_arn(bob)
    assert (_last(sink, request_id)["event"], _last(sink, request_id)["actor"]) == (
        "restore.approved",
        caller_arn(bob),
    )


@pytest.mark.parametrize(
    "message",
    [
        {},  # a bare SendTaskSuccess
        {"approved": True, "approvedBy": "arn:aws:iam::123456789012:user/bob"},  # the old output: a claim
        {"approved": True, "proof": "not a proof"},
    ],
    ids=["bare", "claimed-approver", "garbage-proof"],
)
def test_an_approval_nobody_proved_is_refused_and_audited(sink: AuditSink, message: dict[str, Any]) -> None:
    request_id = _open(sink, _role_session("operator", "alice"))
    with pytest.raises(IdentityNotProven):
        record_decision(sink, request_id, approved=True, message=message, verify=_verify)
    refused = _last(sink, request_id)
    assert (refused["event"], refused["details"]["reason"]) == ("approval.refused", "identity-not-proven")
    assert refused["actor"] == caller_arn(sink.clients)  # the pipeline's own identity, never the claim


def test_a_proof_for_another_request_is_refused(sink: AuditSink) -> None:
    request_id = _open(sink, _role_session("operator", "alice"))
    other = new_request_id(NOW)
    bob = _role_session("approver", "bob")
    message = {**_approval(bob, other), "requestId": request_id}
    with pytest.raises(IdentityNotProven, match="another purpose"):
        record_decision(sink, request_id, approved=True, message=message, verify=_verify)


def test_a_decision_planted_in_the_bucket_is_refused(sink: AuditSink) -> None:
    """The old approver's power: write approvals/<id>/decision.bin naming someone else, then send the token."""
    alice = _role_session("operator", "alice")
    request_id = _open(sink, alice)
    planted = {
        "requestId": request_id,
        "decision": "approved",
        "approved": True,
        "decidedBy": "arn:aws:sts::123456789012:assumed-role/approver/bob",
        "decidedAt": NOW.isoformat(),
        "recordedBy": caller_arn(alice),
    }
    put_document(
        sink,
        approval.decision_key(sink, request_id),
        planted,
        approval.approval_context(request_id, approval.DECISION_NAME),
        create_only=True,
    )
    with pytest.raises(TamperedError, match="not recorded by the pipeline"):
        record_decision(sink, request_id, approved=True, message={}, verify=_verify)
    assert _last(sink, request_id)["details"]["reason"] == "decision-not-recorded-by-the-pipeline"


def test_a_rejection_nobody_proved_is_recorded_as_unauthenticated(sink: AuditSink) -> None:
    """Any token holder can stop a restore; it cannot make the record name someone else for it."""
    request_id = _open(sink, _role_session("operator", "alice"))
    forged = {"requestId": request_id, "reason": "x", "proof": None, "rejectedBy": "arn:aws:iam::1:user/bob"}
    result = record_decision(sink, request_id, approved=False, message=forged, verify=_verify)
    assert result == {"decision": "rejected", "decidedBy": None}
    events = [(r["event"], r["actor"], r["details"].get("authenticated")) for r in read_records(sink)]
    assert events[-1] == ("restore.rejected", caller_arn(sink.clients), False)


def test_audit_records_name_their_writer_only(sink: AuditSink) -> None:
    request_id = _open(sink, _role_session("operator", "alice"))
    record_decision(
        sink,
        request_id,
        approved=True,
        message=_approval(_role_session("approver", "bob"), request_id),
        verify=_verify,
    )
    decision = audit.get_document(
        sink,
        approval.decision_key(sink, request_id),
        approval.approval_context(request_id, approval.DECISION_NAME),
    )
    assert decision["recordedBy"] == caller_arn(sink.clients)
    assert json.dumps(decision).count("proof") == 0  # the proof itself is never stored


# --- the deployed roles (synthesized template) -----------------------------------------------------------------


def _role_policies(synth: Synth, role_name: str) -> tuple[str, list[dict[str, Any]]]:
    roles = synth.resources("AWS::IAM::Role")
    [lid] = [k for k, r in roles.items() if (role_name_of(r) or "").endswith(f"-{role_name}")]
    found: list[dict[str, Any]] = []
    for policy in synth.resources("AWS::IAM::Policy").values():
        if {"Ref": lid} in policy["Properties"]["Roles"]:
            found.extend(statements(policy["Properties"]["PolicyDocument"]))
    return lid, found


def _actions(stmts: list[dict[str, Any]]) -> set[str]:
    return {a for s in stmts if s["Effect"] == "Allow" for a in as_list(s["Action"])}


def test_the_approver_role_can_only_send_tokens_and_read(default_synth: Synth) -> None:
    lid, stmts = _role_policies(default_synth, "approver")
    assert _actions(stmts) == {
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
        "states:DescribeExecution",
        "s3:ListBucket",
        "s3:GetObject",
        "kms:Decrypt",
    }
    # No key-policy statement lets it generate a data key (seal a decision or an audit record) either.
    for key in default_synth.resources("AWS::KMS::Key").values():
        for statement in statements(key["Properties"]["KeyPolicy"]):
            if lid in json.dumps(statement.get("Principal", {})):
                assert "kms:GenerateDataKey" not in as_list(statement["Action"]), statement


def test_trust_policies_pin_the_session_name_to_the_user(default_synth: Synth) -> None:
    roles = default_synth.resources("AWS::IAM::Role")
    for name in ("operator", "approver"):
        [role] = [r for r in roles.values() if (role_name_of(r) or "").endswith(f"-{name}")]
        [assume] = [
            s
            for s in statements(role["Properties"]["AssumeRolePolicyDocument"])
            if "sts:AssumeRole" in as_list(s["Action"])
        ]
        assert assume["Condition"]["StringEquals"] == {
            "sts:RoleSessionName": "${aws:username}",
            "sts:SourceIdentity": "${aws:username}",
        }


def test_the_bucket_refuses_unconditional_writes_of_audit_records_and_approvals(default_synth: Synth) -> None:
    [policy] = [
        p
        for p in default_synth.resources("AWS::S3::BucketPolicy").values()
        if "EnforceEncryption" in json.dumps(p)
    ]
    by_sid = {s.get("Sid"): s for s in statements(policy["Properties"]["PolicyDocument"])}
    audit_rule = by_sid["AuditRecordsAreCreatedOnly"]
    assert (audit_rule["Effect"], audit_rule["Action"]) == ("Deny", "s3:PutObject")
    assert audit_rule["Condition"] == {"Null": {"s3:if-none-match": "true"}}
    assert "/backups/audit/*" in json.dumps(audit_rule["Resource"])
    approvals_rule = by_sid["ApprovalsAreWrittenConditionally"]
    assert approvals_rule["Condition"] == {"Null": {"s3:if-none-match": "true", "s3:if-match": "true"}}
