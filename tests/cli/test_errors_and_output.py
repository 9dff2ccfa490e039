"""What a new user sees when things go wrong, and what scripts read with --json (issue: the first hour)."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest

from pipeline.core.aws import make_clients
from pipeline.core.layout import parse_backup_uri
from pipeline.operator import demo, seed
from pipeline.operator.cli import build_parser, main
from pipeline.operator.progress import HEARTBEAT_S, BackupProgress, ProgressPrinter, RestoreProgress
from pipeline.operator.runs import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_INTEGRITY

ROOT = Path(__file__).resolve().parents[2]
VALID_URI = "s3://my-backups/backups/us-east-1_AbC123/20261127T020000Z-a1b2c3/"


def _one_json_object(out: str) -> dict[str, Any]:
    """stdout holds exactly one JSON object (json.loads refuses trailing text)."""
    parsed = json.loads(out)
    assert isinstance(parsed, dict)
    return parsed


def _keys(value: Any) -> list[str]:
    """Every key of the payload's own structure (dicts of dicts and lists), for the key-style check."""
    if isinstance(value, dict):
        return [k for k, v in value.items() for k in [k, *_keys(v)]]
    if isinstance(value, list):
        return [k for v in value for k in _keys(v)]
    return []


def _camel(payload: dict[str, Any]) -> None:
    snake = [k for k in _keys(payload) if "_" in k]
    assert not snake, f"snake_case keys next to camelCase ones: {snake}"


# --- the AWS environment


def test_an_unknown_profile_is_one_line_and_exit_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    assert main(["list", "--bucket", "b"]) == EXIT_ENVIRONMENT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "no-such-profile" in err[0] and "Traceback" not in err[0]


