"""Restore approvals: a Step Functions task token, held sealed in S3 until another principal decides.

The RequestApproval state (``lambda:invoke.waitForTaskToken``) calls :func:`open_request`, which seals the request
and its task token into ``approvals/<request id>/request.bin``. The token is a capability (whoever holds it can
resume the execution), so it is never readable without the backup KMS key, never logged, never notified.
``cognito-backuper approve|reject`` calls :func:`decide` with the ARN from the caller's own STS GetCallerIdentity;
the decision is sealed into ``approvals/<request id>/decision.bin`` with ``IfNoneMatch="*"`` (the first decision
wins, exactly once) and only then sent to Step Functions. After the token returns, the RecordDecision state calls
:func:`confirm_approval`, which trusts the sealed decision, not the token's output: a bare SendTaskSuccess from
someone who bypassed :func:`decide` fails there.

Who counts as the same principal (the requester may not approve; see :func:`same_principal`): ARNs are compared
by partition, account, kind and name, case-insensitively (IAM names are unique regardless of case). An IAM user
is its user name (the path is ignored); an assumed role is ROLE + SESSION NAME, so two sessions of one role with
different session names are different principals. That is what identifies people behind shared roles (IAM
Identity Center names the session after the user); trust policies of roles that may request or approve should
pin the session name (``sts:RoleSessionName`` = ``${aws:username}``) or require ``sts:SourceIdentity`` so nobody
can pick a new session name to approve their own request. The requester may reject (cancel) their own request.

Every request, approval, rejection, refusal, expiry and outcome is an audit record (pipeline.sealing.audit).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import boto3
import botocore.exceptions

from pipeline.core.aws import SDK_CONFIG, caller_arn, error_code, sdk_errors
from pipeline.core.errors import (
    ApprovalAlreadyDecided,
    ApprovalExpired,
    ApprovalNotFound,
    AuditRecordExists,
    IntegrityError,
    InvalidRequest,
    SelfApprovalRefused,
    TamperedError,
)
from pipeline.sealing import audit
from pipeline.sealing.audit import AuditSink, get_document, iso, put_document
from pipeline.sealing.envelope import APP

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

REQUEST_NAME = "request.bin"
DECISION_NAME = "decision.bin"
REJECTED_ERROR = "ApprovalRejected"  # the errorType the restore ASL's Catch matches
DEFAULT_REJECT_CAUSE = "rejected by an approver"
WITHDRAWN_CAUSE = "withdrawn by the requester"
MAX_REASON_CHARS = 1000
TOPIC_ENV = "APPROVAL_TOPIC_ARN"
OutcomeEvent = Literal["restore.expired", "restore.completed", "restore.failed"]
_OUTCOMES = frozenset({"restore.expired", "restore.completed", "restore.failed"})
_IDENTITY_FIELDS = (
    "requestedBy",
    "backupUri",
    "target",
    "selective",
    "executionArn",
    "snapshotUri",
    "backup",
)
_REQUEST_ID = re.compile(r"^rr-\d{8}T\d{6}Z-[0-9a-f]{12}$")
# Step Functions' answers for a token that can no longer resume anything.
_DEAD_TOKEN_CODES = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})
_ARN = re.compile(r"^arn:(?P<partition>[^:]+):(?P<service>iam|sts)::(?P<account>\d{12}):(?P<resource>.+)$")


def new_request_id(now: dt.datetime | None = None) -> str:
    """Sortable by time, unguessable suffix: ``rr-20261127T202200Z-0123456789ab``."""
    now = now or dt.datetime.now(dt.UTC)
    return f"rr-{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(6)}"


def check_request_id(request_id: str) -> str:
    """Request ids come from the command line and name S3 keys: accept only what new_request_id makes."""
    if not _REQUEST_ID.match(request_id):
        raise InvalidRequest(f"not an approval request id: {request_id!r}")
    return request_id


@dataclass
class ApprovalRequest:
    request_id: str
    requested_by: str
    requested_at: str
    expires_at: str
    backup_uri: str
    target: dict[str, Any]  # mode / poolId / poolName
    selective: dict[str, Any] = field(default_factory=dict)
    execution_arn: str = ""
    snapshot_uri: str | None = None
    engine_endpoint: str | None = None
    # The approved backup: pool, time, counts, manifest SHA-256 and S3 version (restore.steps.approved_backup).
    backup: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {_camel(k): v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ApprovalRequest:
        required = ("requestId", "requestedBy", "requestedAt", "expiresAt", "backupUri", "target")
        missing = [k for k in required if not data.get(k)]
        if missing:
            raise InvalidRequest(f"approval request lacks {', '.join(missing)}")
        for name in ("requestedAt", "expiresAt"):
            _parse_time(data[name], name)
        if not isinstance(data["target"], Mapping) or not isinstance(data.get("selective") or {}, Mapping):
            raise InvalidRequest("approval request target and selective must be objects")
        return cls(
            request_id=check_request_id(str(data["requestId"])),
            requested_by=str(data["requestedBy"]),
            requested_at=str(data["requestedAt"]),
            expires_at=str(data["expiresAt"]),
            backup_uri=str(data["backupUri"]),
            target=dict(data["target"]),
            selective=dict(data.get("selective") or {}),
            execution_arn=str(data.get("executionArn") or ""),
            snapshot_uri=_optional_str(data.get("snapshotUri")),
            engine_endpoint=_optional_str(data.get("engineEndpoint")),
            backup=dict(data.get("backup") or {}) if isinstance(data.get("backup"), Mapping) else {},
        )

    def expired(self, now: dt.datetime | None = None) -> bool:
        return (now or dt.datetime.now(dt.UTC)) >= _parse_time(self.expires_at, "expiresAt")


def request_key(sink: AuditSink, request_id: str) -> str:
    return f"{sink.approvals_root}{check_request_id(request_id)}/{REQUEST_NAME}"


def decision_key(sink: AuditSink, request_id: str) -> str:
    return f"{sink.approvals_root}{check_request_id(request_id)}/{DECISION_NAME}"


def approval_context(request_id: str, name: str) -> dict[str, str]:
    return {"app": APP, "approval": request_id, "object": name}


def open_request(sink: AuditSink, request: ApprovalRequest, task_token: str) -> None:
    """Record a request with its task token, audit it and notify approvers.

    Idempotent for the same token. A retried RequestApproval state brings a NEW token: it replaces the stored one
    (a plain put) as long as no decision exists, since only the newest token can still resume the execution.
    """
    request_id = check_request_id(request.request_id)
    if not task_token:
        raise InvalidRequest("an approval request needs a task token")
    if audit.exists(sink, decision_key(sink, request_id)):
        raise ApprovalAlreadyDecided(f"approval request {request_id} was already decided")
    descriptor = request.to_dict()
    previous = _stored_request(sink, request_id)
    if previous is not None:
        before = previous.get("request") or {}
        # A retry may recompute times; what is being restored, where and by whom must not change.
        if any(before.get(k) != descriptor[k] for k in _IDENTITY_FIELDS):
            raise InvalidRequest(f"approval request {request_id} already exists with other parameters")
        if previous.get("taskToken") == task_token and before == descriptor:
            return
    # Audit first: a stored request always has its audit record (a crash here repeats the record, never loses it).
    audit.record(
        sink,
        "restore.requested",
        request_id,
        actor=request.requested_by,
        details={
            "requestId": request_id,
            "backupUri": request.backup_uri,
            "target": _target_summary(request.target),
            "executionArn": request.execution_arn,
            "expiresAt": request.expires_at,
            "snapshotUri": request.snapshot_uri,
            "tokenReissued": previous is not None,
        },
    )
    document = {"request": descriptor, "taskToken": task_token}
    put_document(
        sink,
        request_key(sink, request_id),
        document,
        approval_context(request_id, REQUEST_NAME),
        create_only=False,
    )
    _notify(sink, request)


def load(sink: AuditSink, request_id: str) -> tuple[ApprovalRequest, str]:
    """The request and its task token; ApprovalNotFound when there is none."""
    stored = _stored_request(sink, check_request_id(request_id))
    if stored is None:
        raise ApprovalNotFound(f"no approval request {request_id}")
    try:
        request = ApprovalRequest.from_dict(stored["request"])
        token = stored["taskToken"]
    except (InvalidRequest, KeyError, TypeError) as exc:
        raise IntegrityError(f"approval request {request_id} is malformed") from exc
    if request.request_id != request_id or not isinstance(token, str) or not token:
        raise TamperedError(f"approval request {request_id} does not match its key")
    return request, token


def pending(sink: AuditSink, now: dt.datetime | None = None) -> list[ApprovalRequest]:
    """Requests with no decision that have not expired, oldest first."""
    now = now or dt.datetime.now(dt.UTC)
    names: dict[str, set[str]] = {}
    for key in audit.list_keys(sink, sink.approvals_root):
        parts = key[len(sink.approvals_root) :].split("/")
        if len(parts) == 2 and _REQUEST_ID.match(parts[0]):
            names.setdefault(parts[0], set()).add(parts[1])
    waiting: list[ApprovalRequest] = []
    for request_id, objects in names.items():
        if REQUEST_NAME not in objects or DECISION_NAME in objects:
            continue
        request, _ = load(sink, request_id)
        if not request.expired(now):
            waiting.append(request)
    waiting.sort(key=lambda r: (r.requested_at, r.request_id))
    return waiting


def execution_status(sfn: SFNClient, request: ApprovalRequest) -> str:
    """RUNNING while the restore still waits; an execution that no longer exists reads as GONE."""
    with sdk_errors():
        try:
            return sfn.describe_execution(executionArn=request.execution_arn)["status"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "ExecutionDoesNotExist":
                return "GONE"
            raise


def decide(
    sink: AuditSink,
    sfn: SFNClient,
    request_id: str,
    *,
    approve: bool,
    reason: str | None,
    approver_arn: str,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Record the first decision on a request and hand it to the waiting execution.

    ``approver_arn`` must come from the caller's STS GetCallerIdentity, never from what someone typed. The
    decision is sealed before it is sent, so RecordDecision can always check it. If sending failed after the
    decision was stored, the same approver repeating the same decision re-sends it.
    """
    check_request_id(request_id)
    if not approver_arn:
        raise InvalidRequest("the approver's identity is required")
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        raise InvalidRequest(f"a reason is at most {MAX_REASON_CHARS} characters")
    request, token = load(sink, request_id)
    # The requester may say no to its own request: that is a withdrawal, recorded as one, not a rejection.
    withdrawn = not approve and same_principal(approver_arn, request.requested_by)
    verdict = "approved" if approve else "withdrawn" if withdrawn else "rejected"
    if approve and same_principal(approver_arn, request.requested_by):
        _refuse(sink, request_id, approver_arn, "self-approval")
        raise SelfApprovalRefused(f"the requester of {request_id} cannot approve it; another principal must")

    existing = _stored_decision(sink, request_id)
    if existing is not None:
        return _redeliver(sink, sfn, request_id, token, existing, approver_arn, verdict)
    now = now or dt.datetime.now(dt.UTC)
    if request.expired(now):
        raise ApprovalExpired(f"approval request {request_id} expired at {request.expires_at}")
    # Nothing is recorded for a decision that cannot be delivered: an unreachable engine raises here (exit 3),
    # an execution that was stopped or failed refuses it.
    status = execution_status(sfn, request)
    if status != "RUNNING":
        raise ApprovalExpired(
            f"the restore waiting on {request_id} is no longer running ({status}); no decision was recorded"
        )

    decision = {
        "requestId": request_id,
        "decision": verdict,
        "approved": approve,
        "decidedBy": approver_arn,
        "decidedAt": iso(now),
        "reason": reason,
        "requestedBy": request.requested_by,
        "tokenSha256": hashlib.sha256(token.encode("utf-8")).hexdigest(),
    }
    try:
        put_document(
            sink,
            decision_key(sink, request_id),
            decision,
            approval_context(request_id, DECISION_NAME),
            create_only=True,
        )
    except AuditRecordExists as exc:  # a concurrent decision won the race
        raise ApprovalAlreadyDecided(f"approval request {request_id} was already decided") from exc
    audit.record(
        sink,
        f"restore.{verdict}",
        request_id,
        actor=approver_arn,
        details={"requestId": request_id, "reason": reason, "executionArn": request.execution_arn},
    )
    try:
        _send(sfn, token, decision)
    except _DeadToken as exc:
        audit.record(
            sink,
            "restore.expired",
            request_id,
            actor=approver_arn,
            details={"requestId": request_id, "decision": verdict, "cause": exc.code},
        )
        raise ApprovalExpired(
            f"the execution waiting on {request_id} no longer accepts a decision ({exc.code})"
        ) from exc
    return _public(decision)


