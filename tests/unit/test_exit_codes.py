"""Exit codes follow the error tree: bad input 2, the AWS environment 3, anything else 1."""

from __future__ import annotations

import pytest

from pipeline.operator.runs import (
    EXIT_BAD_INPUT,
    EXIT_ENVIRONMENT,
    EXIT_FAILED,
    EXIT_INTEGRITY,
    exit_code_for,
)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("PoolNotFound", EXIT_BAD_INPUT),
        ("BucketNotFound", EXIT_BAD_INPUT),
        ("ApprovalNotFound", EXIT_BAD_INPUT),
        ("CredentialsMissing", EXIT_ENVIRONMENT),
        ("RegionMissing", EXIT_ENVIRONMENT),
        ("KeyAccessDenied", EXIT_ENVIRONMENT),
        ("EndpointUnreachable", EXIT_ENVIRONMENT),
        ("IntegrityError", EXIT_INTEGRITY),
        ("ApprovalRejected", EXIT_FAILED),
        ("States.Runtime", EXIT_FAILED),
        (None, EXIT_FAILED),
    ],
)
def test_exit_code_for(error: str | None, code: int) -> None:
    assert exit_code_for(error) == code


def test_an_unreachable_endpoint_is_one_line_and_exit_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.operator.cli import main

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    assert main(["list", "--bucket", "b"]) == EXIT_ENVIRONMENT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: cannot reach the AWS endpoint")
