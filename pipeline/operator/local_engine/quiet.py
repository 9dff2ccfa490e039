"""Keep moto's Step Functions interpreter off the console.

The interpreter logs every caught state error at ERROR (``Exception=FailureEventException ... at '<x>'``)
and other chatter at WARNING; with no logging configured, Python's last-resort handler prints them, mixing
with the CLI's output. A Catch that handles an error is normal flow here, so these become DEBUG records of
``pipeline.operator.local_engine.interpreter``. The text can hold state payloads (descriptors only, by the pipeline's
rules), so it stays at DEBUG and is never raised above.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

INTERPRETER_LOGGER = "moto.stepfunctions.parser"
TARGET = logging.getLogger("pipeline.operator.local_engine.interpreter")


class _Demote(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if TARGET.isEnabledFor(logging.DEBUG):
            TARGET.debug("[%s] %s", record.levelname, record.getMessage())


@contextmanager
def interpreter_logs_demoted() -> Iterator[None]:
    source = logging.getLogger(INTERPRETER_LOGGER)
    handler = _Demote()
    saved_propagate = source.propagate
    source.addHandler(handler)
    # Child loggers (one per interpreter module) propagate here and stop: nothing reaches the root handlers.
    source.propagate = False
    try:
        yield
    finally:
        source.removeHandler(handler)
        source.propagate = saved_propagate
