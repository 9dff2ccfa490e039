"""Every task's event and result (or error) during a local-engine run: the payloads that cross state boundaries.

A distributed Map's child executions have their own histories; moto's interpreter does not expose them, so
what the states inside BackupEachPool carried is observed where it passes: at the task handlers.
"""

from __future__ import annotations

import importlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from pipeline.core import task_names


@dataclass
class TaskPayloads:
    calls: list[tuple[str, Any, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, task: str) -> list[tuple[Any, Any]]:
        return [(event, result) for name, event, result in self.calls if name == task]

    def dump(self) -> bytes:
        return json.dumps([[n, e, r] for n, e, r in self.calls], default=str).encode()


def record_tasks(monkeypatch: pytest.MonkeyPatch, asl_texts: list[str]) -> TaskPayloads:
    """Wraps ``tasks.<module>.handler`` of every task of these definitions; the engine imports them at deploy."""
    payloads = TaskPayloads()
    for text in asl_texts:
        for placeholder in task_names.function_placeholders(text):
            task = task_names.task_name(placeholder)
            module = importlib.import_module(f"tasks.{task_names.module_name(task)}")
            original = module.handler

            def wrapped(event: Any, context: Any = None, _task: str = task, _original: Any = original) -> Any:
                try:
                    result = _original(event, context)
                except Exception as exc:
                    with payloads._lock:
                        payloads.calls.append(
                            (_task, event, {"errorType": type(exc).__name__, "cause": str(exc)})
                        )
                    raise
                with payloads._lock:
                    payloads.calls.append((_task, event, result))
                return result

            monkeypatch.setattr(module, "handler", wrapped)
    return payloads
