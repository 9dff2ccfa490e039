"""IndexMemberships: one pass regrouping the backed-up memberships by their user's shard."""

from typing import Any

from pipeline.core.aws import default_clients
from pipeline.core.contracts import IndexCursor
from pipeline.core.lambda_runtime import LambdaContext
from pipeline.core.metrics import measured
from pipeline.restore import steps as restore


@measured("IndexMemberships")
def handler(event: dict[str, Any], context: LambdaContext | None = None) -> IndexCursor:
    return restore.index_memberships(default_clients(), event["request"], event["index"])
