"""The drill state machine on the embedded local engine: pass and fail paths, the sample, the scratch pool."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from pipeline.cognito import throttle
from pipeline.core.aws import Clients, make_clients
from pipeline.core.contracts import Storage
from pipeline.core.layout import parse_backup_uri
from pipeline.drill import steps as drill
from pipeline.operator import demo, seed
from pipeline.operator.cli import main
from pipeline.operator.local_engine import LocalEngine
from pipeline.operator.runs import Outcome, run_backup, run_drill
from pipeline.restore import diff, user_restore
from pipeline.restore import steps as restore
from pipeline.sealing import audit
from pipeline.sealing.backup_reader import BackupReader

pytestmark = pytest.mark.e2e
USERS = 40


@pytest.fixture(autouse=True)
def full_quota(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(throttle.FRACTION_ENV, "1.0")
    throttle.default_budget.cache_clear()
    yield
    throttle.default_budget.cache_clear()


class World:
    def __init__(self, engine: LocalEngine) -> None:
        self.engine = engine
        self.clients: Clients = make_clients()
        self.storage: Storage = demo.prepare_account(self.clients).storage
        self.pool = seed.seed_pool(boto3.client("cognito-idp"), users=USERS, seed=7)
        backup = run_backup(
            engine, storage=self.storage, pool_ids=[self.pool.pool_id], all_pools=False, timeout_s=600
        )
        assert backup.succeeded, backup.message
        self.uri = str(backup.backups[0]["uri"])

    def drill(self, **payload: Any) -> Outcome:
        return run_drill(
            self.engine, storage=self.storage, payload={"poolId": self.pool.pool_id, **payload}, timeout_s=600
        )

    def pool_ids(self) -> list[str]:
        return sorted(p["Id"] for p in self.clients.cognito.list_user_pools(MaxResults=60)["UserPools"])

    def drill_records(self) -> list[dict[str, Any]]:
        sink = restore.audit_sink(self.clients, self.storage)
        return [r for r in audit.read_records(sink) if r["event"].startswith("drill.")]


@pytest.fixture
def world() -> Iterator[World]:
    with LocalEngine(embedded=True) as engine:
        yield World(engine)


@pytest.fixture
def seen_tags(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | None]]:
    """The drill tag of every pool DrillCleanup looked at, read from the pool before it deleted it."""
    seen: list[tuple[str, str | None]] = []
    original = drill._drill_tag

    def spy(clients: Clients, pool_id: str) -> str | None:
        tag = original(clients, pool_id)
        seen.append((pool_id, tag))
        return tag

    monkeypatch.setattr(drill, "_drill_tag", spy)
    return seen


@pytest.fixture
def restored_users(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The pools RestoreUsers wrote a user to, one entry per user."""
    calls: list[str] = []
    original = user_restore.restore_user

    def spy(cognito: Any, pool_id: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(pool_id)
        return original(cognito, pool_id, *args, **kwargs)

    monkeypatch.setattr(user_restore, "restore_user", spy)
    return calls


def test_a_drill_restores_and_verifies_a_sample_in_a_tagged_scratch_pool_then_deletes_it(
    world: World, seen_tags: list[tuple[str, str | None]], restored_users: list[str]
) -> None:
    before = world.pool_ids()
    outcome = world.drill(sample=12)
    assert outcome.succeeded, outcome.message
    assert outcome.output["passed"] == 1 and outcome.output["failed"] == 0
    (result,) = outcome.output["drills"]
    scratch = result["scratchPoolId"]
    assert result["passed"] is True and result["backupUri"] == world.uri  # the pool's latest backup
    assert result["sampleSize"] == 12 and result["usersCompared"] == 12 and result["differences"] == {}
    # Every user went to the scratch pool, none to the production pool; the pool carried this drill's tag.
    assert restored_users == [scratch] * 12
    assert seen_tags == [(scratch, result["drillId"])]
    assert scratch not in before and world.pool_ids() == before  # deleted
    (record,) = world.drill_records()
    assert record["event"] == "drill.passed" and record["subjectId"] == result["drillId"]
    details = record["details"]
    assert details["poolId"] == world.pool.pool_id and details["scratchPoolId"] == scratch
    assert details["sampleSize"] == 12 and details["usersCompared"] == 12 and details["passed"] is True
    # No username in the execution's output or the audit record.
    reader = BackupReader.open(world.clients, parse_backup_uri(world.uri))
    text = json.dumps([outcome.output, record])
    assert not [u["username"] for u in reader.users() if u["username"] in text]


def test_the_sample_size_is_honoured_and_capped_by_the_backup(
    world: World, restored_users: list[str]
) -> None:
    small = world.drill(sample=3)
    assert small.succeeded, small.message
    assert small.output["drills"][0]["sampleSize"] == 3 and len(restored_users) == 3
    restored_users.clear()
    whole = world.drill(sample=1000)
    assert whole.succeeded, whole.message
    assert whole.output["drills"][0]["usersCompared"] == USERS and len(restored_users) == USERS


def test_a_verification_mismatch_fails_the_drill_audits_it_and_still_deletes_the_pool(
    world: World, monkeypatch: pytest.MonkeyPatch, seen_tags: list[tuple[str, str | None]]
) -> None:
    original = diff.compare

    def disagreeing(*args: Any, **kwargs: Any) -> diff.DiffReport:
        report = original(*args, **kwargs)
        report.enabled_differences.append("someone")  # a difference no re-reading explains
        return report

    monkeypatch.setattr(diff, "compare", disagreeing)
    before = world.pool_ids()
    outcome = world.drill(sample=5)
    assert outcome.status == "FAILED" and outcome.error == "RestoreDrillFailed"
    (record,) = world.drill_records()
    assert record["event"] == "drill.failed"
    assert record["details"]["passed"] is False and record["details"]["differences"] == {
        "enabled_differences": 1
    }
    scratch = record["details"]["scratchPoolId"]
    assert seen_tags == [(scratch, record["subjectId"])] and world.pool_ids() == before


def test_a_restore_error_mid_drill_is_caught_recorded_and_the_pool_deleted(
    world: World, monkeypatch: pytest.MonkeyPatch, seen_tags: list[tuple[str, str | None]]
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected failure while restoring a user")

    monkeypatch.setattr(user_restore, "restore_user", broken)
    before = world.pool_ids()
    outcome = world.drill(sample=5)
    assert outcome.status == "FAILED" and outcome.error == "RestoreDrillFailed"
    (record,) = world.drill_records()
    assert record["event"] == "drill.failed" and "RuntimeError" in record["details"]["error"]
    assert len(seen_tags) == 1 and seen_tags[0][1] == record["subjectId"]
    assert world.pool_ids() == before


def test_a_tampered_backup_part_fails_the_drill_before_any_pool_is_created(world: World) -> None:
    loc = parse_backup_uri(world.uri)
    reader = BackupReader.open(world.clients, loc)
    part = reader.objects("users", reader.doc["shards"][0])[0]
    key = loc.root + part["name"]
    body = bytearray(world.clients.s3.get_object(Bucket=loc.bucket, Key=key)["Body"].read())
    body[-1] ^= 0x01
    world.clients.s3.put_object(
        Bucket=loc.bucket,
        Key=key,
        Body=bytes(body),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=world.storage["kmsKeyArn"],
    )
    before = world.pool_ids()
    outcome = world.drill(sample=5)
    assert outcome.status == "FAILED" and outcome.error == "RestoreDrillFailed"
    (record,) = world.drill_records()
    assert record["event"] == "drill.failed" and record["details"]["scratchPoolId"] is None
    assert record["details"]["error"].split(":")[0] in ("TamperedError", "IntegrityError")
    assert world.pool_ids() == before


def test_the_drill_command_runs_on_the_local_engine(
    moto_server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import urllib.request

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    urllib.request.urlopen(urllib.request.Request(moto_server + "/moto-api/reset", method="POST"), timeout=10)
    clients = make_clients()
    storage = demo.prepare_account(clients).storage
    pool = seed.seed_pool(boto3.client("cognito-idp"), users=20, seed=2)
    location = ["--bucket", storage["bucket"], "--prefix", storage["prefix"]]
    assert (
        main(["backup", "--pool-id", pool.pool_id, *location, "--kms-key", storage["kmsKeyArn"], "-q"]) == 0
    )
    capsys.readouterr()
    code = main(
        ["drill", "--pool-id", pool.pool_id, "--sample", "4", *location, "--engine", "local", "--json"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert out["passed"] is True and out["drills"][0]["sampleSize"] == 4
    assert [p["Name"] for p in clients.cognito.list_user_pools(MaxResults=60)["UserPools"]] == ["demo-pool"]
    # A tampered part: the drill fails (exit 1), and the result comes from its drill.failed audit record.
    loc = parse_backup_uri(out["drills"][0]["backupUri"])
    reader = BackupReader.open(clients, loc)
    key = loc.root + reader.objects("users")[0]["name"]
    body = bytearray(clients.s3.get_object(Bucket=loc.bucket, Key=key)["Body"].read())
    body[-1] ^= 0x01
    clients.s3.put_object(
        Bucket=loc.bucket,
        Key=key,
        Body=bytes(body),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=storage["kmsKeyArn"],
    )
    code = main(["drill", "--pool-id", pool.pool_id, *location, "--engine", "local", "--json", "-q"])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    failed = json.loads(captured.out)
    assert failed["error"] == "RestoreDrillFailed" and failed["passed"] is False
    assert [d["passed"] for d in failed["drills"]] == [False] and failed["drills"][0]["auditKey"]
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: restore drill failed")
    # A bad sample is a one-line input error, exit 2.
    assert main(["drill", "--pool-id", pool.pool_id, "--sample", "0", *location, "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"] == "InvalidRequest"
