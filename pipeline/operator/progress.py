"""Progress of a backup read from its execution history: the same events the Step Functions console shows.

The tracker only reads ids and counts from state outputs; it works for the local engine and for AWS alike.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

_ENTERED = "StateEntered"
_EXITED = "StateExited"
# The synthetic event both engines pass to trackers after each poll, one per distributed Map Run: its label and
# DescribeMapRun's item counts (ids and counts only). Not a Step Functions history event type.
MAP_RUN_PROGRESS = "MapRunProgress"
# States inside a distributed Map's children run the same task as their inline twins: progress counts them alike.
_SAME_TASK = {"ExportShardUsers": "ExportUsers", "RestoreShardUsers": "RestoreUsers"}
_COUNTS = ("total", "succeeded", "failed", "running", "pending")


def map_run_label(map_run_arn: str) -> str:
    """``arn:...:mapRun:<machine>/<label or id>:<run id>`` -> the Map's label (e.g. ExportShards)."""
    resource = map_run_arn.split(":mapRun:", 1)[-1].rsplit(":", 1)[0]
    return resource.rsplit("/", 1)[-1]


def map_run_event(map_run_arn: str, counts: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": MAP_RUN_PROGRESS,
        "mapRunProgressDetails": {
            "mapRunArn": map_run_arn,
            "label": map_run_label(map_run_arn),
            **{k: int(counts.get(k) or 0) for k in _COUNTS},
        },
    }


@dataclass
class MapRuns:
    """The latest item counts of each distributed Map Run, summed per label (one ExportShards run per pool)."""

    runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def update(self, event: Mapping[str, Any]) -> bool:
        if event.get("type") != MAP_RUN_PROGRESS:
            return False
        details = event.get("mapRunProgressDetails") or {}
        self.runs[str(details.get("mapRunArn"))] = dict(details)
        return True

    def by_label(self) -> dict[str, dict[str, int]]:
        summed: dict[str, dict[str, int]] = {}
        for run in self.runs.values():
            counts = summed.setdefault(str(run.get("label")), dict.fromkeys(_COUNTS, 0))
            for k in _COUNTS:
                counts[k] += int(run.get(k) or 0)
        return summed

    def text(self) -> str:
        parts = [
            f"{label} {c['succeeded'] + c['failed']}/{c['total']}"
            + (f" ({c['failed']} failed)" if c["failed"] else "")
            for label, c in sorted(self.by_label().items())
        ]
        return f" | map runs: {', '.join(parts)}" if parts else ""


def _output(event: dict[str, Any]) -> Any:
    details = event.get("stateExitedEventDetails") or {}
    raw = details.get("output")
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _track(active: Counter[str], event: dict[str, Any]) -> str | None:
    """Counts the states running now; returns the name of a state that just exited, else None."""
    kind = str(event.get("type", ""))
    if kind.endswith(_ENTERED):
        entered = str((event.get("stateEnteredEventDetails") or {}).get("name", ""))
        active[_SAME_TASK.get(entered, entered)] += 1
        return None
    if not kind.endswith(_EXITED):
        return None
    name = str((event.get("stateExitedEventDetails") or {}).get("name", ""))
    if active[name] > 0:
        active[name] -= 1
    return _SAME_TASK.get(name, name)


@dataclass
class BackupProgress:
    """Counts that grow as the history grows; ``update`` is fed every new event once."""

    active: Counter[str] = field(default_factory=Counter)
    shards_total: dict[str, int] = field(default_factory=dict)
    users: dict[tuple[str, str], int] = field(default_factory=dict)
    shards_done: set[tuple[str, str]] = field(default_factory=set)
    memberships: dict[tuple[str, int], int] = field(default_factory=dict)
    pools_verified: set[str] = field(default_factory=set)
    estimated_users: dict[str, int] = field(default_factory=dict)
    map_runs: MapRuns = field(default_factory=MapRuns)
    events: int = 0

    def update(self, event: dict[str, Any]) -> None:
        self.events += 1
        if self.map_runs.update(event):
            return
        name = _track(self.active, event)
        if name is None:
            return
        out = _output(event)
        job = out.get("job") if isinstance(out, dict) else None
        if not isinstance(out, dict) or not isinstance(job, dict):
            return
        pool = str(job.get("poolId", ""))
        if name == "CapturePoolConfig" and isinstance(out.get("config"), dict):
            self.estimated_users[pool] = int(out["config"].get("estimatedUsers") or 0)
        elif name == "PlanShards":
            self.shards_total[pool] = len(out.get("plan", {}).get("shards", []))
        elif name == "ExportUsers":
            shard, cursor = str(out.get("shard", "")), out.get("cursor") or {}
            self.users[(pool, shard)] = int(cursor.get("users", 0))
            if cursor.get("done"):
                self.shards_done.add((pool, shard))
        elif name == "ExportGroupMemberships":
            group_slice, cursor = out.get("slice") or {}, out.get("cursor") or {}
            self.memberships[(pool, int(group_slice.get("slice", 0)))] = int(cursor.get("memberships", 0))
        elif name == "VerifyBackup":
            self.pools_verified.add(pool)

    @property
    def users_exported(self) -> int:
        return sum(self.users.values())

    def line(self, elapsed_s: float) -> str:
        running = (
            ", ".join(f"{n} x{c}" if c > 1 else n for n, c in sorted(self.active.items()) if c > 0) or "-"
        )
        total = sum(self.shards_total.values())
        rate = self.users_exported / elapsed_s if elapsed_s > 0 else 0.0
        return (
            f"[{elapsed_s:6.1f}s] running: {running} | shards {len(self.shards_done)}/{total or '?'}"
            f" | users {self.users_exported:,} ({rate:,.0f}/s{self._eta(rate, elapsed_s)}) | memberships "
            f"{sum(self.memberships.values()):,} | pools verified {len(self.pools_verified)}"
            f"{self.map_runs.text()}"
        )

    def _eta(self, rate: float, elapsed_s: float) -> str:
        """Time left for the users, from Cognito's estimate of the pools' sizes (an estimate, so said as one);
        without one, from the share of shards done."""
        total, done = sum(self.shards_total.values()), len(self.shards_done)
        if done == total:
            return ""
        left = sum(self.estimated_users.values()) - self.users_exported
        if rate > 0 and left > 0:
            return f", about {left / rate:,.0f}s left"
        if done and total > done and elapsed_s > 0:
            return f", about {elapsed_s / done * (total - done):,.0f}s left"
        return ""


