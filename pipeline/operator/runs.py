"""Starting a state machine and following it to the end, for the CLI and the demo."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self

from pipeline.core import errors
from pipeline.core.contracts import Storage

EventSink = Callable[[dict[str, Any]], None]


class ExecutionView(Protocol):
    @property
    def status(self) -> str: ...

    @property
    def output(self) -> Any: ...

    @property
    def error(self) -> str | None: ...

    @property
    def cause(self) -> str | None: ...


class Engine(Protocol):
    """What the CLI needs from an engine: the local one, or Step Functions itself; used as a context manager."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def serve_api(self) -> str | None:
        """Where another process sends an approval decision (None: Step Functions itself)."""

    def deploy(self, name: str, substitutions: Mapping[str, str]) -> str: ...

    def start(self, state_machine_arn: str, payload: Mapping[str, Any], name: str | None = None) -> str: ...

    def follow(
        self,
        execution_arn: str,
        *,
        on_event: EventSink | None = None,
        on_poll: Callable[[], None] | None = None,
        timeout_s: float,
        poll_s: float = 0.2,
    ) -> ExecutionView: ...


@dataclass
class Outcome:
    status: str
    execution_arn: str
    duration_s: float
    output: Any = None
    error: str | None = None
    message: str | None = None
    backups: list[dict[str, Any]] = field(default_factory=list)
    # Pools of a backup run without a verified backup (error and message each), when the run failed for them.
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"


def failure_message(error: str | None, cause: str | None) -> str:
    return errors.failure_line(error, cause)


# Errors that mean "you asked for something wrong", "this environment is not set up" or "this backup is not what
# was written" get their own exit codes (README, Commands).
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_INTEGRITY = 1, 2, 3, 4
EXIT_INTERRUPTED = 130
_ENVIRONMENT = (
    errors.CredentialsMissing,
    errors.RegionMissing,
    errors.AccessDenied,
    errors.KeyAccessDenied,
    errors.EndpointUnreachable,
)


def exit_code_for(error_name: str | None) -> int:
    cls = getattr(errors, error_name or "", None)
    if isinstance(cls, type) and issubclass(cls, errors.InvalidRequest):
        return EXIT_BAD_INPUT
    if isinstance(cls, type) and issubclass(cls, _ENVIRONMENT):
        return EXIT_ENVIRONMENT
    if isinstance(cls, type) and issubclass(cls, errors.IntegrityError):
        return EXIT_INTEGRITY
    return EXIT_FAILED


def _storage_substitutions(storage: Storage) -> dict[str, str]:
    return {
        "BackupBucket": storage["bucket"],
        "KmsKeyArn": storage["kmsKeyArn"],
        "BackupPrefix": storage["prefix"],
    }


def _run(
    engine: Engine,
    arn: str,
    payload: Mapping[str, Any],
    on_event: EventSink | None,
    timeout_s: float,
    on_poll: Callable[[], None] | None = None,
    execution_name: str | None = None,
) -> Outcome:
    started = time.monotonic()
    execution = engine.start(arn, payload, name=execution_name)
    result = engine.follow(execution, on_event=on_event, on_poll=on_poll, timeout_s=timeout_s)
    outcome = Outcome(
        status=result.status,
        execution_arn=execution,
        duration_s=time.monotonic() - started,
        output=result.output,
        error=result.error,
    )
    if not outcome.succeeded:
        outcome.message = failure_message(result.error, result.cause)
        outcome.output = _cause_document(result.cause)
    return outcome


def _cause_document(cause: str | None) -> dict[str, Any] | None:
    try:
        parsed = json.loads(cause or "")
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def run_restore(
    engine: Engine,
    *,
    storage: Storage,
    payload: Mapping[str, Any],
    on_event: EventSink | None = None,
    on_poll: Callable[[], None] | None = None,
    timeout_s: float,
    execution_name: str | None = None,
) -> Outcome:
    """The restore state machine, whose PreRestoreSnapshot starts the backup state machine deployed beside it.

    ``execution_name`` is the name the requester's identity proof was made for (``restore:<name>``).
    """
    substitutions = _storage_substitutions(storage)
    backup_arn = engine.deploy("backup", substitutions)
    arn = engine.deploy("restore", {**substitutions, "BackupStateMachineArn": backup_arn})
    return _run(engine, arn, payload, on_event, timeout_s, on_poll, execution_name)


def run_backup(
    engine: Engine,
    *,
    storage: Storage,
    pool_ids: list[str],
    all_pools: bool,
    on_event: EventSink | None = None,
    on_poll: Callable[[], None] | None = None,
    timeout_s: float = 3600.0,
) -> Outcome:
    arn = engine.deploy("backup", _storage_substitutions(storage))
    payload = {"poolIds": pool_ids, "allPools": all_pools}
    outcome = _run(engine, arn, payload, on_event, timeout_s, on_poll)
    if outcome.error == errors.PoolBackupsFailed.__name__ and isinstance(outcome.output, dict):
        # Some pools failed after every pool was tried: the run's summary lists each pool's outcome.
        from pipeline.backup import run_objects
        from pipeline.core.aws import default_clients

        key = str(outcome.output.get("summaryKey") or "")
        every = run_objects.read_summary(default_clients(), storage["bucket"], key) if key else []
        outcome.backups = [dict(b) for b in every if b.get("verified") is True]
        outcome.failures = [dict(b) for b in every if b.get("verified") is not True]
        kinds = {str(f.get("error")) for f in outcome.failures}
        if not outcome.backups and len(kinds) == 1:
            # Nothing was backed up, all for one reason: that reason decides the exit code (e.g. integrity: 4).
            outcome.error = kinds.pop()
    if outcome.succeeded:
        out = outcome.output if isinstance(outcome.output, dict) else {}
        backups = out.get("backups") or []
        if out.get("truncated"):
            # Past the output's inline bound, every backup is in the run's summary object.
            from pipeline.backup import run_objects
            from pipeline.core.aws import default_clients

            backups = run_objects.read_summary(default_clients(), storage["bucket"], str(out["summaryKey"]))
        outcome.backups = [dict(b) for b in backups if b is not None]
        expected = out.get("pools") if all_pools else len(pool_ids)
        if (expected is not None and len(outcome.backups) != expected) or not all(
            b.get("verified") for b in outcome.backups
        ):
            # A Map child that failed silently must not pass for a verified backup.
            outcome.status, outcome.error = "FAILED", "IncompleteBackup"
            outcome.message = "not every pool reported a verified backup"
    return outcome


def run_purge_incomplete(
    engine: Engine,
    *,
    storage: Storage,
    request: Mapping[str, Any],
    timeout_s: float = 900.0,
) -> Outcome:
    """The backup state machine in its purge mode: its PurgeIncompleteBackup task re-checks and deletes."""
    arn = engine.deploy("backup", _storage_substitutions(storage))
    return _run(engine, arn, {"purgeIncomplete": dict(request)}, None, timeout_s)


def run_drill(
    engine: Engine,
    *,
    storage: Storage,
    payload: Mapping[str, Any],
    on_event: EventSink | None = None,
    on_poll: Callable[[], None] | None = None,
    timeout_s: float = 3600.0,
) -> Outcome:
    """The drill state machine; ``payload`` may name a pool (``poolId``), a backup (``backupUri``), a ``sample``."""
    arn = engine.deploy("drill", _storage_substitutions(storage))
    return _run(engine, arn, payload, on_event, timeout_s, on_poll)
