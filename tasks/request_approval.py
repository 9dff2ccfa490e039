"""RequestApproval: records the request with its task token and notifies approvers; the state then waits."""

from typing import Any

from pipeline import restore
from pipeline.aws import default_clients
from pipeline.lambda_runtime import LambdaContext


def handler(event: dict[str, Any], context: LambdaContext | None = None) -> dict[str, bool]:
    restore.request_approval(default_clients(), event["request"], event["snapshot"], event["taskToken"])
    return {"requested": True}
