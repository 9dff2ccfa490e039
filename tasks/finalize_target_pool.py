"""FinalizeTargetPool: a pool the restore created gets its deferred settings once every user is in."""

from typing import Any

from pipeline.core.aws import default_clients
from pipeline.core.contracts import FinalizeResult
from pipeline.core.lambda_runtime import LambdaContext
from pipeline.core.metrics import measured
from pipeline.restore import steps as restore


@measured("FinalizeTargetPool")
def handler(event: dict[str, Any], context: LambdaContext | None = None) -> FinalizeResult:
    return restore.finalize_target(default_clients(), event["request"], event["target"])
