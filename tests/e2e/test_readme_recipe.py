"""The README's moto-server recipe, run exactly as written (the block under 'a separately started moto server')."""

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


def _recipe() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("a separately started moto server")
    match = re.search(r"```sh\n(.*?)```", readme[start:], re.S)
    assert match, "the README lost its moto-server recipe"
    return match.group(1)


def test_the_moto_server_recipe_backs_up_a_seeded_pool(tmp_path: Path) -> None:
    assert shutil.which("curl"), "the recipe waits for the server with curl"
    bash = shutil.which("bash")
    assert bash
    work = tmp_path / "repo"
    work.mkdir()
    # The recipe runs from the repository root, where make created .venv; run it in a copy's cwd with that venv.
    (work / ".venv").symlink_to(Path(sys.prefix))
    script = "set -e\ntrap 'kill %1 2>/dev/null || true' EXIT\n" + _recipe()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(
        [bash, "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    backup, end = json.JSONDecoder().raw_decode(done.stdout)  # backup --json, then list's text
    listed = done.stdout[end:]
    [uri] = [b["uri"] for b in backup["backups"]]
    assert f"{uri}  " in listed and "users=200" in listed, done.stdout
