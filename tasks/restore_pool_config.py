"""RestorePoolConfig: creates the pool from the backup (new pool) or merges into the target; missing groups.

In slices under the time budget: the previous slice's result (``cursor``) says where to resume."""

from typing import Any

from pipeline.core.aws import default_clients
from pipeline.core.contracts import TargetPool
from pipeline.core.lambda_runtime import LambdaContext, time_budget
from pipeline.core.metrics import measured
from pipeline.restore import steps as restore


@measured("RestorePoolConfig")
def handler(event: dict[str, Any], context: LambdaContext | None = None) -> TargetPool:
    return restore.restore_pool_config(
        default_clients(), event["request"], event.get("cursor"), budget_s=time_budget(context)
    )
