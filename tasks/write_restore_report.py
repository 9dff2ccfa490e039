"""WriteRestoreReport: the sealed report (with the old-to-new id map) and the outcome's audit record."""

from typing import Any

from pipeline.core.aws import default_clients
from pipeline.core.contracts import RestoreReportSummary
from pipeline.core.lambda_runtime import LambdaContext
from pipeline.core.metrics import measured
from pipeline.restore import steps as restore


@measured("WriteRestoreReport")
def handler(event: dict[str, Any], context: LambdaContext | None = None) -> RestoreReportSummary:
    return restore.write_report(default_clients(), event)
