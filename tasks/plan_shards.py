"""PlanShards: sub-prefix shards sized from the pool's estimated user count."""

from pipeline.backup import steps as backup
from pipeline.core.contracts import PoolState, ShardPlan
from pipeline.core.lambda_runtime import LambdaContext
from pipeline.core.metrics import measured


@measured("PlanShards")
def handler(event: PoolState, context: LambdaContext | None = None) -> ShardPlan:
    return backup.plan(event)
