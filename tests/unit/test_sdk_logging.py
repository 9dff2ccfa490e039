"""A raised log level never lets the SDK's wire logs (request bodies) through from a task."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from pipeline.core.lambda_runtime import SDK_LOGGERS, logger

SECRET = "Tmp-Pa55word-never-logged!"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def root_at_debug(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Collect]:
    root = logging.getLogger()
    saved = (root.level, {n: logging.getLogger(n).level for n in SDK_LOGGERS})
    collect = _Collect()
    root.addHandler(collect)
    root.setLevel(logging.DEBUG)  # what Lambda's ApplicationLogLevel=DEBUG does
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    try:
        yield collect
    finally:
        root.removeHandler(collect)
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)


def test_a_task_logger_at_debug_keeps_request_bodies_out(root_at_debug: _Collect) -> None:
    logger("tasks.restore_users").debug("restoring shard %s", "0a")
    with mock_aws():
        idp = boto3.client("cognito-idp", region_name="us-east-1")
        pool = idp.create_user_pool(PoolName="p")["UserPool"]["Id"]
        idp.admin_create_user(
            UserPoolId=pool, Username="u1", TemporaryPassword=SECRET, MessageAction="SUPPRESS"
        )
    assert any("restoring shard 0a" in line for line in root_at_debug.lines)
    assert not [line for line in root_at_debug.lines if SECRET in line]
