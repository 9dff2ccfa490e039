"""The restore states' logic: one function per Task state of ``statemachines/restore.asl.json``.

Nothing is written to the target pool before RecordDecision has confirmed an approval: ValidateRequest only reads,
PreRestoreSnapshot is a backup, RequestApproval writes to the backup bucket. Users, usernames and temporary
passwords stay inside the calls; payloads carry ids, keys and counts. Every write step is idempotent, so a re-run
(or a retried shard) completes what is missing and duplicates nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.backup.verify import verify_backup
from pipeline.cognito import reading as cognito_read
from pipeline.cognito import shards
from pipeline.core import identity_proof
from pipeline.core.aws import Clients
from pipeline.core.contracts import (
    FinalizeResult,
    IndexCursor,
    RestoreCounts,
    RestoreCursor,
    RestoreReportSummary,
    RestoreRequest,
    RestoreRequestEvent,
    RestoreVerification,
    Storage,
    TargetPool,
    VerifyCursor,
)
from pipeline.core.errors import IncompleteBackup, InvalidRequest
from pipeline.core.lambda_runtime import ENGINE_ENDPOINT_ENV, logger
from pipeline.core.layout import (
    BackupLocation,
    check_deployed_prefix,
    check_pool_id,
    is_pool_name,
    parse_backup_uri,
)
from pipeline.restore import approval, diff, membership_index, pool_restore, user_restore
from pipeline.sealing import audit, manifest, store
from pipeline.sealing.backup_reader import BackupReader

log = logger(__name__)

Clock = Callable[[], float]
MIN_APPROVAL_S, MAX_APPROVAL_S = 5, 7 * 24 * 3600
_CURSOR_COUNTS = tuple(RestoreCounts.__annotations__)
SELECTION_CONTEXT_APP = "cognito-backuper"


# --- where a restore keeps its own objects -----------------------------------------------------------------------


def audit_sink(clients: Clients, settings: Storage) -> audit.AuditSink:
    return audit.AuditSink(
        clients,
        settings["bucket"],
        settings["kmsKeyArn"],
        prefix=_under(settings, "audit"),
        approvals_prefix=_under(settings, "approvals"),
    )


def _under(settings: Storage, name: str) -> str:
    return "/".join(p for p in (settings["prefix"].strip("/"), name) if p)


def workspace(request: RestoreRequest) -> BackupLocation:
    """``<prefix>/restores/<source pool>/<request id>/``: selection, id maps, diff and report, all sealed."""
    source = parse_backup_uri(request["backupUri"])
    return BackupLocation(
        bucket=request["settings"]["bucket"],
        prefix=_under(request["settings"], "restores"),
        pool_id=source.pool_id,
        backup_id=request["requestId"],
    )


def selection_context(key: str) -> dict[str, str]:
    return {"app": SELECTION_CONTEXT_APP, "selection": key}


def selection_key(settings: Storage, token: str) -> str:
    """Where the CLI seals a selection (usernames are user data: they never ride in the execution input)."""
    return f"{_under(settings, 'restores')}/selections/{token}.bin"


@dataclass(frozen=True)
class Selection:
    users: frozenset[str] | None
    groups: frozenset[str] | None

    @property
    def selective(self) -> bool:
        return self.users is not None or self.groups is not None


def _load_selection(clients: Clients, request: RestoreRequest) -> Selection:
    key = request["selectionKey"]
    if key is None:
        return Selection(None, None)
    doc = store.get_sealed(clients, workspace(request), key)[0]
    return Selection(frozenset(doc["users"]), frozenset(doc["groups"]))


def _reader(clients: Clients, request: RestoreRequest) -> BackupReader:
    """The backup exactly as approved: its manifest by the pinned S3 version, its bytes by the pinned SHA-256,
    its key the deployment's. A request without a pin is refused: nothing may restore an unpinned backup."""
    settings = request["settings"]
    loc = check_deployed_prefix(parse_backup_uri(request["backupUri"]), settings["prefix"])
    digest = request.get("manifestSha256")
    if not digest:
        raise InvalidRequest("the restore request pins no manifest: it was not made by ValidateRequest")
    pin = manifest.ManifestPin(sha256=digest, version_id=request.get("manifestVersionId"))
    return BackupReader.open(clients, loc, expected_key_arn=settings["kmsKeyArn"], pin=pin)


