"""``python -m bench.run --out BENCHMARKS.md``: every approach at every size on the emulator, then the report.

Progress goes to stderr; the report (Markdown), a plot and the raw numbers (JSON) are written to files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import math
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import approaches, cost, history
from bench.approaches import Run
from bench.emulator import (
    DEFAULT_LATENCY,
    DEFAULT_OP_LATENCY,
    Emulator,
    Pool,
    PoolSpec,
    generate_even_pool,
    generate_pool,
)
from bench.vclock import VirtualClock
from pipeline.cognito import throttle
from pipeline.core.contracts import PreviousSlices

SOURCE = "us-east-1_BenchSrc1"
TARGET = "us-east-1_BenchDst1"
CONFIG_CALLS = 6  # DescribeUserPool, GetUserPoolMfaConfig, ListUserPoolClients, ListIdentityProviders,
# ListResourceServers, ListGroups: the least a pool's configuration capture can cost
NAMES = {
    "deployed": "(a) as deployed: every Lambda on the shared DynamoDB budget, ASL concurrencies",
    "slices": "(a) the previous stack: each Lambda alone with 50%/12 of the quota",
    "ideal": "(a) ideal: one in-process budget for every worker (no Lambda boundaries)",
    "mifi": "mifi/cognito-backup, default (--concurrency 1)",
    "mifi-c2": "mifi/cognito-backup --concurrency 2",
    "rahulpsd18": "rahulpsd18/cognito-backup-restore (backs up no groups)",
    "c": "retired AWS solution: 10 calls/s, ListUsersInGroup per group",
}
RESTORE_NAMES = {
    "deployed": "(a) as deployed: shared DynamoDB budget, Map MaxConcurrency as in the ASL",
    "slices": "(a) the previous stack: each Lambda alone with 50%/12",
    "ideal": "(a) ideal: one in-process budget, Map MaxConcurrency as in the ASL",
    "b": "(b) sequential, user by user",
}
HIDDEN_SHARE = 0.2  # the UserList quota really left to the backup, as a share of the one the budget assumes
HIDDEN_NOISE = 0.03  # random throttles on top


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def groups_for(users: int) -> int:
    return max(5, min(20, round(4 * math.log10(max(users, 10)) - 8)))


def lower_bound_calls(pool: Pool) -> int:
    members = sum(math.ceil(len(g.members) / 60) for g in pool.groups.values())
    return math.ceil(len(pool.names) / 60) + members + CONFIG_CALLS


def quota_bound_s(calls: Counter[str] | dict[str, int], fraction: float = 1.0) -> float:
    per_category: Counter[str] = Counter()
    for op, n in calls.items():
        per_category[throttle.category_of(op)] += n
    return max((n / (throttle.QUOTA_RPS[c] * fraction) for c, n in per_category.items()), default=0.0)


def chain_floor_s(largest_group: int, latency_scale: float) -> float:
    """The largest group's members are one token chain: one page per ListUsersInGroup latency at best."""
    return math.ceil(largest_group / 60) * DEFAULT_LATENCY["ListUsersInGroup"] * latency_scale


def _fresh(pool: Pool, latency_scale: float, **options: Any) -> Emulator:
    emulator = Emulator(
        VirtualClock(),
        latency={k: v * latency_scale for k, v in DEFAULT_LATENCY.items()},
        default_latency=DEFAULT_OP_LATENCY * latency_scale,
        **options,
    )
    emulator.add_pool(pool)
    return emulator


def _timed(label: str, size: int, fn: Callable[[], Run]) -> Run:
    start = time.perf_counter()
    run = fn()
    note = f" (extrapolated from {run.extrapolated_from:,})" if run.extrapolated_from else ""
    log(
        f"  {label:6} {size:>9,} users: {run.virtual_s:10.1f} s Cognito-side, {run.total_calls:>9,} calls, "
        f"{time.perf_counter() - start:6.1f} s wall{note}"
    )
    return run


