"""PurgeIncompleteBackup: re-checks a backup folder has no manifest, deletes its parts, records backup.purged."""

from pipeline.backup import purge
from pipeline.core.aws import default_clients
from pipeline.core.contracts import PurgeIncompleteEvent, PurgeIncompleteResult
from pipeline.core.lambda_runtime import LambdaContext


def handler(event: PurgeIncompleteEvent, context: LambdaContext | None = None) -> PurgeIncompleteResult:
    return purge.purge_incomplete(default_clients(), event)
