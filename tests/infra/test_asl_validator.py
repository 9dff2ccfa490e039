"""The deployed state machine definitions pass an Amazon States Language validator (npm ``asl-validator``).

Moto's interpreter runs what it understands and ignores much of the rest; AWS refuses an invalid definition at
deploy time. So the definitions are checked as CloudFormation will send them: the synthesized template's
definition (its S3 asset) with the DefinitionSubstitutions applied, every reference to another resource replaced
by an ARN of that resource's kind.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.synth import Synth

ASL_DIR = Path(__file__).resolve().parents[1] / "asl"
VALIDATOR = ASL_DIR / "node_modules" / "asl-validator" / "dist" / "bin" / "asl-validator.js"
ACCOUNT, REGION = "123456789012", "us-east-1"
_ARN_OF_KIND = {
    "AWS::Lambda::Function": "arn:aws:lambda:{r}:{a}:function:{n}",
    "AWS::StepFunctions::StateMachine": "arn:aws:states:{r}:{a}:stateMachine:{n}",
    "AWS::SNS::Topic": "arn:aws:sns:{r}:{a}:{n}",
    "AWS::KMS::Key": "arn:aws:kms:{r}:{a}:key/{n}",
    "AWS::IAM::Role": "arn:aws:iam::{a}:role/{n}",
    "AWS::S3::Bucket": "arn:aws:s3:::{n}",
}


def _resolve(part: Any, resources: dict[str, Any]) -> str:
    if isinstance(part, str):
        return part
    if "Ref" in part:
        logical = part["Ref"]
        if logical == "AWS::Region":
            return REGION
        if logical == "AWS::AccountId":
            return ACCOUNT
        if logical == "AWS::Partition":
            return "aws"
        kind = resources[logical]["Type"]
        if kind in ("AWS::StepFunctions::StateMachine", "AWS::SNS::Topic"):  # Ref is the ARN for these
            return _ARN_OF_KIND[kind].format(r=REGION, a=ACCOUNT, n=logical.lower())
        return str(logical).lower()
    if "Fn::GetAtt" in part:
        logical, attribute = part["Fn::GetAtt"]
        if attribute != "Arn":
            return str(logical).lower()
        template = _ARN_OF_KIND[resources[logical]["Type"]]
        return template.format(r=REGION, a=ACCOUNT, n=logical.lower())
    raise AssertionError(f"unexpected intrinsic in a state machine definition: {part}")


def _definitions(synth: Synth) -> dict[str, str]:
    """Each machine's definition as Step Functions receives it: the asset file with its substitutions applied."""
    resources = synth.template["Resources"]
    found = {}
    for logical, machine in synth.resources("AWS::StepFunctions::StateMachine").items():
        props = machine["Properties"]
        body = (synth.outdir / f"asset.{props['DefinitionS3Location']['Key']}").read_text()
        for name, value in props.get("DefinitionSubstitutions", {}).items():
            body = body.replace("${" + name + "}", _resolve(value, resources))
        found[logical] = body
    return found


def _validate(definition: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "node (>= 18) is needed for the ASL validator: see the README's requirements"
    assert VALIDATOR.is_file(), f"{VALIDATOR} is missing: run `make asl-deps` (make test does it)"
    path = tmp_path / "definition.asl.json"
    path.write_text(definition)
    return subprocess.run(
        [node, str(VALIDATOR), "--json-path", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_deployed_definition_is_valid_asl(default_synth: Synth, tmp_path: Path) -> None:
    definitions = _definitions(default_synth)
    assert len(definitions) >= 2
    for logical, definition in definitions.items():
        assert "${" not in definition, f"{logical}: unsubstituted placeholder"
        done = _validate(definition, tmp_path)
        assert done.returncode == 0, f"{logical}: {done.stdout}{done.stderr}"


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda d: d["States"][d["StartAt"]].update(Next="NoSuchState"), id="dangling-next"),
        pytest.param(lambda d: d["States"][d["StartAt"]].update(Type="Taks"), id="unknown-type"),
    ],
)
def test_the_validator_refuses_a_broken_definition(
    default_synth: Synth, tmp_path: Path, break_it: Any
) -> None:
    definition = json.loads(next(iter(_definitions(default_synth).values())))
    break_it(definition)
    assert _validate(json.dumps(definition), tmp_path).returncode != 0