@pytest.mark.parametrize("variable", ["AWS_REGION", "AWS_DEFAULT_REGION"])
def test_either_region_variable_is_enough(
    variable: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from moto import mock_aws

    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv(variable, "eu-west-2")
    with mock_aws():
        boto3.client("s3", region_name="eu-west-2").create_bucket(
            Bucket="regional-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
        )
        assert main(["list", "--bucket", "regional-bucket", "--json"]) == 0, capsys.readouterr().err
    assert _one_json_object(capsys.readouterr().out) == {"backups": []}
    assert make_clients().region == "eu-west-2"


# --- one JSON object, success or failure


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["verify", "s3://bucket/backups/us-east-1_AbC123/"], EXIT_BAD_INPUT),
        (["diff", VALID_URI, "--pool-id", "not a pool"], EXIT_BAD_INPUT),
        (["approve", "not-a-request", "--bucket", "b"], EXIT_BAD_INPUT),
        (["restore", "--backup", VALID_URI, "--new-pool", "bad name!!", "--dry-run"], EXIT_BAD_INPUT),
        (["backup", "--pool-id", "bad id", "--bucket", "b", "--kms-key", "k"], EXIT_BAD_INPUT),
        (["purge-incomplete", "s3://bucket/backups/us-east-1_AbC123/"], EXIT_BAD_INPUT),
        (["report", "not-a-request", "--bucket", "b"], EXIT_BAD_INPUT),
        (["reject", "not-a-request", "--bucket", "b"], EXIT_BAD_INPUT),
        (["seed"], EXIT_BAD_INPUT),
        (["demo", "--restore", "--users", "0"], EXIT_BAD_INPUT),
    ],
)
def test_a_failure_with_json_prints_one_object(
    argv: list[str], code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--json"]) == code
    captured = capsys.readouterr()
    out = _one_json_object(captured.out)
    assert out["exitCode"] == code and out["status"] == "FAILED"
    assert out["error"] == "InvalidRequest" and out["message"] in captured.err
    _camel(out)


def test_the_environment_failure_with_json_prints_one_object(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert main(["verify", VALID_URI, "--json"]) == EXIT_ENVIRONMENT
    out = _one_json_object(capsys.readouterr().out)
    assert out["error"] == "RegionMissing"


# --- messages and help that match behaviour


def test_a_uri_without_a_backup_id_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "s3://bucket/backups/us-east-1_AbC123/"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "no backup id" in err and "us-east-1_AbC123" in err
    assert "not a user pool id" not in err


@pytest.mark.parametrize("name", ["", "bad name!!", "x" * 129])
def test_new_pool_names_are_checked_before_the_dry_run(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    # No AWS call is made: the name fails before the backup is even opened (there is no such bucket).
    assert main(["restore", "--backup", VALID_URI, "--new-pool", name, "--dry-run"]) == EXIT_BAD_INPUT
    assert "not a user pool name" in capsys.readouterr().err


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_argument_of_every_command_has_help() -> None:
    for name, sub in _subparsers(build_parser()).items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def _help(command: str) -> str:
    return " ".join(_subparsers(build_parser())[command].format_help().split())


def test_help_texts_say_what_the_commands_do() -> None:
    assert "EnforceEncryption bucket policy is not attached" in _help("demo")
    reject = _help("reject")
    assert (
        "may withdraw its own request" in reject and "as a principal other than the requester" not in reject
    )
    assert "(default 21600" in _help("restore")
    assert "4 when the backup fails its integrity checks" in _help("diff")


@pytest.mark.parametrize("argv", [["-v", "list", "--bucket", "b"], ["list", "--bucket", "b", "-v"]])
def test_verbose_is_accepted_before_or_after_the_command(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).verbose is True
    assert getattr(build_parser().parse_args(["list", "--bucket", "b"]), "verbose", False) is False


def test_no_source_points_to_a_design_file_that_is_not_in_the_repository() -> None:
    if (ROOT / "DESIGN.md").exists():
        return
    sources = [*ROOT.glob("pipeline/**/*.py"), *ROOT.glob("tasks/*.py"), *ROOT.glob("infra/*.py")]
    assert sources
    assert not [p for p in sources if "DESIGN.md" in p.read_text(encoding="utf-8")]


# --- progress


def test_a_heartbeat_line_at_least_every_ten_seconds_without_events() -> None:
    now = [0.0]
    stream = io.StringIO()
    printer = ProgressPrinter(BackupProgress(), stream=stream, clock=lambda: now[0])
    for _ in range(60):  # a minute of polls every second, and no event at all
        now[0] += 1.0
        printer.tick()
    stamps = [float(line[1:].split("s]")[0]) for line in stream.getvalue().splitlines()]
    assert len(stamps) == 6
    assert all(b - a <= HEARTBEAT_S for a, b in zip([0.0, *stamps], stamps, strict=False))
    assert "/s)" in stream.getvalue()  # the rate of users exported


def test_the_heartbeat_gives_the_rate_and_the_time_left() -> None:
    progress = BackupProgress()

    def exited(name: str, output: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "TaskStateExited",
            "stateExitedEventDetails": {"name": name, "output": json.dumps(output)},
        }

    job = {"poolId": "us-east-1_AbC123"}
    progress.update(exited("CapturePoolConfig", {"job": job, "config": {"estimatedUsers": 1000}}))
    progress.update(exited("PlanShards", {"job": job, "plan": {"shards": ["a", "b"]}}))
    progress.update(
        exited("ExportUsers", {"job": job, "shard": "a", "cursor": {"users": 250, "done": False}})
    )
    line = progress.line(10.0)
    assert "users 250 (25/s, about 30s left)" in line


def test_quiet_has_no_heartbeat() -> None:
    stream = io.StringIO()
    printer = ProgressPrinter(BackupProgress(), stream=stream, clock=lambda: 100.0, quiet=True)
    printer.tick()
    assert stream.getvalue() == ""


def test_waiting_for_approval_is_announced_when_the_wait_starts() -> None:
    announced: list[str] = []
    progress = RestoreProgress(on_request=announced.append)

    def exited(name: str, output: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "TaskStateExited",
            "stateExitedEventDetails": {"name": name, "output": json.dumps(output)},
        }

    progress.update(exited("ValidateRequest", {"request": {"requestId": "rr-1", "shards": []}}))
    progress.update({"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "PreRestoreSnapshot"}})
    assert announced == []  # the snapshot runs first: nobody can approve yet
    progress.update({"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "RequestApproval"}})
    assert announced == ["rr-1"]


def test_no_web_server_lines_on_stderr() -> None:
    """The local engine's loopback API is a werkzeug server: the CLI's logging keeps its request lines away."""
    script = (
        "import urllib.request\n"
        "from moto.server import ThreadedMotoServer\n"
        "from pipeline.operator.cli import configure_logging\n"
        "configure_logging(verbose=False)\n"
        "server = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)\n"
        "server.start()\n"
        "host, port = server.get_host_and_port()\n"
        "urllib.request.urlopen(f'http://{host}:{port}/moto-api/', timeout=10).read()\n"
        "server.stop()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT, check=True
    )
    assert "werkzeug" not in done.stderr and "GET /moto-api" not in done.stderr


# --- against a separately started moto server: backups, tampering, failed runs


@pytest.fixture
def account(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    reset = urllib.request.Request(moto_server + "/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10)
    clients = make_clients()
    acct = demo.prepare_account(clients)
    pool = seed.seed_pool(boto3.client("cognito-idp"), users=40, seed=7)
    return {"clients": clients, "storage": acct.storage, "pool": pool}


def _backup_argv(account: dict[str, Any], pool_id: str) -> list[str]:
    storage = account["storage"]
    return [
        "backup",
        "--pool-id",
        pool_id,
        "--bucket",
        storage["bucket"],
        "--kms-key",
        storage["kmsKeyArn"],
        "--engine",
        "local",
        "--json",
        "--quiet",
    ]


@pytest.mark.e2e
def test_diff_integrity_failure_has_its_own_exit_code(
    account: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    pool_id = account["pool"].pool_id
    assert main(_backup_argv(account, pool_id)) == 0
    backup = _one_json_object(capsys.readouterr().out)
    _camel(backup)
    assert backup["executionArn"] is None  # the local engine's execution is gone once the command ends
    uri = backup["backups"][0]["uri"]

    assert main(["diff", uri, "--pool-id", pool_id, "--json"]) == 0
    _camel(_one_json_object(capsys.readouterr().out))

    cognito = account["clients"].cognito
    username = cognito.list_users(UserPoolId=pool_id, Limit=1)["Users"][0]["Username"]
    cognito.admin_delete_user(UserPoolId=pool_id, Username=username)
    assert main(["diff", uri, "--pool-id", pool_id, "--json"]) == EXIT_FAILED
    assert _one_json_object(capsys.readouterr().out)["counts"]["usersMissing"] == 1

    loc = parse_backup_uri(uri)
    s3 = account["clients"].s3
    key = next(
        o["Key"] for o in s3.list_objects_v2(Bucket=loc.bucket, Prefix=loc.root + "users/")["Contents"]
    )
    body = bytearray(s3.get_object(Bucket=loc.bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0x01
    s3.put_object(Bucket=loc.bucket, Key=key, Body=bytes(body), ServerSideEncryption="aws:kms")
    assert main(["diff", uri, "--pool-id", pool_id, "--json"]) == EXIT_INTEGRITY
    out = _one_json_object(capsys.readouterr().out)
    assert out["exitCode"] == EXIT_INTEGRITY
    assert main(["verify", uri, "--json", "--quiet"]) == EXIT_INTEGRITY
    assert _one_json_object(capsys.readouterr().out)["exitCode"] == EXIT_INTEGRITY


@pytest.mark.e2e
def test_a_failed_local_run_prints_one_object_and_no_dead_execution_arn(
    account: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(_backup_argv(account, "us-east-1_Nope12345"))
    captured = capsys.readouterr()
    assert code == EXIT_BAD_INPUT, captured.err
    out = _one_json_object(captured.out)
    assert out["status"] == "FAILED" and out["executionArn"] is None
    assert ":execution:" not in captured.err
    _camel(out)


@pytest.mark.e2e
def test_demo_quiet_prints_nothing_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--users", "20", "--quiet", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    out = _one_json_object(captured.out)
    _camel(out)
    assert out["accounting"]["usersBackedUp"] == 20
