"""RestoreUsers: one slice of one backup part per invocation; returns the cursor the Choice loops on."""

from typing import Any

from pipeline.core.aws import default_clients
from pipeline.core.contracts import RestoreCursor
from pipeline.core.lambda_runtime import LambdaContext, time_budget
from pipeline.core.metrics import emit_restore_progress, measured
from pipeline.restore import steps as restore


@measured("RestoreUsers")
def handler(event: dict[str, Any], context: LambdaContext | None = None) -> RestoreCursor:
    cursor = restore.restore_users(
        default_clients(),
        event["request"],
        event["target"],
        event["shard"],
        event["cursor"],
        budget_s=time_budget(context),
    )
    emit_restore_progress(event["target"]["poolId"], event["cursor"], cursor)
    return cursor
