"""One exception tree for the whole pipeline.

Class names are the Lambda ``errorType`` that the state machines' Retry and Catch blocks match, so renaming a
class is a contract change (tests/test_contract.py checks the ASL against this module).
"""

from __future__ import annotations

import json


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose. Messages never carry user data."""


class InvalidRequest(PipelineError):
    """The caller asked for something malformed or impossible."""


class PoolNotFound(InvalidRequest):
    """A user pool id does not exist in this account and Region."""


class BucketNotFound(InvalidRequest):
    """The backup bucket does not exist or is not reachable."""


class BackupNotFound(InvalidRequest):
    """No backup (manifest) at the given location."""


class KeyAccessDenied(PipelineError):
    """KMS refused to use the backup key (missing, disabled, or no permission)."""


class AccessDenied(PipelineError):
    """An AWS service refused the call for lack of permission."""


class CredentialsMissing(PipelineError):
    """No AWS credentials were found in the standard chain."""


class RegionMissing(PipelineError):
    """No AWS Region is configured."""


class Throttled(PipelineError):
    """Cognito kept throttling after the client-side retries; the state machine retries with backoff."""


class PaginationTokenExpired(PipelineError):
    """A ListUsers pagination token expired (they live about an hour); the shard restarts from scratch."""


class BackupExists(PipelineError):
    """A completed backup is never overwritten."""


class IntegrityError(PipelineError):
    """A backup does not match its manifest: hash, count, or a missing part."""


class TamperedError(IntegrityError):
    """Authentication failed: a part or the manifest was changed, swapped or moved."""


class ManifestInvalid(IntegrityError):
    """The manifest does not satisfy its JSON Schema."""


class IncompleteBackup(PipelineError):
    """A planned shard or part did not report completion."""


class PoolBackupsFailed(PipelineError):
    """At least one pool of a run has no verified backup; every other pool was still backed up (the ASL's
    SomePoolsFailed state raises this name)."""


class EngineError(PipelineError):
    """The local engine could not run or follow an execution."""


class EndpointUnreachable(PipelineError):
    """The AWS endpoint of the standard configuration (or AWS_ENDPOINT_URL) does not answer."""


class AuditRecordExists(PipelineError):
    """An audit record is append-only: its key already exists and is never replaced."""


class SelfApprovalRefused(PipelineError):
    """The principal who requested a restore cannot approve it."""


class ApprovalRejected(PipelineError):
    """An approver rejected the restore (the ASL's RequestApproval Catch matches this name)."""


class ApprovalNotFound(InvalidRequest):
    """No approval request with this id."""


class ApprovalAlreadyDecided(InvalidRequest):
    """A decision was already recorded for this request: the first decision wins."""


class ApprovalExpired(PipelineError):
    """The request expired, or its task token is no longer valid (the execution timed out or ended)."""


class IdentityNotProven(PipelineError):
    """A requester's or approver's identity proof (a signed STS request) is missing, stale, for another purpose
    or endpoint, or refused by STS: the pipeline never takes a person's word for who they are."""


def failure_line(error: str | None, cause: str | None) -> str:
    """A failed state's one line: a Lambda failure's cause is JSON whose errorMessage is the pipeline's own
    message (its stack trace stays out); otherwise the cause's first line, else the error's name."""
    text = cause or ""
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        text = str(parsed.get("errorMessage") or parsed.get("Cause") or text)
    lines = text.strip().splitlines()
    return lines[0] if lines else (error or "unknown failure")
