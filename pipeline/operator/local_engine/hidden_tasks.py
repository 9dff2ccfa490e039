"""Task results the local engine's history cannot show: those of states that run only inside a distributed Map.

On AWS each child of a distributed Map has its own execution history; moto runs the children but records no
history for them. The engine sees every Lambda result through its endpoint, so for those states it rebuilds the
state-exited event a child's history would hold: the state's input with the result at its ResultPath.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.core import task_names


@dataclass(frozen=True)
class HiddenTask:
    task: str  # the task's name, which is also how progress names its state (ExportUsers, VerifyBackup, ...)
    result_path: str | None


def _tasks(states: Mapping[str, Any], hidden: bool) -> Iterator[tuple[str, Mapping[str, Any], bool]]:
    for name, state in states.items():
        if state.get("Type") == "Task":
            yield name, state, hidden
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            distributed = (processor.get("ProcessorConfig") or {}).get("Mode") == "DISTRIBUTED"
            yield from _tasks(processor["States"], hidden or distributed)
        for branch in state.get("Branches", []):
            yield from _tasks(branch["States"], hidden)


def hidden_tasks(definition: Mapping[str, Any]) -> dict[str, HiddenTask]:
    """Function name -> task, for the functions whose every state runs inside a distributed Map.

    A function that also runs where the history shows it is left out, so that no result is counted twice."""
    found: dict[str, HiddenTask | None] = {}
    for _name, state, hidden in _tasks(definition["States"], False):
        placeholders = task_names.function_placeholders(json.dumps(state.get("Resource", "")))
        for placeholder in placeholders:
            task = task_names.task_name(placeholder)
            function = task_names.function_name(task)
            if not hidden:
                found[function] = None
            elif function not in found:
                found[function] = HiddenTask(task, state.get("ResultPath", "$"))
    return {function: task for function, task in found.items() if task is not None}


def hidden_task_event(found: HiddenTask, event: Mapping[str, Any], result: Any) -> dict[str, Any]:
    """The state-exited event a child execution's history would hold for this invocation."""
    path = found.result_path
    if path is None:
        output: Any = dict(event)
    elif path == "$":
        output = result
    else:
        output = dict(event)
        *parents, last = path.removeprefix("$.").split(".")
        node = output
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = result
    return {
        "type": "TaskStateExited",
        "stateExitedEventDetails": {"name": found.task, "output": json.dumps(output)},
    }