def confirm_approval(sink: AuditSink, request_id: str, approval_output: Mapping[str, Any]) -> dict[str, Any]:
    """Check that the token's output matches the sealed decision; the decision, not the output, is trusted."""
    request, _ = load(sink, request_id)
    decision = _stored_decision(sink, request_id)
    # Whoever sent the output is unknown here: the refusal's actor is this task's own identity, the claim a detail.
    claimed = str(approval_output.get("approvedBy") or "")
    if decision is None:
        _refuse(sink, request_id, caller_arn(sink.clients), "no-recorded-decision", claimedApprover=claimed)
        raise TamperedError(f"approval of {request_id} has no recorded decision: it did not come from decide")
    decided_by = str(decision.get("decidedBy") or "")
    if (
        decision.get("approved") is not True
        or decision.get("requestId") != request_id
        or approval_output.get("approved") is not True
        or approval_output.get("approvedBy") != decided_by
        or approval_output.get("requestId", request_id) != request_id
    ):
        _refuse(
            sink,
            request_id,
            caller_arn(sink.clients),
            "output-does-not-match-decision",
            claimedApprover=claimed,
        )
        raise TamperedError(f"the approval received for {request_id} does not match its recorded decision")
    if same_principal(decided_by, request.requested_by):
        _refuse(sink, request_id, caller_arn(sink.clients), "self-approval", claimedApprover=decided_by)
        raise SelfApprovalRefused(f"the requester of {request_id} cannot approve it")
    return {"approvedBy": decided_by, "approvedAt": decision["decidedAt"], "requestId": request_id}


