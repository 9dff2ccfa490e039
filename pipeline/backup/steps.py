"""The backup states' logic: one function per Task state, each taking and returning small descriptors.

Users and memberships are read, encrypted and written inside one call; only ids, keys, counts and pagination
tokens leave it.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from pipeline.backup import chain_hints, run_objects
from pipeline.backup.verify import verify_backup
from pipeline.cognito import pool_config, shards
from pipeline.cognito import reading as cognito_read
from pipeline.core import layout, metrics
from pipeline.core.aws import Clients, error_code, sdk_errors
from pipeline.core.contracts import (
    BackupsResult,
    BackupSummary,
    CollectBackupsEvent,
    ConfigCursor,
    EnumeratePoolsEvent,
    EnumeratePoolsResult,
    ManifestSummary,
    MembershipCursor,
    PoolConfigSummary,
    PoolFailure,
    PoolJob,
    PoolState,
    ShardPlan,
    ShardState,
    SliceState,
    Storage,
    UserCursor,
    VerificationResult,
)
from pipeline.core.errors import (
    BackupExists,
    BucketNotFound,
    IncompleteBackup,
    IntegrityError,
    InvalidRequest,
    KeyAccessDenied,
    PaginationTokenExpired,
    PipelineError,
    failure_line,
)
from pipeline.core.lambda_runtime import logger
from pipeline.sealing import manifest, store

log = logger(__name__)

# A part holds at most this many records: ~5 MB of users in memory, ~3 s of ListUsers at the 30 RPS quota.
USERS_PER_PART = 5_000
MEMBERSHIPS_PER_PART = 20_000

Clock = Callable[[], float]


def location(job: PoolJob) -> layout.BackupLocation:
    storage = job["storage"]
    return layout.BackupLocation(
        bucket=storage["bucket"], prefix=storage["prefix"], pool_id=job["poolId"], backup_id=job["backupId"]
    )


def _check_storage(clients: Clients, storage: Storage) -> Storage:
    """Fail before any export when the bucket or key cannot be used; resolve the key to its ARN."""
    if not storage.get("bucket") or not storage.get("kmsKeyArn"):
        raise InvalidRequest("a backup needs a bucket and a KMS key")
    import botocore.exceptions

    with sdk_errors():
        try:
            clients.s3.head_bucket(Bucket=storage["bucket"])
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in {"404", "NoSuchBucket", "403", "AccessDenied"}:
                raise BucketNotFound(
                    f"bucket {storage['bucket']} does not exist or is not accessible"
                ) from exc
            raise
        try:
            meta = clients.kms.describe_key(KeyId=storage["kmsKeyArn"])["KeyMetadata"]
        except botocore.exceptions.ClientError as exc:
            raise KeyAccessDenied(
                f"KMS key {storage['kmsKeyArn']} is not usable ({error_code(exc)})"
            ) from exc
    # KeyUsage defaults to ENCRYPT_DECRYPT in the KMS API, and some emulators leave the default out.
    if not meta.get("Enabled", False) or meta.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT":
        raise KeyAccessDenied(f"KMS key {meta['Arn']} is not an enabled encryption key")
    return {
        "bucket": storage["bucket"],
        "kmsKeyArn": meta["Arn"],
        "prefix": storage.get("prefix", "").strip("/"),
    }


def enumerate_pools(
    clients: Clients, event: EnumeratePoolsEvent, now: dt.datetime | None = None
) -> EnumeratePoolsResult:
    """Writes the run's pool list to S3 for BackupEachPool's ItemReader; only its key and count travel on."""
    storage = _check_storage(clients, event["storage"])
    requested = list(event.get("poolIds") or [])
    if event.get("allPools"):
        pool_ids = cognito_read.list_pool_ids(clients.cognito)
    elif requested:
        pool_ids = [layout.check_pool_id(p) for p in dict.fromkeys(requested)]
        for pool_id in pool_ids:
            cognito_read.describe_pool(clients.cognito, pool_id)  # PoolNotFound before any work starts
    else:
        raise InvalidRequest("name at least one pool id, or ask for all pools")
    now = now or dt.datetime.now(dt.UTC)
    started = now.isoformat(timespec="seconds")
    # Named like a backup (time and a random suffix), not by the execution: a nested execution started without
    # a name has none in the local engine, and a retried call may write the list again under a new name.
    run = event.get("run") or layout.new_backup_id(now)
    jobs: list[PoolJob] = [
        {"poolId": p, "backupId": layout.new_backup_id(now), "storage": storage, "startedAt": started}
        for p in pool_ids
    ]
    key = run_objects.write_pools(clients, storage, run, jobs)
    execution = event.get("execution")
    threshold = execution.get(shards.THRESHOLD_INPUT_KEY) if isinstance(execution, Mapping) else None
    log.info("pools to back up", extra={"pools": len(jobs)})
    return {
        "run": run,
        "poolsKey": key,
        "pools": len(jobs),
        "distributedShardThreshold": int(threshold) if threshold is not None else None,
    }


# Backups named in the execution's output; the rest are in the run's summary object. 100 summaries are about
# 25 KiB, a tenth of the 256 KiB payload limit. The same bound holds for the failed pools.
INLINE_BACKUPS = 100
# A failed pool's message in the summary, the audit record and the run's cause: one line, bounded.
MESSAGE_CHARS = 300
# The run's cause names this many failed pools; the summary object names them all.
CAUSE_POOLS = 20
NO_RESULT = "PoolExecutionFailed"


def failure_text(error: str | None, cause: str | None) -> str:
    """A failed pool's one line, capped: the run's cause and summary name many pools."""
    return failure_line(error, cause)[:MESSAGE_CHARS]


def _pool_results(jobs: list[PoolJob], results: list[Any]) -> list[Mapping[str, Any] | None]:
    """Each job's result. The Map keeps the items' order; a child that failed outright (a timeout, an abort)
    comes back as null, or (if the Map leaves it out) shortens the list: then only named failures are matched.
    """
    if len(results) == len(jobs):
        return [r if isinstance(r, Mapping) else None for r in results]
    named = {str(r.get("poolId")): r for r in results if isinstance(r, Mapping) and r.get("poolId")}
    return [named.get(job["poolId"]) for job in jobs]


def _pool_failure(job: PoolJob, result: Mapping[str, Any] | None) -> PoolFailure | None:
    """None when the pool's child reported a verified backup and its authenticated manifest reads back."""
    failure: PoolFailure = {"poolId": job["poolId"], "backupId": job["backupId"], "error": "", "message": ""}
    if result is None:
        failure["error"] = NO_RESULT
        failure["message"] = "the pool's child execution ended without a result"
        return failure
    if result.get("verified") is not True:
        failure["error"] = str(result.get("error") or "IncompleteBackup")
        failure["message"] = failure_text(failure["error"], result.get("cause"))
        return failure
    return None


