"""DrillSummarize: the drills' results and counts; the Choice after it fails the execution on any failure."""

from typing import Any

from pipeline.core.lambda_runtime import LambdaContext
from pipeline.drill import steps as drill


def handler(event: dict[str, Any], context: LambdaContext | None = None) -> dict[str, Any]:
    return drill.summarize(event["results"])
