"""EnumeratePools: which pools to back up, each with a new backup id."""

from pipeline import backup
from pipeline.aws import default_clients
from pipeline.contracts import EnumeratePoolsEvent, EnumeratePoolsResult
from pipeline.lambda_runtime import LambdaContext


def handler(event: EnumeratePoolsEvent, context: LambdaContext | None = None) -> EnumeratePoolsResult:
    return backup.enumerate_pools(default_clients(), event)
