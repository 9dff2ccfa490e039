"""Restore approvals: a Step Functions task token, sealed in S3, and people proven by STS, not by their word.

The RequestApproval state (``lambda:invoke.waitForTaskToken``) calls :func:`open_request`, which seals the request
and its task token into ``approvals/<request id>/request.bin``. The token is a capability (whoever holds it can
resume the execution), so it is never readable without the backup KMS key, never logged, never notified.

Who asked: ValidateRequest executes the requester's identity proof (pipeline.core.identity_proof, a signed STS
GetCallerIdentity for ``restore:<execution name>``); ``requestedBy`` is what STS answered, never a field of the
input. Who decided: ``cognito-backuper approve|reject`` (:func:`decide`) sends the task token back with a fresh
proof for ``approve:<request id>`` or ``reject:<request id>`` in its output (or, for a rejection, its cause), and
writes nothing. RecordDecision (:func:`record_decision`, the pipeline's own task role) executes that proof, refuses
a requester approving their own request, and only then seals ``approvals/<request id>/decision.bin`` (written once)
and the audit record. The approver role can send task tokens and read requests; it cannot write a decision or an
audit record, and a bare SendTaskSuccess without a valid proof fails the restore with an ``approval.refused``
record. A decision is recorded only once Step Functions delivered it, so an interrupted request (its execution
stopped or gone) never gets one.

Who counts as the same person (the requester may not approve; see :func:`principal_id`): the person behind an
ARN is its account plus its IAM user name, or, for an assumed role, its session name; the role is ignored. So
``assumed-role/operator/alice``, ``assumed-role/approver/alice`` and ``user/alice`` are one person, and the
requester cannot approve under another role. This is sound because the stack's operator and approver roles pin
the session name to the caller's own IAM user name in their trust policies (``sts:RoleSessionName`` =
``${aws:username}``, infra/access.py): ``alice`` cannot take the session name ``alice-2``, so
``operator/alice-2`` is a different person (the IAM user alice-2). Names compare case-insensitively (IAM names
are unique regardless of case). A role whose trust policy does not pin session names lets its holders pick any
name: do not let such roles request or approve (SECURITY.md, section 6). The requester may reject (withdraw) their
own request.

Every request, approval, rejection, refusal, expiry and outcome is an audit record (pipeline.sealing.audit).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import boto3
import botocore.exceptions

from pipeline.core import identity_proof
from pipeline.core.aws import SDK_CONFIG, caller_arn, error_code, sdk_errors
from pipeline.core.errors import (
    ApprovalAlreadyDecided,
    ApprovalExpired,
    ApprovalNotFound,
    AuditRecordExists,
    IdentityNotProven,
    IntegrityError,
    InvalidRequest,
    SelfApprovalRefused,
    TamperedError,
)
from pipeline.core.layout import is_stamped_id, new_stamped_id
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
REQUEST_ID_PREFIX = "rr-"
# Step Functions' answers for a token that can no longer resume anything.
_DEAD_TOKEN_CODES = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})
_ARN = re.compile(r"^arn:(?P<partition>[^:]+):(?P<service>iam|sts)::(?P<account>\d{12}):(?P<resource>.+)$")


def new_request_id(now: dt.datetime | None = None) -> str:
    """Sortable by time, unguessable suffix: ``rr-20261127T202200Z-0123456789ab``."""
    return new_stamped_id(REQUEST_ID_PREFIX, now)


def check_request_id(request_id: str) -> str:
    """Request ids come from the command line and name S3 keys: accept only what new_request_id makes."""
    if not is_stamped_id(REQUEST_ID_PREFIX, request_id):
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
    # Conditional writes only (the bucket policy refuses others): a new request is created once; a re-issued
    # token replaces exactly the version read above (If-Match), never a concurrent one.
    put_document(
        sink,
        request_key(sink, request_id),
        document,
        approval_context(request_id, REQUEST_NAME),
        create_only=previous is None,
        if_match=None if previous is None else _etag(sink, request_key(sink, request_id)),
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
        if len(parts) == 2 and is_stamped_id(REQUEST_ID_PREFIX, parts[0]):
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
    decider_arn: str,
    proof: Mapping[str, Any],
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Hand a decision and its identity proof to the waiting execution; record nothing (RecordDecision does).

    ``decider_arn`` (the caller's own STS identity) only serves the early, friendly refusals below; the pipeline
    trusts the proof alone. Nothing is sent to a request that already has a decision, has expired or whose
    execution no longer waits (an interrupted restore).
    """
    check_request_id(request_id)
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        raise InvalidRequest(f"a reason is at most {MAX_REASON_CHARS} characters")
    request, token = load(sink, request_id)
    withdrawn = not approve and same_principal(decider_arn, request.requested_by)
    if approve and same_principal(decider_arn, request.requested_by):
        raise SelfApprovalRefused(
            f"the requester of {request_id} cannot approve it, under any role or session: another person must"
        )
    verdict = stored_verdict(sink, request_id)
    if verdict is not None:
        raise ApprovalAlreadyDecided(f"approval request {request_id} was already {verdict}")
    if request.expired(now or dt.datetime.now(dt.UTC)):
        raise ApprovalExpired(f"approval request {request_id} expired at {request.expires_at}")
    # An unreachable engine raises here (exit 3); an execution that was stopped or failed refuses the decision.
    status = execution_status(sfn, request)
    if status != "RUNNING":
        raise ApprovalExpired(
            f"the restore waiting on {request_id} is no longer running ({status}); no decision was recorded"
        )
    message = {"requestId": request_id, "approved": approve, "reason": reason, "proof": dict(proof)}
    with sdk_errors():
        try:
            if approve:
                sfn.send_task_success(taskToken=token, output=json.dumps(message))
            else:
                sfn.send_task_failure(taskToken=token, error=REJECTED_ERROR, cause=json.dumps(message))
        except botocore.exceptions.ClientError as exc:
            code = error_code(exc)
            if code in _DEAD_TOKEN_CODES:
                raise ApprovalExpired(
                    f"the execution waiting on {request_id} no longer accepts a decision ({code})"
                ) from exc
            raise
    out: dict[str, Any] = {"requestId": request_id, "approved": approve, "reason": reason}
    out["decision"] = "approved" if approve else "withdrawn" if withdrawn else "rejected"
    out["withdrawn"] = withdrawn
    return out


