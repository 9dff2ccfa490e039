"""RestorePoolConfig: creates the pool from the backup (new pool) or merges into the target; missing groups."""

from typing import Any

from pipeline import restore
from pipeline.aws import default_clients
from pipeline.contracts import TargetPool
from pipeline.lambda_runtime import LambdaContext


def handler(event: dict[str, Any], context: LambdaContext | None = None) -> TargetPool:
    return restore.restore_pool_config(default_clients(), event["request"])
