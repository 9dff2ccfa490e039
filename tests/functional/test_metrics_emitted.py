"""The tasks' CloudWatch metrics, as Lambda would ship them: EMF lines on stdout, captured from a backup on moto.

The names, units and dimension sets must be those pipeline.core.metrics declares (the dashboard and the alarms
are built from the same declarations); no user data may appear in them.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipeline.backup import run_objects
from pipeline.core import metrics
from pipeline.core.aws import default_clients
from pipeline.operator import demo, seed
from tasks import collect_backups, verify_backup
from tests.helpers import task_chain


def _emf(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"_aws"')]


def _series(
    documents: list[dict[str, Any]],
) -> dict[str, list[tuple[tuple[str, ...], dict[str, Any], float]]]:
    found: dict[str, list[tuple[tuple[str, ...], dict[str, Any], float]]] = {}
    for doc in documents:
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == metrics.NAMESPACE
        (dimensions,) = directive["Dimensions"]
        for m in directive["Metrics"]:
            values = {d: doc[d] for d in dimensions}
            found.setdefault(m["Name"], []).append((tuple(dimensions), values, float(doc[m["Name"]][0])))
            declared = next(d for d in metrics.ALL if d.name == m["Name"])
            assert m["Unit"] == declared.unit and tuple(dimensions) == declared.dimensions
    return found


@pytest.fixture
def in_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(metrics.LAMBDA_ENV, "cognito-backuper-test")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "cognito-backuper")  # as infra/functions.py sets it


@pytest.mark.usefixtures("in_lambda")
def test_a_backup_on_moto_emits_the_declared_metrics_and_no_user_data(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with mock_aws():
        clients_account = demo.prepare_account(default_clients())
        pool = seed.seed_pool(boto3.client("cognito-idp"), users=40, seed=5)
        state = task_chain.run_backup(clients_account.storage, pool.pool_id)
        verified = verify_backup.handler({"job": state["job"], "manifest": state["manifest"]})
        assert verified["verified"]
        collected = collect_backups.handler(
            {
                "run": "test-run",
                "poolsKey": run_objects.run_key(clients_account.storage, "test-run", "pools.json"),
                "pools": 1,
                "results": [{"verified": True}],
                "storage": clients_account.storage,
            }
        )
    out = capsys.readouterr().out
    found = _series(_emf(out))
    assert collected["failed"] == 0
    assert set(found) <= metrics.NAMES
    backup_side = metrics.NAMES - {m.name for m in (metrics.USERS_RESTORED, metrics.USERS_NOT_RESTORED)}
    backup_side -= {metrics.MEMBERSHIPS_RESTORED.name}
    backup_side -= {m.name for m in (metrics.DRILL_PASSED, metrics.DRILL_DURATION, metrics.DRILL_SAMPLE)}
    backup_side -= {m.name for m in (metrics.PENDING_APPROVALS, metrics.OLDEST_PENDING_APPROVAL)}
    assert set(found) == backup_side
    assert sum(v for _, d, v in found["UsersExported"] if d["PoolId"] == pool.pool_id) == pool.users
    assert sum(v for *_, v in found["MembershipsExported"]) == pool.memberships
    assert [v for *_, v in found["VerifiedBackups"]] == [1.0] and [
        v for *_, v in found["FailedPoolBackups"]
    ] == [0]
    categories = {d["Category"] for _, d, _ in found["CognitoCalls"]}
    assert {"UserList", "UserPoolRead"} <= categories
    assert all(v > 0 for *_, v in found["CognitoRateAllowed"])
    assert {d["Task"] for _, d, _ in found["BytesWritten"]} >= {"ExportUsers", "CapturePoolConfig"}
    for secret in [*pool.emails, *pool.phones]:
        assert secret not in out


def test_nothing_is_printed_outside_lambda(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(metrics.LAMBDA_ENV, raising=False)
    metrics.emit(metrics.VERIFIED_BACKUPS, 1)
    assert capsys.readouterr().out == ""


def test_restore_progress_and_dimension_checks() -> None:
    lines: list[str] = []
    before = {"created": 2, "existing": 1, "failed": 0, "membershipsAdded": 3, "membershipsExisting": 0}
    after = {"created": 7, "existing": 2, "failed": 1, "membershipsAdded": 9, "membershipsExisting": 1}
    metrics.emit_restore_progress("us-east-1_Target1", before, after, lines.append)
    found = _series([json.loads(line) for line in lines])
    assert {n: [v for *_, v in s] for n, s in found.items()} == {
        "UsersRestored": [6.0],
        "UsersNotRestored": [1.0],
        "MembershipsRestored": [7.0],
    }
    with pytest.raises(ValueError, match="takes dimensions"):
        metrics.emit(metrics.USERS_EXPORTED, 1, lines.append, Email="x")