def collect_backups(
    clients: Clients, event: CollectBackupsEvent, now: dt.datetime | None = None
) -> BackupsResult:
    """Every listed pool either has a verified backup with its authenticated manifest, or is a failure.

    A failed child execution may come back as null while the Map succeeds (moto's interpreter does so), so the
    flags and the manifests are both checked here, not trusted from the Map's status. One audit record per
    pool says what happened to it; the run fails (EveryPoolBackedUp) only after this, when any pool failed.
    """
    storage = event["storage"]
    jobs = run_objects.read_pools(clients, storage, event["poolsKey"])
    if len(jobs) != event["pools"]:
        raise IntegrityError(
            f"the run's pool list holds {len(jobs)} pools, EnumeratePools listed {event['pools']}"
        )
    results = _pool_results(jobs, list(event.get("results") or []))
    backups: list[BackupSummary] = []
    failures: list[PoolFailure] = []
    for job, result in zip(jobs, results, strict=True):
        failure = _pool_failure(job, result)
        if failure is None:
            loc = location(job)
            try:
                counts = manifest.read_manifest(clients, loc, job["storage"]["kmsKeyArn"])["counts"]
            except PipelineError as exc:
                failure = {
                    "poolId": job["poolId"],
                    "backupId": job["backupId"],
                    "error": type(exc).__name__,
                    "message": str(exc).splitlines()[0][:MESSAGE_CHARS] if str(exc) else type(exc).__name__,
                }
            else:
                backups.append(
                    {
                        "poolId": job["poolId"],
                        "backupId": job["backupId"],
                        "uri": loc.uri,
                        "users": int(counts["users"]),
                        "groups": int(counts["groups"]),
                        "memberships": int(counts["memberships"]),
                        "verified": True,
                    }
                )
        if failure is not None:
            failures.append(failure)
            log.warning("pool not backed up", extra={"poolId": job["poolId"], "error": failure["error"]})
    ended = now or dt.datetime.now(dt.UTC)
    started = {j["poolId"]: dt.datetime.fromisoformat(j["startedAt"]) for j in jobs}
    ages = {b["poolId"]: max(0.0, (ended - started[b["poolId"]]).total_seconds()) for b in backups}
    metrics.emit_run_outcome(ages, len(failures))
    summary: list[Any] = [*backups, *({**f, "verified": False} for f in failures)]
    key = run_objects.write_summary(clients, storage, event["run"], summary)
    _audit_outcomes(clients, storage, event["run"], key, backups, failures, now)
    return {
        "pools": len(jobs),
        "users": sum(b["users"] for b in backups),
        "groups": sum(b["groups"] for b in backups),
        "memberships": sum(b["memberships"] for b in backups),
        "summaryKey": key,
        "backups": backups[:INLINE_BACKUPS],
        "truncated": len(backups) > INLINE_BACKUPS or len(failures) > INLINE_BACKUPS,
        "failed": len(failures),
        "failures": failures[:INLINE_BACKUPS],
        "cause": _run_cause(len(jobs), failures, key),
    }


