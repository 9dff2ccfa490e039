"""DrillPlan: the pools to drill and each one's latest backup (the execution's input may name one pool)."""

from typing import Any

from pipeline.core.aws import default_clients
from pipeline.core.lambda_runtime import LambdaContext
from pipeline.drill import steps as drill


def handler(event: dict[str, Any], context: LambdaContext | None = None) -> dict[str, Any]:
    execution = event.get("input") or {}
    return {
        **drill.plan_drills(default_clients(), {**execution, "settings": event["settings"]}),
        "settings": event["settings"],
        "sample": drill.check_sample(execution.get("sample") or drill.DEFAULT_SAMPLE),
    }
