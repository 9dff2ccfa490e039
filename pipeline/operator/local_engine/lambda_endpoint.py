"""A local stand-in for Lambda's Invoke API that runs the pipeline's Python handlers in-process.

Step Functions (moto's interpreter here, or Step Functions Local's ``LAMBDA_ENDPOINT``) invokes functions over
HTTP; this server answers ``POST /2015-03-31/functions/{name or ARN}/invocations`` like Lambda does, including
the ``X-Amz-Function-Error: Unhandled`` reply whose ``errorType`` the state machines' Retry and Catch match.
Event bodies and results are never logged: they are state payloads.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from pipeline.core import task_names
from pipeline.core.errors import EngineError

Handler = Callable[[Any, Any], Any]

LOG = logging.getLogger(__name__)
_INVOKE_PREFIX = "/2015-03-31/functions/"
_INVOKE_SUFFIX = "/invocations"
DEFAULT_TIMEOUT_S = 900.0


@dataclass
class LambdaContext:
    """The parts of the Python runtime's context object that handlers use."""

    function_name: str
    invoked_function_arn: str
    timeout_s: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    _deadline: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self._deadline = time.monotonic() + self.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def function_name_from(identifier: str) -> str:
    """Name from any form Invoke accepts: name, ``name:qualifier``, ARN, or ``account:function:name``."""
    parts = identifier.split(":")
    if "function" in parts:
        index = parts.index("function")
        if index + 1 < len(parts):
            return parts[index + 1]
    return parts[0]


def task_registry(asl_texts: Iterable[str]) -> dict[str, Handler]:
    """Handlers for every function placeholder, per the naming contract (``tasks.<module>.handler``)."""
    registry: dict[str, Handler] = {}
    for text in asl_texts:
        for placeholder in sorted(task_names.function_placeholders(text)):
            task = task_names.task_name(placeholder)
            module = f"tasks.{task_names.module_name(task)}"
            try:
                handler = importlib.import_module(module).handler
            except (ImportError, AttributeError) as exc:
                raise EngineError(f"no handler for {placeholder}: expected {module}.handler") from exc
            if not callable(handler):
                raise EngineError(f"{module}.handler is not callable")
            registry[task_names.function_name(task)] = handler
    return registry


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str]


def _error_reply(status: HTTPStatus, error_type: str, message: str) -> _Reply:
    """Lambda's service-error shape; botocore maps ``x-amzn-ErrorType`` to the modelled exception."""
    body = json.dumps({"Type": "User", "message": message}).encode()
    return _Reply(int(status), body, {"x-amzn-ErrorType": error_type})


def _function_error(error_type: str, message: str) -> _Reply:
    body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
    return _Reply(int(HTTPStatus.OK), body, {"X-Amz-Function-Error": "Unhandled"})