def record_decision(
    sink: AuditSink,
    request_id: str,
    *,
    approved: bool,
    message: Mapping[str, Any] | None,
    verify: Callable[[Any, str], str],
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """RecordDecision: prove who decided, refuse self-approval, then seal the decision and audit it.

    ``message`` is the token's output (an approval) or the parsed cause (a rejection); ``verify(proof,
    purpose)`` executes an identity proof and returns the ARN STS names (pipeline.core.identity_proof). A retried
    task finds its own sealed decision and returns it.
    """
    request, token = load(sink, request_id)
    own = caller_arn(sink.clients)
    existing = _stored_decision(sink, request_id)
    if existing is not None:
        # Only a retry of this very task may find a decision already sealed: one planted by anyone else (or
        # contradicting what Step Functions delivered) is refused.
        if existing.get("approved") is not approved or not same_principal(
            str(existing.get("recordedBy")), own
        ):
            _refuse(sink, request_id, own, "decision-not-recorded-by-the-pipeline")
            raise TamperedError(f"the decision stored for {request_id} was not recorded by the pipeline")
        return _decision_result(existing)
    message = message or {}
    kind = "approve" if approved else "reject"
    try:
        if message.get("requestId", request_id) != request_id:
            raise IdentityNotProven(f"the decision received was made for another request, not {request_id}")
        decided_by = verify(message.get("proof"), identity_proof.purpose(kind, request_id))
    except IdentityNotProven:
        _refuse(sink, request_id, own, "identity-not-proven", decision=kind)
        if approved:
            raise
        # A token holder can always fail the execution; what it cannot do is name someone else for it.
        decided_by = ""
    if approved and same_principal(decided_by, request.requested_by):
        _refuse(sink, request_id, own, "self-approval", claimedApprover=decided_by)
        raise SelfApprovalRefused(
            f"the requester of {request_id} cannot approve it, under any role or session"
        )
    verdict = (
        "approved"
        if approved
        else "withdrawn"
        if decided_by and same_principal(decided_by, request.requested_by)
        else "rejected"
    )
    reason = message.get("reason")
    decision = {
        "requestId": request_id,
        "decision": verdict,
        "approved": approved,
        "decidedBy": decided_by or None,
        "decidedAt": iso(now or dt.datetime.now(dt.UTC)),
        "reason": str(reason)[:MAX_REASON_CHARS] if reason is not None else None,
        "requestedBy": request.requested_by,
        "tokenSha256": hashlib.sha256(token.encode("utf-8")).hexdigest(),
        "recordedBy": own,
    }
    try:
        put_document(
            sink,
            decision_key(sink, request_id),
            decision,
            approval_context(request_id, DECISION_NAME),
            create_only=True,
        )
    except AuditRecordExists:  # a concurrent retry of this very task won: report what it sealed
        stored = _stored_decision(sink, request_id)
        assert stored is not None
        return _decision_result(stored)
    audit.record(
        sink,
        f"restore.{verdict}",
        request_id,
        actor=decided_by or own,
        details={
            "requestId": request_id,
            "reason": decision["reason"],
            "executionArn": request.execution_arn,
            "authenticated": bool(decided_by),
        },
    )
    return _decision_result(decision)


def _decision_result(decision: Mapping[str, Any]) -> dict[str, Any]:
    if decision.get("approved"):
        return {
            "approvedBy": decision["decidedBy"],
            "approvedAt": decision["decidedAt"],
            "requestId": decision["requestId"],
        }
    return {"decision": decision["decision"], "decidedBy": decision.get("decidedBy")}


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
    """The person an ARN stands for, in a form where equal means same person (see the module docstring)."""
    match = _ARN.match(arn.strip())
    if match is None:
        return arn.strip().casefold()
    kind, _, rest = match["resource"].partition("/")
    if kind == "assumed-role":
        name = rest.partition("/")[2]  # the session name: pinned to the IAM user name by the trust policy
    elif kind in {"user", "federated-user"}:
        name = rest.rpartition("/")[2]  # paths do not change who it is
    else:
        return f"{match['partition']}:{match['account']}:{kind}:{rest}".casefold()
    return f"{match['partition']}:{match['account']}:person:{name}".casefold()


def same_principal(a: str, b: str) -> bool:
    """Same person: also under another role (operator/alice vs approver/alice) or as the IAM user itself."""
    return bool(a) and bool(b) and principal_id(a) == principal_id(b)


def _refuse(sink: AuditSink, request_id: str, actor: str, reason: str, **details: Any) -> None:
    audit.record(
        sink,
        "approval.refused",
        request_id,
        actor=actor,
        details={"requestId": request_id, "reason": reason, **details},
    )


def _etag(sink: AuditSink, key: str) -> str:
    with sdk_errors():
        return str(sink.clients.s3.head_object(Bucket=sink.bucket, Key=key)["ETag"])


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
        f"Approve:  cognito-backuper approve {request.request_id} --profile <approver>",
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
