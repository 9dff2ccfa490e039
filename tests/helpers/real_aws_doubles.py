"""Test doubles for what real AWS does and moto does not: error replies injected through botocore events.

A ``before-send`` handler that returns a response makes botocore parse it as if the service had sent it, so
the code under test sees exactly the error (code, message, status) that AWS documents. For S3, whose moto
backend serves a request even when a handler answered it, :func:`refuse_call` answers at ``before-call``,
before anything is sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _headers(values: dict[str, str]) -> HTTPHeaders:
    headers = HTTPHeaders()
    for k, v in values.items():
        headers[k] = v
    headers["x-amzn-RequestId"] = "injected"
    return headers


def cognito_error(code: str, message: str, status: int = 400) -> AWSResponse:
    body = json.dumps({"__type": code, "message": message}).encode()
    headers = _headers({"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code})
    return AWSResponse("https://cognito-idp.us-east-1.amazonaws.com/", status, headers, _Raw(body))


def s3_error(code: str, status: int, message: str) -> AWSResponse:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>{message}</Message><RequestId>injected</RequestId></Error>"
    ).encode()
    return AWSResponse(
        "https://s3.amazonaws.com/", status, _headers({"Content-Type": "application/xml"}), _Raw(body)
    )


def json_body(request: AWSPreparedRequest) -> dict[str, Any]:
    body = request.body
    if isinstance(body, bytes | bytearray):
        body = body.decode()
    if body is not None and not isinstance(body, str):
        raise TypeError("a streamed request body cannot be inspected")
    loaded: dict[str, Any] = json.loads(body) if body else {}
    return loaded


Rule = Callable[[AWSPreparedRequest, str], AWSResponse | None]


def on_send(client: Any, rule: Rule) -> None:
    """Call ``rule(request, operation)`` before each request ``client`` sends; a response it returns is used."""

    def handler(request: AWSPreparedRequest, event_name: str, **_: Any) -> AWSResponse | None:
        return rule(request, event_name.rsplit(".", 1)[-1])

    # On the service's node: before moto's root-level stubber, which would otherwise serve the request too.
    service = client.meta.service_model.endpoint_prefix
    client.meta.events.register(f"before-send.{service}", handler)


CallRule = Callable[[dict[str, Any], str], tuple[str, str, int] | None]


def refuse_call(client: Any, rule: CallRule) -> None:
    """Call ``rule(request_dict, operation)`` before each call; an (error code, message, status) it returns is
    raised by botocore as the service's ClientError, and nothing reaches the backend."""

    def handler(params: dict[str, Any], model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        refused = rule(params, model.name)
        if refused is None:
            return None
        code, message, status = refused
        http = AWSResponse("https://injected.invalid/", status, _headers({}), _Raw(b""))
        parsed = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "injected"},
        }
        return http, parsed

    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"before-call.{service}", handler)


AnswerRule = Callable[[dict[str, Any], str], dict[str, Any] | None]


def answer_call(client: Any, rule: AnswerRule) -> None:
    """Like :func:`refuse_call`, but a dict ``rule`` returns is served as the call's successful response."""

    def handler(params: dict[str, Any], model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        answer = rule(params, model.name)
        if answer is None:
            return None
        http = AWSResponse("https://injected.invalid/", 200, _headers({}), _Raw(b""))
        return http, {**answer, "ResponseMetadata": {"HTTPStatusCode": 200, "RequestId": "injected"}}

    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"before-call.{service}", handler)
