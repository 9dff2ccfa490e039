"""The drill's CloudWatch metric, in the Embedded Metric Format (aws-lambda-powertools Metrics)."""

from __future__ import annotations

import json
import os
from typing import Any

from pipeline.core.lambda_runtime import logger

log = logger(__name__)

NAMESPACE = "CognitoBackuper"
SERVICE = "cognito-backuper"
DRILL_PASSED = "RestoreDrillPassed"
DRILL_DURATION = "RestoreDrillDurationSeconds"
DRILL_SAMPLE = "RestoreDrillSampleSize"
DRILL_METRICS = (DRILL_PASSED, DRILL_DURATION, DRILL_SAMPLE)


def emit_drill_metrics(pool_id: str, *, passed: bool, duration_s: float, sample_size: int) -> dict[str, Any]:
    """One EMF document per drill, dimension PoolId; returns it.

    In Lambda it goes to stdout, where CloudWatch turns it into metrics. Elsewhere (the local engine runs the
    tasks inside the CLI, whose stdout is the command's result) it goes to the debug log only.
    """
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
    metrics.add_dimension(name="PoolId", value=pool_id)
    metrics.add_metric(name=DRILL_PASSED, unit=MetricUnit.Count, value=1 if passed else 0)
    metrics.add_metric(name=DRILL_DURATION, unit=MetricUnit.Seconds, value=round(duration_s, 3))
    metrics.add_metric(name=DRILL_SAMPLE, unit=MetricUnit.Count, value=sample_size)
    document: dict[str, Any] = dict(metrics.serialize_metric_set())
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        metrics.flush_metrics()
    else:
        metrics.clear_metrics()
        log.debug("drill metrics %s", json.dumps(document))
    return document
