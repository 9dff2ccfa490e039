"""The embedded local engine: the toy ASL on moto's interpreter, handlers behind the local Lambda endpoint."""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import types
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib import resources
from typing import Any

import boto3
import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from pipeline.core import task_names
from pipeline.core.errors import EngineError, RegionMissing
from pipeline.operator.local_engine import LocalEngine, failure, state_timeline, task_outputs, task_registry
from pipeline.operator.local_engine.history import ENTERED, EXITED
from tests.helpers import toy_tasks

TOY = toy_tasks.TOY_ASL.read_text()
TIMEOUT_S = 60.0
_GLOBAL = "aws"


@pytest.fixture(autouse=True)
def _fresh_recorder() -> Iterator[None]:
    toy_tasks.reset()
    yield
    toy_tasks.reset()


@pytest.fixture
def engine() -> Iterator[LocalEngine]:
    with LocalEngine(registry=toy_tasks.REGISTRY) as running:
        yield running


def _deploy_toy(engine: LocalEngine) -> str:
    return engine.deploy("toy", {"ToyLabel": "L"}, asl_text=TOY)


def _wait_token(timeout_s: float = 20.0) -> str:
    try:
        return toy_tasks.RECORDER.tokens.get(timeout=timeout_s)
    except queue.Empty:
        pytest.fail(f"no task token within {timeout_s}s")


def _indexes(timeline: list[tuple[str, str]], entry: tuple[str, str]) -> list[int]:
    return [i for i, item in enumerate(timeline) if item == entry]


def test_task_choice_loop_map_with_retry_succeeds(engine: LocalEngine) -> None:
    seen: list[dict[str, Any]] = []
    arn = _deploy_toy(engine)
    execution = engine.start(arn, {"n": 0, "items": ["a", "bb", "flaky-1"]})

    result = engine.follow(execution, on_event=seen.append, timeout_s=TIMEOUT_S, poll_s=0.05)

    assert result.status == "SUCCEEDED"
    assert result.error is None
    assert result.output["n"] == 3
    assert result.output["results"] == [
        {"item": "a", "length": 1, "label": "L", "function": "cognito-backuper-toy-work"},
        {"item": "bb", "length": 2, "label": "L", "function": "cognito-backuper-toy-work"},
        {"item": "flaky-1", "length": 7, "label": "L", "function": "cognito-backuper-toy-work"},
    ]
    calls = toy_tasks.RECORDER.calls
    assert calls["count"] == 3
    assert calls["work:flaky-1"] == 2  # the Retry on the custom errorType ran
    assert calls["approve"] == 0

    # Each event reached the callback once, in order, and the callback saw the whole history.
    history = engine.history(execution)
    assert [e["id"] for e in seen] == [e["id"] for e in history]
    assert result.events == len(history)
    assert [e["id"] for e in history] == sorted(e["id"] for e in history)
    json.dumps(history)  # JSON-ready: timestamps are text

    timeline = state_timeline(history)
    assert timeline[:2] == [("Count", ENTERED), ("Count", EXITED)]
    assert len(_indexes(timeline, ("Count", ENTERED))) == 3
    map_in, map_out = timeline.index(("EachItem", ENTERED)), timeline.index(("EachItem", EXITED))
    work = _indexes(timeline, ("Work", ENTERED)) + _indexes(timeline, ("Work", EXITED))
    assert len(work) == 6
    assert all(map_in < i < map_out for i in work)
    assert max(_indexes(timeline, ("Count", EXITED))) < map_in
    assert timeline[-2:] == [("Done", ENTERED), ("Done", EXITED)]
    assert [out["n"] for out in task_outputs(history, "Count")] == [1, 2, 3]
    assert failure(history) is None


