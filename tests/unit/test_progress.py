"""Progress read from execution history events: counts only, whatever order the Map interleaves them in."""

from __future__ import annotations

import io
import json
from typing import Any

from pipeline.operator.progress import BackupProgress, ProgressPrinter, RestoreProgress


def entered(name: str) -> dict[str, Any]:
    return {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": name}}


def exited(name: str, output: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "TaskStateExited",
        "stateExitedEventDetails": {"name": name, "output": json.dumps(output)},
    }


JOB = {"poolId": "eu-west-1_Abc", "backupId": "b"}


def test_backup_progress_counts_shards_users_and_running_states() -> None:
    p = BackupProgress()
    p.update(entered("PlanShards"))
    p.update(exited("PlanShards", {"job": JOB, "plan": {"shards": ["0", "1"]}}))
    for shard, users, done in (("0", 60, False), ("1", 40, True), ("0", 100, True)):
        p.update(entered("ExportUsers"))
        p.update(
            exited("ExportUsers", {"job": JOB, "shard": shard, "cursor": {"users": users, "done": done}})
        )
    p.update(entered("ExportGroupMemberships"))
    assert p.users_exported == 140
    assert len(p.shards_done) == 2
    line = p.line(1.0)
    assert "shards 2/2" in line
    assert "users 140" in line
    assert "ExportGroupMemberships" in line
    for group_slice, memberships in ((0, 3), (1, 4), (0, 5)):
        out = {"job": JOB, "slice": {"slice": group_slice}, "cursor": {"memberships": memberships}}
        p.update(exited("ExportGroupMemberships", out))
    assert "memberships 9" in p.line(2.0)  # slice 0's latest count, 5, plus slice 1's 4


def test_backup_progress_ignores_outputs_without_a_job() -> None:
    p = BackupProgress()
    p.update(exited("ExportsCollected", {"job": [JOB]}))  # not the shape a task exits with
    p.update({"type": "ExecutionStarted"})
    assert p.users_exported == 0
    assert p.events == 2


def test_restore_progress_announces_the_request_once_and_sums_shards() -> None:
    seen: list[str] = []
    p = RestoreProgress(on_request=seen.append)
    p.update(exited("ValidateRequest", {"request": {"requestId": "rr-1", "shards": ["a", "b"]}}))
    p.update(entered("RequestApproval"))
    assert "WAITING FOR APPROVAL" in p.line(0.0)
    p.update(exited("RequestApproval", {}))
    cursor = {"created": 3, "existing": 1, "skipped": 0, "failed": 0, "membershipsAdded": 5, "done": True}
    p.update(exited("RestoreUsers", {"shard": "a", "cursor": cursor}))
    assert seen == ["rr-1"]
    assert p.total("created") == 3
    assert "WAITING" not in p.line(1.0)
    assert "memberships added 5" in p.line(1.0)


def test_printer_writes_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    ticks = iter([0.0, 10.0, 20.0, 30.0])
    printer = ProgressPrinter(BackupProgress(), stream=stream, clock=lambda: next(ticks))
    printer(entered("EnumeratePools"))
    printer.close()
    lines = stream.getvalue().splitlines()
    assert lines
    assert all(line.startswith("[") for line in lines)
