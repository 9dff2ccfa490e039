"""DrillRestoreConfig: one slice of the scratch pool's configuration, created with the drill tag."""

from typing import Any

from pipeline.core.aws import default_clients
from pipeline.core.contracts import TargetPool
from pipeline.core.lambda_runtime import LambdaContext, time_budget
from pipeline.drill import steps as drill


def handler(event: dict[str, Any], context: LambdaContext | None = None) -> TargetPool:
    return drill.restore_drill_config(
        default_clients(), event["job"], event.get("cursor"), budget_s=time_budget(context)
    )
