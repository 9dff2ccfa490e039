"""The drill states' logic: one function per Task state of ``statemachines/drill.asl.json``.

A drill is a restore that needs no approval because it can only write to a pool it created: the scratch pool
carries the drill tag from its CreateUserPool on, and the drill tasks' role may write only to pools with that
tag (infra.drill). Everything else is the restore's own code: the configuration (pipeline.restore.pool_restore),
the membership index, RestoreUsers and VerifyRestore (pipeline.restore.steps), on a sealed selection that
names the sampled users. Payloads carry ids, keys and counts; the sample's usernames stay sealed in S3.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, NotRequired, TypedDict

import botocore.exceptions

from pipeline.backup.verify import verify_backup
from pipeline.cognito import reading as cognito_read
from pipeline.core import metrics
from pipeline.core.aws import Clients, caller_arn, error_code
from pipeline.core.contracts import RestoreRequest, RestoreVerification, Storage, TargetPool
from pipeline.core.errors import BackupNotFound, InvalidRequest, PipelineError, failure_line
from pipeline.core.layout import (
    check_deployed_prefix,
    check_pool_id,
    is_stamped_id,
    new_stamped_id,
    parse_backup_uri,
)
from pipeline.restore import steps as restore
from pipeline.sealing import audit, manifest, store
from pipeline.sealing.backup_reader import BackupReader
from pipeline.sealing.manifest import list_backups

# The tag that makes a pool writable by the drill role; its value is the drill's id.
DRILL_TAG = "cognito-backuper:drill"
DRILL_ID_PREFIX = "rd-"
DRILL_POOL_PREFIX = "cognito-backuper-drill-"
DEFAULT_SAMPLE = 1000
MAX_SAMPLE = 100_000
# A drill execution times out after 6 days (statemachines/drill.asl.json): a pool of a drill older than this is
# left over, and the next drill's cleanup deletes it.
STALE_AFTER = dt.timedelta(days=7)

Clock = Callable[[], float]


class DrillFailed(PipelineError):
    """The drill ran and its sample did not restore as it was backed up (or it could not run at all)."""


class DrillTarget(TypedDict):
    poolId: str
    backupUri: str


class DrillJob(TypedDict):
    """One pool's drill, as PrepareDrill hands it to the next states."""

    drillId: str
    poolId: str
    backupUri: str
    startedAt: float  # epoch seconds, for the duration metric
    sampleRequested: int
    sampleSize: int
    request: RestoreRequest


class DrillResult(TypedDict):
    drillId: str
    poolId: str
    backupUri: str
    passed: bool
    sampleSize: int
    durationSeconds: float
    auditKey: str
    scratchPoolId: str | None
    usersCompared: NotRequired[int]
    differences: NotRequired[dict[str, int]]
    error: NotRequired[str]


def new_drill_id(now: dt.datetime | None = None) -> str:
    return new_stamped_id(DRILL_ID_PREFIX, now)


def check_drill_id(drill_id: str) -> str:
    if not is_stamped_id(DRILL_ID_PREFIX, drill_id):
        raise InvalidRequest(f"not a drill id: {drill_id!r}")
    return drill_id


def scratch_pool_name(drill_id: str) -> str:
    return DRILL_POOL_PREFIX + check_drill_id(drill_id)


def check_sample(sample: Any) -> int:
    if isinstance(sample, bool) or not isinstance(sample, int) or not 1 <= sample <= MAX_SAMPLE:
        raise InvalidRequest(f"the drill's sample is 1 to {MAX_SAMPLE} users")
    return sample


# --- PlanDrills ---------------------------------------------------------------------------------------------------


def latest_backup(clients: Clients, settings: Storage, pool_id: str) -> str:
    """The newest backup of a pool whose manifest authenticates (PrepareDrill then verifies it in full)."""
    entries = [
        e
        for e in list_backups(clients, settings["bucket"], settings["prefix"], check_pool_id(pool_id))
        if not e.get("error")
    ]
    if not entries:
        raise BackupNotFound(f"no readable backup of pool {pool_id} in s3://{settings['bucket']}")
    return str(max(entries, key=lambda e: (e["completedAt"], e["backupId"]))["uri"])


