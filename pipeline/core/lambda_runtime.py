"""What a task needs from the Lambda runtime: its remaining time and a logger that never sees event data."""

from __future__ import annotations

import logging
import os
from typing import Protocol

# Leave room to write the part and return before Lambda kills the invocation.
RESERVE_S = 30.0
# Short invocations keep a crash cheap to redo; a part is at most this many seconds of paging.
MAX_SLICE_S = 300.0


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


def time_budget(
    context: LambdaContext | None, *, reserve_s: float = RESERVE_S, cap_s: float = MAX_SLICE_S
) -> float:
    """Seconds a task may spend paging before it must write what it has and return a token."""
    if context is None:
        return cap_s
    remaining = context.get_remaining_time_in_millis() / 1000.0 - reserve_s
    return max(1.0, min(cap_s, remaining))


# The SDK's DEBUG records carry request bodies (temporary passwords, user attributes): whatever level the
# function's log configuration sets, these loggers never go below INFO.
SDK_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3")


def quiet_sdk_loggers() -> None:
    for name in SDK_LOGGERS:
        sdk = logging.getLogger(name)
        if sdk.getEffectiveLevel() < logging.INFO:
            sdk.setLevel(logging.INFO)


def logger(name: str) -> logging.Logger:
    """Lambda's JSON log format structures these records; callers log ids and counts only."""
    quiet_sdk_loggers()
    log = logging.getLogger(name)
    if "LOG_LEVEL" in os.environ:  # set by the CDK app; the CLI decides through its own root logger
        log.setLevel(os.environ["LOG_LEVEL"])
    return log


# Set by the local engine when it serves its Step Functions API on loopback: approval requests record it so that
# `approve`/`reject` in another process can reach the waiting execution. Unset on AWS.
ENGINE_ENDPOINT_ENV = "COGNITO_BACKUPER_ENGINE_ENDPOINT"
