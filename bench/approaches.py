"""The approaches compared, each driven against the same emulator and data.

(a) this pipeline: the real ``pipeline.backup.steps`` / ``pipeline.restore.user_restore`` functions, one Lambda
    invocation per call the state machine would make, shards in parallel on the virtual clock. S3 and KMS are in-memory
    stand-ins that count requests; the encode (JSON Lines + gzip) and AES-256-GCM sealing are the real code.
(b) the popular CLIs: one sequential ListUsers chain, then AdminListGroupsForUser per user.
(c) the retired AWS reference solution: every call under one 10 calls/s cap; ListGroups, ListUsersInGroup per
    group, then a sequential ListUsers chain.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from bench.emulator import CognitoClient, Emulator, Pool, global_limiter, pipeline_budget
from bench.vclock import VirtualClock
from pipeline.backup import steps as backup
from pipeline.cognito import reading as cognito_read
from pipeline.cognito import shards, throttle
from pipeline.cognito.shared_budget import MemoryBucketStore, SharedRateBudget
from pipeline.core.aws import Clients
from pipeline.core.contracts import (
    GroupSlice,
    MembershipCursor,
    PoolJob,
    PoolState,
    PreviousSlices,
    ShardState,
    SliceState,
    UserCursor,
)
from pipeline.restore import user_restore

INVOKE_OVERHEAD_S = 0.05  # assumed: one state transition plus a warm Lambda invoke
S3_PUT_LATENCY_S = 0.05
KMS_LATENCY_S = 0.01
TASK_BUDGET_S = 300.0  # pipeline.core.lambda_runtime.MAX_SLICE_S: what a 15-minute ExportUsers task pages for
REFERENCE_TPS = 10.0
DYNAMODB_LATENCY_S = 0.008  # assumed: one UpdateItem round trip from Lambda in the same Region
DEPLOYED_FRACTION = throttle.DEFAULT_FRACTION
# How the stack limits its Lambdas (infra/stack.py): "shared" one table-backed budget for every invocation (as
# deployed now); "slices" each invocation alone with fraction / tasks-at-once (the stack before the shared
# budget); "ideal" one in-process budget for every worker (no Lambda boundaries: the comparison's ideal).
TOPOLOGIES = ("shared", "slices", "ideal")


class Budgets:
    """The rate budget each Lambda invocation gets under one topology."""

    def __init__(self, clock: VirtualClock, topology: str, fraction: float, tasks_at_once: int) -> None:
        if topology not in TOPOLOGIES:
            raise ValueError(topology)
        self.clock = clock
        self.topology = topology
        self.fraction = fraction
        self.tasks_at_once = tasks_at_once
        self.store = MemoryBucketStore(latency=DYNAMODB_LATENCY_S, sleep=clock.sleep)
        self._ideal = pipeline_budget(clock, fraction)
        self.unused = 0
        self.expired = 0

    def new(self) -> throttle.RateBudget:
        if self.topology == "ideal":
            return self._ideal
        if self.topology == "slices":
            return pipeline_budget(self.clock, self.fraction / self.tasks_at_once)
        return SharedRateBudget(
            self.store, fraction=self.fraction, clock=self.clock.now, sleep=self.clock.sleep
        )

    def done(self, budget: throttle.RateBudget) -> None:
        if isinstance(budget, SharedRateBudget):
            self.unused += budget.unused()
            self.expired += sum(budget.expired.values())

    @property
    def store_requests(self) -> int:
        return self.store.requests


@dataclass
class Run:
    """What one approach did: virtual (Cognito-side) seconds, calls, and the client's CPU."""

    approach: str
    users: int
    memberships: int
    virtual_s: float
    wall_s: float
    client_cpu_s: float
    calls: Counter[str]
    throttled: int
    invocations: Counter[str] = field(default_factory=Counter)
    invocation_s: Counter[str] = field(default_factory=Counter)  # virtual seconds billed per task kind
    s3_puts: int = 0
    s3_gets: int = 0
    kms_calls: int = 0
    stored_bytes: int = 0
    extrapolated_from: int | None = None  # users actually run, when the numbers are scaled up
    workers: int = 1
    shards: int = 1
    topology: str = ""
    store_requests: int = 0  # the shared budget's DynamoDB requests
    unused_tokens: int = 0  # leased by an invocation that ended before using them
    max_invocation_s: dict[str, float] = field(default_factory=dict)  # the longest invocation per task kind
    slice_memberships: dict[str, int] = field(default_factory=dict)  # memberships per group slice (backup)
    groups: int = 0
    slice_order: list[int] = field(default_factory=list)  # the order PlanShards gave the group slices

    def previous_slices(self) -> PreviousSlices:
        """What this backup tells the next one about its member chains."""
        return {"groups": self.groups, "memberships": dict(self.slice_memberships)}

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


