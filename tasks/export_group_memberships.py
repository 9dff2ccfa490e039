"""ExportGroupMemberships: members of one slice of the groups, one encrypted part per invocation."""

from pipeline.backup import steps as backup
from pipeline.core.aws import default_clients
from pipeline.core.contracts import MembershipCursor, SliceState
from pipeline.core.lambda_runtime import LambdaContext, time_budget
from pipeline.core.metrics import MEMBERSHIPS_EXPORTED, emit, measured


@measured("ExportGroupMemberships")
def handler(event: SliceState, context: LambdaContext | None = None) -> MembershipCursor:
    cursor = backup.export_memberships(default_clients(), event, budget_s=time_budget(context))
    added = cursor["memberships"] - event["cursor"]["memberships"]
    emit(MEMBERSHIPS_EXPORTED, added, PoolId=event["job"]["poolId"])
    return cursor
