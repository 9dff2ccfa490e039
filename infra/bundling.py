"""Lambda packaging without Docker: pip installs the locked arm64 wheels for the Lambda Python, then our packages.

The wheels come from ``requirements/lambda.txt``, compiled from pyproject's base dependencies for the Lambda
platform with a hash per file (``make lock``); pip installs it with ``--require-hashes``, so a deployment gets
exactly the audited versions (``make audit``) and never a file that changed on the index.

CDK calls ``try_bundle`` only when the stack is being bundled (``cdk deploy``/``cdk synth``). Tests and quick
synths skip bundling with the context ``aws:cdk:bundling-stacks=[]`` (``cdk synth --no-staging`` does the same
through the CLI): the asset is then the source tree, never built and never uploaded.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import DockerImage, ILocalBundling

# What goes into the function package besides the third-party wheels.
PACKAGES = ("pipeline", "tasks", "statemachines")
# The operator side (CLI, engines, demo, seeding) never runs in a Lambda: it stays out of the asset and its hash.
OPERATOR_SIDE = ("pipeline/operator",)
_IGNORED = shutil.ignore_patterns(
    "__pycache__", "*.pyc", "*.pyo", ".mypy_cache", ".pytest_cache", ".ruff_cache"
)
# Lambda's Python runtimes run on Amazon Linux 2023 (glibc 2.34): these manylinux tags all load there.
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")

# The lock of the Lambda's third-party packages, relative to the project root.
LAMBDA_LOCK = "requirements/lambda.txt"
# What the lock is compiled for (uv's name for the platform of the PLATFORMS tags above).
LOCK_PLATFORM = "aarch64-manylinux_2_28"

# The asset's source is the project root; only these paths feed its hash, so editing tests or docs does not
# redeploy the functions.
ASSET_EXCLUDES = [
    "*",
    "!pyproject.toml",
    "!requirements",
    f"!{LAMBDA_LOCK}",
    *(f"!{p}" for p in PACKAGES),
    *(f"!{p}/**" for p in PACKAGES),
    *OPERATOR_SIDE,
    *(f"{p}/**" for p in OPERATOR_SIDE),
    "**/__pycache__",
    "**/*.pyc",
]


def runtime_dependencies(project_root: Path) -> list[str]:
    """The project's base dependencies (not the extras): exactly what the tasks import at run time."""
    with (project_root / "pyproject.toml").open("rb") as handle:
        deps = tomllib.load(handle)["project"]["dependencies"]
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise ValueError("pyproject.toml [project].dependencies must be a list of requirement strings")
    return list(deps)


def locked_requirements(project_root: Path) -> list[str]:
    """pip arguments that install the lock and nothing else: every file checked against its hash."""
    return ["--require-hashes", "--no-deps", "-r", str(project_root / LAMBDA_LOCK)]


def lock_command(python_version: str, output: str = LAMBDA_LOCK) -> list[str]:
    """uv compiles pyproject's base dependencies for the Lambda runtime, with hashes (run from the project root)."""
    return [
        sys.executable,
        "-m",
        "uv",
        "pip",
        "compile",
        "pyproject.toml",
        "--python-version",
        python_version,
        "--python-platform",
        LOCK_PLATFORM,
        "--generate-hashes",
        "--no-annotate",
        "--quiet",
        "-o",
        output,
    ]


def pip_command(target: Path, requirements: Sequence[str], python_version: str) -> list[str]:
    """Binary wheels only, for arm64 Lambda: pip never builds or runs foreign code for the wrong platform."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        "--disable-pip-version-check",
    ]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    command += [
        "--only-binary=:all:",
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "--target",
        str(target),
        *requirements,
    ]
    return command


def copy_packages(project_root: Path, target: Path) -> None:
    """The runtime side of our packages, without the operator side."""
    for package in PACKAGES:
        shutil.copytree(project_root / package, target / package, ignore=_IGNORED, dirs_exist_ok=True)
    for excluded in OPERATOR_SIDE:
        shutil.rmtree(target / excluded, ignore_errors=True)


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """Builds the shared function package in ``output_dir`` on this machine."""

    def __init__(self, project_root: Path, python_version: str) -> None:
        self._root = project_root
        self._python_version = python_version

    # The keyword-only signature mirrors ILocalBundling.tryBundle: jsii passes the options struct as keywords.
    def try_bundle(
        self,
        output_dir: str,
        *,
        image: DockerImage,
        bundling_file_access: Any = None,
        command: Any = None,
        entrypoint: Any = None,
        environment: Any = None,
        local: Any = None,
        network: Any = None,
        output_type: Any = None,
        platform: Any = None,
        security_opt: Any = None,
        user: Any = None,
        volumes: Any = None,
        volumes_from: Any = None,
        working_directory: Any = None,
    ) -> bool:
        target = Path(output_dir)
        requirements = locked_requirements(self._root)
        subprocess.run(pip_command(target, requirements, self._python_version), check=True)  # noqa: S603
        copy_packages(self._root, target)
        # Drop the caches pip leaves so the asset hash depends on the packages only.
        for cache in target.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        return True


def main() -> None:
    """``make lock``: recompile the lock for the runtime the functions are deployed with."""
    from infra.functions import PYTHON_VERSION

    subprocess.run(lock_command(PYTHON_VERSION), check=True)  # noqa: S603


if __name__ == "__main__":
    main()
