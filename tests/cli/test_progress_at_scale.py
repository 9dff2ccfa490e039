"""Progress of distributed Maps: shards done/total, users, throughput and an ETA, on both engines.

On AWS the children's work is in their own histories and in DescribeMapRun; the AWS engine reads both. On the
local engine the same numbers come from the task results it sees and from moto's DescribeMapRun.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import boto3
import pytest

from pipeline.cognito import shards
from pipeline.core.aws import make_clients
from pipeline.operator import cli, demo, seed
from pipeline.operator.aws_engine import AwsEngine
from pipeline.operator.local_engine import LocalEngine
from pipeline.operator.progress import BackupProgress, RestoreProgress, map_run_event, map_run_label

PARENT = "arn:aws:states:us-east-1:111122223333:execution:cognito-backuper-backup:run-1"
POOLS_RUN = "arn:aws:states:us-east-1:111122223333:mapRun:cognito-backuper-backup/BackupPools:aaaa"
POOL_CHILD = "arn:aws:states:us-east-1:111122223333:execution:cognito-backuper-backup/BackupPools:pool-1"
SHARDS_RUN = (
    "arn:aws:states:us-east-1:111122223333:mapRun:cognito-backuper-backup/BackupPools/ExportShards:bbbb"
)
JOB = {"poolId": "us-east-1_Big", "backupId": "b1"}


def _exited(event_id: int, name: str, output: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "TaskStateExited",
        "stateExitedEventDetails": {"name": name, "output": json.dumps(output)},
    }


class FakeStepFunctions:
    """A running backup: one pool child whose ExportShards Map Run has finished 3 of 16 shards."""

    def __init__(self) -> None:
        self.histories: dict[str, list[dict[str, Any]]] = {
            PARENT: [
                {"id": 1, "type": "MapRunStarted", "mapRunStartedEventDetails": {"mapRunArn": POOLS_RUN}}
            ],
            POOL_CHILD: [
                _exited(1, "CapturePoolConfig", {"job": JOB, "config": {"estimatedUsers": 16_000}}),
                _exited(2, "PlanShards", {"job": JOB, "plan": {"shards": [f"{i:x}" for i in range(16)]}}),
                {"id": 3, "type": "MapRunStarted", "mapRunStartedEventDetails": {"mapRunArn": SHARDS_RUN}},
            ],
            **{
                f"shard-{i}": [
                    _exited(
                        1,
                        "ExportShardUsers",
                        {"job": JOB, "shard": f"{i:x}", "cursor": {"users": 1000, "done": True}},
                    )
                ]
                for i in range(3)
            },
        }
        self.counts = {
            POOLS_RUN: {"total": 1, "running": 1, "succeeded": 0, "failed": 0, "pending": 0},
            SHARDS_RUN: {"total": 16, "running": 8, "succeeded": 3, "failed": 0, "pending": 5},
        }
        self.children = {
            POOLS_RUN: [(POOL_CHILD, "RUNNING")],
            SHARDS_RUN: [(f"shard-{i}", "SUCCEEDED") for i in range(3)],
        }
        self.status = "RUNNING"

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        status, self.status = self.status, "SUCCEEDED"  # the second poll finds it ended
        return {"status": status, "output": "{}"}

    def get_execution_history(self, executionArn: str, **_: Any) -> dict[str, Any]:
        return {"events": self.histories[executionArn]}

    def describe_map_run(self, mapRunArn: str) -> dict[str, Any]:
        return {"itemCounts": self.counts[mapRunArn]}

    def get_paginator(self, name: str) -> Any:
        assert name == "list_executions"
        fake = self

        class Paginator:
            def paginate(self, mapRunArn: str) -> list[dict[str, Any]]:
                return [
                    {"executions": [{"executionArn": a, "status": s} for a, s in fake.children[mapRunArn]]}
                ]

        return Paginator()


def test_the_aws_engine_reads_the_map_runs_and_the_childrens_histories() -> None:
    now = [0.0]
    aws = AwsEngine(
        sfn=FakeStepFunctions(),  # type: ignore[arg-type]
        region="us-east-1",
        outputs=dict,
        sleep=lambda s: now.__setitem__(0, now[0] + s),
        clock=lambda: now[0],
    )
    progress = BackupProgress()
    aws.follow(PARENT, on_event=progress.update, timeout_s=60, poll_s=1)
    line = progress.line(elapsed_s=10.0)
    assert "shards 3/16" in line
    assert "users 3,000 (300/s, about 43s left)" in line  # (16,000 estimated - 3,000) / 300 per second
    assert "map runs: BackupPools 0/1, ExportShards 3/16" in line


def test_map_run_labels_and_restore_progress() -> None:
    assert map_run_label(SHARDS_RUN) == "ExportShards"
    assert map_run_label(POOLS_RUN) == "BackupPools"
    restore = RestoreProgress(shards_total=4)
    restore.update(map_run_event("arn:aws:states:r:1:mapRun:m/RestoreShards:x", {"total": 4, "succeeded": 1}))
    cursor = {"created": 500, "existing": 0, "failed": 0, "membershipsAdded": 10, "done": True}
    restore.update(_exited(1, "RestoreShardUsers", {"shard": "0", "cursor": cursor}))
    line = restore.line(elapsed_s=5.0)
    assert "shards 1/4" in line and "users created 500" in line
    assert "(100 users/s, about 15s left)" in line and "map runs: RestoreShards 1/4" in line


@pytest.mark.e2e
def test_the_cli_shows_shards_users_and_map_runs_of_a_distributed_backup_on_the_local_engine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shards, "DISTRIBUTED_FROM_SHARDS", 1)  # every pool's shards run as child executions
    with LocalEngine(embedded=True) as engine:
        monkeypatch.setattr(cli, "engine_for", lambda _args: contextlib.nullcontext(engine))
        account = demo.prepare_account(make_clients())
        pool = seed.seed_pool(boto3.client("cognito-idp"), users=48, seed=9)
        storage = account.storage
        argv = ["backup", "--pool-id", pool.pool_id, "--bucket", storage["bucket"], "--kms-key"]
        code = cli.main([*argv, storage["kmsKeyArn"], "--prefix", storage["prefix"]])
        printed = capsys.readouterr()
        assert code == 0, printed.err
    final = [line for line in printed.err.splitlines() if "running:" in line][-1]
    # A pool this small plans one shard; it ran as the ExportShards Map Run's one child.
    assert "shards 1/1" in final and f"users {pool.users}" in final, final
    assert "map runs: BackupPools 1/1, ExportShards 1/1" in final, final
