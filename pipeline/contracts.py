"""Typed shapes of what travels between states: ids, keys, counts, cursors. Never user data."""

from __future__ import annotations

from typing import NotRequired, TypedDict


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


class EnumeratePoolsResult(TypedDict):
    pools: list[PoolJob]


class PoolConfigSummary(TypedDict):
    configKey: str
    estimatedUsers: int
    groups: int
    appClients: int


class ShardPlan(TypedDict):
    shards: list[str]


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
    groupIndex: int
    nextToken: str | None
    part: int
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
    """The state of one iteration of BackupEachPool, as it grows along the pool's states."""

    job: PoolJob
    config: NotRequired[PoolConfigSummary]
    plan: NotRequired[ShardPlan]
    shardResults: NotRequired[list[ShardResult | None]]
    memberships: NotRequired[MembershipCursor]
    manifest: NotRequired[ManifestSummary]


class ShardState(TypedDict):
    job: PoolJob
    shard: str
    cursor: UserCursor
