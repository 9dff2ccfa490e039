"""The Lambda asset installs a hash-locked set of wheels that covers pyproject's runtime dependencies."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infra import bundling
from infra.functions import PYTHON_VERSION

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)")


def _lock_text() -> str:
    return (ROOT / bundling.LAMBDA_LOCK).read_text(encoding="utf-8")


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in _lock_text().splitlines():
        match = _PIN.match(line)
        if match:
            pins[canonicalize_name(match["name"])] = match["version"]
    return pins


def test_the_lock_pins_every_runtime_dependency_within_its_range() -> None:
    pins = _pins()
    for raw in bundling.runtime_dependencies(ROOT):
        requirement = Requirement(raw)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in {bundling.LAMBDA_LOCK}: run make lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{requirement.name}=={pins[name]} does not satisfy {raw}: run make lock"
        )


def test_every_pin_carries_a_hash() -> None:
    # Each requirement is one logical line: "name==version \" followed by its --hash lines.
    entries = re.split(r"\n(?=[A-Za-z0-9])", _lock_text())
    pinned = [e for e in entries if _PIN.match(e)]
    assert pinned
    for entry in pinned:
        assert "--hash=sha256:" in entry, entry.splitlines()[0]


def test_the_lock_is_compiled_for_the_lambda_runtime_and_platform() -> None:
    header = next(line for line in _lock_text().splitlines() if "uv pip compile" in line)
    recorded = shlex.split(header.lstrip("# "))
    command = bundling.lock_command(PYTHON_VERSION)
    # uv records its own arguments, without --quiet: a lock made for another Python or platform fails here.
    assert recorded == [a for a in command[command.index("uv") :] if a != "--quiet"]


def test_bundling_installs_only_the_lock_with_hashes(tmp_path: Path) -> None:
    command = bundling.pip_command(tmp_path, bundling.locked_requirements(ROOT), PYTHON_VERSION)
    assert "--require-hashes" in command
    assert "--no-deps" in command
    assert command[command.index("-r") + 1] == str(ROOT / bundling.LAMBDA_LOCK)
    assert "--only-binary=:all:" in command
    assert command[command.index("--python-version") + 1] == PYTHON_VERSION


def test_the_lock_is_part_of_the_asset_hash() -> None:
    assert f"!{bundling.LAMBDA_LOCK}" in bundling.ASSET_EXCLUDES
