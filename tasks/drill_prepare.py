"""DrillPrepare: verifies the backup in full, draws the random sample and seals it as the restore's selection."""

from typing import Any

from pipeline.core.aws import default_clients
from pipeline.core.lambda_runtime import LambdaContext
from pipeline.drill import steps as drill


def handler(event: dict[str, Any], context: LambdaContext | None = None) -> drill.DrillJob:
    return drill.prepare_drill(default_clients(), event)
