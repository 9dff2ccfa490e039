"""The SDK's retries and the rate budget's throttling retries must not both act on one Cognito response.

The wire is faked with a ``before-send`` handler that answers from a script and counts HTTP attempts: botocore
sends nothing when a ``before-send`` handler returns a response.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.awsrequest
import botocore.exceptions
import pytest
from botocore.compat import HTTPHeaders

from pipeline.cognito import throttle
from pipeline.core.aws import make_clients
from pipeline.core.errors import Throttled

Scripted = tuple[int, bytes, dict[str, str]]


def _json_error(status: int, code: str) -> Scripted:
    body = json.dumps({"__type": code, "message": "scripted"}).encode()
    return status, body, {"Content-Type": "application/x-amz-json-1.1"}


def _xml_error(status: int, code: str) -> Scripted:
    body = f"<Error><Code>{code}</Code><Message>scripted</Message></Error>".encode()
    return status, body, {"Content-Type": "application/xml"}


class FakeWire:
    """Answers each attempt with the next scripted response (the last one repeats) and counts attempts."""

    def __init__(self, *responses: Scripted) -> None:
        self.responses = list(responses)
        self.attempts = 0

    def __call__(self, request: botocore.awsrequest.AWSPreparedRequest, **_: Any) -> Any:
        status, body, headers = self.responses[min(self.attempts, len(self.responses) - 1)]
        self.attempts += 1
        raw = _Raw(body)
        return botocore.awsrequest.AWSResponse(request.url, status, HTTPHeaders.from_dict(headers), raw)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    throttle.default_budget.cache_clear()
    monkeypatch.setattr(throttle, "backoff_delay", lambda *_, **__: 0.0)
    return boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="eu-west-1")


def _wire(client: Any, wire: FakeWire) -> None:
    client.meta.events.register("before-send", wire)


USERS_OK: Scripted = (200, json.dumps({"Users": []}).encode(), {"Content-Type": "application/x-amz-json-1.1"})


def test_a_throttled_cognito_call_reaches_the_rate_budget_after_one_attempt(session: boto3.Session) -> None:
    clients = make_clients(session)
    budget = throttle.default_budget()
    wire = FakeWire(_json_error(400, "TooManyRequestsException"), USERS_OK)
    _wire(clients.cognito, wire)
    seen_at: list[int] = []
    clients.cognito.meta.events.register(
        "needs-retry.cognito-identity-provider",
        lambda **_: seen_at.append(wire.attempts) if budget.throttles["UserList"] > len(seen_at) else None,
    )

    clients.cognito.list_users(UserPoolId="eu-west-1_abc")

    assert budget.throttles["UserList"] == 1
    assert seen_at == [1]  # the budget halved its rate after the first HTTP attempt, not after SDK retries
    assert wire.attempts == 2


@pytest.mark.parametrize("code", ["LimitExceededException", "ThrottlingException"])
def test_the_sdk_never_retries_cognito_throttling_codes_blindly(session: boto3.Session, code: str) -> None:
    clients = make_clients(session)
    budget = throttle.default_budget()
    wire = FakeWire(_json_error(400, code))
    _wire(clients.cognito, wire)

    expected: type[Exception] = (
        Throttled if code in throttle.THROTTLE_CODES else botocore.exceptions.ClientError
    )
    with pytest.raises(expected):
        clients.cognito.list_users(UserPoolId="eu-west-1_abc")

    if code in throttle.THROTTLE_CODES:
        # Only the budget retries a throttle: its own attempt limit, with its own backoff.
        assert budget.throttles["UserList"] == wire.attempts
    else:
        # A resource-count limit: one attempt, no retry by anyone.
        assert wire.attempts == 1
        assert budget.throttles["UserList"] == 0


@pytest.mark.parametrize("status", [500, 503])
def test_the_sdk_still_retries_transient_cognito_failures(session: boto3.Session, status: int) -> None:
    clients = make_clients(session)
    wire = FakeWire(_json_error(status, "InternalErrorException"), USERS_OK)
    _wire(clients.cognito, wire)

    clients.cognito.list_users(UserPoolId="eu-west-1_abc")

    assert wire.attempts == 2


@pytest.mark.parametrize(("status", "code"), [(500, "InternalError"), (503, "ServiceUnavailable")])
def test_the_sdk_still_retries_s3_server_errors(session: boto3.Session, status: int, code: str) -> None:
    clients = make_clients(session)
    ok: Scripted = (200, b"", {})
    wire = FakeWire(_xml_error(status, code), ok)
    _wire(clients.s3, wire)

    clients.s3.head_object(Bucket="bucket", Key="key")

    assert wire.attempts == 2
