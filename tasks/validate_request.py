"""ValidateRequest: verifies the backup, checks the target and seals the selection; reads only."""

from pipeline.core.aws import default_clients
from pipeline.core.contracts import RestoreRequest, RestoreRequestEvent
from pipeline.core.lambda_runtime import LambdaContext
from pipeline.core.metrics import measured
from pipeline.restore import steps as restore


@measured("ValidateRequest")
def handler(event: RestoreRequestEvent, context: LambdaContext | None = None) -> RestoreRequest:
    return restore.validate_request(default_clients(), event)
