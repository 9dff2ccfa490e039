"""ExportUsers: one encrypted part of one shard per invocation; returns the cursor the Choice loops on."""

from pipeline.backup import steps as backup
from pipeline.core.aws import default_clients
from pipeline.core.contracts import ShardState, UserCursor
from pipeline.core.lambda_runtime import LambdaContext, time_budget


def handler(event: ShardState, context: LambdaContext | None = None) -> UserCursor:
    return backup.export_users(default_clients(), event, budget_s=time_budget(context))
