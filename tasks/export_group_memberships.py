"""ExportGroupMemberships: members of one slice of the groups, one encrypted part per invocation."""

from pipeline import backup
from pipeline.aws import default_clients
from pipeline.contracts import MembershipCursor, SliceState
from pipeline.lambda_runtime import LambdaContext, time_budget


def handler(event: SliceState, context: LambdaContext | None = None) -> MembershipCursor:
    return backup.export_memberships(default_clients(), event, budget_s=time_budget(context))
