"""RecordDecision: proves who approved or rejected, seals the decision and audits it, or audits an expiry."""

from typing import Any

from pipeline.core.aws import default_clients
from pipeline.core.lambda_runtime import LambdaContext
from pipeline.core.metrics import measured
from pipeline.restore import steps as restore


@measured("RecordDecision")
def handler(event: dict[str, Any], context: LambdaContext | None = None) -> dict[str, Any]:
    return restore.record_decision(
        default_clients(), event["request"], event["decision"], event.get("approval"), event.get("error")
    )