class LambdaEndpoint:
    """Threaded HTTP server on 127.0.0.1 (random port); each invocation runs its handler in its own thread."""

    def __init__(
        self,
        registry: Mapping[str, Handler] | None = None,
        *,
        region: str = "us-east-1",
        account: str = "123456789012",
        function_timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._registry: dict[str, Handler] = dict(registry or {})
        self._lock = threading.Lock()
        self._idle = threading.Condition()
        self._active = 0
        self.region = region
        self.account = account
        self.function_timeout_s = function_timeout_s
        # Called with (function name, event, result) after each successful synchronous invocation.
        self.observers: list[Callable[[str, Any, Any], None]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- registry
    def register(self, function_name: str, handler: Handler) -> None:
        with self._lock:
            self._registry[function_name] = handler

    def handler_for(self, function_name: str) -> Handler | None:
        with self._lock:
            return self._registry.get(function_name)

    def function_arn(self, function_name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{function_name}"

    # -- lifecycle
    @property
    def url(self) -> str:
        if self._server is None:
            raise EngineError("the local Lambda endpoint is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        if self._server is not None:
            return self.url
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_request_handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="local-lambda", daemon=True
        )
        self._thread.start()
        LOG.debug("local Lambda endpoint listening on %s", self.url)
        return self.url

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=10)

    def __enter__(self) -> LambdaEndpoint:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def drain(self, timeout_s: float) -> bool:
        """Wait until no handler runs (timed-out ones included); False if some still do at the deadline."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._active:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def _run_handler(self, handler: Handler, event: Any, context: LambdaContext) -> Any:
        with self._idle:
            self._active += 1
        try:
            return handler(event, context)
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    # -- invocation
    def invoke(self, identifier: str, invocation_type: str, body: bytes) -> _Reply:
        name = function_name_from(identifier)
        handler = self.handler_for(name)
        if handler is None:
            return _error_reply(
                HTTPStatus.NOT_FOUND,
                "ResourceNotFoundException",
                f"Function not found: {self.function_arn(name)}",
            )
        if invocation_type == "DryRun":
            return _Reply(int(HTTPStatus.NO_CONTENT), b"", {})
        try:
            event = json.loads(body) if body.strip() else {}
        except ValueError:
            return _error_reply(
                HTTPStatus.BAD_REQUEST,
                "InvalidRequestContentException",
                "Could not parse request body into json",
            )
        context = LambdaContext(name, self.function_arn(name), self.function_timeout_s)
        if invocation_type == "Event":
            threading.Thread(
                target=self._run_async, args=(handler, event, context), name=f"event-{name}", daemon=True
            ).start()
            return _Reply(int(HTTPStatus.ACCEPTED), b"", {})
        if invocation_type not in ("", "RequestResponse"):
            return _error_reply(
                HTTPStatus.BAD_REQUEST, "InvalidParameterValueException", "unsupported InvocationType"
            )
        reply = self._run_sync(handler, event, context)
        reply.headers["x-amzn-RequestId"] = context.aws_request_id
        return reply

    def _run_sync(self, handler: Handler, event: Any, context: LambdaContext) -> _Reply:
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["result"] = self._run_handler(handler, event, context)
            except Exception as exc:  # noqa: BLE001 - a handler's failure is the function's reply, as in Lambda
                outcome["error"] = exc

        # A separate thread lets the timeout be answered the way Lambda does; the handler cannot be killed, so
        # it finishes in the background (its own remaining-time budget is what makes it stop early).
        worker = threading.Thread(target=run, name=f"invoke-{context.function_name}", daemon=True)
        worker.start()
        worker.join(timeout=context.timeout_s)
        if worker.is_alive():
            LOG.warning("function %s timed out after %.2f s", context.function_name, context.timeout_s)
            return _function_error(
                "Sandbox.Timedout",
                f"RequestId: {context.aws_request_id} Error: "
                f"Task timed out after {context.timeout_s:.2f} seconds",
            )
        if "error" in outcome:
            exc = outcome["error"]
            LOG.debug("function %s raised %s", context.function_name, type(exc).__name__)
            return _function_error(type(exc).__name__, str(exc))
        try:
            body = json.dumps(outcome.get("result")).encode()
        except (TypeError, ValueError) as exc:
            return _function_error(
                "Runtime.MarshalError", f"Unable to marshal response: {type(exc).__name__}"
            )
        for observe in self.observers:
            observe(context.function_name, event, outcome.get("result"))
        return _Reply(int(HTTPStatus.OK), body, {"X-Amz-Executed-Version": context.function_version})

    def _run_async(self, handler: Handler, event: Any, context: LambdaContext) -> None:
        try:
            self._run_handler(handler, event, context)
        except Exception as exc:  # noqa: BLE001 - nobody awaits an Event invocation; report and drop, as Lambda
            LOG.warning("function %s (async) raised %s", context.function_name, type(exc).__name__)


def _make_request_handler(endpoint: LambdaEndpoint) -> type[BaseHTTPRequestHandler]:
    class _InvokeHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path
            if not (path.startswith(_INVOKE_PREFIX) and path.endswith(_INVOKE_SUFFIX)):
                self._send(
                    _error_reply(HTTPStatus.NOT_FOUND, "UnknownOperationException", "Unknown operation")
                )
                return
            identifier = unquote(path[len(_INVOKE_PREFIX) : -len(_INVOKE_SUFFIX)])
            invocation_type = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
            self._send(endpoint.invoke(identifier, invocation_type, body))

        def _send(self, reply: _Reply) -> None:
            self.send_response(reply.status)
            if "x-amzn-RequestId" not in reply.headers:
                self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.body)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:
            # The default writes every request line to stderr; keep only a DEBUG trace without bodies.
            LOG.debug("local Lambda: " + format, *args)

    return _InvokeHandler
