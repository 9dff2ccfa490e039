"""DrillCleanup: deletes the drill's scratch pool, on every path (only a pool tagged with this drill's id)."""

from typing import Any

from pipeline.core.aws import default_clients
from pipeline.core.lambda_runtime import LambdaContext
from pipeline.drill import steps as drill


def handler(event: dict[str, Any], context: LambdaContext | None = None) -> dict[str, Any]:
    return drill.delete_scratch_pool(default_clients(), event["job"], event.get("target"))
