"""CheckPendingApprovals on moto's Step Functions interpreter: what counts as a restore waiting for approval.

A small machine with the restore's waiting state (RequestApproval, a waitForTaskToken task; SQS carries the token
here instead of Lambda) runs executions into each situation: still waiting, approved and moved on, approved and
finished, rejected, expired by the state's timeout. Only the first counts, and the metrics it emits carry counts
and seconds, nothing else. (A stopped execution is not played: moto's StopExecution leaves a task-token wait
RUNNING; on AWS it is ABORTED, which ListExecutions' RUNNING filter leaves out like any finished one.)
The checker takes ``now``: moto's history has real timestamps, so "older than N hours" is played by checking
N hours later, not by sleeping.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipeline.core import metrics
from pipeline.restore import approval_watch
from tasks import check_pending_approvals

REGION = "us-east-1"
# What a restore's input may name (a requester's ARN, a pool): none of it may reach the metrics.
SECRET = "alice.requester@example.com"
HOUR = 3600.0


@dataclass
class World:
    sfn: Any
    sqs: Any
    queue: str
    restore: str
    other: str


def _definition(queue: str, *, timeout_s: int = 3600, restore_s: int = 120) -> str:
    return json.dumps(
        {
            "StartAt": "ValidateRequest",
            "States": {
                "ValidateRequest": {"Type": "Pass", "Next": approval_watch.APPROVAL_STATE},
                approval_watch.APPROVAL_STATE: {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                    "Parameters": {
                        "QueueUrl": queue,
                        "MessageBody": {"token.$": "$$.Task.Token", "name.$": "$$.Execution.Name"},
                    },
                    "TimeoutSeconds": timeout_s,
                    "Next": "RestoreUsers",
                },
                # By default long enough to still be RUNNING, past the approval, when checked.
                "RestoreUsers": {"Type": "Wait", "Seconds": restore_s, "Next": "Done"},
                "Done": {"Type": "Succeed"},
            },
        }
    )


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sqs = boto3.client("sqs", region_name=REGION)
        queue = sqs.create_queue(QueueName="approvals")["QueueUrl"]
        role = boto3.client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        sfn = boto3.client("stepfunctions", region_name=REGION)
        restore = sfn.create_state_machine(name="restore", definition=_definition(queue), roleArn=role)
        other = sfn.create_state_machine(name="other", definition=_definition(queue), roleArn=role)
        w = World(sfn, sqs, queue, restore["stateMachineArn"], other["stateMachineArn"])
        try:
            yield w
        finally:
            for arn in (w.restore, w.other):
                for e in sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]:
                    sfn.stop_execution(executionArn=e["executionArn"])


def _start(w: World, name: str, machine: str | None = None) -> str:
    arn: str = w.sfn.start_execution(
        stateMachineArn=machine or w.restore, name=name, input=json.dumps({"requestedBy": SECRET})
    )["executionArn"]
    return arn


def _wait_for(condition: Any, what: str, deadline_s: float = 30.0) -> Any:
    deadline = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} within {deadline_s} s"
        time.sleep(0.05)


def _waiting(w: World, arn: str) -> dt.datetime:
    since: dt.datetime = _wait_for(lambda: approval_watch.waiting_since(w.sfn, arn), f"{arn} waiting")
    return since


def _tokens(w: World) -> dict[str, str]:
    found: dict[str, str] = {}
    for _ in range(5):
        for m in w.sqs.receive_message(QueueUrl=w.queue, MaxNumberOfMessages=10).get("Messages", []):
            body = json.loads(m["Body"])
            found[body["name"]] = body["token"]
    return found


def _status(w: World, arn: str) -> str:
    status: str = w.sfn.describe_execution(executionArn=arn)["status"]
    return status


def test_a_restore_waiting_for_approval_counts_with_its_age(world: World) -> None:
    since = _waiting(world, _start(world, "waits"))
    later = since + dt.timedelta(hours=5)
    found = approval_watch.pending_approvals(world.sfn, world.restore, later)
    assert found.count == 1
    assert 5 * HOUR - 1 <= found.oldest_s <= 5 * HOUR + 60


def test_the_oldest_of_several_waits_is_reported(world: World) -> None:
    first = _waiting(world, _start(world, "first"))
    second = _waiting(world, _start(world, "second"))
    now = max(first, second) + dt.timedelta(hours=1)
    found = approval_watch.pending_approvals(world.sfn, world.restore, now)
    assert found.count == 2
    assert found.oldest_s == pytest.approx((now - min(first, second)).total_seconds())


def _machine(w: World, name: str, **shape: int) -> str:
    role = w.sfn.describe_state_machine(stateMachineArn=w.restore)["roleArn"]
    arn: str = w.sfn.create_state_machine(name=name, definition=_definition(w.queue, **shape), roleArn=role)[
        "stateMachineArn"
    ]
    return arn


def test_approved_rejected_finished_and_other_machines_do_not_count(world: World) -> None:
    quick = _machine(world, "restore-quick", restore_s=0)
    approved, rejected = (_start(world, n) for n in ("approved", "rejected"))
    finished = _start(world, "finished", quick)
    elsewhere = _start(world, "elsewhere", world.other)
    for arn in (approved, rejected, finished, elsewhere):
        _waiting(world, arn)
    tokens: dict[str, str] = {}
    while not {"approved", "rejected", "finished"} <= set(tokens):
        tokens |= _wait_for(lambda: _tokens(world), "the task tokens")
    world.sfn.send_task_success(taskToken=tokens["approved"], output=json.dumps({"approved": True}))
    world.sfn.send_task_success(taskToken=tokens["finished"], output=json.dumps({"approved": True}))
    world.sfn.send_task_failure(taskToken=tokens["rejected"], error="ApprovalRejected", cause="no")
    # Approved: still RUNNING (restoring users), no longer waiting. Rejected: failed. Finished: succeeded.
    _wait_for(lambda: approval_watch.waiting_since(world.sfn, approved) is None, "the approval to move on")
    _wait_for(lambda: _status(world, rejected) == "FAILED", "the rejection to fail the execution")
    _wait_for(lambda: _status(world, finished) == "SUCCEEDED", "the quick restore to finish")
    assert _status(world, approved) == "RUNNING"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=30)
    for machine in (world.restore, quick):
        assert approval_watch.pending_approvals(world.sfn, machine, later) == approval_watch.PendingApprovals(
            0, 0.0
        )
    # The other machine's execution waits all along: it is not a restore of the machine checked.
    assert approval_watch.waiting_since(world.sfn, elsewhere) is not None


def test_an_expired_request_does_not_count(world: World) -> None:
    short = _machine(world, "restore-short", timeout_s=1)
    arn = _start(world, "expires", short)
    _wait_for(lambda: _status(world, arn) == "FAILED", "the approval timeout to fail the execution")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=30)
    assert approval_watch.pending_approvals(world.sfn, short, later).count == 0


def test_the_task_emits_two_dimensionless_metrics_and_no_user_data(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _waiting(world, _start(world, "waits"))
    monkeypatch.setenv(approval_watch.MACHINE_ENV, world.restore)
    monkeypatch.setenv(metrics.LAMBDA_ENV, "cognito-backuper-check-pending-approvals")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "cognito-backuper")  # as infra/functions.py sets it
    capsys.readouterr()
    result = check_pending_approvals.handler({}, None)
    out = capsys.readouterr().out
    assert result["pendingApprovals"] == 1 and result["oldestPendingApprovalSeconds"] >= 0
    documents = [json.loads(line) for line in out.splitlines()]
    assert len(documents) == 2
    emitted = {}
    for doc in documents:
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == metrics.NAMESPACE
        assert directive["Dimensions"] == [[]]
        (metric,) = directive["Metrics"]
        # Nothing but the EMF envelope and the one value: no request id, pool, execution or person.
        assert set(doc) == {"_aws", metric["Name"]}
        emitted[metric["Name"]] = (metric["Unit"], doc[metric["Name"]])
    assert emitted == {
        metrics.PENDING_APPROVALS.name: ("Count", [1.0]),
        metrics.OLDEST_PENDING_APPROVAL.name: ("Seconds", [result["oldestPendingApprovalSeconds"]]),
    }
    for forbidden in (SECRET, "waits", world.restore):
        assert forbidden not in out and forbidden not in json.dumps(result)


def test_nothing_waiting_emits_zero(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    result = approval_watch.check_pending_approvals(world.sfn, world.restore, printer=lines.append)
    assert result == {"pendingApprovals": 0, "oldestPendingApprovalSeconds": 0.0}
    assert [json.loads(line)[metrics.OLDEST_PENDING_APPROVAL.name] for line in lines[1:]] == [[0.0]]
