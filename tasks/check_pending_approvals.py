"""CheckPendingApprovals (scheduled, in no state machine): how long restores have waited for approval."""

import os
from typing import Any

import boto3

from pipeline.core.aws import SDK_CONFIG
from pipeline.core.lambda_runtime import LambdaContext
from pipeline.restore import approval_watch


def handler(event: dict[str, Any], context: LambdaContext | None = None) -> dict[str, Any]:
    # A client per run: the schedule invokes this a few times an hour.
    sfn = boto3.client("stepfunctions", config=SDK_CONFIG)
    return approval_watch.check_pending_approvals(sfn, os.environ[approval_watch.MACHINE_ENV])
