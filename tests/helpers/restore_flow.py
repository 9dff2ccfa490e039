"""Shared steps of the restore end-to-end tests: principals, a restore run in the background, pool snapshots."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from pipeline.cognito import reading as cognito_read
from pipeline.core import identity_proof
from pipeline.core.aws import Clients, caller_arn, make_clients
from pipeline.core.contracts import Storage
from pipeline.operator.local_engine import LocalEngine
from pipeline.operator.runs import Outcome, run_restore
from pipeline.restore import approval
from pipeline.restore import steps as restore

# The session behind each principal's clients: identity proofs are signed with its credentials.
_SESSIONS: dict[int, boto3.Session] = {}


def principal(clients: Clients, name: str) -> Clients:
    """Clients acting as a distinct IAM user, so STS names it: how a second operator is told apart."""
    iam = boto3.client("iam")
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    session = boto3.Session(
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        region_name=clients.region,
    )
    return remember(session)


def remember(session: boto3.Session) -> Clients:
    """Clients for ``session`` whose identity proofs it signs."""
    clients = make_clients(session)
    _SESSIONS[id(clients)] = session
    return clients


def proof(clients: Clients, kind: str, subject: str) -> dict[str, Any]:
    """A signed STS GetCallerIdentity for ``kind:subject`` by whoever ``clients`` act as."""
    session = _SESSIONS.get(id(clients)) or boto3.Session(region_name=clients.region)
    return identity_proof.make_proof(session, clients, identity_proof.purpose(kind, subject))


@dataclass
class BackgroundRestore:
    """A restore execution followed in a thread while the test plays the approver."""

    engine: LocalEngine
    storage: Storage
    payload: dict[str, Any]
    timeout_s: float = 900.0
    execution_name: str | None = None
    outcome: Outcome | None = None
    error: BaseException | None = None
    _thread: threading.Thread = field(init=False)

    def start(self) -> BackgroundRestore:
        payload = dict(self.payload)
        name = self.execution_name or payload.pop(EXECUTION_NAME_KEY, None)

        def run() -> None:
            try:
                self.outcome = run_restore(
                    self.engine,
                    storage=self.storage,
                    payload=payload,
                    timeout_s=self.timeout_s,
                    execution_name=name,
                )
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                self.error = exc

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout_s: float = 900.0) -> Outcome:
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise AssertionError(f"restore still running after {timeout_s}s")
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome


EXECUTION_NAME_KEY = "__executionName"  # taken out of the payload by BackgroundRestore, never sent


def restore_payload(
    clients: Clients,
    uri: str,
    *,
    target_pool: str | None = None,
    new_pool: str | None = None,
    timeout_s: int = 600,
) -> dict[str, Any]:
    """The execution input the CLI makes, with ``clients``' proof for a fresh execution name (kept aside)."""
    name = str(uuid.uuid4())
    return {
        "backupUri": uri,
        "targetPoolId": target_pool,
        "newPoolName": new_pool,
        "selectionKey": None,
        "requesterProof": proof(clients, "restore", name),
        "approvalTimeoutSeconds": timeout_s,
        EXECUTION_NAME_KEY: name,
    }


def wait_for_request(
    clients: Clients, storage: Storage, deadline_s: float = 300.0
) -> approval.ApprovalRequest:
    sink = restore.audit_sink(clients, storage)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        waiting = approval.pending(sink)
        if waiting:
            return waiting[0]
        time.sleep(0.5)
    raise AssertionError(f"no approval request within {deadline_s}s")


def decide(
    engine: LocalEngine, decider: Clients, storage: Storage, request_id: str, *, approve: bool
) -> dict[str, Any]:
    sink = restore.audit_sink(decider, storage)
    return approval.decide(
        sink,
        engine.stepfunctions,
        request_id,
        approve=approve,
        reason="test",
        decider_arn=caller_arn(decider),
        proof=proof(decider, "approve" if approve else "reject", request_id),
    )


def pool_contents(clients: Clients, pool_id: str) -> dict[str, Any]:
    """Everything a restore could change in a pool, to compare before and after."""
    users: dict[str, Any] = {}
    token: str | None = None
    while True:
        page = cognito_read.list_users_page(clients.cognito, pool_id, token=token)
        for u in page.users:
            users[u["username"]] = (u["attributes"], u["enabled"], u["status"])
        token = page.next_token
        if token is None:
            break
    groups = cognito_read.list_groups(clients.cognito, pool_id)
    members: set[tuple[str, str]] = set()
    for g in groups:
        gtoken: str | None = None
        while True:
            names, gtoken = cognito_read.list_group_members_page(clients.cognito, pool_id, g["name"], gtoken)
            members.update((g["name"], n) for n in names)
            if gtoken is None:
                break
    return {"users": users, "groups": sorted(g["name"] for g in groups), "memberships": members}


def state_order(history: list[dict[str, Any]]) -> Callable[[str, str], int]:
    """Index of the first event of a kind for a state (entered or exited), for ordering assertions."""

    def index(state: str, kind: str) -> int:
        key = "stateEnteredEventDetails" if kind == "entered" else "stateExitedEventDetails"
        for i, event in enumerate(history):
            if (event.get(key) or {}).get("name") == state:
                return i
        return -1

    return index
