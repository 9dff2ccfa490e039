"""The state machines to deploy, from ``statemachines/*.asl.json``: one per file, tasks from its placeholders.

Adding an ASL file deploys a new machine with no infra change, as long as every task has a row in
infra.permissions and every other placeholder is a known setting.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.settings import InfraConfigError
from pipeline.core import task_names

PROJECT_ROOT = Path(__file__).resolve().parents[1]
STATEMACHINES_DIR = PROJECT_ROOT / "statemachines"
ASL_SUFFIX = ".asl.json"

# Placeholders that are not functions: the values the stack substitutes.
KNOWN_SETTINGS = frozenset({"BackupBucket", "KmsKeyArn", "BackupPrefix", "NotificationTopicArn"})
# ``${BackupStateMachineArn}`` names the machine deployed from backup.asl.json (a nested execution).
MACHINE_SUFFIX = "StateMachineArn"


@dataclass(frozen=True)
class MachineSpec:
    name: str
    path: Path
    tasks: tuple[str, ...]
    settings: tuple[str, ...]
    # Other machines this one starts, by file name (``backup`` for ``${BackupStateMachineArn}``).
    starts: tuple[str, ...] = ()
    # A DISTRIBUTED Map runs its items as child executions of this same machine.
    distributed: bool = False

    @property
    def state_machine_name(self) -> str:
        """Matches the local engine's ``cognito-backuper-<name>``."""
        return task_names.FUNCTION_PREFIX + self.name

    @property
    def construct_id(self) -> str:
        return "".join(p.capitalize() for p in self.name.replace("_", "-").split("-"))

    @property
    def placeholder(self) -> str:
        """How other ASL files refer to this machine's ARN."""
        return self.construct_id + MACHINE_SUFFIX


def _machine_name(placeholder: str) -> str:
    return task_names.module_name(placeholder[: -len(MACHINE_SUFFIX)]).replace("_", "-")


def read_machine(path: Path) -> MachineSpec:
    text = path.read_text(encoding="utf-8")
    found = task_names.placeholders(text)
    functions = task_names.function_placeholders(text)
    machines = {p for p in found if p.endswith(MACHINE_SUFFIX)}
    unknown = found - functions - machines - KNOWN_SETTINGS
    name = path.name[: -len(ASL_SUFFIX)]
    if unknown:
        raise InfraConfigError(
            f"{path.name}: no value for placeholders {', '.join(sorted(unknown))}; "
            "add them to infra.asl.KNOWN_SETTINGS and the stack's substitutions"
        )
    return MachineSpec(
        name=name,
        path=path,
        tasks=tuple(sorted(task_names.task_name(p) for p in functions)),
        settings=tuple(sorted(found - functions - machines)),
        starts=tuple(sorted(_machine_name(p) for p in machines)),
        distributed=_has_distributed_map(json.loads(text)),
    )


def _has_distributed_map(node: Any) -> bool:
    if isinstance(node, dict):
        if node.get("Mode") == "DISTRIBUTED":
            return True
        return any(_has_distributed_map(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_distributed_map(v) for v in node)
    return False


def discover(directory: Path = STATEMACHINES_DIR) -> list[MachineSpec]:
    """Every machine, each after the machines it starts (their ARNs must exist first)."""
    specs = {m.name: m for m in (read_machine(p) for p in sorted(directory.glob("*" + ASL_SUFFIX)))}
    if not specs:
        raise InfraConfigError(f"no *{ASL_SUFFIX} files in {directory}")
    ordered: list[MachineSpec] = []
    visiting: set[str] = set()

    def visit(name: str, via: str) -> None:
        if name not in specs:
            raise InfraConfigError(
                f"{via}{ASL_SUFFIX} starts a machine {name!r} but {name}{ASL_SUFFIX} is missing"
            )
        if any(m.name == name for m in ordered):
            return
        if name in visiting:
            raise InfraConfigError(f"state machines start each other in a cycle through {name}{ASL_SUFFIX}")
        visiting.add(name)
        for started in specs[name].starts:
            visit(started, name)
        visiting.discard(name)
        ordered.append(specs[name])

    for name in sorted(specs):
        visit(name, name)
    return ordered


def all_tasks(machines: list[MachineSpec]) -> list[str]:
    return sorted({t for m in machines for t in m.tasks})


def concurrent_cognito_tasks(specs: list[MachineSpec]) -> int:
    """The most tasks of one execution that can call Cognito at once: a Map multiplies its iterations' tasks
    by its MaxConcurrency, a Parallel adds its branches'. Each Lambda process rate-limits itself, so the
    account's share is divided by this (the local engine has one process and one budget, and divides nothing)."""
    return max(
        (_states_at_once(json.loads(spec.path.read_text(encoding="utf-8"))) for spec in specs), default=1
    )


def _states_at_once(machine: Mapping[str, Any]) -> int:
    return max((_tasks_at_once(state) for state in machine.get("States", {}).values()), default=0)


def _tasks_at_once(state: Mapping[str, Any]) -> int:
    kind = state.get("Type")
    if kind == "Task":
        return 1
    if kind == "Parallel":
        return sum(_states_at_once(branch) for branch in state["Branches"])
    if kind == "Map":
        inner = _states_at_once(state.get("ItemProcessor") or state.get("Iterator") or {})
        if not state.get("MaxConcurrency"):
            raise InfraConfigError(
                "every Map that reaches Cognito needs a MaxConcurrency, for the rate budget"
            )
        return int(state["MaxConcurrency"]) * inner
    return 0
