"""Run the project's state machines on moto's in-process Step Functions interpreter.

Lambda Task states reach the pipeline's Python handlers through :class:`LambdaEndpoint`
(``AWS_ENDPOINT_URL_LAMBDA``). Two modes:

* ``embedded=True``: every AWS service (Cognito, S3, KMS, STS, Step Functions) is moto in-process. Fake
  credentials and a Region are provided for the run; ``AWS_ENDPOINT_URL*`` overrides are lifted so nothing
  leaves the process.
* ``embedded=False``: only Step Functions is in-process. moto passes every other request through, so the tasks
  reach whatever boto3's standard configuration names (``AWS_ENDPOINT_URL``, e.g. a separately started moto
  server, or real AWS with the caller's credentials). The engine's own Step Functions client always targets
  the in-process mock through an explicit ``https://states.<region>.amazonaws.com`` endpoint, which moto
  intercepts whatever ``AWS_ENDPOINT_URL`` says.

Known interpreter gaps are listed in README.md ("The local engine"). Retry and Wait intervals sleep in real time: keep
them small in local runs. Engines must not be nested (moto's mock is process-wide).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib import resources
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions

from pipeline.cognito import shared_budget, throttle
from pipeline.core import task_names
from pipeline.core.aws import default_clients, json_safe
from pipeline.core.errors import EngineError, RegionMissing
from pipeline.core.lambda_runtime import ENGINE_ENDPOINT_ENV
from pipeline.operator.following import follow_execution
from pipeline.operator.local_engine import moto_compat
from pipeline.operator.local_engine.hidden_tasks import HiddenTask, hidden_task_event, hidden_tasks
from pipeline.operator.local_engine.lambda_endpoint import (
    DEFAULT_TIMEOUT_S,
    Handler,
    LambdaEndpoint,
    task_registry,
)
from pipeline.operator.local_engine.quiet import interpreter_logs_demoted
from pipeline.operator.progress import map_run_event

if TYPE_CHECKING:
    from moto.core.config import DefaultConfig
    from mypy_boto3_stepfunctions import SFNClient

LOG = logging.getLogger(__name__)
STATE_MACHINE_PREFIX = "cognito-backuper-"
LOCAL_REGION = "us-east-1"
_RUNNING = "RUNNING"
# How long exit waits for running handlers: the mock must outlive them, or their SDK calls would leave it.
_DRAIN_S = 30.0
_POLL_S_PER_EVENT = 0.001
_MAX_POLL_S = 2.0
_ENDPOINT_VARS = re.compile(r"^AWS_ENDPOINT_URL(_[A-Z0-9_]+)?$")


@dataclass(frozen=True)
class ExecutionResult:
    status: str
    output: Any
    error: str | None
    cause: str | None
    events: int


@contextmanager
def _patched_env(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, remove) variables and put every one back exactly as it was."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


class LocalEngine:
    def __init__(
        self,
        *,
        embedded: bool = True,
        region: str | None = None,
        function_timeout_s: float = DEFAULT_TIMEOUT_S,
        registry: Mapping[str, Handler] | None = None,
    ) -> None:
        self.embedded = embedded
        self._requested_region = region
        self._function_timeout_s = function_timeout_s
        # Without an explicit registry, handlers are imported per deployed ASL (tasks.<module>.handler).
        self._auto_registry = registry is None
        self._initial_registry = dict(registry or {})
        self._hidden_tasks: dict[str, HiddenTask] = {}
        self._stack: ExitStack | None = None
        self._sfn: SFNClient | None = None
        self._endpoint: LambdaEndpoint | None = None
        self._started: list[str] = []
        self._api_url: str | None = None
        self.region = ""
        self.account = ""

    # -- lifecycle
    def __enter__(self) -> LocalEngine:
        try:
            from moto import mock_aws
            from moto.core.models import DEFAULT_ACCOUNT_ID
        except ImportError as exc:
            raise EngineError("the local engine needs moto: pip install 'cognito-backuper[local]'") from exc
        self.region = self._resolve_region()
        self.account = DEFAULT_ACCOUNT_ID
        with ExitStack() as stack:
            stack.enter_context(interpreter_logs_demoted())
            stack.enter_context(_patched_env(self._env_for_run()))
            endpoint = LambdaEndpoint(
                self._initial_registry,
                region=self.region,
                account=self.account,
                function_timeout_s=self._function_timeout_s,
            )
            stack.enter_context(endpoint)
            stack.enter_context(_patched_env({"AWS_ENDPOINT_URL_LAMBDA": endpoint.url}))
            stack.enter_context(mock_aws(config=self._mock_config(endpoint.url)))
            moto_compat.install()
            if self.embedded:
                # The tasks share one rate budget in DynamoDB, as the deployed stack's Lambdas do.
                stack.enter_context(_patched_env({throttle.BUDGET_TABLE_ENV: self._budget_table()}))
            # Task clients and their budget are cached per process: create them inside this mock, never reuse
            # them after it.
            default_clients.cache_clear()
            throttle.task_budget.cache_clear()
            stack.callback(default_clients.cache_clear)
            stack.callback(throttle.task_budget.cache_clear)
            # Exit runs these in reverse: stop executions, close the endpoint and wait for running handlers,
            # clear the client cache, and only then stop the mock.
            stack.callback(self._close_and_drain, endpoint)
            self._sfn = self._make_sfn_client()
            stack.callback(self._stop_running)
            self._endpoint = endpoint
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        try:
            if stack is not None:
                stack.close()
        finally:
            self._sfn = None
            self._endpoint = None
            self._started.clear()

    def _budget_table(self) -> str:
        client = boto3.client("dynamodb", region_name=self.region)
        # A second engine in the same mock finds the table already there.
        with contextlib.suppress(client.exceptions.ResourceInUseException):
            shared_budget.create_table(client, shared_budget.LOCAL_TABLE)
        return shared_budget.LOCAL_TABLE

    def _resolve_region(self) -> str:
        if self._requested_region:
            return self._requested_region
        chain_region = boto3.session.Session().region_name
        if chain_region:
            return chain_region
        if self.embedded:
            return LOCAL_REGION
        raise RegionMissing(
            "no AWS Region configured: set AWS_REGION or AWS_DEFAULT_REGION, or pass a region"
        )

    def _env_for_run(self) -> dict[str, str | None]:
        env: dict[str, str | None] = {}
        if self.embedded:
            # Nothing may leave the process: lift endpoint overrides (Lambda's is set to the local endpoint).
            env.update({key: None for key in os.environ if _ENDPOINT_VARS.match(key)})
            env["AWS_DEFAULT_REGION"] = self.region
            if "AWS_REGION" in os.environ:
                env["AWS_REGION"] = self.region
        else:
            if self._requested_region:
                env["AWS_DEFAULT_REGION"] = self.region
            # The interpreter's own Step Functions client (states:startExecution.sync) must reach the in-process
            # mock even when AWS_ENDPOINT_URL sends every other service elsewhere. botocore names the variable
            # after the service id, "SFN" (AWS_ENDPOINT_URL_STEPFUNCTIONS is never read).
            env["AWS_ENDPOINT_URL_SFN"] = f"https://states.{self.region}.amazonaws.com"
        return env

    def _mock_config(self, endpoint_url: str) -> DefaultConfig:
        urls = [re.escape(endpoint_url) + r"(/.*)?$"]
        if not self.embedded:
            # Everything but the Step Functions API goes out to the standard boto3 configuration.
            urls.append(r"(?!https?://states\.[^/]*\.amazonaws\.com(/|$))")
        return {
            "stepfunctions": {"execute_state_machine": True},
            "core": {
                "passthrough": {"urls": urls, "services": []},
                # External mode keeps the caller's credentials; embedded mode gets moto's fake ones.
                "mock_credentials": self.embedded,
            },
        }

    def serve_api(self) -> str:
        """Expose this engine's Step Functions on loopback, for a decision sent from another process.

        ``approve`` and ``reject`` run elsewhere; they find this URL in the approval request and send the task token
        there. The server shares the in-process backends, so it sees the waiting execution. Stopped on exit.
        """
        if self._stack is None:
            raise EngineError("the engine is not running")
        if self._api_url is None:
            from moto.server import ThreadedMotoServer

            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            self._api_url = f"http://{host}:{port}"
            self._stack.callback(self._stop_api, server)
            self._stack.enter_context(_patched_env({ENGINE_ENDPOINT_ENV: self._api_url}))
        return self._api_url

    def _stop_api(self, server: Any) -> None:
        server.stop()
        self._api_url = None

    def _make_sfn_client(self) -> SFNClient:
        # Explicit endpoint and credentials: this client only ever talks to the in-process mock.
        session = boto3.session.Session(
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - a placeholder the in-process mock accepts
            region_name=self.region,
        )
        return session.client("stepfunctions", endpoint_url=f"https://states.{self.region}.amazonaws.com")

    def _stop_running(self) -> None:
        """Abandoned executions would keep invoking handlers after the mock is gone."""
        sfn = self._sfn
        if sfn is None:
            return
        for arn in self._started:
            try:
                if sfn.describe_execution(executionArn=arn)["status"] == _RUNNING:
                    sfn.stop_execution(
                        executionArn=arn, error="LocalEngineClosed", cause="the local engine exited"
                    )
            except botocore.exceptions.ClientError:
                LOG.debug("could not stop execution %s", arn)

    @staticmethod
    def _close_and_drain(endpoint: LambdaEndpoint) -> None:
        endpoint.stop()
        if not endpoint.drain(_DRAIN_S):
            LOG.warning(
                "local handlers still running after %.0f s; their AWS calls may leave the mock", _DRAIN_S
            )

    # -- clients
    @property
    def stepfunctions(self) -> SFNClient:
        if self._sfn is None:
            raise EngineError("the local engine is not running: use it as a context manager")
        return self._sfn

    @property
    def endpoint(self) -> LambdaEndpoint:
        if self._endpoint is None:
            raise EngineError("the local engine is not running: use it as a context manager")
        return self._endpoint

    # -- deployment
    def state_machine_name(self, name: str) -> str:
        return STATE_MACHINE_PREFIX + name

    def definition(self, name: str, substitutions: Mapping[str, str], *, asl_text: str | None = None) -> str:
        """The ASL of ``statemachines/<name>.asl.json`` (or ``asl_text``) with every placeholder filled."""
        text = asl_text if asl_text is not None else _read_asl(name)
        values = dict(substitutions)
        endpoint = self.endpoint
        for placeholder in task_names.function_placeholders(text):
            values[placeholder] = endpoint.function_arn(
                task_names.function_name(task_names.task_name(placeholder))
            )
        try:
            filled = task_names.substitute(text, values)
            json.loads(filled)
        except KeyError as exc:
            raise EngineError(f"cannot deploy {name}: {exc.args[0]}") from exc
        except ValueError as exc:
            raise EngineError(f"cannot deploy {name}: the definition is not valid JSON") from exc
        return filled

    def deploy(self, name: str, substitutions: Mapping[str, str], *, asl_text: str | None = None) -> str:
        """Create or update ``cognito-backuper-<name>``; returns its ARN."""
        text = asl_text if asl_text is not None else _read_asl(name)
        self._register_handlers(name, text)
        definition = self.definition(name, substitutions, asl_text=text)
        # Valid JSON by now: definition() has checked the filled text.
        self._hidden_tasks.update(hidden_tasks(json.loads(text)))
        sfn = self.stepfunctions
        sm_name = self.state_machine_name(name)
        role = f"arn:aws:iam::{self.account}:role/cognito-backuper-local"
        # Look up first: moto's CreateStateMachine returns an existing machine unchanged instead of failing.
        arn = self._state_machine_arn(sm_name)
        if arn is None:
            return sfn.create_state_machine(name=sm_name, definition=definition, roleArn=role)[
                "stateMachineArn"
            ]
        sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role)
        return arn

    def _register_handlers(self, name: str, text: str) -> None:
        endpoint = self.endpoint
        if self._auto_registry:
            for function_name, handler in task_registry([text]).items():
                endpoint.register(function_name, handler)
            return
        missing = sorted(
            function_name
            for p in task_names.function_placeholders(text)
            if endpoint.handler_for(function_name := task_names.function_name(task_names.task_name(p)))
            is None
        )
        if missing:
            raise EngineError(f"cannot deploy {name}: no handler registered for {', '.join(missing)}")

    def _state_machine_arn(self, sm_name: str) -> str | None:
        for page in self.stepfunctions.get_paginator("list_state_machines").paginate():
            for machine in page["stateMachines"]:
                if machine["name"] == sm_name:
                    return machine["stateMachineArn"]
        return None

    # -- executions
    def start(self, state_machine_arn: str, payload: Mapping[str, Any], name: str | None = None) -> str:
        # moto names an unnamed execution "None" (AWS generates a UUID): a second unnamed start would collide
        # with the first, or silently return it when the input is the same.
        arn = self.stepfunctions.start_execution(
            stateMachineArn=state_machine_arn, input=json.dumps(payload), name=name or str(uuid.uuid4())
        )["executionArn"]
        self._started.append(arn)
        return arn

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        """Every event, oldest first, JSON-ready (timestamps as ISO 8601 text)."""
        events: list[dict[str, Any]] = []
        paginator = self.stepfunctions.get_paginator("get_execution_history")
        for page in paginator.paginate(executionArn=execution_arn):
            events.extend(json_safe(dict(event)) for event in page["events"])
        return events

    def follow(
        self,
        execution_arn: str,
        *,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        on_poll: Callable[[], None] | None = None,
        timeout_s: float,
        poll_s: float = 0.2,
    ) -> ExecutionResult:
        """Wait for the execution to end, passing each history event once, in order, to ``on_event``.

        Tasks that only run inside a distributed Map leave no event in this history (moto keeps its child
        executions to itself): their results reach ``on_event`` as the state-exited events AWS would record in
        the children, so progress counts users on both engines."""
        seen: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()

        def observe(function: str, event: Any, result: Any) -> None:
            found = self._hidden_tasks.get(function)
            if found is not None and isinstance(event, dict):
                seen.put(hidden_task_event(found, event, result))

        def poll() -> None:
            while on_event is not None and not seen.empty():
                on_event(seen.get())
            if on_event is not None:
                for event in self._map_run_events(execution_arn):
                    on_event(event)
            if on_poll is not None:
                on_poll()

        self.endpoint.observers.append(observe)
        try:
            done = follow_execution(
                lambda: self.stepfunctions.describe_execution(executionArn=execution_arn),
                lambda: self.history(execution_arn),
                timeout_s=timeout_s,
                poll_s=poll_s,
                still_running=f"execution still running after {timeout_s:g}s: {execution_arn}",
                on_event=on_event,
                on_poll=poll,
                # moto returns the whole history on every read: a long execution polled every 0.2 s would spend
                # its time serialising its own history, so the pause grows with it (1 ms per event, at most 2 s).
                pause_per_event_s=_POLL_S_PER_EVENT,
                max_pause_s=_MAX_POLL_S,
            )
        finally:
            self.endpoint.observers.remove(observe)
        poll()  # the last results, before the caller prints its summary
        return ExecutionResult(
            status=done.status, output=done.output, error=done.error, cause=done.cause, events=done.events
        )

    def _map_run_events(self, execution_arn: str) -> list[dict[str, Any]]:
        """DescribeMapRun's item counts of the execution's distributed Map Runs, as the AWS engine reports them."""
        try:
            runs = self.stepfunctions.list_map_runs(executionArn=execution_arn).get("mapRuns", [])
            return [
                map_run_event(
                    run["mapRunArn"],
                    self.stepfunctions.describe_map_run(mapRunArn=run["mapRunArn"]).get("itemCounts") or {},
                )
                for run in runs
            ]
        except (botocore.exceptions.ClientError, AttributeError):
            # moto raises AttributeError for an execution whose interpreter has not set up yet: no runs so far.
            return []


def _read_asl(name: str) -> str:
    source = resources.files("statemachines").joinpath(f"{name}.asl.json")
    if not source.is_file():
        raise EngineError(f"no state machine definition statemachines/{name}.asl.json")
    return source.read_text(encoding="utf-8")