def plan_drills(clients: Clients, event: Mapping[str, Any]) -> dict[str, Any]:
    """The pools to drill: the one asked for (``poolId``, optionally its ``backupUri``), else every pool that
    has a backup in this bucket and prefix."""
    settings: Storage = event["settings"]
    check_sample(event.get("sample") or DEFAULT_SAMPLE)
    uri, pool_id = event.get("backupUri"), event.get("poolId")
    if uri:
        loc = parse_backup_uri(str(uri))
        if pool_id and loc.pool_id != pool_id:
            raise InvalidRequest(f"backup {loc.uri} is not a backup of pool {pool_id}")
        targets: list[DrillTarget] = [{"poolId": loc.pool_id, "backupUri": loc.uri}]
    elif pool_id:
        targets = [{"poolId": str(pool_id), "backupUri": latest_backup(clients, settings, str(pool_id))}]
    else:
        pools = sorted(
            {
                e["poolId"]
                for e in list_backups(clients, settings["bucket"], settings["prefix"])
                if not e.get("error")
            }
        )
        targets = [{"poolId": p, "backupUri": latest_backup(clients, settings, p)} for p in pools]
    return {"drills": targets, "pools": len(targets)}


# --- PrepareDrill -------------------------------------------------------------------------------------------------


def _sample(reader: BackupReader, size: int, rng: random.Random) -> list[str]:
    """A uniform random sample of the backup's usernames, in one pass (reservoir sampling)."""
    chosen: list[str] = []
    for seen, user in enumerate(reader.users()):
        if seen < size:
            chosen.append(user["username"])
        else:
            slot = rng.randint(0, seen)
            if slot < size:
                chosen[slot] = user["username"]
    return sorted(chosen)


def prepare_drill(
    clients: Clients,
    event: Mapping[str, Any],
    *,
    rng: random.Random | None = None,
    wall: Clock = time.time,
) -> DrillJob:
    """Verifies the backup in full, draws the sample and seals it as the restore's selection (the sampled
    users, every backed-up group), and builds the restore request for a new, drill-named pool."""
    settings: Storage = event["settings"]
    started = wall()
    size = check_sample(event.get("sample") or DEFAULT_SAMPLE)
    loc = parse_backup_uri(event["backupUri"])
    if loc.bucket != settings["bucket"]:
        raise InvalidRequest(f"the backup must be in this pipeline's bucket {settings['bucket']}")
    check_deployed_prefix(loc, settings["prefix"])
    # As a restore does: pin the manifest first, verify and read that very version; the restore tasks re-check it.
    _, pin = manifest.read_pinned(clients, loc, expected_key_arn=settings["kmsKeyArn"])
    report = verify_backup(clients, loc, expected_key_arn=settings["kmsKeyArn"], pin=pin)
    reader = BackupReader.open(clients, loc, expected_key_arn=settings["kmsKeyArn"], pin=pin)
    users = _sample(reader, size, rng or random.SystemRandom())
    groups = sorted(g["name"] for g in reader.config()["groups"])
    drill_id = new_drill_id()
    request: RestoreRequest = {
        "requestId": drill_id,
        "backupUri": loc.uri,
        "settings": settings,
        "target": {"mode": "new", "poolId": None, "poolName": scratch_pool_name(drill_id)},
        "shards": list(reader.doc["shards"]),
        "distributed": False,
        "selectionKey": None,
        "requestedBy": caller_arn(clients),
        "approvalTimeoutSeconds": 0,
        "executionArn": str(event.get("executionArn") or ""),
        "backupUsers": report.users,
        "backupMemberships": report.memberships,
        "selectedUsers": len(users),
        "manifestSha256": pin.sha256,
        "manifestVersionId": pin.version_id,
        "backupCompletedAt": reader.doc["completedAt"],
        "backupGroups": report.groups,
    }
    ws = restore.workspace(request)
    key = ws.root + "selection.bin"
    store.put_sealed(clients, ws, settings["kmsKeyArn"], key, [{"users": users, "groups": groups}])
    request["selectionKey"] = key
    return {
        "drillId": drill_id,
        "poolId": loc.pool_id,
        "backupUri": loc.uri,
        "startedAt": started,
        "sampleRequested": size,
        "sampleSize": len(users),
        "request": request,
    }