class _Storage:
    """S3 PutObject/GetObject and KMS GenerateDataKey/Decrypt stand-ins: latency on the virtual clock, requests
    counted. Only the configuration is read back (its capture slices' work parts by the last slice, config.bin by
    the group slices), so only those small objects are kept."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.puts = 0
        self.gets = 0
        self.kms = 0
        self.bytes = 0
        self._config: dict[str, bytes] = {}
        self._keys: dict[bytes, bytes] = {}

    def put_object(self, **kwargs: Any) -> dict[str, Any]:
        self.puts += 1
        self.bytes += len(kwargs["Body"])
        if kwargs["Key"].endswith("/config.bin") or "/work/config-" in kwargs["Key"]:
            self._config[kwargs["Key"]] = kwargs["Body"]
        self.clock.sleep(S3_PUT_LATENCY_S)
        return {}

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        self.gets += 1
        self.clock.sleep(S3_PUT_LATENCY_S)
        return {"Body": io.BytesIO(self._config[kwargs["Key"]])}

    def get_paginator(self, _operation: str) -> _Storage:
        return self

    def paginate(self, **_: Any) -> list[dict[str, Any]]:
        """ListObjectsV2 of the pool's earlier backups: none (a run hands them in as ``previous_slices``)."""
        self.gets += 1
        self.clock.sleep(S3_PUT_LATENCY_S)
        return [{}]

    def generate_data_key(self, **_: Any) -> dict[str, Any]:
        self.kms += 1
        self.clock.sleep(KMS_LATENCY_S)
        plaintext, blob = os.urandom(32), os.urandom(184)
        self._keys[blob] = plaintext
        return {"Plaintext": plaintext, "CiphertextBlob": blob}

    def decrypt(self, **kwargs: Any) -> dict[str, Any]:
        self.kms += 1
        self.clock.sleep(KMS_LATENCY_S)
        return {"Plaintext": self._keys[kwargs["CiphertextBlob"]]}


class _Measure:
    """Virtual time, wall time and client CPU (process CPU minus the emulator's own) around a run."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def __enter__(self) -> _Measure:
        self.v0, self.w0, self.c0 = self.emulator.clock.now(), time.perf_counter(), time.process_time()
        self.s0 = self.emulator.server_cpu_s
        self.calls0 = Counter(self.emulator.calls)
        self.throttled0 = sum(self.emulator.throttled.values())
        return self

    def __exit__(self, *_: object) -> None:
        self.virtual_s = self.emulator.clock.now() - self.v0
        self.wall_s = time.perf_counter() - self.w0
        self.cpu_s = time.process_time() - self.c0 - (self.emulator.server_cpu_s - self.s0)
        self.calls = Counter(self.emulator.calls)
        self.calls.subtract(self.calls0)
        self.calls = +self.calls
        self.throttled = sum(self.emulator.throttled.values()) - self.throttled0


def _job(pool_id: str) -> PoolJob:
    storage = {"bucket": "bench", "kmsKeyArn": "arn:aws:kms:us-east-1:111122223333:key/bench", "prefix": "b"}
    return {"poolId": pool_id, "backupId": "20260101T000000Z-bench0", "storage": storage, "startedAt": ""}  # type: ignore[typeddict-item]


class _Invoker:
    """One Lambda invocation per call: the invoke overhead, its billed (virtual) duration per task kind, and the
    invocation's own rate budget (``budgets``) in the Clients handed to ``fn``."""

    def __init__(
        self, clock: VirtualClock, emulator: Emulator | None = None, budgets: Budgets | None = None
    ) -> None:
        self.clock = clock
        self.emulator = emulator
        self.budgets = budgets
        self.storage = _Storage(clock)
        self.count: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.longest: dict[str, float] = {}
        self._lock = threading.Lock()

    def clients(self, budget: throttle.RateBudget) -> Clients:
        assert self.emulator is not None
        return Clients(
            cognito=cast(Any, CognitoClient(self.emulator, budget=budget)),
            s3=cast(Any, self.storage),
            kms=cast(Any, self.storage),
            sts=cast(Any, None),
            region="us-east-1",
        )

    def __call__(self, kind: str, fn: Callable[..., Any]) -> Any:
        self.clock.sleep(INVOKE_OVERHEAD_S)
        start = self.clock.now()
        if self.budgets is None:
            result = fn()
        else:
            budget = self.budgets.new()
            result = fn(self.clients(budget))
            self.budgets.done(budget)
        took = self.clock.now() - start
        with self._lock:
            self.count[kind] += 1
            self.seconds[kind] += took  # type: ignore[assignment]
            self.longest[kind] = max(self.longest.get(kind, 0.0), took)
        return result


