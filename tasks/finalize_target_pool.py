"""FinalizeTargetPool: a pool the restore created gets its deferred settings once every user is in."""

from typing import Any

from pipeline import restore
from pipeline.aws import default_clients
from pipeline.contracts import FinalizeResult
from pipeline.lambda_runtime import LambdaContext


def handler(event: dict[str, Any], context: LambdaContext | None = None) -> FinalizeResult:
    return restore.finalize_target(default_clients(), event["request"], event["target"])