# --- RestoreDrillConfig -------------------------------------------------------------------------------------------


def drill_config(config: Mapping[str, Any], drill_id: str) -> dict[str, Any]:
    """The backed-up configuration as a scratch pool takes it: tagged as this drill's from CreateUserPool on
    (the role allows no untagged CreateUserPool), and without domains: a domain name is global, and a drill
    must never take the production pool's."""
    pool = dict(config["pool"])
    pool["UserPoolTags"] = {**(pool.get("UserPoolTags") or {}), DRILL_TAG: check_drill_id(drill_id)}
    return {**config, "pool": pool, "domain": None, "customDomain": None}


def restore_drill_config(
    clients: Clients,
    job: DrillJob,
    cursor: TargetPool | None = None,
    *,
    budget_s: float = float("inf"),
    clock: Clock = time.monotonic,
) -> TargetPool:
    """One slice of the scratch pool's configuration; the cursor is RestorePoolConfig's (steps.TargetPool).

    Only the pool, its pieces and groups: the deferred settings (triggers, auto-verification, deletion
    protection) that FinalizeTargetPool applies after a real restore never reach a scratch pool, so no
    production Lambda trigger or message ever acts on it, and it can always be deleted."""
    return restore.restore_pool_config(
        clients,
        job["request"],
        cursor,
        budget_s=budget_s,
        clock=clock,
        adapt=lambda config: drill_config(config, job["drillId"]),
    )


# --- RecordDrill and DeleteScratchPool ----------------------------------------------------------------------------


def _error_summary(error: Mapping[str, Any] | None) -> str:
    """The state's caught error as ``Name: first line`` (a Lambda cause is a JSON document)."""

    if not error:
        return "DrillFailed: the drill did not complete"
    name = str(error.get("Error") or "DrillFailed")
    return f"{name}: {failure_line(name, error.get('Cause'))}"[:500]


def record_drill(
    clients: Clients,
    job: Mapping[str, Any],
    *,
    target: Mapping[str, Any] | None = None,
    verification: RestoreVerification | None = None,
    error: Mapping[str, Any] | None = None,
    wall: Clock = time.time,
) -> DrillResult:
    """The drill's audit record (``drill.passed`` or ``drill.failed``) and its metric; the result the
    execution reports. A drill passes only with a verification that passed and no error."""
    settings: Storage = job["request"]["settings"]
    passed = bool(verification and verification["passed"]) and not error
    duration = max(0.0, wall() - float(job["startedAt"]))
    scratch = (target or {}).get("poolId") or None
    details: dict[str, Any] = {
        "drillId": job["drillId"],
        "poolId": job["poolId"],
        "backupUri": job["backupUri"],
        "scratchPoolId": scratch,
        "sampleSize": job["sampleSize"],
        "durationSeconds": round(duration, 3),
        "passed": passed,
        # Which execution drilled: `drill` reads a failed execution's results back by it.
        "executionArn": job["request"].get("executionArn") or None,
    }
    if verification:
        details["usersCompared"] = verification["usersCompared"]
        details["differences"] = {k: v for k, v in verification["differences"].items() if v}
    if error:
        details["error"] = _error_summary(error)
    key = audit.record(
        restore.audit_sink(clients, settings),
        "drill.passed" if passed else "drill.failed",
        job["drillId"],
        actor=caller_arn(clients),
        details=details,
    )
    metrics.emit_drill(job["poolId"], passed=passed, duration_s=duration, sample_size=job["sampleSize"])
    result: DrillResult = {
        "drillId": job["drillId"],
        "poolId": job["poolId"],
        "backupUri": job["backupUri"],
        "passed": passed,
        "sampleSize": job["sampleSize"],
        "durationSeconds": round(duration, 3),
        "auditKey": key,
        "scratchPoolId": scratch,
    }
    if verification:
        result["usersCompared"] = details["usersCompared"]
        result["differences"] = details["differences"]
    if error:
        result["error"] = details["error"]
    return result