def asl_concurrency(path: Path, state: str) -> int:
    return int(history.map_state(history.load_asl(path), state).get("MaxConcurrency") or 0)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1] / "statemachines"
    backup_mc = asl_concurrency(root / "backup.asl.json", "ExportShards")
    slices_mc = asl_concurrency(root / "backup.asl.json", "ExportGroupSlices")
    restore_asl = history.load_asl(root / "restore.asl.json")
    restore_mc = next(
        int(s.get("MaxConcurrency") or 0) for s in restore_asl["States"].values() if s.get("Type") == "Map"
    )
    asl = {"backup": backup_mc, "backup_slices": slices_mc, "restore": restore_mc}
    results: dict[str, Any] = {
        "backup": [],
        "restore": [],
        "asl": asl,
        "latency_scale": args.latency_scale,
        "fraction": args.fraction,
        "tasks_at_once": args.previous_split,
    }
    pools: list[tuple[str, Pool]] = []
    for size in sorted(set(args.sizes) | set(args.restore_sizes)):
        pools.append(("skewed", generate_pool(SOURCE, PoolSpec(users=size, groups=groups_for(size)))))
    if args.even_users:
        pools.append(("even", generate_even_pool(SOURCE, args.even_users, args.even_groups)))
    for shape, pool in pools:
        size = len(pool.names)
        info = {
            "shape": shape,
            "users": size,
            "groups": len(pool.groups),
            "memberships": pool.memberships,
            "largest_group": max((len(g.members) for g in pool.groups.values()), default=0),
        }
        log(f"{shape} pool of {size:,} users, {len(pool.groups)} groups, {pool.memberships:,} memberships")
        if shape == "even" or size in args.sizes:
            runs = _backup_runs(pool, size, args, asl, peers=shape == "skewed")
            results["backup"].append(
                {
                    **info,
                    "lower_bound_calls": lower_bound_calls(pool),
                    "runs": {k: _plain(r) for k, r in runs.items()},
                    "cost": cost.per_million(cost.backup_cost(runs["deployed"]), size),
                    "dynamodb_per_million": cost.requests_per_million(runs["deployed"]),
                }
            )
        if shape == "skewed" and size in args.restore_sizes:
            restore_runs = _restore_runs(pool, size, args, restore_mc)
            results["restore"].append({**info, "runs": {k: _plain(r) for k, r in restore_runs.items()}})
        if shape == "skewed" and size == args.hidden_users:
            results["hidden"] = _hidden_run(pool, args, asl)
    if args.order_users:
        results["order"] = _order_runs(args, asl)
    return results


def _order_runs(args: argparse.Namespace, asl: dict[str, int]) -> dict[str, Any]:
    """A skewed pool whose largest group sorts last by name, so name order starts its chain last: a first
    backup (no earlier one: name order), then a second one planned from the first's memberships per slice, as
    CapturePoolConfig reads them from the previous manifest (pipeline.backup.chain_hints)."""
    size = args.order_users
    pool = generate_pool(SOURCE, PoolSpec(users=size, groups=groups_for(size), largest_last=True))
    log(f"chain order: skewed pool of {size:,} users, largest group last by name")
    first = _timed(
        "order-1", size, lambda: _deployed(_fresh(pool, args.latency_scale), args, asl, "shared", "first")
    )
    second = _timed(
        "order-2",
        size,
        lambda: _deployed(
            _fresh(pool, args.latency_scale), args, asl, "shared", "second", previous=first.previous_slices()
        ),
    )
    names = sorted(pool.groups)
    return {
        "users": size,
        "groups": len(pool.groups),
        "memberships": pool.memberships,
        "largest_group": max(len(g.members) for g in pool.groups.values()),
        "largest_name_rank": names.index(max(names, key=lambda n: len(pool.groups[n].members))) + 1,
        "lower_bound_calls": lower_bound_calls(pool),
        "runs": {"first": _plain(first), "second": _plain(second)},
    }


def _deployed(
    emulator: Emulator,
    args: argparse.Namespace,
    asl: dict[str, int],
    topology: str,
    label: str,
    previous: PreviousSlices | None = None,
) -> Run:
    return approaches.backup_pipeline(
        emulator,
        SOURCE,
        concurrency=asl["backup"],
        slice_concurrency=asl["backup_slices"],
        label=label,
        topology=topology,
        fraction=args.fraction,
        tasks_at_once=args.previous_split if topology == "slices" else asl["backup"] + asl["backup_slices"],
        previous_slices=previous,
    )


# The previous stack (before the shared budget): 8 shards beside 4 group slices, each task alone with 1/12.
PREVIOUS_ASL = {"backup": 8, "backup_slices": 4}


def _run_topology(
    fresh: Callable[[], Emulator], args: argparse.Namespace, asl: dict[str, int], topology: str, key: str
) -> Run:
    return _deployed(fresh(), args, PREVIOUS_ASL if topology == "slices" else asl, topology, key)


def _backup_runs(
    pool: Pool, size: int, args: argparse.Namespace, asl: dict[str, int], *, peers: bool
) -> dict[str, Run]:
    def fresh() -> Emulator:
        return _fresh(pool, args.latency_scale)

    limit = args.peer_max_users if size > args.peer_max_users else None
    runs = {
        key: _timed(key, size, functools.partial(_run_topology, fresh, args, asl, topology, key))
        for key, topology in (("deployed", "shared"), ("slices", "slices"), ("ideal", "ideal"))
    }
    if peers:
        runs["mifi"] = _timed("mifi", size, lambda: approaches.backup_mifi(fresh(), SOURCE, max_users=limit))
        runs["mifi-c2"] = _timed(
            "mifi-c2", size, lambda: approaches.backup_mifi(fresh(), SOURCE, concurrency=2, max_users=limit)
        )
        runs["rahulpsd18"] = _timed(
            "rahul", size, lambda: approaches.backup_rahulpsd18(fresh(), SOURCE, max_users=limit)
        )
        runs["c"] = _timed("c", size, lambda: approaches.backup_reference(fresh(), SOURCE))
    return runs


