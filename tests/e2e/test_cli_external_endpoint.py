"""The CLI against a separately started moto server given by AWS_ENDPOINT_URL, as an operator would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
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
from pipeline.sealing.audit import read_records

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def account(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    # The server lives for the module: reset it through moto's own API so each test starts from an empty account.
    reset = urllib.request.Request(moto_server + "/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10)
    clients = make_clients()
    acct = demo.prepare_account(clients)
    pool = seed.seed_pool(boto3.client("cognito-idp"), users=150, seed=5)
    return {"clients": clients, "storage": acct.storage, "pool": pool}


def _backup(account: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> str:
    storage = account["storage"]
    code = main(
        [
            "backup",
            "--pool-id",
            account["pool"].pool_id,
            "--bucket",
            storage["bucket"],
            "--kms-key",
            storage["kmsKeyArn"],
            "--prefix",
            "nightly",
            "--json",
            "--quiet",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    (backup,) = out["backups"]
    assert backup["users"] == account["pool"].users and backup["verified"] is True
    return str(backup["uri"])


def test_backup_verify_and_list_against_the_server(
    account: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    uri = _backup(account, capsys)
    assert uri.startswith(f"s3://{account['storage']['bucket']}/nightly/{account['pool'].pool_id}/")
    # The objects are in the separately started server, not in some in-process mock.
    loc = parse_backup_uri(uri)
    assert account["clients"].s3.head_object(Bucket=loc.bucket, Key=loc.manifest_key)
    assert main(["verify", uri, "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["users"] == account["pool"].users
    assert main(["list", "--bucket", loc.bucket, "--prefix", "nightly", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["backups"]
    assert [b["uri"] for b in listed] == [uri]


def test_verify_rejects_one_changed_byte(account: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    uri = _backup(account, capsys)
    loc = parse_backup_uri(uri)
    s3 = account["clients"].s3
    key = next(
        o["Key"] for o in s3.list_objects_v2(Bucket=loc.bucket, Prefix=loc.root + "users/")["Contents"]
    )
    body = bytearray(s3.get_object(Bucket=loc.bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0x01
    s3.put_object(Bucket=loc.bucket, Key=key, Body=bytes(body), ServerSideEncryption="aws:kms")
    assert main(["verify", uri, "--quiet"]) == 4  # integrity failures have their own exit code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--pool-id", "us-east-1_Nope12345"], 2, "pool"),
        (["--pool-id", "bad id"], 2, "pool id"),
        (["--bucket-override", "missing-bucket"], 2, "bucket"),
        (["--kms-key-override", "alias/missing"], 3, "key"),
    ],
)
def test_backup_bad_input_is_one_line(
    account: dict[str, Any], capsys: pytest.CaptureFixture[str], args: list[str], code: int, needle: str
) -> None:
    storage = account["storage"]
    bucket, key, pool = storage["bucket"], storage["kmsKeyArn"], [account["pool"].pool_id]
    if args[0] == "--bucket-override":
        bucket, args = args[1], []
    elif args[0] == "--kms-key-override":
        key, args = args[1], []
    argv = ["backup", "--bucket", bucket, "--kms-key", key, "--quiet"] + (args or ["--pool-id", *pool])
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert needle in err.lower().splitlines()[0]


def test_no_region_and_no_credentials_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")
    assert main(["list", "--bucket", "b"]) == 3
    assert "Region" in capsys.readouterr().err
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert main(["list", "--bucket", "b"]) == 3
    assert "credentials" in capsys.readouterr().err


def test_restore_waits_for_an_approval_given_from_another_process(
    account: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    moto_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The requester's CLI waits; a second operator, in another process with other credentials, approves."""
    monkeypatch.setenv(throttle.FRACTION_ENV, "1.0")
    throttle.default_budget.cache_clear()
    uri = _backup(account, capsys)
    storage = {**account["storage"], "prefix": "nightly"}
    iam = boto3.client("iam")
    iam.create_user(UserName="second-operator")
    key = iam.create_access_key(UserName="second-operator")["AccessKey"]
    result: dict[str, int] = {}
    argv = [
        "restore",
        "--backup",
        uri,
        "--new-pool",
        "from-cli",
        "--approval-timeout",
        "300",
        "--json",
        "--quiet",
    ]
    waiter = threading.Thread(target=lambda: result.setdefault("code", main(argv)), daemon=True)
    waiter.start()

    sink = restore.audit_sink(account["clients"], storage)  # type: ignore[arg-type]
    deadline = time.monotonic() + 120
    while not (pending := approval.pending(sink)):
        assert time.monotonic() < deadline, "no approval request within 120 s"
        time.sleep(0.5)
    request_id = pending[0].request_id

    def cli(*args: str, access_key: str, secret: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret}
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline.operator.cli",
                *args,
                "--bucket",
                storage["bucket"],
                "--prefix",
                "nightly",
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    own = cli("approve", request_id, access_key="testing", secret="testing")
    assert own.returncode != 0
    assert "cannot approve" in own.stderr and "Traceback" not in own.stderr
    other = cli("approve", request_id, "--json", access_key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["approvedBy"].endswith(":user/second-operator")

    waiter.join(600)
    assert result.get("code") == 0, capsys.readouterr().err
    out = json.loads(capsys.readouterr().out)
    assert out["requestId"] == request_id
    assert out["verification"]["passed"] is True
    assert out["report"]["created"] == account["pool"].users
    throttle.default_budget.cache_clear()


def test_an_interrupted_restore_is_cancelled_on_record_and_can_no_longer_be_approved(
    account: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C on a restore waiting for approval: the audit trail records it cancelled, the request is no longer
    listed, and an approval attempt fails before any decision is written."""
    uri = _backup(account, capsys)
    storage = {**account["storage"], "prefix": "nightly"}
    iam = boto3.client("iam")
    iam.create_user(UserName="approver")
    key = iam.create_access_key(UserName="approver")["AccessKey"]

    def cli(*args: str) -> list[str]:
        return [sys.executable, "-m", "pipeline.operator.cli", *args]

    requester = subprocess.Popen(
        [*cli("restore", "--backup", uri, "--new-pool", "interrupted", "--quiet")],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    sink = restore.audit_sink(account["clients"], storage)  # type: ignore[arg-type]
    try:
        deadline = time.monotonic() + 120
        while not (pending := approval.pending(sink)):
            assert requester.poll() is None, "the restore command ended before asking for approval"
            assert time.monotonic() < deadline, "no approval request within 120 s"
            time.sleep(0.5)
        request_id = pending[0].request_id
    finally:
        requester.send_signal(2)  # SIGINT, as Ctrl-C
        try:
            _, stopped = requester.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            requester.kill()
            raise
    assert requester.returncode == 130
    assert f"restore request {request_id} is cancelled" in stopped and "Traceback" not in stopped

    def run(*args: str, access_key: str, secret: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret}
        return subprocess.run(
            [*cli(*args), "--bucket", storage["bucket"], "--prefix", "nightly"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    listed = run("approvals", "--json", access_key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["pending"] == []
    assert json.loads(listed.stdout)["notWaiting"] == 1
    approved = run("approve", request_id, access_key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    assert approved.returncode == 3, approved.stderr
    assert "cannot reach" in approved.stderr and "Traceback" not in approved.stderr
    records = read_records(sink, subject_id=request_id)
    assert [r["event"] for r in records] == ["restore.requested", "restore.failed"]
    assert (
        records[-1]["details"]["decision"] == "cancelled"
    )  # and no decision: nothing approved a dead request
