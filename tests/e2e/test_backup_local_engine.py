"""The backup state machine on the embedded local engine, end to end."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import boto3
import pytest

from pipeline.core.aws import make_clients
from pipeline.core.layout import parse_backup_uri
from pipeline.operator import demo, seed
from pipeline.operator.cli import main
from pipeline.operator.local_engine import LocalEngine
from pipeline.operator.progress import BackupProgress
from pipeline.operator.runs import run_backup
from pipeline.sealing.backup_reader import BackupReader
from tests.helpers.task_payloads import record_tasks

pytestmark = pytest.mark.e2e
ASL = Path(__file__).resolve().parents[2] / "statemachines" / "backup.asl.json"


def test_demo_accounts_for_every_user_group_and_membership(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backup"]["verified"] is True
    assert out["accounting"]["complete"] is True
    assert out["accounting"]["usersBackedUp"] == out["seeded"]["users"] == 1000
    assert out["accounting"]["membershipsBackedUp"] == out["seeded"]["memberships"] > 0
    assert out["seeded"]["disabled"] > 0 and out["seeded"]["unconfirmed"] > 0
    assert out["cognitoCalls"] > 0
    # The third step: a restore drill of that backup, its scratch pool gone afterwards.
    drill = out["drill"]
    assert drill["passed"] is True and drill["scratchPoolsLeft"] == 0
    (result,) = drill["drills"]
    assert result["backupUri"] == out["backup"]["uri"]
    assert result["sampleSize"] == result["usersCompared"] == 100 and result["differences"] == {}


def test_large_pool_over_16_shards_has_every_user_and_membership_once_and_no_plaintext(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    payloads = record_tasks(monkeypatch, [ASL.read_text()])
    with LocalEngine(embedded=True) as engine:
        clients = make_clients()
        account = demo.prepare_account(clients)
        pool = seed.seed_pool(boto3.client("cognito-idp"), users=5000, seed=11)
        progress = BackupProgress()
        outcome = run_backup(
            engine,
            storage=account.storage,
            pool_ids=[pool.pool_id],
            all_pools=False,
            timeout_s=900,
            on_event=progress.update,
        )
        assert outcome.succeeded, outcome.message
        # The pool runs in a distributed Map's child, whose history moto does not keep: progress still counts.
        assert progress.users_exported == pool.users
        assert (len(progress.shards_done), progress.shards_total) == (16, {pool.pool_id: 16})
        assert progress.pools_verified == {pool.pool_id}
        (result,) = outcome.backups
        loc = parse_backup_uri(result["uri"])
        reader = BackupReader.open(clients, loc)
        assert len(reader.doc["shards"]) == 16

        users = Counter(u["username"] for u in reader.users())
        assert len(users) == pool.users and set(users.values()) == {1}
        members = Counter((m["group"], m["username"]) for m in reader.memberships())
        assert sum(members.values()) == pool.memberships and set(members.values()) == {1}
        assert dict(Counter(g for g, _ in members)) == pool.groups

        # No e-mail or phone number in any S3 object or anywhere in the execution history.
        secrets = [s.encode() for s in pool.emails + pool.phones]
        keys = [
            o["Key"]
            for p in clients.s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket)
            for o in p.get("Contents", [])
        ]
        assert len(keys) > 16
        for key in keys:
            body = clients.s3.get_object(Bucket=loc.bucket, Key=key)["Body"].read()
            assert not any(s in body for s in secrets), key
        history = json.dumps(engine.history(outcome.execution_arn)).encode()
        assert b"MapRunStarted" in history
        assert not any(s in history for s in secrets)
        # Inside the pool's child execution: every task's input and output.
        assert len(payloads.of("ExportUsers")) >= 16
        assert not any(s in payloads.dump() for s in secrets)
