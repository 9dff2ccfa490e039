"""CapturePoolConfig: the pool's settings, clients, providers, domain and groups, encrypted to S3."""

from pipeline import backup
from pipeline.aws import default_clients
from pipeline.contracts import PoolConfigSummary, PoolState
from pipeline.lambda_runtime import LambdaContext


def handler(event: PoolState, context: LambdaContext | None = None) -> PoolConfigSummary:
    return backup.capture_config(default_clients(), event["job"])
