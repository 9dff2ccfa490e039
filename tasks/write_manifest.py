"""WriteManifest: checks every shard finished, then writes the authenticated manifest."""

from pipeline.backup import steps as backup
from pipeline.core.aws import default_clients
from pipeline.core.contracts import ManifestSummary, PoolState
from pipeline.core.lambda_runtime import LambdaContext
from pipeline.core.metrics import measured


@measured("WriteManifest")
def handler(event: PoolState, context: LambdaContext | None = None) -> ManifestSummary:
    return backup.write_manifest(default_clients(), event)