def test_catch_on_custom_error_type_then_fail_with_error_and_cause_paths(
    engine: LocalEngine, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pipeline.operator.local_engine.interpreter")
    arn = _deploy_toy(engine)
    execution = engine.start(arn, {"n": 0, "items": ["a", "bad"]})

    result = engine.follow(execution, timeout_s=TIMEOUT_S)

    assert result.status == "FAILED"
    assert result.output is None
    assert result.error == "ToyError"
    assert result.cause is not None
    assert json.loads(result.cause) == {"errorType": "ToyError", "errorMessage": "item rejected"}
    history = engine.history(execution)
    assert failure(history) == (result.error, result.cause)
    timeline = state_timeline(history)
    assert ("ItemFailed", ENTERED) in timeline
    assert timeline.index(("EachItem", ENTERED)) < timeline.index(("ItemFailed", ENTERED))
    assert ("NeedsApproval", ENTERED) not in timeline
    assert "Traceback" not in result.cause

    # The interpreter's own error lines go to DEBUG logging, never to the console.
    captured = capsys.readouterr()
    assert "Exception=" not in captured.out
    assert "Exception=" not in captured.err
    demoted = [r for r in caplog.records if r.name == "pipeline.operator.local_engine.interpreter"]
    assert demoted
    assert all(r.levelno == logging.DEBUG for r in demoted)


def test_two_executions_in_a_row(engine: LocalEngine) -> None:
    arn = _deploy_toy(engine)
    results = []
    for _ in range(2):
        execution = engine.start(arn, {"n": 0, "items": ["a"]})
        results.append((execution, engine.follow(execution, timeout_s=TIMEOUT_S)))

    (first_arn, first), (second_arn, second) = results
    assert first_arn != second_arn
    assert first.status == second.status == "SUCCEEDED"
    assert toy_tasks.RECORDER.calls["count"] == 6


def test_named_execution(engine: LocalEngine) -> None:
    arn = _deploy_toy(engine)
    execution = engine.start(arn, {"n": 3, "items": []}, name="run-1")
    assert execution.endswith(":run-1")
    assert engine.follow(execution, timeout_s=TIMEOUT_S).status == "SUCCEEDED"


def test_wait_for_task_token_and_send_task_success(engine: LocalEngine) -> None:
    arn = _deploy_toy(engine)
    execution = engine.start(arn, {"n": 2, "items": ["a"], "approve": True})

    token = _wait_token()
    engine.stepfunctions.send_task_success(taskToken=token, output=json.dumps({"approved": True}))
    result = engine.follow(execution, timeout_s=TIMEOUT_S)

    assert result.status == "SUCCEEDED"
    assert result.output["approval"] == {"approved": True}
    assert toy_tasks.RECORDER.calls["approve"] == 1


def test_follow_gives_up_at_its_deadline(engine: LocalEngine) -> None:
    arn = _deploy_toy(engine)
    execution = engine.start(arn, {"n": 3, "items": [], "approve": True})
    _wait_token()

    with pytest.raises(EngineError, match="still running after"):
        engine.follow(execution, timeout_s=0.3, poll_s=0.05)
    assert engine.stepfunctions.describe_execution(executionArn=execution)["status"] == "RUNNING"


def test_exit_with_an_execution_still_waiting_closes_cleanly() -> None:
    # moto does not reliably honour StopExecution on a task parked at waitForTaskToken (it stays RUNNING until
    # TimeoutSeconds, or fails with States.Runtime), so the status is not asserted; exit must still return,
    # close the endpoint and restore the environment.
    before = _aws_env()
    with LocalEngine(registry=toy_tasks.REGISTRY) as engine:
        arn = _deploy_toy(engine)
        engine.start(arn, {"n": 3, "items": [], "approve": True})
        _wait_token()
        url = engine.endpoint.url
    assert _aws_env() == before
    with pytest.raises(urllib.error.URLError, match="refused"):
        urllib.request.urlopen(url + "/2015-03-31/functions/x/invocations", data=b"{}", timeout=5)
    assert toy_tasks.RECORDER.calls["approve"] == 1


def test_exit_waits_for_running_handlers_before_stopping_the_mock() -> None:
    entered, release = threading.Event(), threading.Event()
    outcome: list[str] = []

    def slow_count(event: dict[str, Any], context: Any) -> dict[str, Any]:
        entered.set()
        release.wait(10)
        try:
            boto3.client("s3").list_buckets()  # only the in-process mock can answer this here
            outcome.append("served by the mock")
        except Exception as exc:  # noqa: BLE001 - the test reports whatever escaped the mock
            outcome.append(type(exc).__name__)
        return {**event, "n": 3}

    registry = {**toy_tasks.REGISTRY, "cognito-backuper-toy-count": slow_count}
    with LocalEngine(registry=registry) as engine:
        engine.start(_deploy_toy(engine), {"n": 0, "items": []})
        assert entered.wait(10)
        threading.Timer(0.3, release.set).start()
    assert outcome == ["served by the mock"]


def test_deploy_twice_updates_the_same_state_machine(engine: LocalEngine) -> None:
    first = _deploy_toy(engine)
    second = engine.deploy("toy", {"ToyLabel": "M"}, asl_text=TOY)
    assert first == second
    assert first.endswith(":stateMachine:cognito-backuper-toy")
    definition = engine.stepfunctions.describe_state_machine(stateMachineArn=first)["definition"]
    assert '"label": "M"' in definition


def test_definition_fills_function_placeholders_with_local_arns(engine: LocalEngine) -> None:
    filled = json.loads(engine.definition("toy", {"ToyLabel": "L"}, asl_text=TOY))
    assert filled["States"]["Count"]["Resource"] == (
        "arn:aws:lambda:us-east-1:123456789012:function:cognito-backuper-toy-count"
    )
    approve = filled["States"]["Approve"]["Parameters"]["FunctionName"]
    assert approve == "arn:aws:lambda:us-east-1:123456789012:function:cognito-backuper-toy-approve"
    assert filled["States"]["EachItem"]["ItemSelector"]["label"] == "L"


def test_definition_of_a_packaged_state_machine(engine: LocalEngine) -> None:
    text = resources.files("statemachines").joinpath("backup.asl.json").read_text()
    others = task_names.placeholders(text) - task_names.function_placeholders(text)
    filled = engine.definition("backup", {p: f"value-{p}" for p in others})
    assert "${" not in filled
    for placeholder in task_names.function_placeholders(text):
        name = task_names.function_name(task_names.task_name(placeholder))
        assert f'"arn:aws:lambda:us-east-1:123456789012:function:{name}"' in filled


def test_deploy_errors_are_engine_errors(engine: LocalEngine) -> None:
    with pytest.raises(EngineError, match="ToyLabel"):
        engine.deploy("toy", {}, asl_text=TOY)
    with pytest.raises(EngineError, match="no state machine definition"):
        engine.deploy("no-such-machine", {})
    with pytest.raises(EngineError, match="not valid JSON"):
        engine.deploy("broken", {}, asl_text="{")
    with LocalEngine(registry={}) as bare, pytest.raises(EngineError, match="cognito-backuper-toy-count"):
        bare.deploy("toy", {"ToyLabel": "L"}, asl_text=TOY)


def test_not_running_engine_refuses() -> None:
    engine = LocalEngine(registry=toy_tasks.REGISTRY)
    with pytest.raises(EngineError, match="not running"):
        _ = engine.stepfunctions


def test_task_registry_imports_handlers_by_the_naming_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("tasks.toy_count")
    module.handler = toy_tasks.count  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tasks.toy_count", module)

    assert task_registry(['{"Resource": "${ToyCountFunctionArn}", "X": "${NotAFunction}"}']) == {
        "cognito-backuper-toy-count": toy_tasks.count
    }
    with pytest.raises(EngineError, match=r"tasks\.toy_missing_step\.handler"):
        task_registry(['{"Resource": "${ToyMissingStepFunctionArn}"}'])


def test_automatic_registry_serves_task_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("tasks.toy_count")
    module.handler = toy_tasks.count  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tasks.toy_count", module)
    count_state = {"Type": "Task", "Resource": "${ToyCountFunctionArn}", "End": True}
    asl = json.dumps({"StartAt": "Count", "States": {"Count": count_state}})
    with LocalEngine() as engine:
        arn = engine.deploy("auto", {}, asl_text=asl)
        result = engine.follow(engine.start(arn, {"n": 41}), timeout_s=TIMEOUT_S)
    assert result.status == "SUCCEEDED"
    assert result.output == {"n": 42}


# -- environment --------------------------------------------------------------------------------------------


def _aws_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("AWS_")}


