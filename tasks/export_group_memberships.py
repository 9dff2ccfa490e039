"""ExportGroupMemberships: members of one slice of the groups, one encrypted part per invocation."""

from pipeline.backup import steps as backup
from pipeline.core.aws import default_clients
from pipeline.core.contracts import MembershipCursor, SliceState
from pipeline.core.lambda_runtime import LambdaContext, time_budget


def handler(event: SliceState, context: LambdaContext | None = None) -> MembershipCursor:
    return backup.export_memberships(default_clients(), event, budget_s=time_budget(context))
