"""Nested executions (states:startExecution.sync:2) and the loopback API that another process decides through."""

from __future__ import annotations

import json
import os
import queue
from collections.abc import Iterator

import boto3
import pytest

from pipeline.core.lambda_runtime import ENGINE_ENDPOINT_ENV
from pipeline.operator.local_engine import LocalEngine
from tests.helpers import toy_tasks

CHILD_OK = {
    "StartAt": "Done",
    "States": {"Done": {"Type": "Pass", "Result": {"snapshot": "ok"}, "End": True}},
}
CHILD_FAILS = {
    "StartAt": "Boom",
    "States": {"Boom": {"Type": "Fail", "Error": "ChildBroke", "Cause": "on purpose"}},
}


def parent_asl() -> str:
    return json.dumps(
        {
            "StartAt": "RunChild",
            "States": {
                "RunChild": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::states:startExecution.sync:2",
                    "Parameters": {
                        "StateMachineArn": "${ChildStateMachineArn}",
                        "Input": {
                            "from.$": "$.from",
                            "AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id",
                        },
                    },
                    "ResultSelector": {"executionArn.$": "$.ExecutionArn", "output.$": "$.Output"},
                    "ResultPath": "$.child",
                    "Catch": [
                        {"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error", "Next": "ChildFailed"}
                    ],
                    "End": True,
                },
                "ChildFailed": {
                    "Type": "Fail",
                    "Error": "ChildFailed",
                    "Cause": "the child execution failed",
                },
            },
        }
    )


@pytest.fixture
def engine() -> Iterator[LocalEngine]:
    toy_tasks.reset()
    with LocalEngine(registry=toy_tasks.REGISTRY) as running:
        yield running
    toy_tasks.reset()


@pytest.mark.parametrize(("child", "status"), [(CHILD_OK, "SUCCEEDED"), (CHILD_FAILS, "FAILED")])
def test_sync2_nested_execution_returns_the_child_output_or_fails(
    engine: LocalEngine, child: dict[str, object], status: str
) -> None:
    child_arn = engine.deploy("child", {}, asl_text=json.dumps(child))
    parent_arn = engine.deploy("parent", {"ChildStateMachineArn": child_arn}, asl_text=parent_asl())
    result = engine.follow(engine.start(parent_arn, {"from": "parent"}), timeout_s=60)
    assert result.status == status
    if status == "SUCCEEDED":
        assert result.output["child"]["output"] == {"snapshot": "ok"}
        assert result.output["child"]["executionArn"].startswith(
            child_arn.replace(":stateMachine:", ":execution:")
        )
    else:
        assert result.error == "ChildFailed"


def test_a_decision_sent_through_the_loopback_api_reaches_the_waiting_execution() -> None:
    toy_tasks.reset()
    with LocalEngine(registry=toy_tasks.REGISTRY) as engine:
        url = engine.serve_api()
        assert url.startswith("http://127.0.0.1:")
        assert os.environ[ENGINE_ENDPOINT_ENV] == url
        arn = engine.deploy("toy", {"ToyLabel": "L"}, asl_text=toy_tasks.TOY_ASL.read_text())
        execution = engine.start(arn, {"n": 3, "items": [], "approve": True})
        try:
            token = toy_tasks.RECORDER.tokens.get(timeout=30)
        except queue.Empty:
            pytest.fail("no task token within 30 s")
        # What `approve` does from another process: a plain client pointed at the loopback URL.
        remote = boto3.client("stepfunctions", endpoint_url=url, region_name=engine.region)
        remote.send_task_success(taskToken=token, output=json.dumps({"approved": True}))
        result = engine.follow(execution, timeout_s=60)
        assert result.status == "SUCCEEDED"
        assert result.output["approval"] == {"approved": True}
    assert ENGINE_ENDPOINT_ENV not in os.environ
    toy_tasks.reset()
