"""ValidateRequest: verifies the backup, checks the target and seals the selection; reads only."""

from pipeline import restore
from pipeline.aws import default_clients
from pipeline.contracts import RestoreRequest, RestoreRequestEvent
from pipeline.lambda_runtime import LambdaContext


def handler(event: RestoreRequestEvent, context: LambdaContext | None = None) -> RestoreRequest:
    return restore.validate_request(default_clients(), event)