def _run_cause(pools: int, failures: list[PoolFailure], summary_key: str) -> str:
    if not failures:
        return ""
    named = "; ".join(f"{f['poolId']}: {f['error']} ({f['message']})" for f in failures[:CAUSE_POOLS])
    more = f"; and {len(failures) - CAUSE_POOLS} more" if len(failures) > CAUSE_POOLS else ""
    message = f"{len(failures)} of {pools} pools have no verified backup: {named}{more}"
    return json.dumps({"errorMessage": message, "summaryKey": summary_key, "failed": len(failures)})


def _audit_outcomes(
    clients: Clients,
    storage: Storage,
    run: str,
    summary_key: str,
    backups: list[BackupSummary],
    failures: list[PoolFailure],
    now: dt.datetime | None,
) -> None:
    """One record per pool: the trail answers "was this pool backed up last night, and if not, why"."""
    from pipeline.core.aws import caller_arn
    from pipeline.sealing import audit

    sink = audit.AuditSink(
        clients,
        storage["bucket"],
        storage["kmsKeyArn"],
        prefix="/".join(p for p in (storage["prefix"].strip("/"), "audit") if p),
        approvals_prefix="/".join(p for p in (storage["prefix"].strip("/"), "approvals") if p),
    )
    actor = caller_arn(clients)
    for b in backups:
        details: dict[str, Any] = {"run": run, "summaryKey": summary_key, "backupId": b["backupId"]}
        details |= {"uri": b["uri"]}
        details |= {"users": b["users"], "groups": b["groups"], "memberships": b["memberships"]}
        audit.record(sink, "backup.completed", b["poolId"], actor=actor, details=details, now=now)
    for f in failures:
        failed: dict[str, Any] = {"run": run, "summaryKey": summary_key, "backupId": f["backupId"]}
        failed |= {"error": f["error"], "message": f["message"]}
        audit.record(sink, "backup.failed", f["poolId"], actor=actor, details=failed, now=now)


CONFIG_START: ConfigCursor = {"phase": pool_config.SETTINGS, "nextToken": None, "part": 0, "done": False}


def _config_work_key(loc: layout.BackupLocation, part: int) -> str:
    # Under the backup's root: WriteManifest removes these work parts with any other leftover.
    return f"{loc.root}work/config-{part:05d}.bin"


def capture_config(
    clients: Clients,
    job: PoolJob,
    cursor: ConfigCursor | None = None,
    *,
    budget_s: float = float("inf"),
    clock: Clock = time.monotonic,
) -> ConfigCursor | PoolConfigSummary:
    """One slice of the pool's configuration, sealed as a work part; the last slice seals ``config.bin``.

    Like ExportUsers, a slice's part key depends only on the cursor, so a retried slice rewrites the same object.
    """
    cursor = cursor or CONFIG_START
    if cursor["done"]:
        return cursor
    loc = location(job)
    key_arn = job["storage"]["kmsKeyArn"]
    captured = pool_config.capture_slice(
        clients.cognito,
        job["poolId"],
        cursor["phase"],
        cursor["nextToken"],
        deadline=clock() + budget_s,
        clock=clock,
    )
    part = cursor["part"]
    if captured.records:
        store.put_sealed(clients, loc, key_arn, _config_work_key(loc, part), captured.records)
        part += 1
    if captured.phase != pool_config.DONE:
        return {"phase": captured.phase, "nextToken": captured.token, "part": part, "done": False}
    records = [r for p in range(part) for r in store.get_sealed(clients, loc, _config_work_key(loc, p))]
    config = pool_config.assemble(records)
    store.put_sealed(clients, loc, key_arn, loc.config_key, [config])
    estimated = cognito_read.estimated_users(clients.cognito, job["poolId"])
    summary: PoolConfigSummary = {
        "phase": pool_config.DONE,
        "nextToken": None,
        "part": part,
        "done": True,
        "configKey": loc.config_key,
        "estimatedUsers": estimated,
        "groups": len(config["groups"]),
        "appClients": len(config["appClients"]),
    }
    previous = chain_hints.previous_slices(clients, loc)
    if previous is not None:
        summary["previousSlices"] = previous
    return summary


