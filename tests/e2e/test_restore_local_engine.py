"""The restore state machine on the embedded local engine: approval, snapshot first, fidelity, idempotence."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from pipeline.cognito import shards, throttle
from pipeline.core.aws import Clients, make_clients
from pipeline.core.errors import SelfApprovalRefused
from pipeline.core.layout import parse_backup_uri
from pipeline.operator import demo, seed
from pipeline.operator.local_engine import LocalEngine
from pipeline.operator.runs import run_backup
from pipeline.restore import diff, passwords, user_restore
from pipeline.restore import steps as restore
from pipeline.sealing import audit
from pipeline.sealing.backup_reader import BackupReader
from tests.helpers.restore_flow import (
    BackgroundRestore,
    decide,
    pool_contents,
    principal,
    restore_payload,
    state_order,
    wait_for_request,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def full_quota(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto has no quotas; run the limiter at the full default rates so the suite stays quick."""
    monkeypatch.setenv(throttle.FRACTION_ENV, "1.0")
    throttle.default_budget.cache_clear()
    yield
    throttle.default_budget.cache_clear()


@pytest.fixture
def sixteen_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    """16 shards from a few hundred users (PlanShards runs in this process): the restore's sharded paths at a
    size whose restore the rate budget lets through in seconds, not minutes (AdminAddUserToGroup is 25/s)."""
    monkeypatch.setattr(shards, "SINGLE_SHARD_BELOW", 300)


