"""The naming contract between ASL placeholders, task modules and deployed functions.

``${ExportUsersFunctionArn}`` in an ASL file is served by ``tasks/export_users.py`` (``handler``), deployed as the
function ``cognito-backuper-export-users``. The CDK app, the local engine and the contract tests all derive names here.
"""

from __future__ import annotations

import re

FUNCTION_SUFFIX = "FunctionArn"
FUNCTION_PREFIX = "cognito-backuper-"
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def placeholders(asl_text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(asl_text))


def function_placeholders(asl_text: str) -> set[str]:
    return {p for p in placeholders(asl_text) if p.endswith(FUNCTION_SUFFIX)}


def task_name(placeholder: str) -> str:
    """``ExportUsersFunctionArn`` -> ``ExportUsers``."""
    if not placeholder.endswith(FUNCTION_SUFFIX):
        raise ValueError(f"not a function placeholder: {placeholder}")
    return placeholder[: -len(FUNCTION_SUFFIX)]


def module_name(task: str) -> str:
    """``ExportUsers`` -> ``export_users`` (the module under ``tasks``)."""
    return _CAMEL.sub("_", task).lower()


def function_name(task: str) -> str:
    """``ExportUsers`` -> ``cognito-backuper-export-users``."""
    return FUNCTION_PREFIX + module_name(task).replace("_", "-")


def substitute(asl_text: str, values: dict[str, str]) -> str:
    """Fill every ``${Placeholder}``; a missing value is an error, never a silent leftover."""
    missing = placeholders(asl_text) - set(values)
    if missing:
        raise KeyError(f"no value for placeholders: {', '.join(sorted(missing))}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], asl_text)