def record_unprepared(
    clients: Clients,
    pool: Mapping[str, Any],
    settings: Storage,
    error: Mapping[str, Any] | None,
    *,
    execution_arn: str | None = None,
    wall: Clock = time.time,
) -> DrillResult:
    """A drill that failed before it had a request (a backup that does not verify): recorded too."""
    job: dict[str, Any] = {
        "drillId": new_drill_id(),
        "poolId": pool["poolId"],
        "backupUri": pool["backupUri"],
        "startedAt": wall(),
        "sampleSize": 0,
        "request": {"settings": settings, "executionArn": execution_arn},
    }
    return record_drill(clients, job, error=error, wall=wall)


def _drill_tag(clients: Clients, pool_id: str) -> str | None:
    try:
        tags = cognito_read.describe_pool(clients.cognito, pool_id).get("UserPoolTags") or {}
    except PipelineError:
        return None  # gone already
    return tags.get(DRILL_TAG)


def _drill_started(drill_id: str) -> dt.datetime:
    return dt.datetime.strptime(drill_id.split("-")[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)


def _stale(name: str, now: dt.datetime) -> str | None:
    """The drill id of a scratch pool left by a drill that started more than STALE_AFTER ago (its execution
    timed out or was stopped before its cleanup ran); None for any other pool."""
    drill_id = name.removeprefix(DRILL_POOL_PREFIX)
    if name == drill_id or not is_stamped_id(DRILL_ID_PREFIX, drill_id):
        return None
    return drill_id if now - _drill_started(drill_id) > STALE_AFTER else None


def delete_scratch_pool(
    clients: Clients,
    job: Mapping[str, Any],
    target: Mapping[str, Any] | None,
    *,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Deletes this drill's scratch pool: the one named in ``target``, and any pool of the drill's name (a
    configuration slice that failed after CreateUserPool returned no cursor); and the scratch pools of drills
    that started more than STALE_AFTER ago (an execution that timed out never ran its cleanup). A pool is deleted
    only if its drill tag is the drill id its name says: the role would refuse an untagged pool anyway, and a
    running drill's pool is not this one's to delete."""
    drill_id = check_drill_id(job["drillId"])
    name = scratch_pool_name(drill_id)
    now = now or dt.datetime.now(dt.UTC)
    wanted = {str(target["poolId"]): drill_id} if target and target.get("poolId") else {}
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"MaxResults": 60}
        if token:
            kwargs["NextToken"] = token
        page = clients.cognito.list_user_pools(**kwargs)
        for summary in page.get("UserPools", []):
            pool_name = str(summary.get("Name", ""))
            owner = drill_id if pool_name == name else _stale(pool_name, now)
            if owner is not None:
                wanted[str(summary["Id"])] = owner
        token = page.get("NextToken")
        if not token:
            break
    deleted = []
    for pool_id, owner in sorted(wanted.items()):
        if _drill_tag(clients, pool_id) != owner:
            continue
        try:
            clients.cognito.delete_user_pool(UserPoolId=pool_id)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
        deleted.append(pool_id)
    return {"deleted": deleted}


def summarize(results: list[Any]) -> dict[str, Any]:
    """The execution's output; DrillsPassed? fails the execution (and its alarm) when any drill failed."""
    drills = [dict(r) for r in results if isinstance(r, Mapping)]
    passed = sum(1 for r in drills if r.get("passed") is True)
    # A Map child that vanished (moto may return null for one) counts as failed, never as passed.
    return {"drills": drills, "passed": passed, "failed": len(results) - passed}