def record_outcome(
    sink: AuditSink,
    request_id: str,
    event: OutcomeEvent,
    details: Mapping[str, Any],
    *,
    actor: str | None = None,
) -> str:
    """Audit how a restore ended. The actor defaults to the caller's own identity (the task's role)."""
    check_request_id(request_id)
    if event not in _OUTCOMES:
        raise InvalidRequest(f"not a restore outcome: {event!r}")
    return audit.record(
        sink,
        event,
        request_id,
        actor=actor or caller_arn(sink.clients),
        details={**details, "requestId": request_id},
    )


def principal_id(arn: str) -> str:
    """The identity an ARN stands for, in a form where equal means same principal (see the module docstring)."""
    match = _ARN.match(arn.strip())
    if match is None:
        return arn.strip().casefold()
    kind, _, rest = match["resource"].partition("/")
    if kind == "assumed-role":
        role, _, session = rest.partition("/")
        name = f"{role}/{session}"
    elif kind in {"user", "federated-user", "role"}:
        name = rest.rpartition("/")[2]  # paths do not change who it is
    else:
        name = rest
    return f"{match['partition']}:{match['account']}:{kind}:{name}".casefold()


def same_principal(a: str, b: str) -> bool:
    return principal_id(a) == principal_id(b)


class _DeadToken(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _send(sfn: SFNClient, token: str, decision: Mapping[str, Any]) -> None:
    with sdk_errors():
        try:
            if decision["approved"]:
                sfn.send_task_success(taskToken=token, output=json.dumps(_public(decision)))
            else:
                sfn.send_task_failure(
                    taskToken=token,
                    error=REJECTED_ERROR,
                    cause=decision.get("reason")
                    or (WITHDRAWN_CAUSE if decision.get("decision") == "withdrawn" else DEFAULT_REJECT_CAUSE),
                )
        except botocore.exceptions.ClientError as exc:
            code = error_code(exc)
            if code in _DEAD_TOKEN_CODES:
                raise _DeadToken(code) from exc
            raise


def _redeliver(
    sink: AuditSink,
    sfn: SFNClient,
    request_id: str,
    token: str,
    existing: Mapping[str, Any],
    approver_arn: str,
    verdict: str,
) -> dict[str, Any]:
    if existing.get("decision") != verdict or not same_principal(
        str(existing.get("decidedBy")), approver_arn
    ):
        raise ApprovalAlreadyDecided(f"approval request {request_id} was already {existing.get('decision')}")
    try:
        _send(sfn, token, existing)
    except _DeadToken as exc:  # it was delivered before (or the execution is gone): nothing left to do
        raise ApprovalAlreadyDecided(f"approval request {request_id} was already {verdict}") from exc
    return _public(existing)


def _public(decision: Mapping[str, Any]) -> dict[str, Any]:
    """What the execution receives as the task output and the CLI prints: no token, no token hash."""
    out: dict[str, Any] = {
        "approved": bool(decision["approved"]),
        "requestId": decision["requestId"],
        "reason": decision.get("reason"),
    }
    if decision["approved"]:
        out |= {"approvedBy": decision["decidedBy"], "approvedAt": decision["decidedAt"]}
    else:
        out |= {"rejectedBy": decision["decidedBy"], "rejectedAt": decision["decidedAt"]}
        out["withdrawn"] = decision.get("decision") == "withdrawn"
    return out


def _refuse(sink: AuditSink, request_id: str, actor: str, reason: str, **details: Any) -> None:
    audit.record(
        sink,
        "approval.refused",
        request_id,
        actor=actor,
        details={"requestId": request_id, "reason": reason, **details},
    )


def _stored_request(sink: AuditSink, request_id: str) -> dict[str, Any] | None:
    key = request_key(sink, request_id)
    if not audit.exists(sink, key):
        return None
    return get_document(sink, key, approval_context(request_id, REQUEST_NAME))


def stored_verdict(sink: AuditSink, request_id: str) -> str | None:
    """The sealed decision's verdict (approved, rejected, withdrawn), or None when there is none."""
    document = _stored_decision(sink, check_request_id(request_id))
    return None if document is None else str(document.get("decision"))


def _stored_decision(sink: AuditSink, request_id: str) -> dict[str, Any] | None:
    key = decision_key(sink, request_id)
    if not audit.exists(sink, key):
        return None
    document = get_document(sink, key, approval_context(request_id, DECISION_NAME))
    if document.get("requestId") != request_id or not isinstance(document.get("approved"), bool):
        raise TamperedError(f"decision for {request_id} does not match its key")
    return document


def _notify(sink: AuditSink, request: ApprovalRequest) -> None:
    topic = os.environ.get(TOPIC_ENV)
    if not topic:
        return
    target = _target_summary(request.target)
    lines = [
        "A Cognito user pool restore is waiting for approval by someone other than its requester.",
        "",
        f"Request:  {request.request_id}",
        f"Target:   {' '.join(f'{k}={v}' for k, v in target.items())}",
        f"Backup:   {request.backup_uri}",
        f"Expires:  {request.expires_at}",
        "",
        f"Approve:  cognito-backuper approve {request.request_id}",
        f'Reject:   cognito-backuper reject {request.request_id} --reason "..."',
    ]
    sns = boto3.client("sns", region_name=sink.clients.region, config=SDK_CONFIG)
    with sdk_errors():
        sns.publish(
            TopicArn=topic,
            Subject=f"cognito-backuper: restore approval {request.request_id}",
            Message="\n".join(lines),
        )


def _target_summary(target: Mapping[str, Any]) -> dict[str, Any]:
    return {k: target[k] for k in ("mode", "poolId", "poolName") if k in target}


def _parse_time(value: Any, name: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidRequest(f"approval request {name} is not an ISO-8601 time") from exc
    if parsed.tzinfo is None:
        raise InvalidRequest(f"approval request {name} needs a time zone")
    return parsed


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
