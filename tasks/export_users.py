"""ExportUsers: one encrypted part of one shard per invocation; returns the cursor the Choice loops on."""

from pipeline.backup import steps as backup
from pipeline.core.aws import default_clients
from pipeline.core.contracts import ShardState, UserCursor
from pipeline.core.lambda_runtime import LambdaContext, time_budget
from pipeline.core.metrics import USERS_EXPORTED, emit, measured


@measured("ExportUsers")
def handler(event: ShardState, context: LambdaContext | None = None) -> UserCursor:
    cursor = backup.export_users(default_clients(), event, budget_s=time_budget(context))
    emit(USERS_EXPORTED, cursor["users"] - event["cursor"]["users"], PoolId=event["job"]["poolId"])
    return cursor
