"""RestorePoolConfig: creates the pool from the backup (new pool) or merges into the target; missing groups."""

from typing import Any

from pipeline.core.aws import default_clients
from pipeline.core.contracts import TargetPool
from pipeline.core.lambda_runtime import LambdaContext
from pipeline.restore import steps as restore


def handler(event: dict[str, Any], context: LambdaContext | None = None) -> TargetPool:
    return restore.restore_pool_config(default_clients(), event["request"])
