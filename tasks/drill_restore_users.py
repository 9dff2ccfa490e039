"""DrillRestoreUsers: the restore's RestoreUsers on the scratch pool, for the sampled users of one shard."""

from typing import Any

from pipeline.core.aws import default_clients
from pipeline.core.contracts import RestoreCursor
from pipeline.core.lambda_runtime import LambdaContext, time_budget
from pipeline.restore import steps as restore


def handler(event: dict[str, Any], context: LambdaContext | None = None) -> RestoreCursor:
    return restore.restore_users(
        default_clients(),
        event["request"],
        event["target"],
        event["shard"],
        event["cursor"],
        budget_s=time_budget(context),
    )
