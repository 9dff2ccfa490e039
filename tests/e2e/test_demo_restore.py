"""`demo --restore`: the two-person restore played end to end with the CLI's own commands."""

from __future__ import annotations

import json

import pytest

from pipeline.operator.cli import main

pytestmark = pytest.mark.e2e


def test_demo_restore_plays_request_refusal_approval_and_a_verified_restore(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--restore", "--users", "12", "--json", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # -q: nothing on stderr
    out = json.loads(captured.out)
    steps = [(s["step"], s["as"]) for s in out["steps"]]
    assert steps == [
        ("seed", "administrator"),
        ("backup", "requester"),
        ("restore", "requester"),
        ("self-approval", "requester"),
        ("approve", "approver"),
        ("restored", "requester"),
        ("report", "approver"),
    ]
    by_name = {s["step"]: s for s in out["steps"]}
    # Two principals, told apart by STS: the requester's own approval is refused, the other one's accepted.
    assert out["requestedBy"].endswith(":user/cognito-backuper-requester")
    assert out["approvedBy"].endswith(":user/cognito-backuper-approver")
    assert (
        by_name["self-approval"]["exitCode"] != 0 and "cannot approve" in by_name["self-approval"]["summary"]
    )
    assert by_name["approve"]["command"].startswith(f"cognito-backuper approve {out['requestId']} ")
    # The restore went into a new pool and was verified against the backup.
    assert out["backup"]["users"] == 12 and out["backup"]["verified"] is True
    assert out["targetPoolId"] and out["targetPoolId"] != out["backup"]["poolId"]
    assert out["verification"]["passed"] is True
    assert out["report"]["created"] == 12
    assert out["status"] == "SUCCEEDED"


def test_demo_restore_refuses_a_pool_too_large_for_a_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--restore", "--users", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: --users must be between 1 and 5000")