# --- ValidateRequest ----------------------------------------------------------------------------------------------


def _target(clients: Clients, event: RestoreRequestEvent) -> dict[str, Any]:
    pool_id, name = event.get("targetPoolId"), event.get("newPoolName")
    if (pool_id is None) == (name is None):
        raise InvalidRequest("restore either into an existing pool (--target-pool) or a new one (--new-pool)")
    if pool_id is not None:
        cognito_read.describe_pool(clients.cognito, check_pool_id(pool_id))
        return {"mode": "existing", "poolId": pool_id, "poolName": None}
    assert name is not None
    if not is_pool_name(name):
        raise InvalidRequest("a new pool name is 1-128 letters, digits, spaces and +=,.@-")
    return {"mode": "new", "poolId": None, "poolName": name}


def resolve_selection(
    reader: BackupReader, users: set[str], groups: set[str]
) -> tuple[frozenset[str], frozenset[str]]:
    """Users named, plus the members of groups named; groups named, plus the groups of the users named."""
    known_groups = {g["name"] for g in reader.config()["groups"]}
    if groups - known_groups:
        raise InvalidRequest(f"{len(groups - known_groups)} of the selected groups are not in the backup")
    known_users = {u["username"] for u in reader.users()}
    if users - known_users:
        raise InvalidRequest(f"{len(users - known_users)} of the selected users are not in the backup")
    named_users, named_groups = set(users), set(groups)
    for m in reader.memberships():
        if m["group"] in named_groups:
            users.add(m["username"])
        if m["username"] in named_users:
            groups.add(m["group"])
    return frozenset(users), frozenset(groups)


def _requested_selection(
    clients: Clients, event: RestoreRequestEvent, reader: BackupReader
) -> tuple[frozenset[str], frozenset[str]] | None:
    key = event.get("selectionKey")
    if not key:
        return None
    doc = audit.get_document(audit_sink(clients, event["settings"]), key, selection_context(key))
    return resolve_selection(reader, set(doc.get("users") or []), set(doc.get("groups") or []))


def _runs_distributed(event: RestoreRequestEvent, shard_count: int) -> bool:
    """Like the backup's PlanShards: many shards restore as child executions, so the history stays small."""
    execution = event.get("execution")
    threshold = execution.get(shards.THRESHOLD_INPUT_KEY) if isinstance(execution, Mapping) else None
    return shards.runs_distributed(shard_count, threshold)


def validate_request(clients: Clients, event: RestoreRequestEvent) -> RestoreRequest:
    """Reads only: the backup is verified in full, the target checked, the selection resolved and sealed."""
    settings = event["settings"]
    loc = parse_backup_uri(event["backupUri"])
    if loc.bucket != settings["bucket"]:
        raise InvalidRequest(f"the backup must be in this pipeline's bucket {settings['bucket']}")
    check_deployed_prefix(loc, settings["prefix"])
    # The requester is who STS says signed the proof for this very execution, never a name in the input.
    requested_by = identity_proof.verify_proof(
        event.get("requesterProof"),
        identity_proof.purpose("restore", event["executionName"]),
        region=clients.region,
    )
    target = _target(clients, event)
    # The pin is taken first and the verification reads that very version: what is approved is what was verified.
    _, pin = manifest.read_pinned(clients, loc, expected_key_arn=settings["kmsKeyArn"])
    report = verify_backup(clients, loc, expected_key_arn=settings["kmsKeyArn"], pin=pin)
    reader = BackupReader.open(clients, loc, expected_key_arn=settings["kmsKeyArn"], pin=pin)
    timeout = int(event.get("approvalTimeoutSeconds") or 86_400)
    if not MIN_APPROVAL_S <= timeout <= MAX_APPROVAL_S:
        raise InvalidRequest(f"the approval timeout must be {MIN_APPROVAL_S} s to {MAX_APPROVAL_S} s")
    request: RestoreRequest = {
        "requestId": approval.new_request_id(),
        "backupUri": loc.uri,
        "settings": settings,
        "target": target,  # type: ignore[typeddict-item]
        "shards": list(reader.doc["shards"]),
        "distributed": _runs_distributed(event, len(reader.doc["shards"])),
        "selectionKey": None,
        "requestedBy": requested_by,
        "approvalTimeoutSeconds": timeout,
        "executionArn": event["executionArn"],
        "backupUsers": report.users,
        "backupMemberships": report.memberships,
        "selectedUsers": None,
        "manifestSha256": pin.sha256,
        "manifestVersionId": pin.version_id,
        "backupCompletedAt": reader.doc["completedAt"],
        "backupGroups": report.groups,
    }
    selection = _requested_selection(clients, event, reader)
    if selection is not None:
        ws = workspace(request)
        key = ws.root + "selection.bin"
        users, groups = selection
        store.put_sealed(
            clients, ws, settings["kmsKeyArn"], key, [{"users": sorted(users), "groups": sorted(groups)}]
        )
        request["selectionKey"] = key
        request["selectedUsers"] = len(users)
    return request


