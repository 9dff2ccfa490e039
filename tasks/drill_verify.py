"""DrillVerify: the restore's VerifyRestore on the scratch pool, restricted to the sample; the Choice loops."""

from typing import Any

from pipeline.core.aws import default_clients
from pipeline.core.contracts import VerifyCursor
from pipeline.core.lambda_runtime import LambdaContext, time_budget
from pipeline.restore import steps as restore


def handler(event: dict[str, Any], context: LambdaContext | None = None) -> VerifyCursor:
    return restore.verify_restore(
        default_clients(),
        event["request"],
        event["target"],
        event["shardResults"],
        event.get("cursor"),
        budget_s=time_budget(context),
    )
