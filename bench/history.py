"""Execution-history events of one backup, counted from the structure of ``statemachines/backup.asl.json``.

Events per state visit (Step Functions standard workflows): a Lambda Task 5 (StateEntered, LambdaFunction
Scheduled/Started/Succeeded, StateExited), Choice and Pass 2, a Map 4 (Entered, Started, Succeeded, Exited) plus
2 per iteration (IterationStarted/Succeeded) when inline; an execution 2 (Started, Succeeded). A distributed Map
runs each item as a child execution with its own history; the parent only records the Map Run (about 6 events).
The quota is 25,000 events per execution.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.backup import steps as backup
from pipeline.cognito import shards

ASL = Path(__file__).resolve().parents[1] / "statemachines" / "backup.asl.json"
HISTORY_QUOTA = 25_000
# A Parallel state: Entered, Started, Succeeded, Exited, plus per branch the branch's own states.
EVENTS = {"Task": 5, "Choice": 2, "Pass": 2, "Succeed": 2, "Fail": 2, "Parallel": 4}
MAP_FIXED, MAP_PER_ITERATION, EXECUTION, MAP_RUN = 4, 2, 2, 6


def load_asl(path: Path = ASL) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def map_state(asl: dict[str, Any], name: str) -> dict[str, Any]:
    """A Map state anywhere in the definition (inside Map processors and Parallel branches too)."""
    for state_name, state in asl["States"].items():
        if state_name == name:
            return dict(state)
        inner = [state["ItemProcessor"]] if state.get("Type") == "Map" else state.get("Branches", [])
        for processor in inner:
            try:
                return map_state(processor, name)
            except KeyError:
                continue
    raise KeyError(name)


def _flatten(states: dict[str, Any]) -> dict[str, Any]:
    """The states of a processor with its Parallel branches laid out beside them (Map processors stay nested)."""
    flat: dict[str, Any] = {}
    for name, state in states.items():
        flat[name] = state
        for branch in state.get("Branches", []):
            flat.update(_flatten(branch["States"]))
    return flat


def _loop_visits(states: dict[str, Any], loop: set[str]) -> tuple[int, int]:
    """Events per iteration of the states in ``loop``, and of the straight-line rest of a processor."""
    per_iteration = sum(EVENTS[states[s]["Type"]] for s in loop)
    once = sum(
        EVENTS.get(st["Type"], 0) for s, st in states.items() if s not in loop and "Fail" not in st["Type"]
    )
    return per_iteration, once


@dataclass(frozen=True)
class HistoryEstimate:
    users: int
    shards: int
    concurrency: int
    invocations_per_shard: int
    membership_invocations: int
    inline_events: int
    distributed_parent_events: int
    distributed_child_events: int


def invocations_per_shard(users: int, n_shards: int, concurrency: int, users_per_second: float) -> int:
    """ExportUsers calls one shard needs: a call stops at a full part or at its time budget, whichever first."""
    per_shard = math.ceil(users / n_shards)
    share = users_per_second / min(concurrency, n_shards)  # the UserList quota is shared by running shards
    per_call = min(backup.USERS_PER_PART, max(1, int(share * 300.0)))
    return math.ceil(per_shard / per_call)


def estimate(
    users: int,
    memberships: int,
    *,
    concurrency: int,
    groups: int = 20,
    users_per_second: float = 30.0 * 60,
) -> HistoryEstimate:
    asl = load_asl()
    pool_map = asl["States"]["BackupEachPool"]
    pool_states = _flatten(pool_map["ItemProcessor"]["States"])
    shard_states = pool_states["ExportShards"]["ItemProcessor"]["States"]
    n_shards = len(shards.plan_shards(users))
    k = invocations_per_shard(users, n_shards, concurrency, users_per_second)
    m = max(1, math.ceil(memberships / backup.MEMBERSHIPS_PER_PART))
    shard_loop, shard_once = _loop_visits(shard_states, {"ExportUsers", "MoreUsersToExport"})
    per_shard = MAP_PER_ITERATION + shard_once + k * shard_loop
    _, pool_once = _loop_visits({s: st for s, st in pool_states.items() if st["Type"] != "Map"}, set())
    # The group slices' Map is inline in the pool's own history: every membership call is recorded there.
    slice_states = pool_states["ExportGroupSlices"]["ItemProcessor"]["States"]
    member_loop, slice_once = _loop_visits(
        slice_states, {"ExportGroupMemberships", "MoreMembershipsToExport"}
    )
    n_slices = len(shards.plan_group_slices(groups))
    slices_part = MAP_FIXED + n_slices * (MAP_PER_ITERATION + slice_once) + max(m, n_slices) * member_loop
    top = sum(EVENTS.get(st["Type"], 0) for st in asl["States"].values() if st["Type"] not in ("Map", "Fail"))
    pool_part = MAP_FIXED + MAP_PER_ITERATION + pool_once + slices_part  # one pool
    base = EXECUTION + top + pool_part
    return HistoryEstimate(
        users=users,
        shards=n_shards,
        concurrency=concurrency,
        invocations_per_shard=k,
        membership_invocations=m,
        inline_events=base + MAP_FIXED + n_shards * per_shard,
        distributed_parent_events=base + MAP_FIXED + MAP_RUN,
        distributed_child_events=EXECUTION + per_shard - MAP_PER_ITERATION,
    )


RESTORE_ASL = ASL.with_name("restore.asl.json")


@dataclass(frozen=True)
class RestoreHistoryEstimate:
    users: int
    shards: int
    invocations_per_shard: int
    inline_events: int
    distributed_parent_events: int
    distributed_child_events: int


def restore_estimate(users: int, *, concurrency: int, users_per_second: float) -> RestoreHistoryEstimate:
    """Events of one restore: a RestoreUsers call restores until its part ends or its 300 s budget runs out,
    with ``users_per_second`` (the slowest quota's pace) shared by the shards running at once. Every top-level
    state is counted once, though the approval paths exclude each other: an upper bound."""
    asl = load_asl(RESTORE_ASL)
    n_shards = len(shards.plan_shards(users))
    per_shard = math.ceil(users / n_shards)
    per_call = min(backup.USERS_PER_PART, max(1, int(users_per_second / min(concurrency, n_shards) * 300.0)))
    parts, last = divmod(per_shard, backup.USERS_PER_PART)
    k = parts * math.ceil(backup.USERS_PER_PART / per_call) + math.ceil(last / per_call)
    shard_states = asl["States"]["RestoreShards"]["ItemProcessor"]["States"]
    loop, once = _loop_visits(shard_states, {"RestoreUsers", "MoreUsersToRestore"})
    per_iteration = MAP_PER_ITERATION + once + k * loop
    top = sum(EVENTS.get(st["Type"], 0) for st in asl["States"].values() if st["Type"] not in ("Map", "Fail"))
    base = EXECUTION + top
    return RestoreHistoryEstimate(
        users=users,
        shards=n_shards,
        invocations_per_shard=k,
        inline_events=base + MAP_FIXED + n_shards * per_iteration,
        distributed_parent_events=base + MAP_FIXED + MAP_RUN,
        distributed_child_events=EXECUTION + per_iteration - MAP_PER_ITERATION,
    )