def backup_pipeline(
    emulator: Emulator,
    pool_id: str,
    *,
    concurrency: int | None = None,
    slice_concurrency: int | None = None,
    label: str = "a",
    topology: str = "ideal",
    fraction: float = 1.0,
    tasks_at_once: int = 12,
    previous_slices: PreviousSlices | None = None,
) -> Run:
    """(a): CapturePoolConfig, PlanShards, then side by side (the ExportUsersAndMemberships Parallel state) the
    ExportShards Map of ExportUsers loops and the ExportGroupSlices Map of ExportGroupMemberships loops.

    ``concurrency`` and ``slice_concurrency`` cap the two Maps (None: every item at once). Each invocation gets
    its rate budget from ``topology`` (:class:`Budgets`). ``previous_slices`` are an earlier backup's memberships
    per slice (:attr:`Run.slice_memberships`), handed to PlanShards as CapturePoolConfig's result carries them.
    """
    clock = emulator.clock
    budgets = Budgets(clock, topology, fraction, tasks_at_once)
    invoke = _Invoker(clock, emulator, budgets)
    storage = invoke.storage
    job = _job(pool_id)
    with _Measure(emulator) as m:
        state: PoolState = {"job": job}
        state["config"] = invoke("CapturePoolConfig", lambda clients: backup.capture_config(clients, job))
        if previous_slices is not None:
            state["config"]["previousSlices"] = previous_slices
        state["plan"] = invoke("PlanShards", lambda _clients: backup.plan(state))

        def export_shard(shard: str) -> UserCursor:
            cursor: UserCursor = {"part": 0, "nextToken": None, "users": 0, "done": False}
            while not cursor["done"]:
                shard_state: ShardState = {"job": job, "shard": shard, "cursor": cursor}
                cursor = invoke(
                    "ExportUsers",
                    lambda clients, s=shard_state: backup.export_users(
                        clients, s, TASK_BUDGET_S, clock=clock.now
                    ),
                )
            return cursor

        def export_slice(group_slice: GroupSlice) -> MembershipCursor:
            cursor: MembershipCursor = {
                "groupIndex": 0,
                "nextToken": None,
                "part": 0,
                "memberships": 0,
                "done": False,
            }
            while not cursor["done"]:
                slice_state: SliceState = {"job": job, "slice": group_slice, "cursor": cursor}
                cursor = invoke(
                    "ExportGroupMemberships",
                    lambda clients, s=slice_state: backup.export_memberships(
                        clients, s, TASK_BUDGET_S, clock=clock.now
                    ),
                )
            return cursor

        shard_tasks = [functools.partial(export_shard, s) for s in state["plan"]["shards"]]
        slice_tasks = [functools.partial(export_slice, g) for g in state["plan"]["groupSlices"]]
        user_results, slice_results = clock.run_pools(
            [(shard_tasks, concurrency), (slice_tasks, slice_concurrency)]
        )
        users = sum(r["users"] for r in user_results)
        memberships = sum(r["memberships"] for r in slice_results)
    workers = min(len(shard_tasks), concurrency or len(shard_tasks)) + min(
        len(slice_tasks), slice_concurrency or len(slice_tasks)
    )
    return Run(
        approach=label,
        users=users,
        memberships=memberships,
        virtual_s=m.virtual_s,
        wall_s=m.wall_s,
        client_cpu_s=m.cpu_s,
        calls=m.calls,
        throttled=m.throttled,
        invocations=invoke.count,
        invocation_s=invoke.seconds,
        s3_puts=storage.puts,
        s3_gets=storage.gets,
        kms_calls=storage.kms,
        stored_bytes=storage.bytes,
        workers=workers,
        shards=len(state["plan"]["shards"]),
        topology=topology,
        store_requests=budgets.store_requests,
        unused_tokens=budgets.unused,
        max_invocation_s=dict(invoke.longest),
        slice_memberships={
            str(g["slice"]): r["memberships"]
            for g, r in zip(state["plan"]["groupSlices"], slice_results, strict=True)
        },
        groups=state["config"]["groups"],
        slice_order=[g["slice"] for g in state["plan"]["groupSlices"]],
    )


