"""``cognito-backuper drill``: one restore drill on demand, through the drill state machine."""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipeline.core import errors
from pipeline.core.aws import Clients
from pipeline.core.contracts import Storage
from pipeline.core.layout import check_pool_id
from pipeline.drill import steps as drill
from pipeline.operator.cli_common import (
    add_engine_flag,
    add_output_flags,
    add_rate_flags,
    backup_location,
    emit,
    engine_for,
    err,
    fail,
    preflight,
)
from pipeline.operator.runs import Engine, Outcome, exit_code_for, run_drill
from pipeline.restore import steps as restore
from pipeline.sealing import audit
from pipeline.sealing.backup_reader import BackupReader


def drill_storage(
    clients: Clients, backup_uri: str | None, pool_id: str, bucket: str | None, prefix: str
) -> Storage:
    """The bucket, prefix and key of the backup the drill restores (the key from its authenticated manifest)."""
    if backup_uri:
        loc = backup_location(backup_uri)
        if loc.pool_id != pool_id:
            raise errors.InvalidRequest(f"backup {loc.uri} is not a backup of pool {pool_id}")
    else:
        if not bucket:
            raise errors.InvalidRequest(
                "give the backup (--backup S3_URI) or the bucket holding it (--bucket)"
            )
        probe: Storage = {"bucket": bucket, "kmsKeyArn": "", "prefix": prefix}
        loc = backup_location(drill.latest_backup(clients, probe, pool_id))
    reader = BackupReader.open(clients, loc)
    return {"bucket": loc.bucket, "kmsKeyArn": str(reader.doc["kmsKeyArn"]), "prefix": loc.prefix}


def drill_line(result: Mapping[str, Any]) -> str:
    verdict = "PASSED" if result.get("passed") else "FAILED"
    compared = result.get("usersCompared")
    line = (
        f"{verdict}  pool {result.get('poolId')}  sample {result.get('sampleSize', 0):,} users"
        + (f", {compared:,} compared" if compared is not None else "")
        + (f", {float(result['durationSeconds']):.1f}s" if result.get("durationSeconds") is not None else "")
    )
    differences = result.get("differences") or {}
    if differences:
        line += "  differences: " + ", ".join(f"{k}={v}" for k, v in sorted(differences.items()))
    if result.get("error"):
        line += f"  error: {result['error']}"
    return line


def drill_text(drills: Sequence[Mapping[str, Any]], indent: str = "  ") -> str:
    lines = []
    for result in drills:
        lines.append(drill_line(result))
        lines.append(f"{indent}backup       {result.get('backupUri')}")
        kept = str(result.get("error") or "").startswith("ScratchPoolNotDeleted")
        lines.append(
            f"{indent}scratch pool {result.get('scratchPoolId') or '-'} (tagged {drill.DRILL_TAG}), "
            + ("NOT deleted" if kept else "deleted")
        )
        if result.get("auditKey"):
            lines.append(f"{indent}audit        {result['auditKey']}")
    return "\n".join(lines)


def recorded_drills(
    clients: Clients, storage: Storage, pool_id: str, since: dt.datetime, execution_arn: str
) -> list[dict[str, Any]]:
    """A failed execution has no output: its drills' results are in the audit trail, under its ARN."""
    sink = restore.audit_sink(clients, storage)
    found = []
    for record in audit.read_records(sink, since=since):
        details = record.get("details") or {}
        if (
            record.get("event") in ("drill.passed", "drill.failed")
            and details.get("poolId") == pool_id
            and details.get("executionArn") == execution_arn
        ):
            found.append({**details, "auditKey": record["key"]})
    return found