def test_environment_is_restored_and_endpoint_overrides_lifted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    before = _aws_env()
    with LocalEngine(registry=toy_tasks.REGISTRY) as engine:
        inside = _aws_env()
        assert inside["AWS_ENDPOINT_URL_LAMBDA"] == engine.endpoint.url
        assert "AWS_ENDPOINT_URL" not in inside
        assert "AWS_ENDPOINT_URL_S3" not in inside
        # Tasks' default clients reach the in-process mock, not the lifted endpoint.
        boto3.client("s3").create_bucket(Bucket="inside-the-mock")
        assert [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]] == ["inside-the-mock"]
        # The same backend the external-mode test reads to show a bucket did not land in-process.
        assert list(s3_backends[DEFAULT_ACCOUNT_ID][_GLOBAL].buckets) == ["inside-the-mock"]
    assert _aws_env() == before


def test_embedded_engine_provides_a_region_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    with LocalEngine(registry=toy_tasks.REGISTRY) as engine:
        assert engine.region == "us-east-1"
        assert os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
        assert boto3.client("sts").get_caller_identity()["Account"] == "123456789012"
    for var in ("AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert var not in os.environ


# -- embedded=False: only Step Functions in-process ---------------------------------------------------------


MAKE_BUCKET_ASL = json.dumps(
    {
        "StartAt": "MakeBucket",
        "States": {"MakeBucket": {"Type": "Task", "Resource": "${ToyMakeBucketFunctionArn}", "End": True}},
    }
)


def test_external_mode_sends_task_calls_through_to_the_configured_endpoint(
    moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    # Even a Step Functions override does not move the engine's own client off the in-process mock.
    monkeypatch.setenv("AWS_ENDPOINT_URL_STEPFUNCTIONS", moto_server)
    before = _aws_env()
    with LocalEngine(embedded=False, registry=toy_tasks.REGISTRY) as engine:
        arn = engine.deploy("external", {}, asl_text=MAKE_BUCKET_ASL)
        assert arn.startswith("arn:aws:states:us-east-1:")
        result = engine.follow(engine.start(arn, {"bucket": "made-outside"}), timeout_s=TIMEOUT_S)
        # The in-process mock never saw the bucket (read its backend: S3 requests are passed through).
        local_buckets = list(s3_backends[DEFAULT_ACCOUNT_ID][_GLOBAL].buckets)
        # The engine's state machine lives in-process, not on the external server.
        external_sfn = boto3.client("stepfunctions", endpoint_url=moto_server)
        external_machines = [m["name"] for m in external_sfn.list_state_machines()["stateMachines"]]
    assert _aws_env() == before

    assert result.status == "SUCCEEDED", result.cause
    assert result.output == {"bucket": "made-outside"}
    external = boto3.client("s3", endpoint_url=moto_server)
    assert "made-outside" in [b["Name"] for b in external.list_buckets()["Buckets"]]
    assert "made-outside" not in local_buckets
    assert "cognito-backuper-external" not in external_machines


def test_external_mode_keeps_the_callers_credentials(
    moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "caller-key")
    with LocalEngine(embedded=False, registry=toy_tasks.REGISTRY):
        assert os.environ["AWS_ACCESS_KEY_ID"] == "caller-key"


def test_external_mode_needs_a_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    before = _aws_env()
    with pytest.raises(RegionMissing), LocalEngine(embedded=False, registry=toy_tasks.REGISTRY):
        pass
    assert _aws_env() == before
    with LocalEngine(embedded=False, region="eu-west-1", registry=toy_tasks.REGISTRY) as engine:
        assert engine.region == "eu-west-1"
        assert os.environ["AWS_DEFAULT_REGION"] == "eu-west-1"
        assert engine.deploy("toy", {"ToyLabel": "L"}, asl_text=TOY).startswith("arn:aws:states:eu-west-1:")
    assert _aws_env() == before
