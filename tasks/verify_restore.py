"""VerifyRestore: one slice of the comparison of the backup with the target pool; the Choice loops on ``done``."""

from typing import Any

from pipeline.core.aws import default_clients
from pipeline.core.contracts import VerifyCursor
from pipeline.core.lambda_runtime import LambdaContext, time_budget
from pipeline.core.metrics import measured
from pipeline.restore import steps as restore


@measured("VerifyRestore")
def handler(event: dict[str, Any], context: LambdaContext | None = None) -> VerifyCursor:
    return restore.verify_restore(
        default_clients(),
        event["request"],
        event["target"],
        event["shardResults"],
        event.get("cursor"),
        budget_s=time_budget(context),
    )
