"""CapturePoolConfig: the pool's settings, clients, providers, domain and groups, encrypted to S3, in slices."""

from pipeline.backup import steps as backup
from pipeline.core.aws import default_clients
from pipeline.core.contracts import ConfigCursor, PoolConfigSummary, PoolState
from pipeline.core.lambda_runtime import LambdaContext, time_budget
from pipeline.core.metrics import measured


@measured("CapturePoolConfig")
def handler(event: PoolState, context: LambdaContext | None = None) -> ConfigCursor | PoolConfigSummary:
    return backup.capture_config(
        default_clients(), event["job"], event.get("cursor"), budget_s=time_budget(context)
    )