class DrillProgress:
    """A line on stderr at least every ``every_s`` seconds: the time so far and the state the drill is in."""

    def __init__(
        self, quiet: bool, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.quiet, self.every_s, self.clock = quiet, every_s, clock
        self.started = self.last = clock()
        self.state = "-"

    def event(self, event: Mapping[str, Any]) -> None:
        entered = event.get("stateEnteredEventDetails") or {}
        if entered.get("name"):
            self.state = str(entered["name"])

    def tick(self) -> None:
        now = self.clock()
        if not self.quiet and now - self.last >= self.every_s:
            self.last = now
            err(f"[{now - self.started:6.1f}s] drill running: {self.state}")


def execute_drill(
    engine: Engine,
    storage: Storage,
    pool_id: str,
    sample: int,
    backup_uri: str | None,
    timeout_s: float,
    *,
    quiet: bool = False,
) -> Outcome:
    payload: dict[str, Any] = {"poolId": pool_id, "sample": sample}
    if backup_uri:
        payload["backupUri"] = backup_uri
    progress = DrillProgress(quiet)
    return run_drill(
        engine,
        storage=storage,
        payload=payload,
        on_event=progress.event,
        on_poll=progress.tick,
        timeout_s=timeout_s,
    )


def cmd_drill(args: argparse.Namespace) -> int:
    pool_id = check_pool_id(args.pool_id)
    sample = drill.check_sample(args.sample)
    clients = preflight()
    storage = drill_storage(clients, args.backup, pool_id, args.bucket, args.prefix)
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    if not args.quiet:
        err(f"restore drill of pool {pool_id}: a sample of {sample:,} users into a drill-tagged scratch pool")
    with engine_for(args) as engine:
        outcome = execute_drill(engine, storage, pool_id, sample, args.backup, args.timeout, quiet=args.quiet)
    output = outcome.output if isinstance(outcome.output, dict) else {}
    drills: list[dict[str, Any]] = list(output.get("drills") or []) or recorded_drills(
        clients, storage, pool_id, started, outcome.execution_arn
    )
    payload = {
        "status": outcome.status,
        "passed": outcome.succeeded and bool(drills) and all(d.get("passed") for d in drills),
        "durationSeconds": round(outcome.duration_s, 3),
        "drills": drills,
    }
    if not payload["passed"]:
        error = outcome.error or "RestoreDrillFailed"
        message = f"restore drill failed ({error}): {outcome.message or 'see the drill result'}"
        if drills and not args.json:
            message += "\n" + drill_text(drills)
        return fail(args, exit_code_for(error), error, message, passed=False, drills=drills)
    emit(args, payload, drill_text(drills))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "drill",
        help="restore a random sample of a pool's latest backup into a scratch pool, verify it, delete it",
        description="Runs the drill state machine for one pool: verifies the backup in full (the latest one of "
        "the pool, or --backup), creates a scratch user pool tagged cognito-backuper:drill, restores the "
        "configuration and a random sample of users with their groups, compares them with the backup "
        "(VerifyRestore), records the result in the audit trail and as the RestoreDrillPassed metric, and "
        "deletes the scratch pool, whether the drill passed or not. Needs no approval: the drill can only "
        "write to pools it created and tagged. Exit 0 when the drill passed; 1 when it failed (a part that "
        "does not verify, a restore error, a difference: the result and the audit record say which); 4 when "
        "the backup's manifest does not authenticate.",
    )
    add_engine_flag(p)
    p.add_argument("--pool-id", required=True, metavar="ID", help="the user pool whose backup is drilled")
    p.add_argument(
        "--sample",
        type=int,
        default=drill.DEFAULT_SAMPLE,
        metavar="N",
        help=f"users to restore and verify (default {drill.DEFAULT_SAMPLE}; all of them if the backup has fewer)",
    )
    p.add_argument("--backup", metavar="S3_URI", help="drill this backup instead of the pool's latest")
    p.add_argument("--bucket", help="the backup bucket (needed without --backup)")
    p.add_argument("--prefix", default="backups", help="key prefix inside the bucket (default: backups)")
    p.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to wait (default 6 h)")
    add_rate_flags(p)
    add_output_flags(p)
    p.set_defaults(func=cmd_drill)
