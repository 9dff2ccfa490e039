"""PlanShards: sub-prefix shards sized from the pool's estimated user count."""

from pipeline import backup
from pipeline.contracts import PoolState, ShardPlan
from pipeline.lambda_runtime import LambdaContext


def handler(event: PoolState, context: LambdaContext | None = None) -> ShardPlan:
    return backup.plan(event)
