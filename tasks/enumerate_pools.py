"""EnumeratePools: which pools to back up, each with a new backup id, listed in S3 for BackupEachPool."""

from pipeline.backup import steps as backup
from pipeline.core.aws import default_clients
from pipeline.core.contracts import EnumeratePoolsEvent, EnumeratePoolsResult
from pipeline.core.lambda_runtime import LambdaContext
from pipeline.core.metrics import measured


@measured("EnumeratePools")
def handler(event: EnumeratePoolsEvent, context: LambdaContext | None = None) -> EnumeratePoolsResult:
    return backup.enumerate_pools(default_clients(), event)