@pytest.fixture
def temp_passwords(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every random password the restore generates, so the test can look for them where they must not be."""
    seen: list[str] = []

    def spy(policy: Any) -> str:
        value = passwords.random_password(policy)
        seen.append(value)
        return value

    monkeypatch.setattr(user_restore, "random_password", spy)
    return seen


def _backup(
    engine: LocalEngine, clients: Clients, users: int, **seed_args: Any
) -> tuple[Any, seed.SeededPool, str]:
    account = demo.prepare_account(clients)
    pool = seed.seed_pool(boto3.client("cognito-idp"), users=users, **seed_args)
    outcome = run_backup(
        engine, storage=account.storage, pool_ids=[pool.pool_id], all_pools=False, timeout_s=900
    )
    assert outcome.succeeded, outcome.message
    return account, pool, outcome.backups[0]["uri"]


def _all_objects(clients: Clients, bucket: str) -> list[bytes]:
    pages = clients.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
    return [clients.s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys]


@pytest.mark.usefixtures("sixteen_shards")
def test_restore_into_a_new_pool_is_faithful_and_leaks_nothing(
    temp_passwords: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Everyone's records from INFO up, and ours at every level: the root logger at DEBUG would capture (and slow
    # the run down with) every botocore wire dump, which Lambda never emits either.
    caplog.set_level(logging.INFO)
    for project_logger in ("pipeline", "tasks"):
        caplog.set_level(logging.DEBUG, logger=project_logger)
    with LocalEngine(embedded=True) as engine:
        clients = make_clients()
        account, pool, uri = _backup(engine, clients, 400, seed=21, username_attribute_email=True)
        approver = principal(clients, "approver")
        run = BackgroundRestore(
            engine, account.storage, restore_payload(clients, uri, new_pool="restored-pool")
        ).start()
        request = wait_for_request(clients, account.storage)
        assert request.target == {"mode": "new", "poolId": None, "poolName": "restored-pool"}
        decide(engine, approver, account.storage, request.request_id, approve=True)
        outcome = run.wait()
        assert outcome.succeeded, outcome.message
        out = outcome.output
        assert out["verification"]["passed"] is True
        assert out["report"]["created"] == pool.users
        assert out["report"]["failed"] == 0

        # An independent comparison, as `cognito-backuper diff` makes it: zero differences apart from sub.
        reader = BackupReader.open(clients, parse_backup_uri(uri))
        report = diff.diff_pool(clients.cognito, reader, out["targetPoolId"], extra_allowed=False)
        assert report.identical, report.counts()
        assert report.users_compared == pool.users
        statuses = Counter(u["status"] for u in reader.users())
        assert statuses["UNCONFIRMED"] > 0
        assert sum(1 for u in reader.users() if not u["enabled"]) > 0
        assert any(k.startswith("custom:") for u in reader.users() for k in u["attributes"])

        # No e-mail, phone number or temporary password in the history or in any S3 object as plaintext.
        assert len(temp_passwords) >= pool.users
        secrets = [s.encode() for s in pool.emails + pool.phones + temp_passwords]
        history = json.dumps(engine.history(outcome.execution_arn)).encode()
        assert not [s for s in secrets if s in history]
        # Our own loggers at every level, and anything at INFO or above (the SDK's DEBUG dumps are off in Lambda).
        ours = [
            r for r in caplog.records if r.name.startswith(("pipeline", "tasks")) or r.levelno >= logging.INFO
        ]
        logs = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in ours).encode()
        assert ours
        assert not [s for s in secrets if s in logs]
        for body in _all_objects(clients, account.storage["bucket"]):
            assert not any(s in body for s in secrets)

        # The audit trail holds the request, the approval and the outcome.
        sink = restore.audit_sink(clients, account.storage)
        events = [r["event"] for r in audit.read_records(sink, subject_id=request.request_id)]
        assert events[:2] == ["restore.requested", "restore.approved"]
        assert events[-1] == "restore.completed"


def test_rejection_leaves_the_target_untouched_after_its_snapshot() -> None:
    with LocalEngine(embedded=True) as engine:
        clients = make_clients()
        account, pool, uri = _backup(engine, clients, 120, seed=4)
        for username in list(pool_contents(clients, pool.pool_id)["users"])[:3]:
            clients.cognito.admin_delete_user(UserPoolId=pool.pool_id, Username=username)
        before = pool_contents(clients, pool.pool_id)
        approver = principal(clients, "approver")

        run = BackgroundRestore(
            engine, account.storage, restore_payload(clients, uri, target_pool=pool.pool_id)
        )
        run.start()
        request = wait_for_request(clients, account.storage)
        assert request.snapshot_uri is not None
        with pytest.raises(SelfApprovalRefused):
            decide(engine, clients, account.storage, request.request_id, approve=True)
        decide(engine, approver, account.storage, request.request_id, approve=False)
        outcome = run.wait()

        assert outcome.status == "FAILED"
        assert outcome.error == "ApprovalRejected"
        assert pool_contents(clients, pool.pool_id) == before
        order = state_order(engine.history(outcome.execution_arn))
        assert -1 < order("PreRestoreSnapshot", "exited") < order("RequestApproval", "entered")
        assert order("RestorePoolConfig", "entered") == -1
        # The snapshot is a complete, verified backup of the target as it was before the request.
        snapshot = BackupReader.open(clients, parse_backup_uri(request.snapshot_uri))
        assert sum(1 for _ in snapshot.users()) == len(before["users"])


def test_expiry_leaves_the_target_untouched() -> None:
    with LocalEngine(embedded=True) as engine:
        clients = make_clients()
        account, pool, uri = _backup(engine, clients, 60, seed=5)
        clients.cognito.admin_delete_user(
            UserPoolId=pool.pool_id, Username=next(iter(pool_contents(clients, pool.pool_id)["users"]))
        )
        before = pool_contents(clients, pool.pool_id)
        payload = restore_payload(clients, uri, target_pool=pool.pool_id, timeout_s=5)
        outcome = BackgroundRestore(engine, account.storage, payload).start().wait(300)

        assert outcome.status == "FAILED"
        assert outcome.error == "ApprovalExpired"
        assert pool_contents(clients, pool.pool_id) == before
        order = state_order(engine.history(outcome.execution_arn))
        assert order("RecordExpiry", "exited") > order("RequestApproval", "entered") > -1
        assert order("RestorePoolConfig", "entered") == -1


@pytest.mark.usefixtures("sixteen_shards")
def test_a_restore_interrupted_in_one_shard_completes_on_a_second_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with LocalEngine(embedded=True) as engine:
        clients = make_clients()
        account, pool, uri = _backup(engine, clients, 500, seed=8)
        approver = principal(clients, "approver")
        reader = BackupReader.open(clients, parse_backup_uri(uri))
        assert len(reader.doc["shards"]) == 16
        in_shard_a = sum(1 for u in reader.users() if u["attributes"]["sub"].startswith("a"))
        assert in_shard_a >= 2
        real = user_restore.restore_user
        calls = Counter[str]()

        def flaky(cognito: Any, pool_id: str, record: Any, **kwargs: Any) -> Any:
            sub = record["attributes"]["sub"]
            calls[sub[0]] += 1
            if sub.startswith("a") and calls["a"] > in_shard_a // 2:  # shard "a" breaks half-way through
                raise RuntimeError("injected failure")
            return real(cognito, pool_id, record, **kwargs)

        monkeypatch.setattr(user_restore, "restore_user", flaky)
        first = BackgroundRestore(
            engine, account.storage, restore_payload(clients, uri, new_pool="again")
        ).start()
        decide(
            engine,
            approver,
            account.storage,
            wait_for_request(clients, account.storage).request_id,
            approve=True,
        )
        failed = first.wait()
        assert failed.status == "FAILED"

        monkeypatch.setattr(user_restore, "restore_user", real)
        second = BackgroundRestore(
            engine, account.storage, restore_payload(clients, uri, new_pool="again")
        ).start()
        decide(
            engine,
            approver,
            account.storage,
            wait_for_request(clients, account.storage).request_id,
            approve=True,
        )
        outcome = second.wait()
        assert outcome.succeeded, outcome.message
        assert outcome.output["report"]["existing"] > 0  # the first run's users were kept, not duplicated
        target = outcome.output["targetPoolId"]
        users = pool_contents(clients, target)["users"]
        assert len(users) == pool.users
        emails = Counter(attrs.get("email") for attrs, _, _ in users.values())
        assert set(emails.values()) == {1}
        pools = clients.cognito.list_user_pools(MaxResults=60)["UserPools"]
        assert sum(1 for p in pools if p["Name"] == "again") == 1
