"""What an interrupted backup leaves, and what the CLI says about it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipeline.operator import cli, runs
from pipeline.operator.runs import EXIT_INTERRUPTED
from pipeline.sealing.manifest import list_incomplete

BUCKET = "cb-leftovers"
POOL = "us-east-1_AbC123"
DONE, CUT = "20261201T010000Z-aaaaaa", "20261202T010000Z-bbbbbb"


@pytest.fixture
def bucket() -> Iterator[Any]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        for key in (
            f"backups/{POOL}/{DONE}/config.bin",
            f"backups/{POOL}/{DONE}/users/0/part-00001.bin",
            f"backups/{POOL}/{DONE}/manifest.json",
            f"backups/{POOL}/{CUT}/config.bin",
            f"backups/{POOL}/{CUT}/users/0/part-00001.bin",
            f"backups/{POOL}/{CUT}/users/1/part-00001.bin",
            "backups/audit/20261202T010000.000000Z-backup.started-x-0a0b0c0d.bin",
            "backups/approvals/rr-20261202T010000Z-0123456789ab/request.bin",
        ):
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"sealed bytes")
        yield s3


def test_only_folders_without_a_manifest_are_incomplete(bucket: Any) -> None:
    from pipeline.core.aws import make_clients

    found = list_incomplete(make_clients(boto3.Session()), BUCKET, "backups")
    assert found == [
        {
            "uri": f"s3://{BUCKET}/backups/{POOL}/{CUT}/",
            "poolId": POOL,
            "backupId": CUT,
            "objects": 3,
            "bytes": 3 * len(b"sealed bytes"),
        }
    ]
    assert list_incomplete(make_clients(boto3.Session()), BUCKET, "backups", "us-east-1_Other1") == []


def test_list_incomplete_prints_one_json_object(bucket: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list", "--incomplete", "--bucket", BUCKET, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [e["backupId"] for e in out["incomplete"]] == [CUT]
    assert cli.main(["list", "--bucket", BUCKET, "--json", "--pool-id", POOL]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert CUT not in json.dumps(listed)


def test_ctrl_c_says_what_is_stopped_and_where_the_leftovers_are(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    @contextlib.contextmanager
    def no_engine(args: Any) -> Iterator[object]:
        yield object()

    def interrupted(*args: Any, **kwargs: Any) -> runs.Outcome:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "engine_for", no_engine)
    monkeypatch.setattr(runs, "run_backup", interrupted)
    code = cli.main(["backup", "--pool-id", POOL, "--bucket", BUCKET, "--kms-key", "alias/k", "--json"])
    captured = capsys.readouterr()
    assert code == EXIT_INTERRUPTED
    assert "interrupted: stopping the backup" in captured.err
    assert f"list --incomplete --bucket {BUCKET}" in captured.err
    assert json.loads(captured.out)["error"] == "Interrupted"
