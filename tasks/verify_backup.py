"""VerifyBackup: re-reads, hashes, decrypts and counts every object against the manifest."""

from pipeline.backup import steps as backup
from pipeline.core.aws import default_clients
from pipeline.core.contracts import PoolState, VerificationResult
from pipeline.core.lambda_runtime import LambdaContext
from pipeline.core.metrics import measured


@measured("VerifyBackup")
def handler(event: PoolState, context: LambdaContext | None = None) -> VerificationResult:
    return backup.verify(default_clients(), event["job"])