def _scaled(run: Run, factor: float, ran_users: int) -> Run:
    calls = Counter({k: round(v * factor) for k, v in run.calls.items()})
    run.virtual_s *= factor
    run.calls = calls
    run.client_cpu_s *= factor
    run.extrapolated_from = ran_users
    return run


def backup_cli(emulator: Emulator, pool_id: str, *, max_users: int | None = None) -> Run:
    """(b): the CLIs' sequential chain, given the pipeline's rate budget (it is never throttled at this pace).

    ``max_users`` stops after that many users and scales the numbers up linearly (labelled extrapolated).
    """
    client = CognitoClient(emulator, budget=pipeline_budget(emulator.clock))
    total = len(emulator.pools[pool_id].names)
    users = memberships = 0
    written = 0
    with _Measure(emulator) as m:
        client.list_groups(UserPoolId=pool_id, Limit=60)
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"UserPoolId": pool_id, "Limit": 60}
            if token:
                kwargs["PaginationToken"] = token
            page = client.list_users(**kwargs)
            for item in page.get("Users", []):
                record = cognito_read.user_record(item)
                groups: list[str] = []
                group_token: str | None = None
                while True:
                    gk: dict[str, Any] = {"UserPoolId": pool_id, "Username": item["Username"], "Limit": 60}
                    if group_token:
                        gk["NextToken"] = group_token
                    answer = client.admin_list_groups_for_user(**gk)
                    groups += [g["GroupName"] for g in answer.get("Groups", [])]
                    group_token = answer.get("NextToken")
                    if not group_token:
                        break
                record["groups"] = groups
                written += len(json.dumps(record))  # the CLIs write plain JSON
                users += 1
                memberships += len(groups)
            token = page.get("PaginationToken")
            if not token or (max_users is not None and users >= max_users):
                break
    run = Run("b", users, memberships, m.virtual_s, m.wall_s, m.cpu_s, m.calls, m.throttled)
    if users < total:
        factor = total / users
        run.users, run.memberships = total, emulator.pools[pool_id].memberships
        return _scaled(run, factor, users)
    return run


MIFI_SLEEP_S = 0.02  # mifi/cognito-backup sleeps 20 ms after each AdminListGroupsForUser
SDK_MAX_ATTEMPTS = 5  # both CLIs: the JS SDK's standard retry mode, no client-side rate limit


def _sdk_client(emulator: Emulator) -> CognitoClient:
    return CognitoClient(emulator, max_attempts=SDK_MAX_ATTEMPTS, base_delay=0.1)


