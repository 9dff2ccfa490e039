"""VerifyBackup: re-reads, hashes, decrypts and counts every object against the manifest."""

from pipeline import backup
from pipeline.aws import default_clients
from pipeline.contracts import PoolState, VerificationResult
from pipeline.lambda_runtime import LambdaContext


def handler(event: PoolState, context: LambdaContext | None = None) -> VerificationResult:
    return backup.verify(default_clients(), event["job"])
