"""Synthesizes the CDK app in-process, once per variant per session (jsii start-up and synth are slow).

The fixtures are registered for tests/infra by its conftest.py.

Bundling is skipped with the ``aws:cdk:bundling-stacks`` context, so nothing is built, downloaded or uploaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

OPTIONS: Mapping[str, Any] = {
    "enableTrail": True,
    "objectLockDays": 30,
    "notificationEmail": "ops@example.com",
    "backupPoolIds": ["us-east-1_AbC123", "us-east-1_XyZ789"],
    "pendingApprovalAlarmHours": 6,
    "pendingApprovalCheckMinutes": 30,
}


@dataclass(frozen=True)
class Synth:
    template: dict[str, Any]
    report: dict[str, Any]
    outdir: Path
    error: str | None

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.template["Resources"].items() if r["Type"] == kind}

    def violations(self) -> list[tuple[str, str, str]]:
        found = []
        for plugin in self.report["pluginReports"]:
            for violation in plugin["violations"]:
                for res in violation["violatingResources"]:
                    found.append((violation["severity"], violation["ruleName"], res["constructPath"]))
        return found


def synth(outdir: Path, context: Mapping[str, Any]) -> Synth:
    from infra.app import SKIP_BUNDLING, STACK_NAME, build_app

    app, _stack = build_app(
        {**SKIP_BUNDLING, "@aws-cdk/core:validationReportJson": True, **context}, outdir=str(outdir)
    )
    error = None
    try:
        app.synth()
    except Exception as exc:  # noqa: BLE001 - a failed validation is reported and asserted on below
        error = str(exc)
    template = json.loads((outdir / f"{STACK_NAME}.template.json").read_text())
    report = json.loads((outdir / "policy-validation-report.json").read_text())
    return Synth(template=template, report=report, outdir=outdir, error=error)


@pytest.fixture(scope="session")
def default_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(tmp_path_factory.mktemp("cdk-default"), {})


@pytest.fixture(scope="session")
def options_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(tmp_path_factory.mktemp("cdk-options"), OPTIONS)


@pytest.fixture(params=["default", "options"])
def any_synth(request: pytest.FixtureRequest) -> Synth:
    fixture: Synth = request.getfixturevalue(f"{request.param}_synth")
    return fixture


def statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc.get("Statement", []))


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_documents(template: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every policy document in the template: (logical id, kind, document)."""
    docs: list[tuple[str, str, dict[str, Any]]] = []
    for lid, res in template["Resources"].items():
        props = res.get("Properties", {})
        kind = res["Type"]
        if kind == "AWS::IAM::Policy":
            docs.append((lid, kind, props["PolicyDocument"]))
        elif kind == "AWS::IAM::Role":
            docs.append((lid, "trust", props["AssumeRolePolicyDocument"]))
            docs.extend((lid, kind, p["PolicyDocument"]) for p in props.get("Policies", []))
        elif kind in {"AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy"}:
            docs.append((lid, kind, props["PolicyDocument"]))
        elif kind == "AWS::KMS::Key":
            docs.append((lid, kind, props["KeyPolicy"]))
    return docs


def role_name_of(res: dict[str, Any]) -> str | None:
    """A role's name as deployed in any Region: ``<stack>-{Region}-<suffix>`` (infra.naming)."""
    name = res["Properties"].get("RoleName")
    if isinstance(name, dict) and "Fn::Join" in name:
        sep, parts = name["Fn::Join"]
        return str(sep).join("{Region}" if p == {"Ref": "AWS::Region"} else str(p) for p in parts)
    return name if isinstance(name, str) else None


def flatten(value: Any) -> str:
    """A CloudFormation string built with Fn::Join, with its pseudo-parameters and references as markers."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return str(sep).join(flatten(p) for p in parts)
    if isinstance(value, dict) and "Ref" in value:
        return "{" + str(value["Ref"]) + "}"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "{" + ".".join(value["Fn::GetAtt"]) + "}"
    return json.dumps(value)
