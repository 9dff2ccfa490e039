"""`seed` writes demo data only where an emulator stands in for AWS."""

from __future__ import annotations

import pytest

from pipeline.operator import cli


def test_seed_refuses_without_an_emulator_endpoint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert cli.main(["seed", "--users", "5"]) == 2
    err = capsys.readouterr().err
    assert "only runs against an emulator (set AWS_ENDPOINT_URL)" in err and "Traceback" not in err
