"""The backup state machine's task sequence, driven by hand: each handler called as its state would call it."""

from __future__ import annotations

from typing import Any, cast

from pipeline.backup import run_objects
from pipeline.core.aws import default_clients
from pipeline.core.contracts import (
    EnumeratePoolsEvent,
    PoolConfigSummary,
    PoolJob,
    PoolState,
    ShardState,
    SliceState,
    Storage,
)
from tasks import (
    capture_pool_config,
    enumerate_pools,
    export_group_memberships,
    export_users,
    plan_shards,
    write_manifest,
)


def export_all(state: PoolState) -> PoolState:
    """Every shard's and every group slice's loop to the end, as the Parallel state's two Maps run them."""
    shard_results: list[Any] = []
    for shard in state["plan"]["shards"]:
        shard_state: ShardState = {
            "job": state["job"],
            "shard": shard,
            "cursor": {"part": 0, "nextToken": None, "users": 0, "done": False},
        }
        while not shard_state["cursor"]["done"]:
            shard_state["cursor"] = export_users.handler(shard_state)
        c = shard_state["cursor"]
        shard_results.append({"shard": shard, "parts": c["part"], "users": c["users"], "done": c["done"]})
    slice_results: list[Any] = []
    for group_slice in state["plan"]["groupSlices"]:
        slice_state: SliceState = {
            "job": state["job"],
            "slice": group_slice,
            "cursor": {"groupIndex": 0, "nextToken": None, "part": 0, "memberships": 0, "done": False},
        }
        while not slice_state["cursor"]["done"]:
            slice_state["cursor"] = export_group_memberships.handler(slice_state)
        m = slice_state["cursor"]
        slice_results.append(
            {"slice": group_slice["slice"], "parts": m["part"], "memberships": m["memberships"], "done": True}
        )
    state["shardResults"] = shard_results
    state["sliceResults"] = slice_results
    return state


def enumerate_jobs(event: Any, run: str = "test-run") -> list[PoolJob]:
    """EnumeratePools, then the pool list it wrote to S3 for the Map's ItemReader."""
    out = enumerate_pools.handler(cast(EnumeratePoolsEvent, {**event, "run": run}))
    jobs = run_objects.read_pools(default_clients(), event["storage"], out["poolsKey"])
    assert out["pools"] == len(jobs)
    return jobs


def capture_config(state: PoolState) -> PoolConfigSummary:
    """CapturePoolConfig's loop, as the Choice runs it: slices until one says it is done."""
    while True:
        out = capture_pool_config.handler(state)
        if out["done"]:
            return cast(PoolConfigSummary, out)
        state = {**state, "cursor": out}


def run_backup(storage: Storage, pool_id: str, *, write: bool = True) -> PoolState:
    jobs = enumerate_jobs({"poolIds": [pool_id], "allPools": False, "storage": storage})
    state: PoolState = {"job": jobs[0]}
    state["config"] = capture_config(state)
    state["plan"] = plan_shards.handler(state)
    export_all(state)
    if write:
        state["manifest"] = write_manifest.handler(state)
    return state
