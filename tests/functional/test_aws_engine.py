"""AWS mode: AwsEngine drives a machine it did not deploy, through the Step Functions API only.

The local engine stands in for AWS: it deploys the backup machine into moto's Step Functions, and AwsEngine
finds it (stack outputs, the env override, or a CloudFormation stack in moto), checks its settings and follows
it. moto returns the whole history in one page, so a thin client wrapper pages it with nextToken as AWS does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest

from pipeline.core.aws import make_clients
from pipeline.core.errors import EngineError, InvalidRequest
from pipeline.operator import demo, seed
from pipeline.operator.aws_engine import (
    STACK_NAME,
    AwsEngine,
    console_url,
    deployed_values,
    env_override,
    output_name,
    stack_found,
)
from pipeline.operator.cli import main
from pipeline.operator.local_engine import LocalEngine
from pipeline.operator.progress import MAP_RUN_PROGRESS
from pipeline.operator.runs import run_backup

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def _fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv(env_override("backup"), raising=False)
    monkeypatch.delenv(env_override("restore"), raising=False)


class PagedHistory:
    """Step Functions as AWS pages it: at most ``page`` events per GetExecutionHistory, then a nextToken."""

    def __init__(self, sfn: Any, page: int) -> None:
        self._sfn = sfn
        self.page = page
        self.history_calls: list[str | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sfn, name)

    def get_execution_history(self, **kwargs: Any) -> dict[str, Any]:
        token = kwargs.get("nextToken")
        self.history_calls.append(token)
        events = self._sfn.get_execution_history(executionArn=kwargs["executionArn"])["events"]
        start = int(token) if token else 0
        assert kwargs.get("maxResults", 1000) <= 1000
        result: dict[str, Any] = {"events": events[start : start + self.page]}
        if start + self.page < len(events):
            result["nextToken"] = str(start + self.page)
        return result


@pytest.fixture
def world() -> Iterator[tuple[LocalEngine, dict[str, str], str]]:
    """A deployed backup machine and a small seeded pool, all in the embedded account."""
    with LocalEngine(embedded=True) as engine:
        clients = make_clients()
        account = demo.prepare_account(clients)
        pool = seed.seed_pool(boto3.client("cognito-idp"), users=25, seed=5)
        storage: dict[str, str] = {k: str(v) for k, v in account.storage.items()}
        substitutions = {
            "BackupBucket": storage["bucket"],
            "KmsKeyArn": storage["kmsKeyArn"],
            "BackupPrefix": storage["prefix"],
        }
        arn = engine.deploy("backup", substitutions)
        yield engine, {**storage, "arn": arn}, pool.pool_id


def _storage(values: dict[str, str]) -> Any:
    return {"bucket": values["bucket"], "kmsKeyArn": values["kmsKeyArn"], "prefix": values["prefix"]}


def test_backup_runs_through_the_aws_engine_paging_history_and_feeding_every_event(
    world: tuple[LocalEngine, dict[str, str], str],
) -> None:
    engine, deployed, pool_id = world
    sfn = PagedHistory(engine.stepfunctions, page=5)  # the pool's states are in its child: about 20 events
    started: list[str] = []
    aws = AwsEngine(
        sfn=sfn,  # type: ignore[arg-type]
        region=engine.region,
        outputs=lambda: {output_name("backup"): deployed["arn"]},
        on_start=started.append,
        # A short real pause between polls: a no-op sleep spins on the history and starves the running machine.
        sleep=lambda _s: time.sleep(0.05),
    )
    events: list[dict[str, Any]] = []
    outcome = run_backup(
        aws,
        storage=_storage(deployed),
        pool_ids=[pool_id],
        all_pools=False,
        on_event=events.append,
        timeout_s=600,
    )
    assert outcome.succeeded, outcome.message
    (backup,) = outcome.backups
    assert backup["verified"] is True and backup["users"] == 25
    assert started == [outcome.execution_arn]

    # Every event exactly once, in order, although the history came in pages of 5.
    full = engine.history(outcome.execution_arn)
    history = [e for e in events if e["type"] != MAP_RUN_PROGRESS]
    assert [e["id"] for e in history] == [e["id"] for e in full]
    assert len(full) > 3 * sfn.page
    assert any(token is not None for token in sfn.history_calls), "follow never asked for a next page"
    assert history[-1]["type"] == "ExecutionSucceeded"
    # After each poll, the Map Runs' item counts (DescribeMapRun) go to the tracker too.
    runs = [e["mapRunProgressDetails"] for e in events if e["type"] == MAP_RUN_PROGRESS]
    assert runs and runs[-1]["label"] == "BackupPools" and runs[-1]["total"] == 1


def test_follow_resumes_from_the_last_page_instead_of_rereading_the_history(
    world: tuple[LocalEngine, dict[str, str], str],
) -> None:
    engine, deployed, pool_id = world
    sfn = PagedHistory(engine.stepfunctions, page=5)
    aws = AwsEngine(sfn=sfn, region=engine.region)  # type: ignore[arg-type]
    execution = aws.start(
        deployed["arn"], {"poolIds": [pool_id], "allPools": False}, name="resume-from-last-page"
    )
    result = aws.follow(execution, timeout_s=600, poll_s=0.05)
    assert result.status == "SUCCEEDED"
    total = len(engine.history(execution))
    assert result.events == total
    # Once a page came back full (with a nextToken), no poll reads the history from the start again: each one
    # resumes from the token of the last, still growing page.
    first_full = next(i for i, token in enumerate(sfn.history_calls) if token is not None)
    assert None not in sfn.history_calls[first_full:]
    assert result.history_pages == len(sfn.history_calls)


def test_env_override_finds_the_machine_without_a_stack(
    world: tuple[LocalEngine, dict[str, str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, deployed, _ = world
    monkeypatch.setenv(env_override("backup"), deployed["arn"])

    def no_stack() -> dict[str, str]:
        raise AssertionError("the override must be used before any stack lookup")

    aws = AwsEngine(sfn=engine.stepfunctions, region=engine.region, outputs=no_stack)
    substitutions = {
        "BackupBucket": deployed["bucket"],
        "KmsKeyArn": deployed["kmsKeyArn"],
        "BackupPrefix": deployed["prefix"],
    }
    assert aws.deploy("backup", substitutions) == deployed["arn"]


@pytest.mark.parametrize(
    ("setting", "value"),
    [("BackupBucket", "someone-elses-bucket"), ("BackupPrefix", "elsewhere"), ("KmsKeyArn", "alias/other")],
)
def test_settings_that_differ_from_the_deployed_machine_are_refused(
    world: tuple[LocalEngine, dict[str, str], str], setting: str, value: str
) -> None:
    engine, deployed, _ = world
    aws = AwsEngine(
        sfn=engine.stepfunctions,
        region=engine.region,
        outputs=lambda: {output_name("backup"): deployed["arn"]},
        resolve_key=lambda key: "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000",
    )
    substitutions = {
        "BackupBucket": deployed["bucket"],
        "KmsKeyArn": deployed["kmsKeyArn"],
        "BackupPrefix": deployed["prefix"],
        setting: value,
    }
    with pytest.raises(InvalidRequest, match=setting) as refused:
        aws.deploy("backup", substitutions)
    assert value in str(refused.value) and "fixed when the stack is deployed" in str(refused.value)


def test_a_key_id_or_alias_matches_the_deployed_key_arn(
    world: tuple[LocalEngine, dict[str, str], str],
) -> None:
    engine, deployed, _ = world
    clients = make_clients()
    key_arn = deployed["kmsKeyArn"]
    clients.kms.create_alias(AliasName="alias/cognito-backuper-test", TargetKeyId=key_arn)
    aws = AwsEngine(
        clients,
        sfn=engine.stepfunctions,
        outputs=lambda: {output_name("backup"): deployed["arn"]},
    )
    base = {"BackupBucket": deployed["bucket"], "BackupPrefix": deployed["prefix"] + "/"}
    key_id = key_arn.rsplit("/", 1)[1]
    for key in (key_arn, key_id, "alias/cognito-backuper-test"):
        assert aws.deploy("backup", {**base, "KmsKeyArn": key}) == deployed["arn"]


def test_a_stack_without_the_machine_output_is_refused(
    world: tuple[LocalEngine, dict[str, str], str],
) -> None:
    engine, _, _ = world
    aws = AwsEngine(sfn=engine.stepfunctions, region=engine.region, outputs=lambda: {"Other": "x"})
    with pytest.raises(InvalidRequest, match="BackupStateMachineArn"):
        aws.deploy("backup", {})


def test_a_missing_machine_is_refused(world: tuple[LocalEngine, dict[str, str], str]) -> None:
    engine, deployed, _ = world
    gone = deployed["arn"].replace(":cognito-backuper-backup", ":cognito-backuper-gone")
    aws = AwsEngine(
        sfn=engine.stepfunctions, region=engine.region, outputs=lambda: {output_name("backup"): gone}
    )
    with pytest.raises(InvalidRequest, match="does not exist"):
        aws.deploy("backup", {})


def test_follow_has_a_deadline(world: tuple[LocalEngine, dict[str, str], str]) -> None:
    engine, deployed, pool_id = world
    ticks = iter(range(0, 10_000, 100))
    aws = AwsEngine(
        sfn=engine.stepfunctions,
        region=engine.region,
        sleep=lambda _s: None,
        clock=lambda: float(next(ticks)),
    )
    execution = aws.start(deployed["arn"], {"poolIds": [pool_id], "allPools": False})
    with pytest.raises(EngineError, match="still running"):
        aws.follow(execution, timeout_s=150)
    # Let it end before the mock does (the local engine only stops executions it started itself).
    patient = AwsEngine(sfn=engine.stepfunctions, region=engine.region)
    assert patient.follow(execution, timeout_s=300, poll_s=0.05).status == "SUCCEEDED"


def _create_stack(outputs: dict[str, str]) -> None:
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(StackName=STACK_NAME, TemplateBody=json.dumps(template))


def test_stack_discovery_through_cloudformation(world: tuple[LocalEngine, dict[str, str], str]) -> None:
    engine, deployed, _ = world
    clients = make_clients()
    assert stack_found(clients) is False
    _create_stack({output_name("backup"): deployed["arn"], "BackupBucketName": deployed["bucket"]})
    assert stack_found(clients) is True
    aws = AwsEngine(clients, sfn=engine.stepfunctions)
    substitutions = {
        "BackupBucket": deployed["bucket"],
        "KmsKeyArn": deployed["kmsKeyArn"],
        "BackupPrefix": deployed["prefix"],
    }
    assert aws.deploy("backup", substitutions) == deployed["arn"]
    assert stack_found(clients, stack_name="SomeOtherStack") is False


def test_cli_backup_in_aws_mode_prints_the_console_url(
    world: tuple[LocalEngine, dict[str, str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, deployed, pool_id = world
    _create_stack({output_name("backup"): deployed["arn"]})
    argv = [
        "backup",
        "--pool-id",
        pool_id,
        "--bucket",
        deployed["bucket"],
        "--kms-key",
        deployed["kmsKeyArn"],
    ]
    # No --engine: the deployed stack is found, so the CLI runs the deployed machine.
    assert main([*argv, "--prefix", deployed["prefix"], "--json", "--quiet"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["status"] == "SUCCEEDED" and out["backups"][0]["verified"] is True
    assert console_url(out["executionArn"]) in captured.err
    assert out["executionArn"].startswith(deployed["arn"].replace(":stateMachine:", ":execution:"))

    assert main([*argv, "--prefix", "other", "--engine", "aws", "--quiet"]) == 2
    assert "fixed when the stack is deployed" in capsys.readouterr().err


def test_console_url_shape() -> None:
    arn = "arn:aws:states:eu-west-1:123456789012:execution:cognito-backuper-backup:abc"
    assert console_url(arn) == (
        "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/" + arn
    )
    assert AwsEngine(sfn=object(), region="eu-west-1").console_url(arn) == console_url(arn)  # type: ignore[arg-type]


def test_serve_api_is_a_no_op_on_aws() -> None:
    aws = AwsEngine(sfn=object(), region=REGION)  # type: ignore[arg-type]
    aws.serve_api()  # returns nothing and starts nothing
    with aws as entered:
        assert entered is aws


def test_deployed_values_walks_the_template_and_definition_in_step() -> None:
    template = {"A": {"bucket": "${BackupBucket}", "list": ["${X}", 1]}, "B": "${KmsKeyArn}", "C": "${Gone}"}
    deployed = {"A": {"bucket": "b1", "list": ["x", 1]}, "B": "k"}
    assert deployed_values(template, deployed) == {"BackupBucket": {"b1"}, "X": {"x"}, "KmsKeyArn": {"k"}}


def test_stack_name_matches_the_cdk_app() -> None:
    app = pytest.importorskip("infra.app")
    assert app.STACK_NAME == STACK_NAME


def test_stack_found_is_false_without_permission(monkeypatch: pytest.MonkeyPatch) -> None:
    class Refusing:
        def describe_stacks(self, **_: Any) -> Any:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "no"}}, "DescribeStacks"
            )

    import pipeline.operator.aws_engine as module

    monkeypatch.setattr(module, "_cloudformation", lambda region: Refusing())
    with LocalEngine(embedded=True):
        assert stack_found(make_clients()) is False
