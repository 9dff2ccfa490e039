"""``python -m bench.run --out BENCHMARKS.md``: every approach at every size on the emulator, then the report.

Progress goes to stderr; the report (Markdown), a plot and the raw numbers (JSON) are written to files.
"""

from __future__ import annotations

import argparse
import datetime as dt
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
from bench.emulator import DEFAULT_LATENCY, DEFAULT_OP_LATENCY, Emulator, Pool, PoolSpec, generate_pool
from bench.vclock import VirtualClock
from pipeline.cognito import throttle

SOURCE = "us-east-1_BenchSrc1"
TARGET = "us-east-1_BenchDst1"
CONFIG_CALLS = 6  # DescribeUserPool, GetUserPoolMfaConfig, ListUserPoolClients, ListIdentityProviders,
# ListResourceServers, ListGroups: the least a pool's configuration capture can cost
NAMES = {
    "a": "(a) this pipeline, every shard and group slice at once",
    "a-asl": "(a) this pipeline, both Maps' MaxConcurrency as in the ASL",
    "b": "(b) CLIs: ListUsers chain + AdminListGroupsForUser per user",
    "c": "(c) retired AWS solution: 10 calls/s, ListUsersInGroup per group",
}
RESTORE_NAMES = {
    "a": "(a) this pipeline, one worker per shard",
    "a-asl": "(a) this pipeline, Map MaxConcurrency as in the ASL",
    "b": "(b) sequential, user by user",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def groups_for(users: int) -> int:
    return max(5, min(20, round(4 * math.log10(max(users, 10)) - 8)))


def lower_bound_calls(pool: Pool) -> int:
    members = sum(math.ceil(len(g.members) / 60) for g in pool.groups.values())
    return math.ceil(len(pool.names) / 60) + members + CONFIG_CALLS


def quota_bound_s(calls: Counter[str] | dict[str, int]) -> float:
    per_category: Counter[str] = Counter()
    for op, n in calls.items():
        per_category[throttle.category_of(op)] += n
    return max((n / throttle.QUOTA_RPS[c] for c, n in per_category.items()), default=0.0)


def _fresh(pool: Pool, latency_scale: float) -> Emulator:
    emulator = Emulator(
        VirtualClock(),
        latency={k: v * latency_scale for k, v in DEFAULT_LATENCY.items()},
        default_latency=DEFAULT_OP_LATENCY * latency_scale,
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
    results: dict[str, Any] = {
        "backup": [],
        "restore": [],
        "asl": {"backup": backup_mc, "backup_slices": slices_mc, "restore": restore_mc},
        "latency_scale": args.latency_scale,
    }
    for size in sorted(set(args.sizes) | set(args.restore_sizes)):
        start = time.perf_counter()
        pool = generate_pool(SOURCE, PoolSpec(users=size, groups=groups_for(size)))
        log(
            f"pool of {size:,} users, {len(pool.groups)} groups, {pool.memberships:,} memberships "
            f"({time.perf_counter() - start:.1f} s)"
        )
        info = {
            "users": size,
            "groups": len(pool.groups),
            "memberships": pool.memberships,
            "largest_group": max((len(g.members) for g in pool.groups.values()), default=0),
        }
        if size in args.sizes:
            runs = _backup_runs(pool, size, args, (backup_mc, slices_mc))
            results["backup"].append(
                {
                    **info,
                    "lower_bound_calls": lower_bound_calls(pool),
                    "runs": {k: _plain(r) for k, r in runs.items()},
                    "cost": cost.per_million(cost.backup_cost(runs["a-asl"]), size),
                }
            )
        if size in args.restore_sizes:
            restore_runs = _restore_runs(pool, size, args, restore_mc)
            results["restore"].append({**info, "runs": {k: _plain(r) for k, r in restore_runs.items()}})
    return results


def _backup_runs(
    pool: Pool, size: int, args: argparse.Namespace, map_concurrency: tuple[int, int]
) -> dict[str, Run]:
    def fresh() -> Emulator:
        return _fresh(pool, args.latency_scale)

    b_limit = args.b_max_users if size > args.b_max_users else None
    return {
        "a": _timed("a", size, lambda: approaches.backup_pipeline(fresh(), SOURCE)),
        "a-asl": _timed(
            "a-asl",
            size,
            lambda: approaches.backup_pipeline(
                fresh(),
                SOURCE,
                concurrency=map_concurrency[0],
                slice_concurrency=map_concurrency[1],
                label="a-asl",
            ),
        ),
        "b": _timed("b", size, lambda: approaches.backup_cli(fresh(), SOURCE, max_users=b_limit)),
        "c": _timed("c", size, lambda: approaches.backup_reference(fresh(), SOURCE)),
    }


def _restore_runs(pool: Pool, size: int, args: argparse.Namespace, map_concurrency: int) -> dict[str, Run]:
    def fresh() -> Emulator:
        return _fresh(pool, args.latency_scale)

    b_limit = args.b_max_users if size > args.b_max_users else None
    return {
        "a": _timed("r-a", size, lambda: approaches.restore_pipeline(fresh(), pool, TARGET)),
        "a-asl": _timed(
            "r-asl",
            size,
            lambda: approaches.restore_pipeline(
                fresh(), pool, TARGET, concurrency=map_concurrency, label="a-asl"
            ),
        ),
        "b": _timed(
            "r-b", size, lambda: approaches.restore_sequential(fresh(), pool, TARGET, max_users=b_limit)
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


def backup_table(entry: dict[str, Any]) -> list[str]:
    users, lb = entry["users"], entry["lower_bound_calls"]
    bound = lb / throttle.QUOTA_RPS["UserList"]
    rows = [
        f"**{users:,} users**, {entry['groups']} groups, {entry['memberships']:,} memberships. "
        f"Lower bound: {lb:,} calls; quota-bound time {_fmt_s(bound)} (UserList at 30 RPS).",
        "",
        "| approach | time (real-world) | calls / 1k users | calls / lower bound | efficiency | "
        "client CPU / 1k users | throttled | bench wall |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, run in entry["runs"].items():
        calls = sum(run["calls"].values())
        rows.append(
            f"| {_label(NAMES, key, run)} | {_fmt_s(run['virtual_s'])} | {calls / users * 1000:.2f} | "
            f"{calls / lb:.3f} | {bound / run['virtual_s']:.1%} | {run['client_cpu_s'] / users * 1e6:.0f} ms | "
            f"{run['throttled']} | {run['wall_s']:.1f} s |"
        )
    return rows


def restore_table(entry: dict[str, Any]) -> list[str]:
    users = entry["users"]
    calls_a: Counter[str] = Counter(entry["runs"]["a"]["calls"])
    strict = quota_bound_s(calls_a)
    rows = [
        f"**{users:,} users**, {entry['memberships']:,} memberships. Quota bound (max over categories, of "
        f"(a)'s calls): {_fmt_s(strict)}.",
        "",
        "| approach | time (real-world) | calls / 1k users | efficiency | client CPU / 1k users | throttled "
        "| bench wall |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, run in entry["runs"].items():
        calls = sum(run["calls"].values())
        rows.append(
            f"| {_label(RESTORE_NAMES, key, run)} | {_fmt_s(run['virtual_s'])} | {calls / users * 1000:.0f} | "
            f"{strict / run['virtual_s']:.1%} | "
            f"{run['client_cpu_s'] / users * 1e6:.0f} ms | {run['throttled']} | {run['wall_s']:.1f} s |"
        )
    return rows


def targets(results: dict[str, Any]) -> list[str]:
    rows = ["| target | measured | verdict |", "|---|---|---|"]
    backups = {e["users"]: e for e in results["backup"]}
    largest = backups[max(backups)] if backups else None
    if largest:
        bound = largest["lower_bound_calls"] / throttle.QUOTA_RPS["UserList"]
        for key in ("a", "a-asl"):
            eff = bound / largest["runs"][key]["virtual_s"]
            rows.append(
                f"| backup >= 90% of the quota bound at {largest['users']:,} users, {NAMES[key]} | {eff:.1%} | "
                f"{_verdict(eff >= 0.9)} |"
            )
        ratio = sum(largest["runs"]["a"]["calls"].values()) / largest["lower_bound_calls"]
        rows.append(
            f"| calls <= 1.05 x lower bound at {largest['users']:,}, (a) | {ratio:.3f} | {_verdict(ratio <= 1.05)} |"
        )
    if 100_000 in backups:
        runs = backups[100_000]["runs"]
        speedup = runs["b"]["virtual_s"] / runs["a"]["virtual_s"]
        rows.append(
            f"| (a) >= 10x faster than (b) at 100,000 users | {speedup:.1f}x | {_verdict(speedup >= 10)} |"
        )
    if results["restore"]:
        entry = max(results["restore"], key=lambda e: e["users"])
        calls: Counter[str] = Counter(entry["runs"]["a"]["calls"])
        for key in ("a", "a-asl"):
            eff = quota_bound_s(calls) / entry["runs"][key]["virtual_s"]
            rows.append(
                f"| restore >= 85% of its quota bound at {entry['users']:,} users, {RESTORE_NAMES[key]} | "
                f"{eff:.1%} | {_verdict(eff >= 0.85)} |"
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
    calls: Counter[str] = Counter(entry["runs"]["a"]["calls"])
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
    entry = max(results["backup"], key=lambda e: e["users"])
    items = entry["cost"]
    rows = [
        f"From the measured counts of (a) with the ASL's MaxConcurrency at {entry['users']:,} users, per million "
        f"users backed up (prices as of {cost.PRICES_AS_OF}, assumptions):",
        "",
        "| item | $ / million users |",
        "|---|---:|",
    ]
    rows += [f"| {k} | {v:.4f} |" for k, v in items.items()]
    rows.append(f"| **total** | **{sum(items.values()):.4f}** |")
    return rows


def report(results: dict[str, Any], args: argparse.Namespace, wall_s: float, plot: str) -> str:
    lat = ", ".join(f"{k} {v * args.latency_scale * 1000:.0f} ms" for k, v in DEFAULT_LATENCY.items())
    lines = [
        "# Benchmarks: backup and restore at scale",
        "",
        f"Generated by `make bench` (`python -m bench.run`) on {dt.date.today().isoformat()}, "
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs; the whole run "
        f"took {wall_s / 60:.1f} min of wall time. Raw numbers: `bench/results.json`.",
        "",
        f"![time per approach]({plot})",
        "",
        "## What is measured, and how",
        "",
        "- **Cognito** is `bench/emulator.py`: in memory, O(page) per ListUsers / ListUsersInGroup page (cursor "
        'indices, a sub-prefix index for `Filter: sub ^= "x"`), token buckets per quota category at the '
        "default quotas (burst: one second), shared by all callers, answering `TooManyRequestsException` "
        "when empty. It has boto3's method names and raises botocore `ClientError`s, so the pipeline's own "
        "functions run against it unchanged.",
        f"- **Latency** per call is an assumption (AWS publishes none): {lat}; other calls "
        f"{DEFAULT_OP_LATENCY * args.latency_scale * 1000:.0f} ms; a Lambda invocation (transition + warm "
        f"invoke) {approaches.INVOKE_OVERHEAD_S * 1000:.0f} ms; "
        f"S3 PutObject {approaches.S3_PUT_LATENCY_S * 1000:.0f} ms; "
        f"KMS {approaches.KMS_LATENCY_S * 1000:.0f} ms.",
        "- **Time** is virtual (`bench/vclock.py`): a discrete-event clock that advances only when every worker "
        'thread waits on it (rate limit, latency), to the earliest wake-up. "Time (real-world)" is that clock: '
        "what the run would take against Cognito, *excluding* client CPU. A fixed N-times time scale was not used "
        "because it would multiply this machine's Python CPU (and the GIL's serialisation of 256 workers) by N "
        'and charge it to Cognito. The client CPU is reported separately; "bench wall" is the wall time this '
        "machine needed.",
        "- **Client-side rate limiting is the pipeline's own**: every worker draws from one "
        "`pipeline.cognito.throttle.RateBudget(fraction=1.0, clock=vclock.now, sleep=vclock.sleep)`; the fake client "
        "calls `budget.acquire(op, pool)` before each attempt and `on_throttle`/`on_success` after it, with the "
        "same full-jitter backoff as `throttle.install` (whose botocore hooks a fake does not fire). The "
        "deployed default is `fraction=0.5` (half the quota left to production traffic), which halves every "
        "(a) rate below by design; the benchmark measures the machinery at the whole quota.",
        "- **(a) runs the real code**: `pipeline.backup.steps.capture_config`, `plan`, `export_users` (one call per "
        "Lambda invocation the ExportUsers loop would make, 300 s task budget), `export_memberships`; restore "
        "runs `pipeline.restore.user_restore.restore_user` then `restore_user_groups` per user, one RestoreUsers "
        "invocation per backup part, after an IndexMemberships invocation modelled as S3 reads and writes. "
        "S3 PutObject and KMS GenerateDataKey are counting stand-ins; JSON Lines + gzip and "
        "AES-256-GCM sealing are the real `records`/`envelope` code, so the client CPU includes them. "
        "WriteManifest and VerifyBackup (S3 and KMS only) are not run; the cost model accounts for them.",
        "- **Efficiency** = quota-bound time / achieved time. Backup: quota-bound time = lower-bound calls / 30 "
        "RPS (UserList), where lower bound = ceil(users/60) + sum over groups of ceil(members/60) + "
        f"{CONFIG_CALLS} configuration calls. Restore: the strict bound is the max over categories of (a)'s "
        "calls / quota (AdminCreateUser 50 RPS, AdminSetUserPassword **30 RPS: it is in UserAccountRecovery**, "
        "AdminDisableUser 25, AdminAddUserToGroup 25). Since each user's groups are added right after the user, "
        "the categories are drawn on at the same time and the slowest one sets the pace.",
        "- **Client CPU** = process CPU during the run minus the CPU spent inside the emulator's handlers; it "
        "includes the thread hand-offs of the virtual clock.",
        "- Data: `bench.emulator.generate_pool`: 60% of users in 1-3 of 8-16 groups (popular groups likelier), 3% "
        "disabled, 5% UNCONFIRMED (restored as FORCE_CHANGE_PASSWORD: no temporary SignUp client in the bench), "
        "six attributes each.",
        "",
        "## Targets",
        "",
        *targets(results),
        "",
        "## Backup",
        "",
    ]
    for entry in results["backup"]:
        lines += [*backup_table(entry), ""]
    lines += ["## Restore", ""]
    for entry in results["restore"]:
        lines += [*restore_table(entry), ""]
    lines += [
        "## Execution history of a 10-million-user pool",
        "",
        "Counted from the structure of `statemachines/backup.asl.json` (`bench/history.py`): a Lambda Task state "
        "records 5 events, a Choice or Pass 2, a Map 4 plus 2 per inline iteration, an execution 2. Each "
        "ExportUsers loop iteration costs 7 events (Task + Choice). An ExportUsers call stops at a full part "
        "(5,000 users) or after its 300 s budget; with c shards running at once each pages at 1,800/c users/s "
        "(the UserList quota shared), so with many concurrent shards a call ends on its budget with fewer "
        "users, and each shard needs more calls. 12 million memberships in 20 groups are 600 "
        "ExportGroupMemberships calls (20,000 per part) in the group slices' inline Map (16 slices), in the "
        "pool's own history. The quota is 25,000 events per execution.",
        "",
        *history_section(results),
        "",
        "With an inline Map every iteration's events land in the one execution history. With the distributed "
        "Map each shard is a child execution with its own history (its events are in the last column); the "
        "parent records only the Map Run. Only the distributed Map stays far below 25,000 events at every "
        "concurrency, which is why large pools need it.",
        "",
        *(restore_history_section(results) if results["restore"] else []),
        "",
        "## Cost",
        "",
        *cost_section(results),
        "",
        "Lambda GB-seconds are the measured (virtual) durations of each invocation times its memory "
        "(1,024 MB for ExportUsers and ExportGroupMemberships), plus a modelled "
        f"{cost.VERIFY_S_PER_OBJECT} s per object for WriteManifest and VerifyBackup; Lambda bills waiting, so "
        "the duration is dominated by the rate limit.",
        "",
        "## Reading the results",
        "",
        *analysis(results),
        "",
    ]
    return "\n".join(lines)


def analysis(results: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if results["backup"]:
        entry = max(results["backup"], key=lambda e: e["users"])
        runs = entry["runs"]
        calls = Counter(runs["a"]["calls"])
        bound = entry["lower_bound_calls"] / throttle.QUOTA_RPS["UserList"]
        page_s = DEFAULT_LATENCY["ListUsersInGroup"] * results["latency_scale"]
        chain_s = math.ceil(entry["largest_group"] / 60) * page_s
        asl_s = runs["a-asl"]["virtual_s"]
        out.append(
            f"- At {entry['users']:,} users the quota bound is {_fmt_s(bound)}. (a) pages "
            f"{calls['ListUsers']:,} ListUsers pages (the shards' Map) and {calls['ListUsersInGroup']:,} "
            "ListUsersInGroup pages (the group slices' Map) side by side, from one UserList budget. With both "
            f"Maps' MaxConcurrency as in the ASL ({results['asl']['backup']} shards and "
            f"{results['asl']['backup_slices']} slices at once) it takes {_fmt_s(asl_s)}: the quota stays busy "
            f"until the end. With every shard and slice at once it takes {_fmt_s(runs['a']['virtual_s'])}: the "
            "budget serves callers in arrival order, so each of the many loops gets an equal share, and the "
            "largest group's chain falls behind and finishes alone at one page per call latency. The memberships "
            f"of one group are one token chain: the largest group ({entry['largest_group']:,} members) needs at "
            f"least {_fmt_s(chain_s)} on its own, a floor for any approach when it exceeds the quota bound."
        )
        out.append(
            "- (b) pays one AdminListGroupsForUser per user and is sequential, so it is latency-bound; (c) is "
            "capped at 10 calls/s by design."
        )
    if results["restore"]:
        entry = max(results["restore"], key=lambda e: e["users"])
        calls = Counter(entry["runs"]["a"]["calls"])
        per_category: Counter[str] = Counter()
        for op, n in calls.items():
            per_category[throttle.category_of(op)] += n
        slowest = max(per_category, key=lambda c: per_category[c] / throttle.QUOTA_RPS[c])
        out.append(
            f"- Restore (a) adds each user's groups right after the user, so user creation and group adds "
            f"draw on their quotas at the same time; at {entry['users']:,} users the slowest category is "
            f"{slowest} ({per_category[slowest]:,} calls at {throttle.QUOTA_RPS[slowest]:.0f} RPS). The ASL's "
            f"restore Map runs {results['asl']['restore']} shards at once: each worker waits on one call at a "
            "time, so it takes several of them to keep every category busy."
        )
    return out


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for key in NAMES:
        xs = [e["users"] for e in results["backup"]]
        ys = [e["runs"][key]["virtual_s"] / 60 for e in results["backup"]]
        left.plot(xs, ys, marker="o", label=NAMES[key])
    xs = [e["users"] for e in results["backup"]]
    left.plot(xs, [e["lower_bound_calls"] / 30 / 60 for e in results["backup"]], "k--", label="quota bound")
    left.set(xscale="log", yscale="log", xlabel="users", ylabel="minutes (real-world)", title="Backup")
    left.legend(fontsize=7)
    for key in RESTORE_NAMES:
        xs = [e["users"] for e in results["restore"]]
        right.plot(
            xs,
            [e["runs"][key]["virtual_s"] / 60 for e in results["restore"]],
            marker="o",
            label=RESTORE_NAMES[key],
        )
    xs = [e["users"] for e in results["restore"]]
    right.plot(
        xs,
        [quota_bound_s(Counter(e["runs"]["a"]["calls"])) / 60 for e in results["restore"]],
        "k--",
        label="quota bound (strict)",
    )
    right.set(xscale="log", yscale="log", xlabel="users", ylabel="minutes (real-world)", title="Restore")
    right.legend(fontsize=7)
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
        "--b-max-users",
        type=int,
        default=2_000_000,
        help="above this, (b) runs this many users and is extrapolated",
    )
    parser.add_argument("--latency-scale", type=float, default=1.0, help="multiplies every modelled latency")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results = measure(args)
    wall = time.perf_counter() - start
    Path(args.json).write_text(json.dumps({"args": vars(args), **results}, indent=1, sort_keys=True))
    plot(results, Path(args.plot))
    out = Path(args.out)
    plot_ref = os.path.relpath(Path(args.plot).resolve(), out.resolve().parent)
    out.write_text(report(results, args, wall, plot_ref))
    log(f"wrote {out}, {args.plot}, {args.json} in {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
