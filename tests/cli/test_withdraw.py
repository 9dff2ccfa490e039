"""`reject` by the requester, at the CLI: a withdrawal, said and recorded as one (not "rejected by an approver")."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any, cast

import boto3
import pytest
from moto import mock_aws

from pipeline.core.aws import caller_arn, make_clients
from pipeline.operator import cli, restore_commands
from pipeline.restore import approval
from pipeline.restore import steps as restore
from pipeline.sealing.audit import read_records

BUCKET = "cb-withdraw"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:restore:run-1"


class WaitingExecution:
    """The Step Functions side of a restore that still waits for its decision; records what it is sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        return {"executionArn": executionArn, "status": "RUNNING"}

    def send_task_success(self, **kwargs: Any) -> dict[str, Any]:
        self.sent.append(("SendTaskSuccess", kwargs))
        return {}

    def send_task_failure(self, **kwargs: Any) -> dict[str, Any]:
        self.sent.append(("SendTaskFailure", kwargs))
        return {}


@pytest.fixture
def waiting(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any, WaitingExecution]]:
    with mock_aws():
        clients = make_clients(boto3.Session())
        key = clients.kms.create_key(Description="backup key")["KeyMetadata"]["Arn"]
        clients.kms.create_alias(
            AliasName="alias/cognito-backuper", TargetKeyId=key
        )  # the deployment key the CLI opens approvals with
        clients.s3.create_bucket(Bucket=BUCKET)
        sink = restore.audit_sink(clients, {"bucket": BUCKET, "kmsKeyArn": key, "prefix": "backups"})
        now = dt.datetime.now(dt.UTC)
        request = approval.ApprovalRequest(
            request_id=approval.new_request_id(now),
            requested_by=caller_arn(clients),  # the CLI below runs with the same credentials: the requester
            requested_at=now.isoformat(),
            expires_at=(now + dt.timedelta(hours=1)).isoformat(),
            backup_uri=f"s3://{BUCKET}/backups/us-east-1_AbC123/20261127T202200Z-a1b2c3/",
            target={"mode": "new", "poolId": None, "poolName": "restored"},
            selective={},
            execution_arn=EXECUTION,
            snapshot_uri=None,
            engine_endpoint=None,
        )
        approval.open_request(sink, request, "task-token-0123")
        sfn = WaitingExecution()
        monkeypatch.setattr(restore_commands, "_engine_of", lambda request, region: sfn)
        yield request.request_id, sink, sfn


def test_the_requester_withdraws_its_own_request(
    waiting: tuple[str, Any, WaitingExecution], capsys: pytest.CaptureFixture[str]
) -> None:
    request_id, sink, sfn = waiting
    assert cli.main(["reject", request_id, "--bucket", BUCKET, "--reason", "wrong backup"]) == 0
    assert f"{request_id} withdrawn by its requester" in capsys.readouterr().out
    [(call, sent)] = sfn.sent
    assert (call, sent["error"]) == ("SendTaskFailure", "ApprovalRejected")
    # The CLI writes nothing itself: the execution's RecordRejection proves who rejected from the cause.
    assert [r["event"] for r in read_records(sink, subject_id=request_id)] == ["restore.requested"]
    settings = {"bucket": BUCKET, "prefix": "backups", "kmsKeyArn": sink.kms_key_arn}
    outcome = restore.record_decision(
        sink.clients,
        cast(Any, {"requestId": request_id, "settings": settings}),
        "rejected",
        None,
        {"Error": "ApprovalRejected", "Cause": sent["cause"]},
    )
    assert outcome == {"decision": "withdrawn"}
    events = [r["event"] for r in read_records(sink, subject_id=request_id)]
    assert "restore.withdrawn" in events and "restore.rejected" not in events


def test_withdrawing_prints_one_json_object(
    waiting: tuple[str, Any, WaitingExecution], capsys: pytest.CaptureFixture[str]
) -> None:
    request_id, _, _ = waiting
    assert cli.main(["reject", request_id, "--bucket", BUCKET, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["withdrawn"] is True and out["approved"] is False
