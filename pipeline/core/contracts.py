"""Typed shapes of what travels between states: ids, keys, counts, cursors. Never user data."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class Storage(TypedDict):
    """Where a backup goes; injected by the ASL from its ${Placeholders}."""

    bucket: str
    kmsKeyArn: str
    prefix: str


class PoolJob(TypedDict):
    """One pool's backup: the descriptor every backup task receives as ``job``."""

    poolId: str
    backupId: str
    storage: Storage
    startedAt: str


class EnumeratePoolsEvent(TypedDict):
    poolIds: NotRequired[list[str]]
    allPools: NotRequired[bool]
    storage: Storage
    run: NotRequired[str]  # names the run's objects in S3; EnumeratePools makes one up when absent
    execution: NotRequired[dict[str, Any]]  # the execution input, for the optional distributedShardThreshold


class EnumeratePoolsResult(TypedDict):
    """The pools themselves are in S3 (``poolsKey``): a thousand descriptors would not fit in a payload."""

    run: str
    poolsKey: str
    pools: int
    distributedShardThreshold: int | None


class PoolOutcome(TypedDict):
    """What one child execution of BackupEachPool returns: one flag, so the Map's result stays small; a pool
    that failed also names itself and its error (the Step Functions ``Error`` and ``Cause`` it caught)."""

    verified: bool
    poolId: NotRequired[str]
    error: NotRequired[str]
    cause: NotRequired[str]


class PoolFailure(TypedDict):
    """A pool of the run without a verified backup: its error name and one-line message (no user data)."""

    poolId: str
    backupId: str
    error: str
    message: str


class CollectBackupsEvent(TypedDict):
    run: str
    poolsKey: str
    pools: int
    results: list[PoolOutcome | None]
    storage: Storage


class BackupSummary(TypedDict):
    poolId: str
    backupId: str
    uri: str
    users: int
    groups: int
    memberships: int
    verified: bool


class BackupsResult(TypedDict):
    """The backup execution's output: totals, the first backups inline, every backup in ``summaryKey``."""

    pools: int
    users: int
    groups: int
    memberships: int
    summaryKey: str
    backups: list[BackupSummary]
    truncated: bool
    # Pools without a verified backup (the first ones inline, all in ``summaryKey``); the run fails when any.
    failed: int
    failures: list[PoolFailure]
    cause: str  # the failed run's one-line cause (JSON with errorMessage and summaryKey), "" when none failed


class ConfigCursor(TypedDict):
    """Progress of CapturePoolConfig's loop: the piece being listed (``phase``), its token, the next work part."""

    phase: str
    nextToken: str | None
    part: int
    done: bool


class PreviousSlices(TypedDict):
    groups: int
    memberships: dict[str, int]


class PoolConfigSummary(ConfigCursor):
    """The last CapturePoolConfig slice's result (``done``): the sealed configuration and its counts."""

    configKey: str
    estimatedUsers: int
    groups: int
    appClients: int
    # An earlier backup's memberships per group slice, {"groups": n, "memberships": {slice: count}}: PlanShards
    # starts the longest member chains first (pipeline.cognito.shards.plan_group_slices).
    previousSlices: NotRequired[PreviousSlices]


class GroupSlice(TypedDict):
    """Groups ``first`` to ``end`` (exclusive) of the captured configuration, sorted by name: one
    ExportGroupMemberships loop lists their members, beside the other slices and the user shards."""

    slice: int
    first: int
    end: int


class ShardPlan(TypedDict):
    """PlanShards's output: the shards, whether they run as a distributed Map (the ShardsAtScale Choice), and
    the group slices whose memberships are listed in parallel."""

    shards: list[str]
    distributed: bool
    groupSlices: list[GroupSlice]


class UserCursor(TypedDict):
    """Progress of one shard's ExportUsers loop. ``part`` is the next part number to write."""

    part: int
    nextToken: str | None
    users: int
    done: bool


class ShardResult(TypedDict):
    shard: str
    parts: int
    users: int
    done: bool


class MembershipCursor(TypedDict):
    """Progress of one group slice's ExportGroupMemberships loop; ``groupIndex`` counts from the slice's first."""

    groupIndex: int
    nextToken: str | None
    part: int
    memberships: int
    done: bool


class SliceResult(TypedDict):
    slice: int
    parts: int
    memberships: int
    done: bool


class ManifestSummary(TypedDict):
    manifestKey: str
    uri: str
    users: int
    groups: int
    memberships: int
    parts: int


class VerificationResult(TypedDict):
    verified: bool
    uri: str
    users: int
    groups: int
    memberships: int
    objects: int


class PoolState(TypedDict):
    """The state of one child execution of BackupEachPool, as it grows along the pool's states.

    ``execution`` carries the operator's optional ``distributedShardThreshold`` down from the parent's input.
    """

    job: PoolJob
    execution: NotRequired[dict[str, Any]]
    cursor: NotRequired[ConfigCursor]  # CapturePoolConfig's input: where its previous slice stopped
    config: NotRequired[PoolConfigSummary]
    plan: NotRequired[ShardPlan]
    shardResults: NotRequired[list[ShardResult | None]]
    sliceResults: NotRequired[list[SliceResult | None]]
    manifest: NotRequired[ManifestSummary]


