"""The embedded local engine: the project's ASL on moto's Step Functions interpreter, tasks as local handlers.

Importing this package does not import moto; entering a :class:`LocalEngine` does (the ``local`` extra).
"""

from __future__ import annotations

from pipeline.operator.local_engine.engine import ExecutionResult, LocalEngine
from pipeline.operator.local_engine.history import failure, state_timeline, task_outputs
from pipeline.operator.local_engine.lambda_endpoint import (
    Handler,
    LambdaContext,
    LambdaEndpoint,
    task_registry,
)

__all__ = [
    "ExecutionResult",
    "Handler",
    "LambdaContext",
    "LambdaEndpoint",
    "LocalEngine",
    "failure",
    "state_timeline",
    "task_outputs",
    "task_registry",
]
