"""CDK entry point: ``cdk synth`` / ``cdk deploy`` run ``python -m infra.app`` (see cdk.json)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from infra.asl import PROJECT_ROOT
from infra.settings import settings_from_context
from infra.stack import CognitoBackuperStack

STACK_NAME = "CognitoBackuperStack"
# Context that skips asset bundling: the functions' package is neither built nor uploaded (tests, quick
# synths).
SKIP_BUNDLING: Mapping[str, Any] = {"aws:cdk:bundling-stacks": []}


def cdk_json_context(path: Path = PROJECT_ROOT / "cdk.json") -> dict[str, Any]:
    context = json.loads(path.read_text(encoding="utf-8")).get("context", {})
    if not isinstance(context, dict):
        raise ValueError(f"{path}: 'context' must be an object")
    return context


def build_app(
    context: Mapping[str, Any] | None = None, *, outdir: str | None = None
) -> tuple[App, CognitoBackuperStack]:
    """The app with cdk-nag's AwsSolutions checks; ``context`` overrides cdk.json (tests pass it in-process).

    None reads the context from the CDK CLI (``cdk synth``), which already includes cdk.json.
    """
    merged = {**cdk_json_context(), **(context or {})} if context is not None else None
    app = App(context=merged, outdir=outdir) if merged is not None else App(outdir=outdir)
    settings = settings_from_context(app.node.try_get_context)
    account, region = os.environ.get("CDK_DEFAULT_ACCOUNT"), os.environ.get("CDK_DEFAULT_REGION")
    env = Environment(account=account, region=region) if account and region else None
    stack = CognitoBackuperStack(
        app,
        STACK_NAME,
        settings=settings,
        env=env,
        description="cognito-backuper: encrypted, verified backups of Amazon Cognito user pools",
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return app, stack


def main() -> None:
    app, _ = build_app()
    app.synth()


if __name__ == "__main__":
    main()
