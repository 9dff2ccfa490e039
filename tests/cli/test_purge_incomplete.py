"""purge-incomplete: only a backup folder without a manifest is removed, by the pipeline's own task, with an
audit record; a completed backup is refused by the CLI and, asked directly, by the state machine's task."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import boto3
import pytest

from pipeline.cognito import throttle
from pipeline.core.aws import make_clients
from pipeline.core.layout import BackupLocation, parse_backup_uri
from pipeline.operator import demo, seed
from pipeline.operator.cli import main
from pipeline.operator.local_engine import LocalEngine
from pipeline.operator.runs import run_purge_incomplete
from pipeline.sealing.audit import AuditSink, read_records

pytestmark = pytest.mark.e2e
CUT = "20261202T010000Z-c0ffee"


@pytest.fixture(scope="module")
def world(moto_server: str) -> dict[str, Any]:
    """One seeded account with one completed backup, shared by the module's tests (each makes its own leftovers)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", moto_server)
        for var, value in (
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            (throttle.FRACTION_ENV, "1.0"),
        ):
            patch.setenv(var, value)
        urllib.request.urlopen(
            urllib.request.Request(moto_server + "/moto-api/reset", method="POST"), timeout=10
        )
        throttle.default_budget.cache_clear()
        storage = demo.prepare_account(make_clients()).storage
        pool = seed.seed_pool(boto3.client("cognito-idp"), users=20, seed=3)
        argv = ["backup", "--pool-id", pool.pool_id, "--bucket", storage["bucket"], "--kms-key"]
        code = main([*argv, storage["kmsKeyArn"], "--engine", "local", "--quiet", "--json"])
        throttle.default_budget.cache_clear()
        assert code == 0
    return {"storage": storage, "pool": pool.pool_id, "server": moto_server}


@pytest.fixture
def env(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", world["server"])
    return world


def _complete(world: dict[str, Any]) -> BackupLocation:
    s3 = make_clients().s3
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=world["storage"]["bucket"])["Contents"]]
    manifest = next(k for k in keys if k.endswith("/manifest.json"))
    return parse_backup_uri(f"s3://{world['storage']['bucket']}/{manifest}")


def _leftovers(world: dict[str, Any], backup_id: str = CUT) -> BackupLocation:
    """What an interrupted backup leaves: the completed backup's parts copied under another id, no manifest."""
    done = _complete(world)
    cut = BackupLocation(done.bucket, done.prefix, done.pool_id, backup_id)
    s3 = make_clients().s3
    for item in s3.list_objects_v2(Bucket=done.bucket, Prefix=done.root)["Contents"]:
        if not item["Key"].endswith("manifest.json"):
            s3.copy_object(
                Bucket=done.bucket,
                Key=cut.root + done.relative(item["Key"]),
                CopySource={"Bucket": done.bucket, "Key": item["Key"]},
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=world["storage"]["kmsKeyArn"],
            )
    return cut


def _keys(loc: BackupLocation) -> list[str]:
    listing = make_clients().s3.list_objects_v2(Bucket=loc.bucket, Prefix=loc.root)
    return [o["Key"] for o in listing.get("Contents", [])]


def _audit(world: dict[str, Any], subject: str) -> list[dict[str, Any]]:
    storage = world["storage"]
    sink = AuditSink(
        make_clients(), storage["bucket"], storage["kmsKeyArn"], prefix=f"{storage['prefix']}/audit"
    )
    return read_records(sink, subject_id=subject)


def test_purge_removes_only_the_incomplete_folder_and_records_it(
    env: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    cut = _leftovers(env)
    done = _complete(env)
    kept = _keys(done)
    assert _keys(cut)
    argv = ["purge-incomplete", cut.uri, "--engine", "local", "--idle-minutes", "0", "--json", "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    out = json.loads(capsys.readouterr().out)
    assert out["purged"]["uri"] == cut.uri and out["purged"]["objects"] == len(kept) - 1
    assert _keys(cut) == []
    assert _keys(done) == kept  # the completed backup beside it is untouched
    assert main(["verify", done.uri, "--quiet"]) == 0
    capsys.readouterr()
    [record] = _audit(env, CUT)
    assert record["event"] == "backup.purged"
    assert record["details"]["uri"] == cut.uri and record["details"]["objects"] == len(kept) - 1
    assert record["details"]["requestedBy"].endswith(":root") or ":user/" in record["details"]["requestedBy"]
    assert main(["list", "--incomplete", "--bucket", cut.bucket, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["incomplete"] == []


def test_a_completed_backup_is_refused_in_one_line(
    env: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    done = _complete(env)
    kept = _keys(done)
    assert main(["purge-incomplete", done.uri, "--engine", "local", "--idle-minutes", "0", "--json"]) == 2
    captured = capsys.readouterr()
    assert (
        captured.err.count("\n") == 1 and "has a manifest" in captured.err and "Traceback" not in captured.err
    )
    assert json.loads(captured.out)["exitCode"] == 2
    assert _keys(done) == kept


def test_a_recently_written_folder_may_be_a_running_backup(
    env: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    cut = _leftovers(env, "20261202T020000Z-abcdef")
    assert main(["purge-incomplete", cut.uri, "--engine", "local"]) == 2
    assert "may still be running" in capsys.readouterr().err
    assert _keys(cut)


@pytest.mark.parametrize("bad", ["s3://b/backups/us-east-1_AbC123/", "s3://b/backups/not-a-pool/x/", "nope"])
def test_a_uri_that_names_no_backup_folder_is_bad_input(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["purge-incomplete", bad]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")


def test_the_task_itself_refuses_a_completed_backup(env: dict[str, Any]) -> None:
    """StartExecution with a purge input, as anyone allowed to start the backup machine could send it: the task's
    own listing finds the manifest and deletes nothing, whatever the caller checked or skipped."""
    done = _complete(env)
    kept = _keys(done)
    storage = env["storage"]
    with LocalEngine(embedded=False) as engine:
        refused = run_purge_incomplete(
            engine,
            storage=storage,
            request={"poolId": done.pool_id, "backupId": done.backup_id, "minIdleSeconds": 0},
        )
        escaping = run_purge_incomplete(
            engine, storage=storage, request={"poolId": "..", "backupId": "", "minIdleSeconds": 0}
        )
    assert refused.status == "FAILED" and refused.error == "InvalidRequest"
    assert "has a manifest" in (refused.message or "")
    assert escaping.status == "FAILED" and escaping.error == "InvalidRequest"
    assert _keys(done) == kept
    assert not [r for r in _audit(env, done.backup_id) if r["event"] == "backup.purged"]
