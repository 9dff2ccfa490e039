"""VerifyRestore: compares the backup with the target pool, as the diff command does."""

from typing import Any

from pipeline.core.aws import default_clients
from pipeline.core.contracts import RestoreVerification
from pipeline.core.lambda_runtime import LambdaContext, time_budget
from pipeline.restore import steps as restore


def handler(event: dict[str, Any], context: LambdaContext | None = None) -> RestoreVerification:
    return restore.verify_restore(
        default_clients(),
        event["request"],
        event["target"],
        event["shardResults"],
        budget_s=time_budget(context),
    )