class ShardState(TypedDict):
    job: PoolJob
    shard: str
    cursor: UserCursor


class SliceState(TypedDict):
    job: PoolJob
    slice: GroupSlice
    cursor: MembershipCursor


# --- restore ------------------------------------------------------------------------------------------------------


class RestoreTarget(TypedDict):
    mode: str  # "existing" | "new"
    poolId: str | None
    poolName: str | None


class RestoreRequestEvent(TypedDict):
    """ValidateRequest's input: the execution input plus the settings the ASL injects.

    A selective restore's usernames never travel in a payload: ``selectionKey`` names a sealed S3 object.
    """

    backupUri: str
    targetPoolId: str | None
    newPoolName: str | None
    selectionKey: str | None
    # A signed STS GetCallerIdentity for ``restore:<executionName>`` (pipeline.core.identity_proof).
    requesterProof: dict[str, Any] | None
    approvalTimeoutSeconds: int
    executionArn: str
    executionName: str
    settings: Storage
    execution: NotRequired[dict[str, Any]]  # the execution input, for the optional distributedShardThreshold


class RestoreRequest(TypedDict):
    requestId: str
    backupUri: str
    settings: Storage
    target: RestoreTarget
    shards: list[str]
    distributed: bool  # the shards restore as a distributed Map (the RestoreAtScale Choice)
    selectionKey: str | None  # the resolved selection (users and groups), sealed in the restore's workspace
    requestedBy: str
    approvalTimeoutSeconds: int
    executionArn: str
    backupUsers: int
    backupMemberships: int
    selectedUsers: int | None
    # The exact manifest approved: every later task re-reads it by this S3 version and re-checks this SHA-256.
    manifestSha256: str
    manifestVersionId: str | None
    backupCompletedAt: str  # with the counts above, what the approver is shown of the backup
    backupGroups: int


class TargetPool(TypedDict):
    """RestorePoolConfig's result: where users go, and what the configuration step did (counts only).

    It is also the cursor of RestorePoolConfig's loop: the piece being restored (``phase``), the index in its
    backed-up list, the next slice's number, and ``done``.
    """

    poolId: str
    created: bool
    groupsCreated: int
    conflicts: int
    tempClientId: str | None
    droppedFields: NotRequired[list[str]]  # request fields a new pool could not take: names, never values
    phase: NotRequired[str]
    index: NotRequired[int]
    slice: NotRequired[int]
    done: NotRequired[bool]


class RestoreCounts(TypedDict):
    """What a shard's restore did so far: users, and the memberships added right after each user."""

    created: int
    existing: int
    skipped: int
    failed: int
    membershipsAdded: int
    membershipsExisting: int
    membershipsSkipped: int


class RestoreCursor(RestoreCounts):
    """Progress of one shard's RestoreUsers loop."""

    part: int
    offset: int
    done: bool


class IndexCursor(TypedDict):
    """Progress of IndexMemberships: the next pass over the membership parts, out of ``passes``."""

    next: int
    passes: int
    done: bool


class FinalizeResult(TypedDict):
    finalized: bool


class RestoreShardResult(RestoreCounts):
    shard: str
    done: bool


class RestoreVerification(TypedDict):
    passed: bool
    usersCompared: int
    differences: dict[str, int]
    # What a restore changes on purpose (federated, reset_required, unconfirmed_fallback...): counts, no names.
    expectedDifferences: NotRequired[dict[str, int]]


class VerifyCursor(TypedDict):
    """VerifyRestore's progress between invocations: ids, tokens and counts only (what it read is sealed)."""

    phase: str  # "users", "members", "compare" or "done"
    attempt: int  # readings of the pool so far: a lagging listing gets read again
    part: int
    token: str | None
    groupIndex: int
    settleUntil: float | None  # epoch seconds after which a lagging listing is not waited for any more
    verification: RestoreVerification | None
    done: bool


class RestoreReportSummary(TypedDict):
    reportKey: str
    passed: bool
    created: int
    existing: int
    skipped: int
    failed: int
    membershipsAdded: int


class PurgeIncompleteRequest(TypedDict):
    """Which backup folder to remove, and how long it must have been idle (no object written)."""

    poolId: str
    backupId: str
    minIdleSeconds: NotRequired[int]
    requestedBy: NotRequired[
        str
    ]  # as the CLI's credentials named it; the execution's StartExecution proves it


class PurgeIncompleteEvent(TypedDict):
    purgeIncomplete: PurgeIncompleteRequest
    storage: Storage
    executionArn: NotRequired[str]


class PurgeIncompleteResult(TypedDict):
    uri: str
    poolId: str
    backupId: str
    objects: int
    bytes: int
    auditKey: str
