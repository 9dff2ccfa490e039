"""`--all-pools` (the daily schedule): one pool that fails never stops the others.

Three pools on the local engine; the second is deleted while the first is being backed up. The run goes on with
the third, then fails (exit 1) after every pool was tried; the CLI's output, the run's summary and the audit trail
name each pool's outcome.
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest

from pipeline.backup import run_objects
from pipeline.backup import steps as backup
from pipeline.core.aws import make_clients
from pipeline.core.layout import parse_backup_uri
from pipeline.operator import cli, demo, seed
from pipeline.operator.local_engine import LocalEngine
from pipeline.operator.runs import EXIT_FAILED
from pipeline.restore.steps import audit_sink
from pipeline.sealing import audit, manifest
from tests.helpers.task_payloads import record_tasks

ASL = Path(__file__).resolve().parents[2] / "statemachines" / "backup.asl.json"


@pytest.mark.e2e
def test_a_pool_deleted_mid_run_fails_alone_and_the_run_fails_after_every_pool(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tasks.verify_backup as verify_task

    payloads = record_tasks(monkeypatch, [ASL.read_text()])
    deleted: list[str] = []
    lock = threading.Lock()
    verify = verify_task.handler

    def delete_the_next_pool(event: Any, context: Any = None) -> Any:
        result = verify(event, context)
        with lock:
            if not deleted:  # the first pool is verified: the second one disappears before its turn
                ((_, listed),) = payloads.of("EnumeratePools")
                jobs = run_objects.read_pools(make_clients(), event["job"]["storage"], listed["poolsKey"])
                assert jobs[0]["poolId"] == event["job"]["poolId"]  # one pool at a time, in the list's order
                deleted.append(jobs[1]["poolId"])
                boto3.client("cognito-idp").delete_user_pool(UserPoolId=jobs[1]["poolId"])
        return result

    monkeypatch.setattr(verify_task, "handler", delete_the_next_pool)
    with LocalEngine(embedded=True) as engine:
        monkeypatch.setattr(cli, "engine_for", lambda _args: contextlib.nullcontext(engine))
        clients = make_clients()
        account = demo.prepare_account(clients)
        cognito = boto3.client("cognito-idp")
        pools = {
            p.pool_id: p
            for p in (seed.seed_pool(cognito, users=12 + i, name=f"p{i}", seed=i) for i in range(3))
        }
        storage = account.storage
        argv = ["backup", "--all-pools", "--bucket", storage["bucket"], "--kms-key", storage["kmsKeyArn"]]
        code = cli.main([*argv, "--prefix", storage["prefix"], "--json", "--quiet"])
        printed = capsys.readouterr()
        out = json.loads(printed.out)

        assert code == EXIT_FAILED, printed.err
        (gone,) = deleted
        survivors = sorted(set(pools) - {gone})
        assert out["status"] == "FAILED" and out["error"] == "PoolBackupsFailed"
        assert f"1 of 3 pools have no verified backup: {gone}: PoolNotFound" in out["message"]
        # The third pool was still backed up after the second failed, and its backup is sealed and complete.
        assert sorted(b["poolId"] for b in out["backups"]) == survivors
        for b in out["backups"]:
            counts = manifest.read_manifest(clients, parse_backup_uri(b["uri"]))["counts"]
            assert b["verified"] and counts["users"] == b["users"] == pools[b["poolId"]].users
        ((failure),) = out["failures"]
        assert (failure["poolId"], failure["error"]) == (gone, "PoolNotFound")
        assert "not found" in failure["message"] and "Traceback" not in failure["message"]
        # Every pool was tried: the pool list's three children each reported, and CollectBackups ran once.
        ((collected, result),) = payloads.of("CollectBackups")
        assert len(collected["results"]) == 3 and result["failed"] == 1
        assert [r["verified"] for r in collected["results"]] == [True, False, True]
        assert collected["results"][1]["poolId"] == gone
        assert len(payloads.of("VerifyBackup")) == 2

        records = audit.read_records(audit_sink(clients, storage))
        outcomes = {(r["event"], r["subjectId"]) for r in records if r["event"].startswith("backup.")}
        assert outcomes == {("backup.completed", p) for p in survivors} | {("backup.failed", gone)}
        (failed_record,) = (r for r in records if r["event"] == "backup.failed")
        assert failed_record["details"]["error"] == "PoolNotFound"
        assert failed_record["details"]["summaryKey"] == result["summaryKey"]


def test_collect_backups_counts_a_child_without_a_result_as_a_failure() -> None:
    """A child that failed outright (a timeout) comes back as null on moto, or is left out: both are failures."""
    jobs: list[Any] = [{"poolId": f"us-east-1_P{i}", "backupId": f"b{i}"} for i in range(3)]
    named = {"verified": False, "poolId": "us-east-1_P2", "error": "AccessDenied", "cause": "{}"}
    in_order = backup._pool_results(jobs, [{"verified": True}, None, named])
    assert [backup._pool_failure(j, r) is None for j, r in zip(jobs, in_order, strict=True)] == [
        True,
        False,
        False,
    ]
    shortened = backup._pool_results(jobs, [named])
    failures = [backup._pool_failure(j, r) for j, r in zip(jobs, shortened, strict=True)]
    assert [f["error"] if f else None for f in failures] == [
        backup.NO_RESULT,
        backup.NO_RESULT,
        "AccessDenied",
    ]


def test_a_failed_pools_message_is_the_error_line_without_the_stack_trace() -> None:
    cause = json.dumps(
        {"errorMessage": "user pool x not found\nmore", "errorType": "PoolNotFound", "stackTrace": ["a"]}
    )
    assert backup.failure_text("PoolNotFound", cause) == "user pool x not found"
    assert backup.failure_text("States.Timeout", None) == "States.Timeout"
    assert len(backup.failure_text("E", "x" * 5000)) == backup.MESSAGE_CHARS