# --- approval -----------------------------------------------------------------------------------------------------


def approved_backup(request: RestoreRequest) -> dict[str, Any]:
    """What the approver approves: the backup's pool, time and counts, and the pin every later task re-checks."""
    source = parse_backup_uri(request["backupUri"])
    return {
        "poolId": source.pool_id,
        "backupId": source.backup_id,
        "completedAt": request.get("backupCompletedAt"),
        "users": request["backupUsers"],
        "groups": request.get("backupGroups"),
        "memberships": request["backupMemberships"],
        "manifestSha256": request.get("manifestSha256"),
        "manifestVersionId": request.get("manifestVersionId"),
    }


def request_approval(
    clients: Clients, request: RestoreRequest, snapshot: Mapping[str, Any], token: str
) -> None:
    now = dt.datetime.now(dt.UTC)
    backups = snapshot.get("backups") or []
    ticket = approval.ApprovalRequest(
        request_id=request["requestId"],
        requested_by=request["requestedBy"],
        requested_at=audit.iso(now),
        expires_at=audit.iso(now + dt.timedelta(seconds=request["approvalTimeoutSeconds"])),
        backup_uri=request["backupUri"],
        target=dict(request["target"]),
        selective={"selected": request["selectionKey"] is not None, "users": request["selectedUsers"]},
        execution_arn=request["executionArn"],
        snapshot_uri=str(backups[0]["uri"]) if backups else None,
        engine_endpoint=os.environ.get(ENGINE_ENDPOINT_ENV),
        backup=approved_backup(request),
    )
    approval.open_request(audit_sink(clients, request["settings"]), ticket, token)


