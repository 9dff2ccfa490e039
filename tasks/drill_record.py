"""DrillRecord: the drill's audit record and RestoreDrillPassed metric, passed or failed (``error``)."""

from typing import Any

from pipeline.core.aws import default_clients
from pipeline.core.lambda_runtime import LambdaContext
from pipeline.drill import steps as drill


def handler(event: dict[str, Any], context: LambdaContext | None = None) -> drill.DrillResult:
    if "job" not in event:  # failed before DrillPrepare returned: no request, no scratch pool
        return drill.record_unprepared(
            default_clients(),
            event["pool"],
            event["settings"],
            event.get("error"),
            execution_arn=event.get("executionArn"),
        )
    return drill.record_drill(
        default_clients(),
        event["job"],
        target=event.get("target"),
        verification=event.get("verification"),
        error=event.get("error"),
    )
