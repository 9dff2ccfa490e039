"""The local Lambda Invoke endpoint, driven through boto3's own Lambda client."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from botocore.config import Config

from pipeline.core.errors import EngineError
from pipeline.operator.local_engine import LambdaEndpoint
from pipeline.operator.local_engine.lambda_endpoint import function_name_from
from tests.helpers import toy_tasks

WAIT_S = 10.0


def echo(event: Any, context: Any) -> dict[str, Any]:
    return {
        "event": event,
        "function_name": context.function_name,
        "arn": context.invoked_function_arn,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }


def fail(event: Any, context: Any) -> None:
    raise toy_tasks.ToyError("item rejected")


def unserialisable(event: Any, context: Any) -> object:
    return object()


@pytest.fixture
def endpoint() -> Iterator[LambdaEndpoint]:
    with LambdaEndpoint({"echo": echo, "fail": fail, "unserialisable": unserialisable}) as running:
        yield running


def _client(endpoint: LambdaEndpoint) -> Any:
    config = Config(retries={"total_max_attempts": 1}, read_timeout=30)
    return boto3.client("lambda", endpoint_url=endpoint.url, config=config)


def _payload(response: dict[str, Any]) -> Any:
    return json.loads(response["Payload"].read())


def test_payload_round_trip_and_context(endpoint: LambdaEndpoint) -> None:
    response = _client(endpoint).invoke(FunctionName="echo", Payload=json.dumps({"n": 1, "s": "x"}))

    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    body = _payload(response)
    assert body["event"] == {"n": 1, "s": "x"}
    assert body["function_name"] == "echo"
    assert body["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:echo"
    assert 0 < body["remaining_ms"] <= 900_000
    # The request id Lambda reports is the one the handler saw.
    assert response["ResponseMetadata"]["RequestId"] == body["request_id"]


def test_empty_payload_is_an_empty_event(endpoint: LambdaEndpoint) -> None:
    assert _payload(_client(endpoint).invoke(FunctionName="echo"))["event"] == {}


@pytest.mark.parametrize(
    "identifier",
    [
        "arn:aws:lambda:us-east-1:123456789012:function:echo",
        "arn:aws:lambda:us-east-1:123456789012:function:echo:$LATEST",
        "123456789012:function:echo",
        "echo:live",
    ],
)
def test_function_named_by_arn_or_qualified_name(endpoint: LambdaEndpoint, identifier: str) -> None:
    response = _client(endpoint).invoke(FunctionName=identifier, Payload=b"{}")
    assert _payload(response)["function_name"] == "echo"


def test_handler_exception_is_an_unhandled_function_error(endpoint: LambdaEndpoint) -> None:
    response = _client(endpoint).invoke(FunctionName="fail", Payload=b"{}")

    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    body = _payload(response)
    assert body == {"errorType": "ToyError", "errorMessage": "item rejected"}
    assert response["ResponseMetadata"]["RequestId"]


def test_unserialisable_result_is_a_marshal_error(endpoint: LambdaEndpoint) -> None:
    response = _client(endpoint).invoke(FunctionName="unserialisable", Payload=b"{}")
    assert response["FunctionError"] == "Unhandled"
    assert _payload(response)["errorType"] == "Runtime.MarshalError"


def test_unknown_function_is_resource_not_found(endpoint: LambdaEndpoint) -> None:
    client = _client(endpoint)
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="cognito-backuper-nope"):
        client.invoke(FunctionName="cognito-backuper-nope", Payload=b"{}")


def test_invalid_json_payload_is_rejected(endpoint: LambdaEndpoint) -> None:
    client = _client(endpoint)
    with pytest.raises(client.exceptions.InvalidRequestContentException):
        client.invoke(FunctionName="echo", Payload=b"not json")


def test_dry_run(endpoint: LambdaEndpoint) -> None:
    assert _client(endpoint).invoke(FunctionName="echo", InvocationType="DryRun")["StatusCode"] == 204


def test_event_invocation_runs_in_the_background(endpoint: LambdaEndpoint) -> None:
    ran = threading.Event()
    release = threading.Event()
    seen: list[Any] = []

    def slow(event: Any, context: Any) -> None:
        release.wait(WAIT_S)
        seen.append(event)
        ran.set()

    endpoint.register("slow", slow)
    response = _client(endpoint).invoke(FunctionName="slow", InvocationType="Event", Payload=b'{"k": 1}')

    assert response["StatusCode"] == 202
    assert not ran.is_set()  # the reply did not wait for the handler
    release.set()
    assert ran.wait(WAIT_S)
    assert seen == [{"k": 1}]
    assert endpoint.drain(WAIT_S)


def test_handlers_run_concurrently(endpoint: LambdaEndpoint) -> None:
    parties = 4
    barrier = threading.Barrier(parties, timeout=WAIT_S)

    def meet(event: Any, context: Any) -> int:
        # Every caller must be inside a handler at once, or the barrier breaks and the handler raises.
        return barrier.wait()

    endpoint.register("meet", meet)
    client = _client(endpoint)
    with ThreadPoolExecutor(parties) as pool:
        responses = list(
            pool.map(lambda _: client.invoke(FunctionName="meet", Payload=b"{}"), range(parties))
        )

    assert all("FunctionError" not in r for r in responses)
    assert sorted(_payload(r) for r in responses) == list(range(parties))


def test_timeout_is_reported_like_lambda_and_drain_waits_for_the_handler() -> None:
    release = threading.Event()

    def stuck(event: Any, context: Any) -> str:
        release.wait(WAIT_S)
        return "late"

    with LambdaEndpoint({"stuck": stuck}, function_timeout_s=0.2) as endpoint:
        response = _client(endpoint).invoke(FunctionName="stuck", Payload=b"{}")
        assert response["FunctionError"] == "Unhandled"
        body = _payload(response)
        assert body["errorType"] == "Sandbox.Timedout"
        assert "timed out after 0.20 seconds" in body["errorMessage"]
        assert not endpoint.drain(0.05)  # the handler is still running in the background
        release.set()
        assert endpoint.drain(WAIT_S)


def test_remaining_time_counts_down_from_the_configured_timeout() -> None:
    with LambdaEndpoint({"echo": echo}, function_timeout_s=30.0) as endpoint:
        remaining = _payload(_client(endpoint).invoke(FunctionName="echo"))["remaining_ms"]
    assert 0 < remaining <= 30_000


def test_url_encoded_arn_in_the_path(endpoint: LambdaEndpoint) -> None:
    import urllib.request

    arn = "arn:aws:lambda:us-east-1:123456789012:function:echo"
    request = urllib.request.Request(
        f"{endpoint.url}/2015-03-31/functions/{quote(arn, safe='')}/invocations",
        data=b'{"a": 1}',
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=WAIT_S) as reply:
        assert reply.headers["x-amzn-RequestId"]
        assert json.loads(reply.read())["event"] == {"a": 1}


def test_function_name_from() -> None:
    assert function_name_from("cognito-backuper-export-users") == "cognito-backuper-export-users"
    assert function_name_from("arn:aws:lambda:eu-west-1:111122223333:function:f:3") == "f"
    assert function_name_from("111122223333:function:f") == "f"
    assert function_name_from("f:alias") == "f"


def test_stopped_endpoint_has_no_url() -> None:
    endpoint = LambdaEndpoint({})
    endpoint.start()
    assert endpoint.url.startswith("http://127.0.0.1:")
    endpoint.stop()
    with pytest.raises(EngineError, match="not running"):
        _ = endpoint.url