def record_decision(
    clients: Clients,
    request: RestoreRequest,
    decision: str,
    output: Mapping[str, Any] | None,
    error: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """After the token came back: prove who decided (approval or rejection), seal the decision and audit it."""
    sink = audit_sink(clients, request["settings"])

    def verify(proof: Any, purpose: str) -> str:
        return identity_proof.verify_proof(proof, purpose, region=clients.region)

    if decision in {"approved", "rejected"}:
        message = output if decision == "approved" else _rejection_message(error)
        result = approval.record_decision(
            sink, request["requestId"], approved=decision == "approved", message=message, verify=verify
        )
        if decision == "approved":
            return result
        decision = str(result["decision"])
    event: approval.OutcomeEvent = "restore.expired" if decision == "expired" else "restore.failed"
    approval.record_outcome(sink, request["requestId"], event, {"decision": decision, "targetWritten": False})
    return {"decision": decision}


def _rejection_message(error: Mapping[str, Any] | None) -> dict[str, Any]:
    """The rejecting CLI puts its message (request id, reason, proof) in SendTaskFailure's cause."""
    try:
        message = json.loads(str((error or {}).get("Cause") or ""))
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


# --- writes to the target -----------------------------------------------------------------------------------------


# The first slice's cursor (the ASL's StartPoolConfigRestore state holds the same): no pool yet.
CONFIG_RESTORE_START: TargetPool = {
    "poolId": "",
    "created": False,
    "groupsCreated": 0,
    "conflicts": 0,
    "tempClientId": None,
    "phase": pool_restore.POOL_PHASE,
    "index": 0,
    "slice": 0,
    "done": False,
}


def restore_pool_config(
    clients: Clients,
    request: RestoreRequest,
    cursor: TargetPool | None = None,
    *,
    budget_s: float = float("inf"),
    clock: Clock = time.monotonic,
    adapt: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> TargetPool:
    """One slice of RestorePoolConfig's loop; ``cursor`` is the previous slice's result (None: the first).

    Counts add up across slices; each slice's own outcome is sealed at a key fixed by its number. ``adapt``
    changes the backed-up configuration before it is applied (a drill's scratch pool: pipeline.drill.steps).
    """
    cursor = cursor or CONFIG_RESTORE_START
    if cursor.get("done"):
        return cursor
    reader = _reader(clients, request)
    selection = _load_selection(clients, request)
    source = parse_backup_uri(request["backupUri"])
    target = request["target"]
    config = reader.config()
    done = pool_restore.restore_pool_config_slice(
        clients.cognito,
        adapt(config) if adapt else config,
        source=f"{source.pool_id}/{source.backup_id}",
        target_pool_id=target["poolId"] if target["mode"] == "existing" else None,
        new_pool_name=target["poolName"] if target["mode"] == "new" else None,
        groups=selection.groups if selection.selective else None,
        phase=cursor.get("phase", pool_restore.POOL_PHASE),
        index=cursor.get("index", 0),
        pool_id=cursor["poolId"] or None,
        created=cursor["created"],
        deadline=clock() + budget_s,
        clock=clock,
    )
    result = done.result
    number = cursor.get("slice", 0)
    ws = workspace(request)
    key = f"{ws.root}pool-config-{number:05d}.bin"
    store.put_sealed(clients, ws, request["settings"]["kmsKeyArn"], key, [asdict(result)])
    return {
        "poolId": result.pool_id,
        "created": result.created,
        "groupsCreated": cursor["groupsCreated"] + result.groups_created,
        "conflicts": cursor["conflicts"] + len(result.conflicts),
        "tempClientId": result.temp_client_id or cursor["tempClientId"],
        # Only the first slice creates the pool; later slices carry its list forward.
        "droppedFields": [*cursor.get("droppedFields", []), *result.dropped],
        "phase": done.phase,
        "index": done.index,
        "slice": number + 1,
        "done": done.done,
    }


def _idmap_key(ws: BackupLocation, shard: str, part: int, offset: int) -> str:
    return f"{ws.root}idmap/{shard or 'all'}/part-{part:05d}-{offset:07d}.bin"


def restore_users(
    clients: Clients,
    request: RestoreRequest,
    target: TargetPool,
    shard: str,
    cursor: RestoreCursor,
    budget_s: float,
    clock: Clock = time.monotonic,
) -> RestoreCursor:
    """Restores one backup part of a shard, from ``offset``, until the part ends or the time budget runs out;
    each user's groups (from the shard's membership index) are added right after the user.

    The id map of this slice is written at a key fixed by (shard, part, offset), so a retried slice rewrites it;
    a retried user is "existing", and only the groups it lacks are added.
    """
    if cursor["done"]:
        return cursor
    deadline = clock() + budget_s
    reader = _reader(clients, request)
    parts = reader.objects("users", shard)
    if cursor["part"] >= len(parts):
        return {**cursor, "done": True}
    records = reader.read(parts[cursor["part"]])
    selection = _load_selection(clients, request)
    pool = cognito_read.describe_pool(clients.cognito, target["poolId"])
    username_attributes = pool.get("UsernameAttributes") or []
    policy = (pool.get("Policies") or {}).get("PasswordPolicy")
    progress: Mapping[str, Any] = cursor
    counts = {k: int(progress[k]) for k in _CURSOR_COUNTS}
    groups_of = _shard_memberships(clients, request, shard)
    missing_groups: set[str] = set()
    outcomes: list[dict[str, Any]] = []
    index = cursor["offset"]
    while index < len(records) and (not outcomes or clock() < deadline):
        record = records[index]
        index += 1
        if selection.users is not None and record["username"] not in selection.users:
            continue
        outcome = user_restore.restore_user(
            clients.cognito,
            target["poolId"],
            record,
            username_attributes=username_attributes,
            password_policy=policy,
            temp_client_id=target["tempClientId"],
            owns_pool=target["created"],
            alias_attributes=pool.get("AliasAttributes") or [],
        )
        outcomes.append(asdict(outcome))
        counts[
            {"created": "created", "existing": "existing", "failed": "failed"}.get(outcome.result, "skipped")
        ] += 1
        groups = [
            g
            for g in groups_of.get(record["username"], ())
            if selection.groups is None or g in selection.groups
        ]
        added, already, skipped = user_restore.restore_user_groups(
            clients.cognito, target["poolId"], outcome, groups, missing_groups
        )
        counts["membershipsAdded"] += added
        counts["membershipsExisting"] += already
        counts["membershipsSkipped"] += skipped
    if outcomes:
        ws = workspace(request)
        key = _idmap_key(ws, shard, cursor["part"], cursor["offset"])
        store.put_sealed(clients, ws, request["settings"]["kmsKeyArn"], key, outcomes)
    finished_part = index >= len(records)
    part = cursor["part"] + 1 if finished_part else cursor["part"]
    return {
        "part": part,
        "offset": 0 if finished_part else index,
        **counts,  # type: ignore[typeddict-item]
        "done": part >= len(parts),
    }


def _id_maps(clients: Clients, request: RestoreRequest) -> Iterator[dict[str, Any]]:
    ws = workspace(request)
    paginator = clients.s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=ws.bucket, Prefix=ws.root + "idmap/"):
        for item in page.get("Contents", []):
            yield from store.get_sealed(clients, ws, item["Key"])


def username_map(clients: Clients, request: RestoreRequest, reader: BackupReader) -> dict[str, str]:
    """Old to new usernames; only pools that sign in by e-mail or phone get new usernames."""
    if not reader.config()["pool"].get("UsernameAttributes"):
        return {}
    return {m["old_username"]: m["new_username"] for m in _id_maps(clients, request) if m.get("new_username")}


def index_memberships(clients: Clients, request: RestoreRequest, cursor: IndexCursor) -> IndexCursor:
    """One pass of IndexMemberships: this pass's shards get their sealed ``{username: groups}`` object, written
    at a key fixed by the shard, so a retried pass rewrites the same objects."""
    if cursor["done"]:
        return cursor
    passes = cursor["passes"] or min(
        membership_index.passes_for(request["backupMemberships"]), max(1, len(request["shards"]))
    )
    this_pass = membership_index.pass_shards(request["shards"], passes, cursor["next"])
    reader = _reader(clients, request)
    width = len(request["shards"][0]) if request["shards"] else 0
    by_shard = membership_index.group_by_user(
        (m for obj in reader.objects("memberships") for m in reader.read(obj)), this_pass, width
    )
    ws = workspace(request)
    for shard, members in by_shard.items():
        records = membership_index.records(members)
        store.put_sealed(
            clients, ws, request["settings"]["kmsKeyArn"], membership_index.key(ws, shard), records
        )
    done = cursor["next"] + 1
    return {"next": done, "passes": passes, "done": done >= passes}


def _shard_memberships(clients: Clients, request: RestoreRequest, shard: str) -> dict[str, list[str]]:
    ws = workspace(request)
    return {
        m["username"]: m["groups"] for m in store.get_sealed(clients, ws, membership_index.key(ws, shard))
    }


def finalize_target(clients: Clients, request: RestoreRequest, target: TargetPool) -> FinalizeResult:
    """A pool this restore created gets its triggers and auto-verification only now, after every user and
    membership: no message or trigger may act on restored users."""
    if not target["created"]:
        return {"finalized": False}
    reader = _reader(clients, request)
    pool_restore.finalize_new_pool(clients.cognito, target["poolId"], reader.config(), target["tempClientId"])
    return {"finalized": True}


# --- verification and report --------------------------------------------------------------------------------------


# ListUsers and ListUsersInGroup are eventually consistent: users and memberships written moments ago may be
# missing from them for a while. A verification that finds only such gaps reads the pool again, until this
# long after its first comparison.
VERIFY_SETTLE_S = 120.0
VERIFY_FIRST_WAIT_S = 2.0
VERIFY_MAX_WAIT_S = 20.0


def _may_be_stale(report: diff.DiffReport) -> bool:
    """Differences a stale listing can explain: something written is not listed (yet)."""
    counts = report.counts()
    stale = {"users_missing", "memberships_missing", "users_extra", "memberships_extra"}
    return any(counts[k] for k in stale) and not any(
        v
        for k, v in counts.items()
        if k not in stale and k != "users_compared" and not k.startswith("expected_")
    )


def new_verify_cursor() -> VerifyCursor:
    """Where VerifyRestore starts (the ASL's PrepareVerify state holds the same document)."""
    return {
        "phase": "users",
        "attempt": 0,
        "part": 0,
        "token": None,
        "groupIndex": 0,
        "settleUntil": None,
        "verification": None,
        "done": False,
    }


def _verify_root(request: RestoreRequest, attempt: int) -> str:
    return f"{workspace(request).root}verify/{attempt:03d}/"


def _read_parts(clients: Clients, request: RestoreRequest, prefix: str) -> Iterator[dict[str, Any]]:
    ws = workspace(request)
    for page in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=ws.bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield from store.get_sealed(clients, ws, item["Key"])


def verify_restore(
    clients: Clients,
    request: RestoreRequest,
    target: TargetPool,
    shard_results: list[Any],
    cursor: VerifyCursor | None = None,
    *,
    settle_s: float = VERIFY_SETTLE_S,
    budget_s: float = float("inf"),
    clock: Clock = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall: Clock = time.time,
) -> VerifyCursor:
    """The diff command's comparison, restricted to the selection, in slices of ``budget_s`` seconds: the
    state machine calls it again with the returned cursor until ``done``, so no call depends on the pool's size.

    Phases: the target's users (ListUsers pages), then the members of each backed-up group (ListUsersInGroup),
    each slice sealed into the restore's workspace; then the comparison (extras are fine in an existing pool).
    Expected differences (federated, RESET_REQUIRED and UNCONFIRMED-fallback users) are counted apart and do
    not fail it. Gaps a lagging listing can explain start another reading, after a growing wait, until
    ``settle_s`` after the first comparison.
    """
    if len(shard_results) != len(request["shards"]) or not all(r and r.get("done") for r in shard_results):
        raise IncompleteBackup("not every shard of the restore reported completion")
    state: VerifyCursor = {**(cursor or new_verify_cursor())}
    if state["done"]:
        return state
    deadline = clock() + budget_s
    kms_key = request["settings"]["kmsKeyArn"]
    ws = workspace(request)
    pool_id = target["poolId"]
    selection = _load_selection(clients, request)
    reader = _reader(clients, request)
    root = _verify_root(request, state["attempt"])
    if state["phase"] == "users":
        live: list[dict[str, Any]] = []
        while True:
            page = cognito_read.list_users_page(clients.cognito, pool_id, token=state["token"])
            live.extend(page.users)
            state["token"] = page.next_token
            if page.next_token is None or clock() >= deadline:
                break
        if live:
            store.put_sealed(clients, ws, kms_key, f"{root}users/part-{state['part']:05d}.bin", live)
        state["part"] += 1
        if state["token"] is not None:
            return state
        state["phase"], state["part"], state["groupIndex"] = "members", 0, 0
        if clock() >= deadline:
            return state
    groups = [
        g["name"]
        for g in reader.config()["groups"]
        if selection.groups is None or g["name"] in selection.groups
    ]
    if state["phase"] == "members":
        members: list[dict[str, str]] = []
        while state["groupIndex"] < len(groups) and (not members or clock() < deadline):
            group = groups[state["groupIndex"]]
            names, token = cognito_read.list_group_members_page(
                clients.cognito, pool_id, group, state["token"]
            )
            members.extend({"group": group, "username": n} for n in names)
            state["token"] = token
            if token is None:
                state["groupIndex"] += 1
        if members:
            store.put_sealed(clients, ws, kms_key, f"{root}members/part-{state['part']:05d}.bin", members)
        state["part"] += 1
        if state["groupIndex"] < len(groups):
            return state
        state["phase"], state["part"], state["token"] = "compare", 0, None
        if clock() >= deadline:
            return state
    members_of: dict[str, set[str]] = {}
    for m in _read_parts(clients, request, root + "members/"):
        members_of.setdefault(m["group"], set()).add(m["username"])
    report = diff.compare(
        reader,
        list(_read_parts(clients, request, root + "users/")),
        cognito_read.list_groups(clients.cognito, pool_id),
        lambda group: members_of.get(group, set()),
        users=selection.users,
        groups=selection.groups,
        username_map=username_map(clients, request, reader),
        extra_allowed=request["target"]["mode"] == "existing",
    )
    now = wall()
    settle_until = state["settleUntil"] if state["settleUntil"] is not None else now + settle_s
    wait = min(VERIFY_FIRST_WAIT_S * 2 ** state["attempt"], VERIFY_MAX_WAIT_S)
    if not report.identical and _may_be_stale(report) and now + wait <= settle_until:
        log.info("verification found only listing gaps; reading the pool again in %.0f s", wait)
        if clock() + wait < deadline:
            sleep(wait)
        fresh = new_verify_cursor()
        fresh["attempt"], fresh["settleUntil"] = state["attempt"] + 1, settle_until
        return fresh
    store.put_sealed(clients, ws, kms_key, ws.root + "diff.bin", [asdict(report)])
    counts = report.counts()
    compared = counts.pop("users_compared")
    expected = {k.removeprefix("expected_"): counts.pop(k) for k in list(counts) if k.startswith("expected_")}
    state["phase"], state["done"] = "done", True
    state["verification"] = {
        "passed": report.identical,
        "usersCompared": compared,
        "differences": counts,
        "expectedDifferences": expected,
    }
    return state


def write_report(clients: Clients, state: Mapping[str, Any]) -> RestoreReportSummary:
    request: RestoreRequest = state["request"]
    target: TargetPool = state["target"]
    verification: RestoreVerification = state["verification"]
    results = [r for r in state.get("shardResults") or [] if r]
    totals = {k: sum(int(r.get(k, 0)) for r in results) for k in ("created", "existing", "skipped", "failed")}
    memberships = {
        k: sum(int(r.get("memberships" + k.capitalize(), 0)) for r in results)
        for k in ("added", "existing", "skipped")
    }
    ws = workspace(request)
    idmaps = [
        item["Key"]
        for page in clients.s3.get_paginator("list_objects_v2").paginate(
            Bucket=ws.bucket, Prefix=ws.root + "idmap/"
        )
        for item in page.get("Contents", [])
    ]
    document = {
        "requestId": request["requestId"],
        "backupUri": request["backupUri"],
        "target": {**request["target"], "poolId": target["poolId"], "created": target["created"]},
        "snapshot": state.get("snapshot"),
        "approval": state.get("approval"),
        "users": totals,
        "memberships": memberships,
        "groupsCreated": target["groupsCreated"],
        "configConflicts": target["conflicts"],
        "droppedFields": target.get("droppedFields", []),
        "verification": verification,
        "idMapObjects": idmaps,  # old -> new username and sub, per restored user
        "diffObject": ws.root + "diff.bin",
        "finishedAt": audit.iso(dt.datetime.now(dt.UTC)),
    }
    key = ws.root + "report.bin"
    store.put_sealed(clients, ws, request["settings"]["kmsKeyArn"], key, [document])
    event: approval.OutcomeEvent = "restore.completed" if verification["passed"] else "restore.failed"
    approval.record_outcome(
        audit_sink(clients, request["settings"]),
        request["requestId"],
        event,
        {"reportKey": key, "targetPoolId": target["poolId"], "passed": verification["passed"], **totals},
    )
    return {
        "reportKey": key,
        "passed": verification["passed"],
        **totals,  # type: ignore[typeddict-item]
        "membershipsAdded": memberships["added"],
    }
