"""WriteManifest: checks every shard finished, then writes the authenticated manifest."""

from pipeline import backup
from pipeline.aws import default_clients
from pipeline.contracts import ManifestSummary, PoolState
from pipeline.lambda_runtime import LambdaContext


def handler(event: PoolState, context: LambdaContext | None = None) -> ManifestSummary:
    return backup.write_manifest(default_clients(), event)