def _hidden_run(pool: Pool, args: argparse.Namespace, asl: dict[str, int]) -> dict[str, Any]:
    """The budget assumes the default UserList quota; Cognito really leaves HIDDEN_SHARE of it, plus noise."""
    quotas = dict(throttle.QUOTA_RPS)
    quotas["UserList"] = throttle.QUOTA_RPS["UserList"] * HIDDEN_SHARE
    emulator = _fresh(pool, args.latency_scale, quotas=quotas, random_throttle=HIDDEN_NOISE)
    run = _timed("hidden", len(pool.names), lambda: _deployed(emulator, args, asl, "shared", "hidden"))
    return {
        "users": len(pool.names),
        "memberships": pool.memberships,
        "lower_bound_calls": lower_bound_calls(pool),
        "hidden_rps": quotas["UserList"],
        "assumed_rps": throttle.QUOTA_RPS["UserList"] * args.fraction,
        "run": _plain(run),
    }


def _restore_runs(pool: Pool, size: int, args: argparse.Namespace, map_concurrency: int) -> dict[str, Run]:
    def fresh() -> Emulator:
        return _fresh(pool, args.latency_scale)

    def pipeline(topology: str, label: str) -> Run:
        return approaches.restore_pipeline(
            fresh(),
            pool,
            TARGET,
            concurrency=map_concurrency,
            label=label,
            topology=topology,
            fraction=args.fraction,
            # The previous stack divided every task's share by the backup's 12, the restore's too.
            tasks_at_once=args.previous_split,
        )

    limit = args.peer_max_users if size > args.peer_max_users else None
    return {
        "deployed": _timed("r-dep", size, lambda: pipeline("shared", "deployed")),
        "slices": _timed("r-slices", size, lambda: pipeline("slices", "slices")),
        "ideal": _timed("r-ideal", size, lambda: pipeline("ideal", "ideal")),
        "b": _timed(
            "r-b", size, lambda: approaches.restore_sequential(fresh(), pool, TARGET, max_users=limit)
        ),
    }


def _plain(run: Run) -> dict[str, Any]:
    doc = asdict(run)
    doc["calls"] = dict(run.calls)
    doc["invocations"] = dict(run.invocations)
    doc["invocation_s"] = dict(run.invocation_s)
    return doc


# --- report -------------------------------------------------------------------------------------------------------


