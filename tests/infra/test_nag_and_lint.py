"""cdk-nag AwsSolutions and cfn-lint on the synthesized app: no unacknowledged finding, no template error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.synth import Synth

# CDK itself adds DependsOn on a role next to a GetAtt of the same role (functions, state machines).
CDK_OWN_WARNINGS = {"W3005"}


def test_cdk_nag_has_no_unacknowledged_findings(any_synth: Synth) -> None:
    assert any_synth.violations() == []
    assert any_synth.error is None


def test_every_acknowledgment_has_a_precise_reason(default_synth: Synth) -> None:
    metadata = json.loads((default_synth.outdir / "CognitoBackuperStack.metadata.json").read_text())
    reasons: dict[str, str] = {}
    for path, entries in metadata.items():
        for entry in entries:
            if entry["type"] == "aws:cdk:acknowledged-rules":
                for rule, reason in entry["data"].items():
                    reasons[f"{path} {rule}"] = reason
    assert reasons, "expected acknowledgments on the task roles"
    for key, reason in reasons.items():
        assert "AwsSolutions-IAM5[" in key, key  # granular: one finding, never a whole rule
        assert len(reason) > 60, key


def test_nag_detects_a_violation_in_a_control_stack(tmp_path: Path) -> None:
    """Negative control: the same plugin wiring fails an unencrypted, unlogged bucket."""
    from aws_cdk import App, Stack, Validations
    from aws_cdk import aws_s3 as s3
    from cdk_nag import AwsSolutionsChecks

    app = App(outdir=str(tmp_path), context={"@aws-cdk/core:validationReportJson": True})
    stack = Stack(app, "Control")
    s3.Bucket(stack, "Plain")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "policy-validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules


def test_cfn_lint_reports_no_errors(any_synth: Synth) -> None:
    from cfnlint.api import lint_all  # type: ignore[import-untyped]

    matches = lint_all(json.dumps(any_synth.template))
    errors = [f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("E")]
    warnings = [f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("W")]
    assert errors == []
    assert [w for w in warnings if w.split()[0] not in CDK_OWN_WARNINGS] == []
