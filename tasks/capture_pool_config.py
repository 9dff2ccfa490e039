"""CapturePoolConfig: the pool's settings, clients, providers, domain and groups, encrypted to S3."""

from pipeline.backup import steps as backup
from pipeline.core.aws import default_clients
from pipeline.core.contracts import PoolConfigSummary, PoolState
from pipeline.core.lambda_runtime import LambdaContext


def handler(event: PoolState, context: LambdaContext | None = None) -> PoolConfigSummary:
    return backup.capture_config(default_clients(), event["job"])