def _fmt_s(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _label(names: dict[str, str], key: str, run: dict[str, Any]) -> str:
    """An approach's table cell: its name, its workers for (a), and whether its numbers are extrapolated."""
    workers = f", {run['workers']} workers" if key.startswith("a") else ""
    note = f" *(extrapolated from {run['extrapolated_from']:,} users)*" if run["extrapolated_from"] else ""
    return f"{names[key]}{workers}{note}"


def _bound_s(entry: dict[str, Any], fraction: float) -> float:
    return float(entry["lower_bound_calls"]) / (throttle.QUOTA_RPS["UserList"] * fraction)


def _longest(run: dict[str, Any]) -> str:
    longest = run.get("max_invocation_s") or {}
    return (
        ", ".join(f"{k} {_fmt_s(v)}" for k, v in sorted(longest.items()) if k not in ("PlanShards",)) or "-"
    )


def backup_table(entry: dict[str, Any], fraction: float, latency_scale: float) -> list[str]:
    users, lb = entry["users"], entry["lower_bound_calls"]
    bound = _bound_s(entry, fraction)
    floor = chain_floor_s(entry["largest_group"], latency_scale)
    rows = [
        f"**{users:,} users ({entry['shape']})**, {entry['groups']} groups (largest {entry['largest_group']:,} "
        f"members), {entry['memberships']:,} memberships. Lower bound: {lb:,} calls; quota-bound time "
        f"{_fmt_s(bound)} (UserList at 30 RPS x {fraction:.0%}); the largest group's chain alone needs at least "
        f"{_fmt_s(floor)}.",
        "",
        "| approach | time (real-world) | calls / lower bound | % of the bound | throttled | DynamoDB requests "
        "| longest invocation | bench wall |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for key, run in entry["runs"].items():
        calls = sum(run["calls"].values())
        note = (
            f" *(extrapolated from {run['extrapolated_from']:,} users)*" if run["extrapolated_from"] else ""
        )
        rows.append(
            f"| {NAMES[key]}{note} | {_fmt_s(run['virtual_s'])} | {calls / lb:.3f} | {bound / run['virtual_s']:.1%} | "
            f"{run['throttled']} | {run.get('store_requests', 0):,} | {_longest(run)} | {run['wall_s']:.1f} s |"
        )
    return rows


def restore_table(entry: dict[str, Any], fraction: float) -> list[str]:
    users = entry["users"]
    strict = quota_bound_s(Counter(entry["runs"]["deployed"]["calls"]), fraction)
    rows = [
        f"**{users:,} users**, {entry['memberships']:,} memberships. Quota bound (max over categories of the "
        f"deployed run's calls, at {fraction:.0%} of each quota): {_fmt_s(strict)}.",
        "",
        "| approach | time (real-world) | calls / 1k users | % of the bound | throttled | DynamoDB requests "
        "| longest invocation | bench wall |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for key, run in entry["runs"].items():
        calls = sum(run["calls"].values())
        note = (
            f" *(extrapolated from {run['extrapolated_from']:,} users)*" if run["extrapolated_from"] else ""
        )
        rows.append(
            f"| {RESTORE_NAMES[key]}{note} | {_fmt_s(run['virtual_s'])} | {calls / users * 1000:.0f} | "
            f"{strict / run['virtual_s']:.1%} | {run['throttled']} | {run.get('store_requests', 0):,} | "
            f"{_longest(run)} | {run['wall_s']:.1f} s |"
        )
    return rows


def _row(target: str, measured: str, ok: bool) -> str:
    return f"| {target} | {measured} | {_verdict(ok)} |"


def targets(results: dict[str, Any]) -> list[str]:
    fraction = results["fraction"]
    rows = ["| target (as deployed, at the deployed 50% share) | measured | verdict |", "|---|---|---|"]
    skewed = {e["users"]: e for e in results["backup"] if e["shape"] == "skewed"}
    even = [e for e in results["backup"] if e["shape"] == "even"]
    for entry in even:
        bound = _bound_s(entry, fraction)
        eff = bound / entry["runs"]["deployed"]["virtual_s"]
        rows.append(
            _row(
                f"backup {entry['users']:,} users in {entry['groups']} groups of "
                f"{entry['largest_group']:,}: >= 90% of the quota bound",
                f"{eff:.1%} ({_fmt_s(entry['runs']['deployed']['virtual_s'])} vs {_fmt_s(bound)}; ideal "
                f"{bound / entry['runs']['ideal']['virtual_s']:.1%}, previous stack "
                f"{bound / entry['runs']['slices']['virtual_s']:.1%})",
                eff >= 0.9,
            )
        )
    if skewed:
        entry = skewed[max(skewed)]
        bound = _bound_s(entry, fraction)
        eff = bound / entry["runs"]["deployed"]["virtual_s"]
        before = bound / entry["runs"]["slices"]["virtual_s"]
        rows.append(
            _row(
                f"backup {entry['users']:,} users, skewed (largest group {entry['largest_group']:,}): >= the "
                "single-chain floor + 5 points (read as: the previous stack's figure, which the largest group's "
                "chain bounded at its 1/12 slice, + 5 points)",
                f"{eff:.1%} vs {before:.1%} + 5 ({_fmt_s(entry['runs']['deployed']['virtual_s'])} vs bound "
                f"{_fmt_s(bound)}; ideal {bound / entry['runs']['ideal']['virtual_s']:.1%})",
                eff >= before + 0.05,
            )
        )
    for entry in [*even, *([skewed[max(skewed)]] if skewed else [])]:
        ratio = sum(entry["runs"]["deployed"]["calls"].values()) / entry["lower_bound_calls"]
        rows.append(
            _row(
                f"calls <= 1.05 x lower bound, {entry['users']:,} {entry['shape']}",
                f"{ratio:.3f}",
                ratio <= 1.05,
            )
        )
    for users in sorted(skewed):
        runs = skewed[users]["runs"]
        if "mifi" not in runs:
            continue
        for key, need in (("mifi", 10.0), ("mifi-c2", 5.0)):
            speedup = runs[key]["virtual_s"] / runs["deployed"]["virtual_s"]
            rows.append(
                _row(
                    f">= {need:.0f}x faster than {NAMES[key]} at {users:,} users",
                    f"{speedup:.1f}x",
                    speedup >= need,
                )
            )
    if results["restore"]:
        entry = max(results["restore"], key=lambda e: e["users"])
        calls: Counter[str] = Counter(entry["runs"]["deployed"]["calls"])
        eff = quota_bound_s(calls, fraction) / entry["runs"]["deployed"]["virtual_s"]
        rows.append(
            _row(
                f"restore {entry['users']:,} users: >= 85% of its bound",
                f"{eff:.1%} (previous stack "
                f"{quota_bound_s(calls, fraction) / entry['runs']['slices']['virtual_s']:.1%})",
                eff >= 0.85,
            )
        )
    if skewed:
        entry = skewed[max(skewed)]
        total = sum(entry["cost"].values())
        rows.append(
            _row(
                f"cost per million users backed up <= $0.18 (DynamoDB counted: "
                f"{entry['dynamodb_per_million']:,.0f} requests per million users)",
                f"${total:.4f}",
                total <= 0.18,
            )
        )
    hidden = results.get("hidden")
    if hidden:
        run = hidden["run"]
        bound = hidden["lower_bound_calls"] / hidden["hidden_rps"]
        eff = bound / run["virtual_s"]
        ratio = sum(run["calls"].values()) / hidden["lower_bound_calls"]
        whole = run["users"] == hidden["users"] and run["memberships"] == hidden["memberships"]
        rows.append(
            _row(
                f"hidden quota ({hidden['users']:,} users; UserList really {hidden['hidden_rps']:.0f} RPS where "
                f"the budget assumes {hidden['assumed_rps']:.0f}, {HIDDEN_NOISE:.0%} random throttles): >= 75% of "
                "the hidden bound, calls <= 1.1 x lower bound, nothing lost",
                f"{eff:.1%}, {ratio:.3f} x, {run['users']:,}/{hidden['users']:,} users and "
                f"{run['memberships']:,}/{hidden['memberships']:,} memberships, {run['throttled']:,} throttled",
                eff >= 0.75 and ratio <= 1.1 and whole,
            )
        )
    order = results.get("order")
    if order:
        first, second = order["runs"]["first"], order["runs"]["second"]
        bound = order["lower_bound_calls"] / (throttle.QUOTA_RPS["UserList"] * fraction)
        largest = max(second["slice_memberships"], key=lambda k: second["slice_memberships"][k])
        starts = second["slice_order"][0] == int(largest)
        rows.append(
            _row(
                f"longest member chain first ({order['users']:,} users, largest group {order['largest_group']:,} "
                f"members sorting {order['largest_name_rank']} of {order['groups']} by name): the next backup, "
                "planned from the previous manifest's memberships per slice, starts it first and is not slower",
                f"name order {bound / first['virtual_s']:.1%} ({_fmt_s(first['virtual_s'])}); planned from the "
                f"previous backup {bound / second['virtual_s']:.1%} ({_fmt_s(second['virtual_s'])}), slice "
                f"{second['slice_order'][0]} first",
                starts and second["virtual_s"] <= first["virtual_s"],
            )
        )
    budget = approaches.TASK_BUDGET_S
    for entry in [*results["backup"], *results["restore"]]:
        longest = max(
            (v for k, v in (entry["runs"]["deployed"].get("max_invocation_s") or {}).items()),
            default=0.0,
        )
        rows.append(
            _row(
                f"no invocation beyond its time budget ({budget:.0f} s + the call in flight), "
                f"{'restore' if entry in results['restore'] else 'backup'} {entry['users']:,} "
                f"{entry.get('shape', '')}",
                f"longest {_fmt_s(longest)}",
                longest <= budget + 30,
            )
        )
    return rows


def history_section(results: dict[str, Any]) -> list[str]:
    users = 10_000_000
    memberships = round(users * 1.2)
    rows = [
        "| Map concurrency | shards | ExportUsers calls / shard | inline Map: events in one history | "
        "distributed Map: parent | distributed Map: each child |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for concurrency in sorted({results["asl"]["backup"], 16, 256}):
        est = history.estimate(users, memberships, concurrency=concurrency, groups=groups_for(users))
        over = " (over the quota)" if est.inline_events > history.HISTORY_QUOTA else ""
        rows.append(
            f"| {concurrency} | {est.shards} | {est.invocations_per_shard} | {est.inline_events:,}{over} | "
            f"{est.distributed_parent_events:,} | {est.distributed_child_events:,} |"
        )
    return rows


def restore_history_section(results: dict[str, Any]) -> list[str]:
    entry = max(results["restore"], key=lambda e: e["users"])
    calls: Counter[str] = Counter(entry["runs"]["deployed"]["calls"])
    pace = entry["users"] / quota_bound_s(calls) * throttle.DEFAULT_FRACTION
    rows = [
        f"A restore paces at its slowest quota: {pace:.1f} users/s at the deployed {throttle.DEFAULT_FRACTION:.0%} "
        f"of the quotas (measured at {entry['users']:,} users above), shared by the "
        f"{results['asl']['restore']} shards the restore Map runs at once, so a RestoreUsers call covers a few "
        "hundred users before its 300 s budget ends. From 256 shards (RestoreAtScale) the shards run as a "
        "distributed Map.",
        "",
        "| users | shards | RestoreUsers calls / shard | inline Map: events in one history | distributed Map: parent "
        "| distributed Map: each child |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for users in (100_000, 1_000_000, 3_000_000, 10_000_000):
        est = history.restore_estimate(users, concurrency=results["asl"]["restore"], users_per_second=pace)
        over = " (over the quota)" if est.inline_events > history.HISTORY_QUOTA else ""
        rows.append(
            f"| {users:,} | {est.shards} | {est.invocations_per_shard} | {est.inline_events:,}{over} | "
            f"{est.distributed_parent_events:,} | {est.distributed_child_events:,} |"
        )
    return rows


def cost_section(results: dict[str, Any]) -> list[str]:
    if not results["backup"]:
        return []
    entry = max((e for e in results["backup"] if e["shape"] == "skewed"), key=lambda e: e["users"])
    items = entry["cost"]
    rows = [
        f"From the measured counts of the as-deployed run at {entry['users']:,} users (skewed), per million "
        f"users backed up (prices as of {cost.PRICES_AS_OF}, assumptions); the shared budget made "
        f"{entry['dynamodb_per_million']:,.0f} DynamoDB requests per million users (x{cost.DYNAMODB_CONTENTION} "
        "for contention, see bench/cost.py):",
        "",
        "| item | $ / million users |",
        "|---|---:|",
    ]
    rows += [f"| {k} | {v:.4f} |" for k, v in items.items()]
    rows.append(f"| **total** | **{sum(items.values()):.4f}** |")
    others = []
    for key in ("slices", "ideal"):
        run = Run(**{**entry["runs"][key], "calls": Counter(entry["runs"][key]["calls"])})
        run.invocations, run.invocation_s = Counter(run.invocations), Counter(run.invocation_s)
        memory = cost.PREVIOUS_TASK_GB if key == "slices" else cost.TASK_GB
        total = sum(cost.per_million(cost.backup_cost(run, memory), entry["users"]).values())
        others.append(f"{NAMES[key]}{' (its exports at 1024 MB)' if key == 'slices' else ''}: ${total:.4f}")
    rows += [
        "",
        "The same model for the other topologies of the same run: "
        + "; ".join(others)
        + ". Lambda bills a task while it waits for tokens, so the stack runs no more export loops than the "
        f"share needs: {results['asl']['backup']} shards beside {results['asl']['backup_slices']} group slices "
        "(one ListUsers chain pages about 10 times a second at its latency, the deployed share of UserList is "
        f"{throttle.QUOTA_RPS['UserList'] * results['fraction']:.0f} calls a second), at "
        + ", ".join(f"{k} {v * 1024:.0f} MB" for k, v in cost.TASK_GB.items())
        + " (`infra/sizing.py`; before this, 8 + 4 loops at 1024 MB cost $0.3791 on the shared budget in the "
        "previous run). Encoding and "
        "sealing a part of 5,000 users took 0.29 s of one CPU here, so 512 MB (0.29 vCPU) adds about 1 s to a part "
        "that pages for 8 s or more; that CPU is not on the virtual clock, and the same CPU-seconds cost the "
        "same GB-seconds at any memory size below one vCPU.",
    ]
    return rows


def report(results: dict[str, Any], args: argparse.Namespace, wall_s: float, plot: str) -> str:
    lat = ", ".join(f"{k} {v * args.latency_scale * 1000:.0f} ms" for k, v in DEFAULT_LATENCY.items())
    fraction = results["fraction"]
    lines = [
        "# Benchmarks: backup and restore at scale, as deployed",
        "",
        f"Generated by `make bench` (`python -m bench.run`) on {dt.date.today().isoformat()}, "
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs; the whole run "
        f"took {wall_s / 60:.1f} min of wall time. Raw numbers: `bench/results.json`. Every figure below is "
        "from this one run.",
        "",
        "## Targets: the deployed topology",
        "",
        f"As the stack deploys it: every Lambda invocation has its own rate budget process-like, all drawing on "
        f"the one shared DynamoDB budget at {fraction:.0%} of each quota (`pipeline.cognito.shared_budget`, one "
        f"{approaches.DYNAMODB_LATENCY_S * 1000:.0f} ms round trip per lease), the Maps' MaxConcurrency read from "
        f"the ASL ({results['asl']['backup']} shards beside {results['asl']['backup_slices']} group slices; "
        f"{results['asl']['restore']} restore shards), and each task's {approaches.TASK_BUDGET_S:.0f} s time "
        "budget. The quota bound is the lower-bound calls at the deployed share of the quota.",
        "",
        *targets(results),
        "",
        f"![time per approach]({plot})",
        "",
        "## What is measured, and how",
        "",
        "- **Cognito** is `bench/emulator.py`: in memory, O(page) per ListUsers / ListUsersInGroup page, token "
        "buckets per quota category at the default quotas (burst: one second), shared by all callers, answering "
        "`TooManyRequestsException` when empty (and, in the hidden-quota run, at random for a share of calls). "
        "It has boto3's method names and raises botocore `ClientError`s, so the pipeline's own functions run "
        "against it unchanged.",
        f"- **Latency** per call is an assumption (AWS publishes none): {lat}; other calls "
        f"{DEFAULT_OP_LATENCY * args.latency_scale * 1000:.0f} ms; a Lambda invocation (transition + warm "
        f"invoke) {approaches.INVOKE_OVERHEAD_S * 1000:.0f} ms; S3 PutObject {approaches.S3_PUT_LATENCY_S * 1000:.0f}"
        f" ms; KMS {approaches.KMS_LATENCY_S * 1000:.0f} ms; a DynamoDB lease "
        f"{approaches.DYNAMODB_LATENCY_S * 1000:.0f} ms.",
        "- **Time** is virtual (`bench/vclock.py`): a discrete-event clock that advances only when every worker "
        "thread waits on it (rate limit, latency), to the earliest wake-up: what the run would take against "
        "Cognito, excluding client CPU.",
        "- **Topologies of (a)**, all running the real `pipeline.backup.steps` / `pipeline.restore.user_restore` "
        "code, one call per Lambda invocation the state machine would make. *As deployed*: each invocation builds "
        "a new `SharedRateBudget` (the worst case: a warm Lambda keeps its budget and its leased tokens) over one "
        "table model (`MemoryBucketStore`: the same lease and adaptive logic as `DynamoBucketStore`, atomic, one "
        "round trip per lease). *Previous stack*: 8 shards beside 4 group slices, each invocation alone with "
        f"{fraction:.0%}/{results['tasks_at_once']} of each quota, never handed on. *Ideal*: one in-process "
        "budget for every worker, no Lambda boundaries (the figure the old BENCHMARKS.md reported).",
        "- **Peers as their source does it.** mifi/cognito-backup (`cli.js`): one ListUsers chain; per page, "
        "AdminListGroupsForUser per user through p-map at `--concurrency` (default 1), each followed by a 20 ms "
        "sleep; no client-side limit, SDK standard retries. rahulpsd18/cognito-backup-restore: one ListUsers chain "
        "and nothing else (no groups). The retired AWS solution: every call under one 10 calls/s cap. Peers run "
        f"up to {args.peer_max_users:,} users and are extrapolated linearly above that (labelled).",
        "- **Efficiency** = quota-bound time / achieved time. Backup: lower bound = ceil(users/60) + sum over "
        f"groups of ceil(members/60) + {CONFIG_CALLS} configuration calls, at UserList's 30 RPS x {fraction:.0%}. "
        "Restore: the max over categories of the deployed run's calls / (quota x share).",
        "- **Hidden quota**: the emulator's UserList quota is "
        f"{HIDDEN_SHARE:.0%} of the default the budget assumes (other applications take the rest), with "
        f"{HIDDEN_NOISE:.0%} of calls throttled at random on top; its bound is the lower bound at that hidden rate.",
        "- Data: `generate_pool` (skewed: 60% of users in 1-3 groups, popular groups likelier, so the first "
        "group is the largest; in the chain-order pool the popularity is reversed, so the largest sorts last) and "
        "`generate_even_pool` (every user in one of N equal groups).",
        "",
        "## Backup",
        "",
    ]
    for entry in results["backup"]:
        lines += [*backup_table(entry, fraction, results["latency_scale"]), ""]
    hidden = results.get("hidden")
    if hidden:
        run = hidden["run"]
        lines += [
            "## Hidden quota",
            "",
            f"{hidden['users']:,} users; the budget assumes UserList at {hidden['assumed_rps']:.0f} RPS, Cognito "
            f"admits {hidden['hidden_rps']:.0f} RPS and throttles {HIDDEN_NOISE:.0%} of calls at random: "
            f"{_fmt_s(run['virtual_s'])} against a hidden bound of "
            f"{_fmt_s(hidden['lower_bound_calls'] / hidden['hidden_rps'])}, "
            f"{sum(run['calls'].values()):,} calls for a lower bound of {hidden['lower_bound_calls']:,}, "
            f"{run['throttled']:,} throttled, {run['users']:,} users and {run['memberships']:,} memberships "
            "backed up.",
            "",
        ]
    lines += ["## Restore", ""]
    for entry in results["restore"]:
        lines += [*restore_table(entry, fraction), ""]
    lines += [
        "## Execution history of a 10-million-user pool",
        "",
        "Counted from the structure of `statemachines/backup.asl.json` (`bench/history.py`).",
        "",
        *history_section(results),
        "",
        *(restore_history_section(results) if results["restore"] else []),
        "",
        "## Cost",
        "",
        *cost_section(results),
        "",
        "Lambda GB-seconds are the measured (virtual) durations of each invocation times its memory; Lambda bills "
        "waiting, so a budget that hands idle shares on also makes the backup cheaper.",
        "",
        "## Reading the results",
        "",
        *analysis(results),
        "",
    ]
    return "\n".join(lines)


def analysis(results: dict[str, Any]) -> list[str]:
    out: list[str] = []
    fraction = results["fraction"]
    skewed = [e for e in results["backup"] if e["shape"] == "skewed"]
    if skewed:
        entry = max(skewed, key=lambda e: e["users"])
        runs = entry["runs"]
        bound = _bound_s(entry, fraction)
        out.append(
            f"- Skewed {entry['users']:,}: the previous stack gave each of the {results['tasks_at_once']} tasks "
            f"that may run at once a fixed {fraction:.0%}/{results['tasks_at_once']} slice, so the largest group's "
            f"chain ({entry['largest_group']:,} members) paged at that slice's pace long after the rest was done: "
            f"{_fmt_s(runs['slices']['virtual_s'])}. On the shared budget a task that finishes hands its share to "
            f"those still running, and the chain speeds up to its latency limit at the end: "
            f"{_fmt_s(runs['deployed']['virtual_s'])} (bound {_fmt_s(bound)}, ideal "
            f"{_fmt_s(runs['ideal']['virtual_s'])})."
        )
    order = results.get("order")
    if order:
        first, second = order["runs"]["first"], order["runs"]["second"]
        out.append(
            f"- Chain order: Cognito gives no group sizes, so PlanShards orders the group slices by the previous "
            "backup's memberships per slice (its manifest counts each part's records; `pipeline.backup."
            "chain_hints`), longest first, and hands them to the Map in that order (the emulator starts items "
            "in order; AWS documents no start order); a first backup, or one "
            "after the group count changed, plans in name order. In the pool whose largest group sorts "
            f"{order['largest_name_rank']} of {order['groups']}, name order started it last "
            f"({_fmt_s(first['virtual_s'])}); planned from the first backup it started first "
            f"({_fmt_s(second['virtual_s'])}). The difference is small at the deployed share because the shared "
            "budget lets a chain that starts late page at its latency limit once the other loops are done; it "
            "grows when the largest chain approaches the whole backup's length."
        )
        out.append(
            "- rahulpsd18 is fast because it backs up users only: no group, no membership, no configuration. mifi "
            "pays one AdminListGroupsForUser per user plus its 20 ms sleep, sequentially per page."
        )
    return out


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    skewed = [e for e in results["backup"] if e["shape"] == "skewed"]
    xs = [e["users"] for e in skewed]
    for key in NAMES:
        ys = [e["runs"][key]["virtual_s"] / 60 for e in skewed if key in e["runs"]]
        if len(ys) == len(xs):
            left.plot(xs, ys, marker="o", label=NAMES[key])
    left.plot(xs, [_bound_s(e, results["fraction"]) / 60 for e in skewed], "k--", label="quota bound")
    left.set(
        xscale="log", yscale="log", xlabel="users", ylabel="minutes (real-world)", title="Backup (skewed)"
    )
    left.legend(fontsize=6)
    xs = [e["users"] for e in results["restore"]]
    for key in RESTORE_NAMES:
        right.plot(
            xs,
            [e["runs"][key]["virtual_s"] / 60 for e in results["restore"]],
            marker="o",
            label=RESTORE_NAMES[key],
        )
    right.plot(
        xs,
        [
            quota_bound_s(Counter(e["runs"]["deployed"]["calls"]), results["fraction"]) / 60
            for e in results["restore"]
        ],
        "k--",
        label="quota bound (strict)",
    )
    right.set(xscale="log", yscale="log", xlabel="users", ylabel="minutes (real-world)", title="Restore")
    right.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _sizes(text: str) -> list[int]:
    return [int(float(s)) for s in text.split(",") if s.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--out", default="BENCHMARKS.md")
    parser.add_argument("--plot", default="bench/bench.png")
    parser.add_argument("--json", default="bench/results.json")
    parser.add_argument("--sizes", type=_sizes, default=[10_000, 100_000, 1_000_000], help="backup sizes")
    parser.add_argument("--restore-sizes", type=_sizes, default=[10_000, 100_000])
    parser.add_argument(
        "--peer-max-users",
        type=int,
        default=20_000,
        help="above this, the peers (and the sequential restore) run this many users and are extrapolated",
    )
    parser.add_argument(
        "--fraction", type=float, default=throttle.DEFAULT_FRACTION, help="the deployed share"
    )
    parser.add_argument("--even-users", type=int, default=1_000_000, help="users of the even pool (0: none)")
    parser.add_argument("--even-groups", type=int, default=20)
    parser.add_argument("--hidden-users", type=int, default=100_000, help="the hidden-quota run's pool size")
    parser.add_argument(
        "--order-users",
        type=int,
        default=1_000_000,
        help="users of the skewed pool whose largest group sorts last, backed up twice (0: none)",
    )
    parser.add_argument(
        "--previous-split", type=int, default=12, help="tasks the previous stack divided the share by"
    )
    parser.add_argument("--latency-scale", type=float, default=1.0, help="multiplies every modelled latency")
    parser.add_argument(
        "--report-only", action="store_true", help="re-render the report from --json without measuring again"
    )
    args = parser.parse_args(argv)
    if args.report_only:
        saved = json.loads(Path(args.json).read_text())
        results, wall = saved, float(saved.get("wall_s", 0.0))
    else:
        start = time.perf_counter()
        results = measure(args)
        wall = time.perf_counter() - start
        results["wall_s"] = wall
        Path(args.json).write_text(json.dumps({"args": vars(args), **results}, indent=1, sort_keys=True))
    plot(results, Path(args.plot))
    out = Path(args.out)
    plot_ref = os.path.relpath(Path(args.plot).resolve(), out.resolve().parent)
    out.write_text(report(results, args, wall, plot_ref))
    log(f"wrote {out}, {args.plot}, {args.json} in {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