def backup_mifi(
    emulator: Emulator, pool_id: str, *, concurrency: int = 1, max_users: int | None = None
) -> Run:
    """mifi/cognito-backup ``backup-users`` as its cli.js does it: one ListUsers chain (default page size), and
    for each page AdminListGroupsForUser per user through p-map at ``--concurrency`` (default 1), each followed
    by a 20 ms sleep; the next page only when the page's users are done. No client-side rate limit."""
    clock = emulator.clock
    client = _sdk_client(emulator)
    total = len(emulator.pools[pool_id].names)
    users = memberships = 0
    label = "mifi" if concurrency == 1 else f"mifi-c{concurrency}"
    with _Measure(emulator) as m:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"UserPoolId": pool_id}
            if token:
                kwargs["PaginationToken"] = token
            page = client.list_users(**kwargs)

            def groups_of(item: dict[str, Any]) -> int:
                answer = client.admin_list_groups_for_user(UserPoolId=pool_id, Username=item["Username"])
                clock.sleep(MIFI_SLEEP_S)
                return len(answer.get("Groups", []))

            items = page.get("Users", [])
            memberships += sum(clock.run([functools.partial(groups_of, it) for it in items], concurrency))
            users += len(items)
            token = page.get("PaginationToken")
            if not token or (max_users is not None and users >= max_users):
                break
    run = Run(
        label, users, memberships, m.virtual_s, m.wall_s, m.cpu_s, m.calls, m.throttled, workers=concurrency
    )
    if users < total:
        run.users, run.memberships = total, emulator.pools[pool_id].memberships
        return _scaled(run, total / users, users)
    return run


def backup_rahulpsd18(emulator: Emulator, pool_id: str, *, max_users: int | None = None) -> Run:
    """rahulpsd18/cognito-backup-restore: one ListUsers chain (default page size) and nothing else: no groups,
    no memberships, no configuration."""
    client = _sdk_client(emulator)
    total = len(emulator.pools[pool_id].names)
    users = 0
    with _Measure(emulator) as m:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"UserPoolId": pool_id}
            if token:
                kwargs["PaginationToken"] = token
            page = client.list_users(**kwargs)
            users += len(page.get("Users", []))
            token = page.get("PaginationToken")
            if not token or (max_users is not None and users >= max_users):
                break
    run = Run("rahulpsd18", users, 0, m.virtual_s, m.wall_s, m.cpu_s, m.calls, m.throttled)
    if users < total:
        run.users = total
        return _scaled(run, total / users, users)
    return run


def backup_reference(emulator: Emulator, pool_id: str) -> Run:
    """(c): one global 10 calls/s cap; groups and their members, then every user, all sequential."""
    client = CognitoClient(emulator, limiter=global_limiter(emulator.clock, REFERENCE_TPS))
    users = memberships = 0
    with _Measure(emulator) as m:
        for group in cognito_read.list_groups(cast(Any, client), pool_id):
            token: str | None = None
            while True:
                members, token = cognito_read.list_group_members_page(
                    cast(Any, client), pool_id, group["name"], token
                )
                memberships += len(members)
                if token is None:
                    break
        user_token: str | None = None
        while True:
            page = cognito_read.list_users_page(cast(Any, client), pool_id, token=user_token)
            users += len(page.users)
            user_token = page.next_token
            if user_token is None:
                break
    return Run("c", users, memberships, m.virtual_s, m.wall_s, m.cpu_s, m.calls, m.throttled)


# --- restore ------------------------------------------------------------------------------------------------------


def _target_pool(emulator: Emulator, source: Pool, client: CognitoClient, target_id: str) -> None:
    emulator.add_pool(Pool(target_id))
    for name, group in sorted(source.groups.items()):
        client.create_group(UserPoolId=target_id, GroupName=name, Precedence=group.precedence)


POLICY: Mapping[str, Any] = {"MinimumLength": 8, "RequireUppercase": True, "RequireLowercase": True}


