"""The Engine of pipeline.operator.runs against the DEPLOYED stack: Step Functions itself runs the state machines.

Nothing is deployed from here. ``deploy`` only finds the ARN of the machine the CDK app deployed (CloudFormation
outputs of the stack, or ``COGNITO_BACKUPER_<NAME>_STATE_MACHINE_ARN``) and checks that the bucket, key and prefix
the caller asks for are the ones baked into that machine at deploy time: the deployed definition is the truth,
so it is read back (DescribeStateMachine) and compared placeholder by placeholder with ``statemachines/``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions

from pipeline.core.aws import SDK_CONFIG, Clients, error_code, json_safe, sdk_errors
from pipeline.core.errors import EngineError, InvalidRequest, PipelineError, RegionMissing
from pipeline.operator.following import follow_execution
from pipeline.operator.progress import map_run_event

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

LOG = logging.getLogger(__name__)

# Must match infra.app.STACK_NAME (the package cannot import the CDK app; a test keeps them equal).
STACK_NAME = "CognitoBackuperStack"
OUTPUT_SUFFIX = "StateMachineArn"
ENV_ARN = "COGNITO_BACKUPER_{name}_STATE_MACHINE_ARN"
# Stacks in these states hold no usable machines (a failed first deployment rolls everything back).
_UNUSABLE = frozenset({"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_IN_PROGRESS"})
_PLACEHOLDER = re.compile(r"^\$\{(\w+)\}$")
_KMS_ARN = re.compile(r"^arn:[^:]+:kms:[^:]+:\d{12}:key/(?P<id>[0-9a-fA-F-]+)$")
# History pages of up to 1,000 events: the API maximum, so a long history costs few calls.
HISTORY_PAGE = 1000

StackOutputs = Callable[[], Mapping[str, str]]
KeyResolver = Callable[[str], str]


def output_name(machine: str) -> str:
    """``backup`` -> ``BackupStateMachineArn``: the CfnOutput the stack declares per ASL file (infra.stack)."""
    return "".join(p.capitalize() for p in machine.replace("_", "-").split("-")) + OUTPUT_SUFFIX


def env_override(machine: str) -> str:
    return ENV_ARN.format(name=re.sub(r"[^A-Z0-9]", "_", machine.upper()))


def console_url(execution_arn: str) -> str:
    region = execution_arn.split(":")[3] if execution_arn.count(":") >= 4 else ""
    return (
        f"https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/v2/executions/details/{execution_arn}"
    )


# Typed loosely: boto3-stubs[cloudformation] is not among the dev dependencies.
def _cloudformation(region: str) -> Any:
    return boto3.client("cloudformation", region_name=region, config=SDK_CONFIG)


def describe_stack_outputs(cloudformation: Any, stack_name: str = STACK_NAME) -> dict[str, str]:
    """The outputs of a usable stack; InvalidRequest when there is none."""
    with sdk_errors():
        try:
            stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
        except botocore.exceptions.ClientError as exc:
            if (
                error_code(exc) == "ValidationError"
            ):  # CloudFormation's answer for a stack that does not exist
                raise InvalidRequest(
                    f"stack {stack_name} is not deployed in this account and Region (use --engine local, or "
                    "deploy the CDK app)"
                ) from exc
            raise
    if not stacks or stacks[0].get("StackStatus") in _UNUSABLE:
        raise InvalidRequest(f"stack {stack_name} is not in a usable state: redeploy it")
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", []) if "OutputKey" in o}


def stack_found(clients: Clients, stack_name: str = STACK_NAME) -> bool:
    """True when the standard credentials can see a usable deployed stack: then the CLI defaults to AWS mode."""
    try:
        outputs = describe_stack_outputs(_cloudformation(clients.region), stack_name)
    except (PipelineError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        # No stack, no permission to look, no endpoint: all mean "use the local engine".
        LOG.debug("no deployed stack %s: %s", stack_name, type(exc).__name__)
        return False
    return output_name("backup") in outputs


def deployed_values(template: Any, deployed: Any) -> dict[str, set[str]]:
    """What each ``${Placeholder}`` of the local ASL became in the deployed definition, walking both in step.

    Only strings that are exactly one placeholder count (those are the settings and ARNs). Where the two
    trees differ in shape the walk stops, so a placeholder may be absent from the result.
    """
    found: dict[str, set[str]] = {}

    def walk(t: Any, d: Any) -> None:
        if isinstance(t, str):
            match = _PLACEHOLDER.match(t)
            if match and isinstance(d, str):
                found.setdefault(match.group(1), set()).add(d)
        elif isinstance(t, dict) and isinstance(d, dict):
            for key, value in t.items():
                if key in d:
                    walk(value, d[key])
        elif isinstance(t, list) and isinstance(d, list) and len(t) == len(d):
            for a, b in zip(t, d, strict=True):
                walk(a, b)

    walk(template, deployed)
    return found


@dataclass
class AwsExecutionResult:  # mutable fields, as pipeline.operator.runs.ExecutionView declares them
    status: str
    output: Any
    error: str | None
    cause: str | None
    events: int
    history_pages: int = 0


@dataclass
class _HistoryCursor:
    """Where the next read of a growing history starts: the token of the last, still growing page."""

    token: str | None = None
    last_id: int = 0
    pages: int = 0
    map_runs: set[str] = field(default_factory=set)


# Child executions whose histories one poll reads at most (the running ones first): a bound on API calls.
CHILDREN_PER_POLL = 16
_TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


@dataclass
class _ChildCursor:
    history: _HistoryCursor = field(default_factory=_HistoryCursor)
    done: bool = False


class AwsEngine:
    """Runs the deployed machines; a context manager like the local engine, with nothing to start or stop."""

    def __init__(
        self,
        clients: Clients | None = None,
        *,
        sfn: SFNClient | None = None,
        region: str | None = None,
        stack_name: str = STACK_NAME,
        outputs: StackOutputs | None = None,
        resolve_key: KeyResolver | None = None,
        on_start: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.region = (
            region or (clients.region if clients else None) or boto3.session.Session().region_name or ""
        )
        if not self.region:
            raise RegionMissing("no AWS Region configured: set AWS_REGION or AWS_DEFAULT_REGION")
        self._sfn = sfn
        self._clients = clients
        self.stack_name = stack_name
        self._outputs_provider = outputs
        self._outputs: Mapping[str, str] | None = None
        self._resolve_key = resolve_key
        self._on_start = on_start
        self._sleep = sleep
        self._clock = clock
        # Item counts of DISTRIBUTED map runs seen while following (mapRunArn -> itemCounts).
        self.map_runs: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> AwsEngine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    @property
    def stepfunctions(self) -> SFNClient:
        if self._sfn is None:
            self._sfn = boto3.client("stepfunctions", region_name=self.region, config=SDK_CONFIG)
        return self._sfn

    def serve_api(self) -> None:
        """Nothing to serve: approvers send their decision to Step Functions itself."""
        return None

    def console_url(self, execution_arn: str) -> str:
        return console_url(execution_arn)

    # -- finding the deployed machines
    def _stack_outputs(self) -> Mapping[str, str]:
        if self._outputs is None:
            if self._outputs_provider is not None:
                self._outputs = dict(self._outputs_provider())
            else:
                self._outputs = describe_stack_outputs(_cloudformation(self.region), self.stack_name)
        return self._outputs

    def state_machine_arn(self, name: str) -> str:
        override = os.environ.get(env_override(name))
        if override:
            return override
        arn = self._stack_outputs().get(output_name(name))
        if not arn:
            raise InvalidRequest(
                f"stack {self.stack_name} has no output {output_name(name)}: deploy a version that has the "
                f"{name} state machine, or set {env_override(name)}"
            )
        return arn

    def deploy(self, name: str, substitutions: Mapping[str, str]) -> str:
        """The deployed machine's ARN, after checking it was deployed with these settings."""
        arn = self.state_machine_arn(name)
        with sdk_errors():
            try:
                definition = self.stepfunctions.describe_state_machine(stateMachineArn=arn)["definition"]
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) in {"StateMachineDoesNotExist", "InvalidArn"}:
                    raise InvalidRequest(f"the deployed {name} state machine {arn} does not exist") from exc
                raise
        self._check_settings(name, arn, definition, substitutions)
        return arn

    def _check_settings(self, name: str, arn: str, definition: str, wanted: Mapping[str, str]) -> None:
        try:
            deployed = deployed_values(json.loads(_read_asl(name)), json.loads(definition))
        except ValueError as exc:
            raise EngineError(f"cannot read the definition of {arn}") from exc
        for placeholder, value in sorted(wanted.items()):
            values = deployed.get(placeholder)
            if not values:
                raise InvalidRequest(
                    f"cannot confirm {placeholder} of the deployed {name} state machine: its definition does not "
                    "match statemachines/ of this version; redeploy the stack"
                )
            if len(values) > 1 or not self._same(placeholder, value, next(iter(values))):
                raise InvalidRequest(
                    f"the deployed {name} state machine uses {placeholder} {' / '.join(sorted(values))}, not "
                    f"{value}: the bucket, key and prefix are fixed when the stack is deployed; use those, "
                    "redeploy with other settings, or use --engine local"
                )

    def _same(self, placeholder: str, wanted: str, deployed: str) -> bool:
        if wanted == deployed:
            return True
        if placeholder == "BackupPrefix":
            return wanted.strip("/") == deployed.strip("/")
        if placeholder == "KmsKeyArn":
            match = _KMS_ARN.match(deployed)
            if match and wanted == match.group("id"):
                return True
            resolved = self._key_arn(wanted)
            return resolved is not None and resolved == deployed
        return False

    def _key_arn(self, key: str) -> str | None:
        """An alias or key id to its key ARN, so ``--kms-key alias/x`` matches the deployed ARN."""
        if self._resolve_key is not None:
            return self._resolve_key(key)
        if self._clients is None:
            return None
        with sdk_errors():
            try:
                return self._clients.kms.describe_key(KeyId=key)["KeyMetadata"]["Arn"]
            except botocore.exceptions.ClientError:
                return None

    # -- executions
    def start(self, state_machine_arn: str, payload: Mapping[str, Any], name: str | None = None) -> str:
        # A name makes a retried start idempotent: Step Functions refuses a second execution of the same name.
        with sdk_errors():
            arn = self.stepfunctions.start_execution(
                stateMachineArn=state_machine_arn, input=json.dumps(payload), name=name or str(uuid.uuid4())
            )["executionArn"]
        if self._on_start is not None:
            self._on_start(arn)
        return arn

    def _new_events(self, execution_arn: str, cursor: _HistoryCursor) -> Iterator[dict[str, Any]]:
        """Events after ``cursor.last_id``, paging with nextToken and resuming from the last growing page."""
        token = cursor.token
        while True:
            kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": HISTORY_PAGE}
            if token:
                kwargs["nextToken"] = token
            try:
                page = self.stepfunctions.get_execution_history(**kwargs)
            except botocore.exceptions.ClientError as exc:
                if token and error_code(exc) == "InvalidToken":  # tokens expire: read again from the start
                    token = cursor.token = None
                    continue
                raise
            cursor.pages += 1
            for raw in page.get("events", []):
                event = json_safe(dict(raw))
                if int(event["id"]) > cursor.last_id:
                    cursor.last_id = int(event["id"])
                    yield event
            following = page.get("nextToken")
            if not following:
                cursor.token = token  # this page may still grow: the next poll starts here
                return
            token = following

    def _map_run_counts(self, cursor: _HistoryCursor) -> None:
        for arn in sorted(cursor.map_runs):
            try:
                described = self.stepfunctions.describe_map_run(mapRunArn=arn)
            except botocore.exceptions.ClientError:
                continue
            self.map_runs[arn] = json_safe(dict(described.get("itemCounts") or {}))

    def _follow_children(
        self,
        cursor: _HistoryCursor,
        children: dict[str, _ChildCursor],
        observe: Callable[[dict[str, Any]], None],
    ) -> None:
        """A distributed Map's work happens in child executions with their own histories: their new events go to
        the tracker as the parent's do (a nested Map Run found there is followed too), then each Map Run's counts.
        """
        for arn in sorted(cursor.map_runs):
            status: dict[str, str] = {}
            try:
                for page in self.stepfunctions.get_paginator("list_executions").paginate(mapRunArn=arn):
                    status.update({e["executionArn"]: e["status"] for e in page.get("executions", [])})
            except botocore.exceptions.ClientError:
                continue
            unfinished = [c for c in status if not children.setdefault(c, _ChildCursor()).done]
            unfinished.sort(key=lambda c: status[c] in _TERMINAL)  # running children first
            for child in unfinished[:CHILDREN_PER_POLL]:
                state = children[child]
                terminal = (
                    status[child] in _TERMINAL
                )  # listed as ended before this read: the read is complete
                try:
                    for event in self._new_events(child, state.history):
                        observe(event)
                except botocore.exceptions.ClientError:
                    continue
                cursor.map_runs |= state.history.map_runs
                state.done = terminal
        for arn in sorted(cursor.map_runs):
            if arn in self.map_runs:
                observe(map_run_event(arn, self.map_runs[arn]))

    def follow(
        self,
        execution_arn: str,
        *,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        on_poll: Callable[[], None] | None = None,
        timeout_s: float,
        poll_s: float = 2.0,
    ) -> AwsExecutionResult:
        """Wait for the end, passing each history event once, in order, to ``on_event``; deadline ``timeout_s``."""
        cursor = _HistoryCursor()
        children: dict[str, _ChildCursor] = {}

        def observe(event: dict[str, Any]) -> None:
            started = event.get("mapRunStartedEventDetails") or {}
            if started.get("mapRunArn"):
                cursor.map_runs.add(str(started["mapRunArn"]))
            if on_event is not None:
                on_event(event)

        def after_poll() -> None:
            if cursor.map_runs:
                self._map_run_counts(cursor)
                self._follow_children(cursor, children, observe)
            if on_poll is not None:
                on_poll()

        with sdk_errors():
            done = follow_execution(
                lambda: self.stepfunctions.describe_execution(executionArn=execution_arn),
                lambda: self._new_events(execution_arn, cursor),
                timeout_s=timeout_s,
                poll_s=poll_s,
                still_running=f"execution still running after {timeout_s:g}s (it goes on in AWS): {execution_arn}",
                on_event=observe,
                on_poll=after_poll,
                clock=self._clock,
                sleep=self._sleep,
            )
        return AwsExecutionResult(
            status=done.status,
            output=done.output,
            error=done.error,
            cause=done.cause,
            events=done.events,
            history_pages=cursor.pages,
        )


def _read_asl(name: str) -> str:
    source = resources.files("statemachines").joinpath(f"{name}.asl.json")
    if not source.is_file():
        raise EngineError(f"no state machine definition statemachines/{name}.asl.json")
    return source.read_text(encoding="utf-8")
