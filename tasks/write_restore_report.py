"""WriteRestoreReport: the sealed report (with the old-to-new id map) and the outcome's audit record."""

from typing import Any

from pipeline import restore
from pipeline.aws import default_clients
from pipeline.contracts import RestoreReportSummary
from pipeline.lambda_runtime import LambdaContext


def handler(event: dict[str, Any], context: LambdaContext | None = None) -> RestoreReportSummary:
    return restore.write_report(default_clients(), event)