def restore_pipeline(
    emulator: Emulator,
    source: Pool,
    target_id: str,
    *,
    concurrency: int | None = None,
    label: str = "a",
    topology: str = "ideal",
    fraction: float = 1.0,
    tasks_at_once: int = 12,
) -> Run:
    """(a): IndexMemberships, then RestoreUsers per shard in parallel (one invocation per backup part), each
    user followed by its groups (``user_restore.restore_user_groups``).

    IndexMemberships touches no pool: it is modelled as one invocation reading every membership part and
    writing one object per shard, at the S3 latency.
    """
    clock = emulator.clock
    budgets = Budgets(clock, topology, fraction, tasks_at_once)
    invoke = _Invoker(clock, emulator, budgets)
    plan = shards.plan_shards(len(source.names))
    by_shard: dict[str, list[int]] = {s: [] for s in plan}
    for i, sub in enumerate(source.subs):
        by_shard["" if plan == [""] else sub[: len(plan[0])]].append(i)
    outcomes: Counter[str] = Counter()
    with _Measure(emulator) as m:
        _target_pool(emulator, source, CognitoClient(emulator, budget=budgets.new()), target_id)
        membership_parts = math.ceil(source.memberships / backup.MEMBERSHIPS_PER_PART)
        invoke(
            "IndexMemberships",
            lambda _clients: clock.sleep(S3_PUT_LATENCY_S * (membership_parts + len(plan))),
        )

        def restore_part(clients: Clients, indices: list[int]) -> tuple[Counter[str], list[int]]:
            """Users until the part ends or the task's time budget does; returns the users left."""
            cognito = clients.cognito
            done: Counter[str] = Counter()
            missing: set[str] = set()
            deadline = clock.now() + TASK_BUDGET_S
            for n, i in enumerate(indices):
                if clock.now() >= deadline:
                    return done, indices[n:]
                record = cognito_read.user_record(source.item(i))
                outcome = user_restore.restore_user(
                    cognito,
                    target_id,
                    record,
                    username_attributes=[],
                    password_policy=POLICY,
                    temp_client_id=None,
                )
                done[outcome.result] += 1
                groups = list(source.user_groups[i])
                done["membershipsAdded"] += user_restore.restore_user_groups(
                    cognito, target_id, outcome, groups, missing
                )[0]
            return done, []

        def restore_shard(indices: list[int]) -> Counter[str]:
            done: Counter[str] = Counter()
            for start in range(0, len(indices), backup.USERS_PER_PART):
                part = indices[start : start + backup.USERS_PER_PART]
                while part:
                    counted, part = invoke("RestoreUsers", lambda clients, p=part: restore_part(clients, p))
                    done += counted
            return done

        for result in clock.run(
            [functools.partial(restore_shard, ix) for ix in by_shard.values()], concurrency
        ):
            outcomes += result
        added = outcomes["membershipsAdded"]
    workers = min(len(by_shard), concurrency or len(by_shard))
    return Run(
        label,
        outcomes["created"],
        added,
        m.virtual_s,
        m.wall_s,
        m.cpu_s,
        m.calls,
        m.throttled,
        invocations=invoke.count,
        invocation_s=invoke.seconds,
        workers=workers,
        shards=len(by_shard),
        topology=topology,
        store_requests=budgets.store_requests,
        unused_tokens=budgets.unused,
        max_invocation_s=dict(invoke.longest),
    )


def restore_sequential(
    emulator: Emulator, source: Pool, target_id: str, *, max_users: int | None = None
) -> Run:
    """(b): one user after another, each with its memberships; same calls as (a), no parallelism."""
    client = CognitoClient(emulator, budget=pipeline_budget(emulator.clock))
    cognito = cast(Any, client)
    count = min(len(source.names), max_users or len(source.names))
    created = added = 0
    with _Measure(emulator) as m:
        _target_pool(emulator, source, client, target_id)
        for i in range(count):
            record = cognito_read.user_record(source.item(i))
            outcome = user_restore.restore_user(
                cognito,
                target_id,
                record,
                username_attributes=[],
                password_policy=POLICY,
                temp_client_id=None,
            )
            created += outcome.result == "created"
            for group in source.user_groups[i]:
                client.admin_add_user_to_group(
                    UserPoolId=target_id, Username=source.names[i], GroupName=group
                )
                added += 1
    run = Run("b", created, added, m.virtual_s, m.wall_s, m.cpu_s, m.calls, m.throttled)
    if count < len(source.names):
        run.users, run.memberships = len(source.names), source.memberships
        return _scaled(run, len(source.names) / count, count)
    return run
