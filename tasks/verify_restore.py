"""VerifyRestore: compares the backup with the target pool, as the diff command does."""

from typing import Any

from pipeline import restore
from pipeline.aws import default_clients
from pipeline.contracts import RestoreVerification
from pipeline.lambda_runtime import LambdaContext


def handler(event: dict[str, Any], context: LambdaContext | None = None) -> RestoreVerification:
    return restore.verify_restore(default_clients(), event["request"], event["target"], event["shardResults"])
