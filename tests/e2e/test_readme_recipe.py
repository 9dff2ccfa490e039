"""The README's recipes, run exactly as written: the moto-server recipe (the block under 'a separately started moto
server') and the two-person restore (the block under 'The two-person restore, played')."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _recipe(marker: str = "a separately started moto server") -> str:
    """The first ``sh`` block after ``marker``."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index(marker)
    match = re.search(r"```sh\n(.*?)```", readme[start:], re.S)
    assert match, f"the README lost its recipe after {marker!r}"
    return match.group(1)


def _run(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """From a directory holding only ``.venv`` (the recipes' cwd is the repository root, where make created it)."""
    bash = shutil.which("bash")
    assert bash
    work = tmp_path / "repo"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [bash, "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_the_moto_server_recipe_backs_up_a_seeded_pool(tmp_path: Path) -> None:
    assert shutil.which("curl"), "the recipe waits for the server with curl"
    done = _run("set -e\ntrap 'kill %1 2>/dev/null || true' EXIT\n" + _recipe(), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    backup, end = json.JSONDecoder().raw_decode(done.stdout)  # backup --json, then list's text
    listed = done.stdout[end:]
    [uri] = [b["uri"] for b in backup["backups"]]
    assert f"{uri}  " in listed and "users=200" in listed, done.stdout


def test_the_two_person_restore_recipe_plays_a_verified_restore(tmp_path: Path) -> None:
    recipe = _recipe("The two-person restore, played")
    assert "demo --restore" in recipe
    done = _run("set -e\n" + recipe, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert [line.split()[1] for line in lines[:-1]] == [
        "seed",
        "backup",
        "restore",
        "self-approval",
        "approve",
        "restored",
        "report",
    ], done.stdout
    assert "refused (exit 1)" in lines[3] and "cannot approve" in lines[3]
    assert ":user/cognito-backuper-approver" in lines[4]
    assert "verification passed" in lines[5]
    assert lines[-1].startswith("two-person restore verified in ")
    # stderr shows each command as the person who ran it.
    assert "$ [approver] cognito-backuper approve rr-" in done.stderr
