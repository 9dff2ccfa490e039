"""RequestApproval: records the request with its task token and notifies approvers; the state then waits."""

from typing import Any

from pipeline.core.aws import default_clients
from pipeline.core.lambda_runtime import LambdaContext
from pipeline.core.metrics import measured
from pipeline.restore import steps as restore


@measured("RequestApproval")
def handler(event: dict[str, Any], context: LambdaContext | None = None) -> dict[str, bool]:
    restore.request_approval(default_clients(), event["request"], event["snapshot"], event["taskToken"])
    return {"requested": True}
