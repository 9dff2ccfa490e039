"""DrillIndexMemberships: the restore's IndexMemberships, for the drill's request."""

from typing import Any

from pipeline.core.aws import default_clients
from pipeline.core.contracts import IndexCursor
from pipeline.core.lambda_runtime import LambdaContext
from pipeline.restore import steps as restore


def handler(event: dict[str, Any], context: LambdaContext | None = None) -> IndexCursor:
    return restore.index_memberships(default_clients(), event["request"], event["index"])
