"""`cognito-backuper report` reads a restore's sealed report; a restore that fails verification prints it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipeline.core.aws import make_clients
from pipeline.core.layout import BackupLocation
from pipeline.operator import cli, restore_commands, runs
from pipeline.sealing import store

BUCKET = "cb-reports"
POOL = "us-east-1_AbC123"
REQUEST = "rr-20261202T101500Z-0123456789ab"
REPORT = {
    "requestId": REQUEST,
    "backupUri": f"s3://{BUCKET}/backups/{POOL}/20261201T010000Z-aaaaaa/",
    "target": {"mode": "existing", "poolId": "us-east-1_Target1", "created": False},
    "users": {"created": 3, "existing": 1, "skipped": 0, "failed": 1},
    "memberships": {"added": 4, "existing": 0, "skipped": 0},
    "verification": {"passed": False, "usersCompared": 5, "differences": {"missing_users": 1}},
    "idMapObjects": [f"backups/restores/{POOL}/{REQUEST}/idmap/part-00001.bin"],
    "finishedAt": "2026-12-02T10:20:00.000000Z",
}


@pytest.fixture
def sealed_report() -> Iterator[str]:
    with mock_aws():
        clients = make_clients(boto3.Session())
        clients.s3.create_bucket(Bucket=BUCKET)
        key_arn = clients.kms.create_key()["KeyMetadata"]["Arn"]
        ws = BackupLocation(BUCKET, "backups/restores", POOL, REQUEST)
        # Something else under restores/ that is not a pool folder must not confuse the search.
        clients.s3.put_object(Bucket=BUCKET, Key="backups/restores/selections/x.bin", Body=b"x")
        store.put_sealed(clients, ws, key_arn, ws.root + "report.bin", [REPORT])
        yield key_arn


def test_report_prints_the_summary_and_one_json_object(
    sealed_report: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", REQUEST, "--bucket", BUCKET]) == 0
    text = capsys.readouterr().out
    assert f"report s3://{BUCKET}/backups/restores/{POOL}/{REQUEST}/report.bin" in text
    assert "verification: FAILED (5 users compared)" in text
    assert "missing_users 1" in text
    assert cli.main(["report", REQUEST, "--bucket", BUCKET, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["users"] == REPORT["users"]
    assert out["verification"]["passed"] is False
    assert "idMapObjects" not in out


def test_an_unknown_request_is_one_clear_line(sealed_report: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["report", "rr-20261202T101500Z-ffffffffffff", "--bucket", BUCKET])
    err = capsys.readouterr().err
    assert code != 0
    assert "no restore report for rr-20261202T101500Z-ffffffffffff" in err and "Traceback" not in err


def test_a_restore_that_fails_verification_prints_its_report(
    sealed_report: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = {"bucket": BUCKET, "kmsKeyArn": sealed_report, "prefix": "backups"}
    source = BackupLocation(BUCKET, "backups", POOL, "20261201T010000Z-aaaaaa")
    reader = type("Reader", (), {"loc": source})()
    monkeypatch.setattr(restore_commands, "_settings_of", lambda clients, uri: (storage, reader))

    @contextlib.contextmanager
    def no_engine(args: Any) -> Iterator[Any]:
        class Engine:
            def serve_api(self) -> None:
                return None

        yield Engine()

    def not_verified(engine: Any, *, on_event: Any, **kwargs: Any) -> runs.Outcome:
        validated = {"request": {"requestId": REQUEST, "shards": ["0"]}}
        on_event(
            {
                "type": "TaskStateExited",
                "stateExitedEventDetails": {"name": "ValidateRequest", "output": json.dumps(validated)},
            }
        )
        return runs.Outcome("FAILED", "arn:x", 1.0, error="RestoreNotVerified", message="differences")

    monkeypatch.setattr(restore_commands, "engine_for", no_engine)
    monkeypatch.setattr(runs, "run_restore", not_verified)
    uri = source.uri
    code = cli.main(["restore", "--backup", uri, "--target-pool", "us-east-1_Target1", "--json", "--quiet"])
    captured = capsys.readouterr()
    assert code == runs.exit_code_for("RestoreNotVerified")
    out = json.loads(captured.out)
    assert out["error"] == "RestoreNotVerified"
    assert out["report"]["uri"].endswith(f"/{REQUEST}/report.bin")
    assert out["report"]["verification"]["differences"] == {"missing_users": 1}
