"""RestoreMemberships: adds the backed-up memberships the target lacks; finalizes a new pool when done."""

from typing import Any

from pipeline import restore
from pipeline.aws import default_clients
from pipeline.contracts import MembershipRestoreCursor
from pipeline.lambda_runtime import LambdaContext, time_budget


def handler(event: dict[str, Any], context: LambdaContext | None = None) -> MembershipRestoreCursor:
    return restore.restore_memberships(
        default_clients(),
        event["request"],
        event["target"],
        event["memberships"],
        budget_s=time_budget(context),
    )
