"""IndexMemberships: one pass regrouping the backed-up memberships by their user's shard."""

from typing import Any

from pipeline import restore
from pipeline.aws import default_clients
from pipeline.contracts import IndexCursor
from pipeline.lambda_runtime import LambdaContext


def handler(event: dict[str, Any], context: LambdaContext | None = None) -> IndexCursor:
    return restore.index_memberships(default_clients(), event["request"], event["index"])