class Tracker(Protocol):
    def update(self, event: dict[str, Any]) -> None: ...

    def line(self, elapsed_s: float) -> str: ...


# Long work shows a sign of life at least this often, even when no state changed (``tick``, on every poll).
HEARTBEAT_S = 10.0


class ProgressPrinter:
    """Renders a tracker on stderr: one rewritten line on a terminal, a line every few seconds otherwise."""

    def __init__(
        self,
        tracker: Tracker,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        quiet: bool = False,
    ) -> None:
        self.tracker = tracker
        self.stream = stream or sys.stderr
        self.clock = clock
        self.quiet = quiet
        self.start = clock()
        self._last = 0.0
        self._tty = self.stream.isatty()

    def __call__(self, event: dict[str, Any]) -> None:
        self.tracker.update(event)
        now = self.clock()
        if self.quiet or now - self._last < (0.25 if self._tty else 3.0):
            return
        self._emit(now)

    def tick(self) -> None:
        """Called on every poll: a heartbeat line when nothing was printed for HEARTBEAT_S."""
        now = self.clock()
        if not self.quiet and now - self._last >= HEARTBEAT_S:
            self._emit(now)

    def _emit(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        self._last = now
        text = self.tracker.line(now - self.start)
        if self._tty:
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.quiet:
            return
        self._emit()
        if self._tty:
            self.stream.write("\n")
        self.stream.flush()


@dataclass
class RestoreProgress:
    """What a restore is doing: which states run, whether it waits for approval, users and memberships so far."""

    active: Counter[str] = field(default_factory=Counter)
    request_id: str | None = None
    target_pool: str | None = None
    snapshot_uri: str | None = None
    shards_total: int = 0
    shards_done: set[str] = field(default_factory=set)
    users: dict[str, dict[str, int]] = field(default_factory=dict)
    on_request: Callable[[str], None] | None = None
    map_runs: MapRuns = field(default_factory=MapRuns)
    events: int = 0

    def update(self, event: dict[str, Any]) -> None:
        self.events += 1
        if self.map_runs.update(event):
            return
        name = _track(self.active, event)
        entered = (event.get("stateEnteredEventDetails") or {}).get("name")
        if entered == "RequestApproval" and self.request_id and self.on_request is not None:
            # The wait starts now (after any snapshot of the target): the request can be decided from here on.
            self.on_request(self.request_id)
        if name is None:
            return
        out = _output(event)
        if not isinstance(out, dict):
            return
        if name == "ValidateRequest" and isinstance(out.get("request"), dict):
            self.request_id = str(out["request"].get("requestId"))
            self.shards_total = len(out["request"].get("shards") or [])
        elif name == "PreRestoreSnapshot":
            backups = (out.get("snapshot") or {}).get("backups") or []
            self.snapshot_uri = str(backups[0]["uri"]) if backups else None
        elif name == "RestorePoolConfig":
            self.target_pool = str((out.get("target") or {}).get("poolId"))
        elif name == "RestoreUsers":
            cursor = out.get("cursor") or {}
            shard = str(out.get("shard", ""))
            self.users[shard] = {
                k: int(cursor.get(k, 0))
                for k in ("created", "existing", "skipped", "failed", "membershipsAdded")
            }
            if cursor.get("done"):
                self.shards_done.add(shard)

    def total(self, key: str) -> int:
        return sum(counts.get(key, 0) for counts in self.users.values())

    def line(self, elapsed_s: float) -> str:
        running = (
            ", ".join(f"{n} x{c}" if c > 1 else n for n, c in sorted(self.active.items()) if c > 0) or "-"
        )
        waiting = " | WAITING FOR APPROVAL" if self.active["RequestApproval"] > 0 else ""
        return (
            f"[{elapsed_s:6.1f}s] running: {running}{waiting} | shards {len(self.shards_done)}/"
            f"{self.shards_total or '?'} | users created {self.total('created'):,}, existing "
            f"{self.total('existing'):,}, failed {self.total('failed'):,}"
            f" | memberships added {self.total('membershipsAdded'):,}{self._rate(elapsed_s)}"
            f"{self.map_runs.text()}"
        )

    def _rate(self, elapsed_s: float) -> str:
        users = self.total("created") + self.total("existing")
        done, total = len(self.shards_done), self.shards_total
        if elapsed_s <= 0 or not users:
            return ""
        eta = f", about {elapsed_s / done * (total - done):,.0f}s left" if done and total > done else ""
        return f" ({users / elapsed_s:,.0f} users/s{eta})"
