"""What the Lambda asset holds: the runtime side of the packages, and tasks that import with only its dependencies."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker

from infra.bundling import OPERATOR_SIDE, copy_packages, runtime_dependencies

ROOT = Path(__file__).resolve().parents[2]


def _dependency_closure(requirements: list[str]) -> set[str]:
    """Distribution names reachable from the runtime requirements (extras and markers that do not apply skipped)."""
    seen: set[str] = set()
    pending = [re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0] for r in requirements]
    while pending:
        name = pending.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for req in metadata.requires(name) or []:
            if ";" in req and "extra ==" in req.split(";", 1)[1]:
                continue
            if ";" in req and not Marker(req.split(";", 1)[1]).evaluate():
                continue
            pending.append(re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0])
    return seen


def _runtime_top_level_modules() -> set[str]:
    closure = _dependency_closure(runtime_dependencies(ROOT))
    return {
        module
        for module, dists in metadata.packages_distributions().items()
        if any(d.lower().replace("_", "-") in closure for d in dists)
    }


def test_asset_has_no_operator_module(tmp_path: Path) -> None:
    copy_packages(ROOT, tmp_path)
    shipped = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.py")}
    assert "tasks/export_users.py" in shipped
    assert "pipeline/backup/steps.py" in shipped
    leaked = sorted(p for p in shipped for side in OPERATOR_SIDE if p.startswith(side + "/"))
    assert leaked == []
    assert (tmp_path / "pipeline/sealing/schemas/manifest.schema.json").is_file()


def test_no_shipped_module_imports_the_operator_side_even_lazily(tmp_path: Path) -> None:
    """An import inside a function escapes the import test below until that code runs on Lambda: read them all."""
    copy_packages(ROOT, tmp_path)
    operator_modules = tuple(side.replace("/", ".") for side in OPERATOR_SIDE)
    found = []
    for path in sorted(tmp_path.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            found += [
                f"{path.relative_to(tmp_path)}:{node.lineno} {name}"
                for name in names
                if name.startswith(operator_modules)
            ]
    assert found == []


def test_every_task_imports_with_only_runtime_dependencies(tmp_path: Path) -> None:
    copy_packages(ROOT, tmp_path)
    allowed = sorted(_runtime_top_level_modules() | {"pipeline", "tasks", "statemachines"})
    assert {"boto3", "botocore", "cryptography", "jsonschema"} <= set(allowed)
    # A fresh interpreter that sees the asset first and refuses any third-party module outside the runtime
    # closure (moto, aws_cdk, ...): what a Lambda with only the asset's wheels would do.
    probe = f"""
import importlib, importlib.abc, json, pkgutil, sys
ALLOWED = set({allowed!r})
STDLIB = set(sys.stdlib_module_names)
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        if top in STDLIB or top in ALLOWED or top.startswith("_"):
            return None
        raise ModuleNotFoundError(f"not a runtime dependency: {{name}}")
sys.meta_path.insert(0, Refuse())
import tasks
names = [m.name for m in pkgutil.iter_modules(tasks.__path__, "tasks.")]
for name in names:
    module = importlib.import_module(name)
    assert callable(module.handler), name
import pipeline
print(json.dumps({{"tasks": names, "modules": sorted(sys.modules), "pipeline": pipeline.__file__}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert Path(result["pipeline"]).is_relative_to(tmp_path)
    assert len(result["tasks"]) == len(list((ROOT / "tasks").glob("[a-z]*.py")))
    loaded_from_asset = [m for m in result["modules"] if m.split(".")[0] in {"pipeline", "tasks"}]
    assert loaded_from_asset
    assert not [m for m in loaded_from_asset if m.startswith("pipeline.operator")]