def plan(state: PoolState) -> ShardPlan:
    """The ASL hands PlanShards the execution input as ``execution``, for the operator's optional threshold."""
    config = state.get("config")
    planned = shards.plan_shards(config["estimatedUsers"] if config else 0)
    groups = config["groups"] if config else 0
    execution = state.get("execution")
    threshold = execution.get(shards.THRESHOLD_INPUT_KEY) if isinstance(execution, Mapping) else None
    return {
        "shards": planned,
        "distributed": shards.runs_distributed(len(planned), threshold),
        "groupSlices": shards.plan_group_slices(
            groups,
            expected=shards.expected_memberships(config.get("previousSlices") if config else None, groups),
        ),
    }


def export_users(
    clients: Clients, state: ShardState, budget_s: float, clock: Clock = time.monotonic
) -> UserCursor:
    """Pages one shard until the part is full, the shard ends or the time budget runs out, then writes the part.

    The part key depends only on (shard, part number), so a retry after a crash rewrites the same object.
    """
    cursor = state["cursor"]
    if cursor["done"]:
        return cursor
    job, shard = state["job"], state["shard"]
    loc = location(job)
    deadline = clock() + budget_s
    users: list[dict[str, Any]] = []
    token = cursor["nextToken"]
    try:
        while True:
            page = cognito_read.list_users_page(clients.cognito, job["poolId"], sub_prefix=shard, token=token)
            users.extend(page.users)
            token = page.next_token
            if token is None or len(users) >= USERS_PER_PART or clock() >= deadline:
                break
    except PaginationTokenExpired:
        # The shard restarts; parts are rewritten at the same keys and WriteManifest drops any leftover beyond the end.
        log.warning(
            "pagination token expired; restarting shard", extra={"pool": job["poolId"], "shard": shard}
        )
        return {"part": 0, "nextToken": None, "users": 0, "done": False}
    part = cursor["part"]
    if users:
        store.put_sealed(clients, loc, job["storage"]["kmsKeyArn"], loc.user_part_key(shard, part), users)
        part += 1
    return {"part": part, "nextToken": token, "users": cursor["users"] + len(users), "done": token is None}


def captured_groups(clients: Clients, loc: layout.BackupLocation) -> list[str]:
    """The group names CapturePoolConfig sealed, sorted: the memberships are those of the captured groups."""
    config = store.get_sealed(clients, loc, loc.config_key)[0]
    return sorted(g["name"] for g in config["groups"])


def export_memberships(
    clients: Clients, state: SliceState, budget_s: float, clock: Clock = time.monotonic
) -> MembershipCursor:
    """One group slice's members by group (ListUsersInGroup), never one AdminListGroupsForUser call per user.

    Like a shard's parts, a slice's part keys depend only on (slice, part number).
    """
    cursor = state["cursor"]
    if cursor["done"]:
        return cursor
    job, group_slice = state["job"], state["slice"]
    loc = location(job)
    deadline = clock() + budget_s
    groups = captured_groups(clients, loc)[group_slice["first"] : group_slice["end"]]
    if len(groups) != group_slice["end"] - group_slice["first"]:
        raise IntegrityError(f"group slice {group_slice['slice']} is beyond the captured groups")
    index, token = cursor["groupIndex"], cursor["nextToken"]
    records: list[dict[str, Any]] = []
    while index < len(groups) and len(records) < MEMBERSHIPS_PER_PART and clock() < deadline:
        try:
            members, token = cognito_read.group_members_page(
                clients.cognito, job["poolId"], groups[index], token
            )
        except PaginationTokenExpired:
            if index == cursor["groupIndex"] and cursor["nextToken"] is not None:
                raise  # this group's first pages are in an earlier part: restarting it here would duplicate them
            records = [r for r in records if r["group"] != groups[index]]
            token = None
            continue
        records.extend({"group": groups[index], **m} for m in members)
        if token is None:
            index += 1
    part = cursor["part"]
    if records:
        key = loc.membership_part_key(group_slice["slice"], part)
        store.put_sealed(clients, loc, job["storage"]["kmsKeyArn"], key, records)
        part += 1
    return {
        "groupIndex": index,
        "nextToken": token,
        "part": part,
        "memberships": cursor["memberships"] + len(records),
        "done": index >= len(groups),
    }


