"""`restore --target-pool` with the local engine against a separately started moto server (AWS_ENDPOINT_URL).

The restore's PreRestoreSnapshot runs the backup state machine as a nested execution (startExecution.sync:2):
that machine lives in the engine, not on the external endpoint, while its tasks must reach the endpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from pipeline.cognito import throttle
from pipeline.core.aws import make_clients
from pipeline.core.layout import parse_backup_uri
from pipeline.operator import demo, seed
from pipeline.operator.cli import main
from pipeline.restore import approval
from pipeline.restore import steps as restore

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
USERS = 60
DELETED = 7


@pytest.fixture
def account(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv(throttle.FRACTION_ENV, "1.0")
    throttle.default_budget.cache_clear()
    reset = urllib.request.Request(moto_server + "/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10)
    clients = make_clients()
    acct = demo.prepare_account(clients)
    pool = seed.seed_pool(boto3.client("cognito-idp"), users=USERS, seed=11)
    yield {"clients": clients, "storage": {**acct.storage, "prefix": "nightly"}, "pool": pool}
    throttle.default_budget.cache_clear()


def _backup(account: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> str:
    storage = account["storage"]
    argv = ["backup", "--pool-id", account["pool"].pool_id, "--bucket", storage["bucket"]]
    argv += ["--kms-key", storage["kmsKeyArn"], "--prefix", "nightly", "--json", "--quiet"]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (backup,) = json.loads(captured.out)["backups"]
    return str(backup["uri"])


def _approve_from_another_process(storage: dict[str, str], request_id: str) -> None:
    iam = boto3.client("iam")
    iam.create_user(UserName="approver")
    key = iam.create_access_key(UserName="approver")["AccessKey"]
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }
    argv = [sys.executable, "-m", "pipeline.operator.cli", "approve", request_id]
    argv += ["--bucket", storage["bucket"], "--prefix", "nightly", "--json"]
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_restore_into_the_existing_pool_snapshots_it_on_the_server_first(
    account: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Into a pool that drifted since its backup (users deleted, a disabled user re-enabled who never signed in):
    the dry run and the restore agree, and the drifted user is left as it is."""
    uri = _backup(account, capsys)
    pool_id = account["pool"].pool_id
    cognito = account["clients"].cognito
    listed = cognito.list_users(UserPoolId=pool_id, Limit=DELETED)["Users"]
    for user in listed:
        cognito.admin_delete_user(UserPoolId=pool_id, Username=user["Username"])
    everyone = cognito.list_users(UserPoolId=pool_id)["Users"]
    # Preferably one who never signed in (FORCE_CHANGE_PASSWORD): it looks like a user a merge half-created.
    disabled = sorted(
        (u["UserStatus"] != "FORCE_CHANGE_PASSWORD", u["Username"]) for u in everyone if not u["Enabled"]
    )
    drifted = disabled[0][1]
    cognito.admin_enable_user(UserPoolId=pool_id, Username=drifted)
    storage = account["storage"]

    assert main(["restore", "--backup", uri, "--target-pool", pool_id, "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)["users"]
    assert plan == {"create": DELETED, "skipExisting": USERS - DELETED, "existingThatDiffer": 1}

    result: dict[str, int] = {}
    argv = [
        "restore",
        "--backup",
        uri,
        "--target-pool",
        pool_id,
        "--approval-timeout",
        "300",
        "--json",
        "--quiet",
    ]
    waiter = threading.Thread(target=lambda: result.setdefault("code", main(argv)), daemon=True)
    waiter.start()
    sink = restore.audit_sink(account["clients"], storage)
    deadline = time.monotonic() + 180
    while not (pending := approval.pending(sink)):
        assert waiter.is_alive(), capsys.readouterr().err
        assert time.monotonic() < deadline, "no approval request within 180 s"
        time.sleep(0.5)
    _approve_from_another_process(storage, pending[0].request_id)
    waiter.join(600)
    assert not waiter.is_alive(), "the restore did not end within 600 s"
    captured = capsys.readouterr()
    # The drifted user is left as it is, so the target still differs from the backup in exactly that: the restore
    # says so (exit 1, RestoreNotVerified) with the report's counts, which are the dry run's.
    assert result.get("code") == 1, captured.err
    out = json.loads(captured.out)
    assert out["error"] == "RestoreNotVerified"
    report = out["report"]
    assert (report["users"]["created"], report["users"]["existing"]) == (plan["create"], plan["skipExisting"])
    assert report["verification"]["passed"] is False
    assert "enabled_differences 1" in captured.err
    # "left as they are": the re-enabled user, who looks like a half-created one, is not disabled again.
    assert cognito.admin_get_user(UserPoolId=pool_id, Username=drifted)["Enabled"] is True

    # The snapshot is a verified backup of the target as it was before the restore, stored on the server.
    backups = main(
        ["list", "--bucket", storage["bucket"], "--prefix", "nightly", "--pool-id", pool_id, "--json"]
    )
    assert backups == 0
    uris = [b["uri"] for b in json.loads(capsys.readouterr().out)["backups"]]
    assert len(uris) == 2 and uri in uris
    (snapshot,) = [u for u in uris if u != uri]
    assert main(["verify", snapshot, "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["users"] == USERS - DELETED
    loc = parse_backup_uri(snapshot)
    assert account["clients"].s3.head_object(Bucket=loc.bucket, Key=loc.manifest_key)
    assert len(cognito.list_users(UserPoolId=pool_id)["Users"]) == min(USERS, 60)