def _planned_objects(state: PoolState) -> list[str]:
    """Every key the states say they wrote; a missing or unfinished shard stops the backup here."""
    loc = location(state["job"])
    planned = state["plan"]["shards"]
    results = state.get("shardResults") or []
    by_shard = {r["shard"]: r for r in results if r is not None}
    missing = [s for s in planned if s not in by_shard or not by_shard[s]["done"]]
    if len(results) != len(planned) or missing:
        raise IncompleteBackup(
            f"{len(missing) or len(planned) - len(results)} of {len(planned)} shards did not report completion"
        )
    slices = state["plan"]["groupSlices"]
    slice_results = state.get("sliceResults") or []
    by_slice = {r["slice"]: r for r in slice_results if r is not None}
    unfinished = [
        g["slice"] for g in slices if g["slice"] not in by_slice or not by_slice[g["slice"]]["done"]
    ]
    if len(slice_results) != len(slices) or unfinished:
        raise IncompleteBackup(
            f"{len(unfinished) or len(slices) - len(slice_results)} of {len(slices)} group slices "
            "did not report completion"
        )
    keys = [loc.config_key]
    for shard in planned:
        keys.extend(loc.user_part_key(shard, p) for p in range(by_shard[shard]["parts"]))
    for g in slices:
        keys.extend(loc.membership_part_key(g["slice"], p) for p in range(by_slice[g["slice"]]["parts"]))
    return keys


def _drop_orphans(clients: Clients, loc: layout.BackupLocation, keep: set[str]) -> list[str]:
    """The capture's work parts and parts left by a restarted shard are not part of the backup; remove them
    before the manifest seals it."""
    orphans: list[str] = []
    with sdk_errors():
        for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.root):
            orphans.extend(o["Key"] for o in page.get("Contents", []) if o["Key"] not in keep)
        for i in range(0, len(orphans), 1000):
            batch = [{"Key": k} for k in orphans[i : i + 1000]]
            clients.s3.delete_objects(Bucket=loc.bucket, Delete={"Objects": batch, "Quiet": True})  # type: ignore[typeddict-item]
    return orphans


def _check_reported(objects: list[store.StoredObject], kind: str, reported: int, by: str) -> None:
    stored = sum(o.records for o in objects if o.name.startswith(kind + "/"))
    if stored != reported:
        raise IntegrityError(f"parts hold {stored} {kind} but the {by} reported {reported}")


def write_manifest(clients: Clients, state: PoolState) -> ManifestSummary:
    job = state["job"]
    loc = location(job)
    if manifest.exists(clients, loc):
        raise BackupExists(f"backup {loc.uri} is already complete; it is never overwritten")
    keys = _planned_objects(state)
    objects = [store.head_stored(clients, loc, k) for k in keys]
    _check_reported(objects, "users", sum(r["users"] for r in state.get("shardResults") or [] if r), "shards")
    _check_reported(
        objects,
        "memberships",
        sum(r["memberships"] for r in state.get("sliceResults") or [] if r),
        "group slices",
    )
    dropped = _drop_orphans(clients, loc, set(keys))
    # Work parts are always there (CapturePoolConfig's slices); anything else was left by a restarted task.
    leftovers = [k for k in dropped if not k.startswith(loc.root + "work/")]
    if leftovers:
        log.warning("removed leftover parts", extra={"pool": job["poolId"], "objects": len(leftovers)})
    doc = manifest.build_manifest(
        loc,
        region=clients.region,
        kms_key_arn=job["storage"]["kmsKeyArn"],
        started_at=job["startedAt"],
        shards=state["plan"]["shards"],
        objects=objects,
        groups=state["config"]["groups"],
    )
    manifest.write_manifest(clients, loc, doc)
    counts = doc["counts"]
    return {
        "manifestKey": loc.manifest_key,
        "uri": loc.uri,
        "users": counts["users"],
        "groups": counts["groups"],
        "memberships": counts["memberships"],
        "parts": counts["parts"],
    }


def verify(clients: Clients, job: PoolJob) -> VerificationResult:
    report = verify_backup(clients, location(job), expected_key_arn=job["storage"]["kmsKeyArn"])
    return {
        "verified": True,
        "uri": report.uri,
        "users": report.users,
        "groups": report.groups,
        "memberships": report.memberships,
        "objects": report.objects,
    }
