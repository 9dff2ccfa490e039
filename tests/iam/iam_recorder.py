"""Records every AWS call made while an actor (a task handler, or a person's CLI command) is running.

A botocore ``provide-client-params`` hook (and an ``after-call`` one that notes 404 answers), added to botocore's
built-in handlers so that every session and client created afterwards carries them (the way moto adds its own
``before-send`` hook). Calls are attributed through a
context variable: a wrapper around each ``tasks.<module>.handler`` sets it for the handler's thread (the local
engine runs each invocation in its own thread), and the test sets it around each CLI command. Calls made with no
actor (test setup, the engine itself, Step Functions' Lambda invocations) are not recorded.

Only what authorisation depends on is kept (bucket, key, prefix, SSE headers, key ids and encryption contexts,
pool ids, ARNs): never bodies, user names or attributes.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import importlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.handlers
import pytest

from pipeline.core import task_names

_CONTEXT_KEY = "iam_contract_call"
ACTOR: contextvars.ContextVar[str | None] = contextvars.ContextVar("iam_contract_actor", default=None)

# The request parameters IAM authorisation can depend on (resource ARNs and condition keys).
_KEPT = frozenset(
    {
        "Bucket",
        "Key",
        "Prefix",
        "Delimiter",
        "VersionId",
        "ServerSideEncryption",
        "SSEKMSKeyId",
        "IfNoneMatch",
        "IfMatch",
        "ObjectLockMode",
        "ObjectLockRetainUntilDate",
        "ObjectLockLegalHoldStatus",
        "ChecksumAlgorithm",
        "KeyId",
        "EncryptionContext",
        "UserPoolId",
        "UserPoolTags",  # CreateUserPool's aws:RequestTag/* and aws:TagKeys
        "TableName",
        "stateMachineArn",
        "executionArn",
        "mapRunArn",
        "TopicArn",
        "StackName",
        "RoleArn",
        "SmsConfiguration",
        "Domain",
        "CopySource",
        "Delete",
    }
)


@dataclass(frozen=True)
class Call:
    actor: str
    service: str
    operation: str
    region: str
    params: str  # JSON of the kept parameters, so a Call is hashable and calls deduplicate
    # The service answered 404: for S3 reads that answer is itself authorised (by s3:ListBucket).
    missing: bool = False

    @property
    def parameters(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.params)
        return result

    def describe(self) -> str:
        return f"{self.service}:{self.operation} {self.params}"


def _kept(params: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for name, value in params.items():
        if name not in _KEPT:
            continue
        if name == "SmsConfiguration" and isinstance(value, dict):
            value = {"SnsCallerArn": value.get("SnsCallerArn")}
        if name == "Delete" and isinstance(value, dict):
            value = {"Objects": [{"Key": o.get("Key")} for o in value.get("Objects", [])]}
        kept[name] = value if isinstance(value, (str, int, bool, dict, list)) or value is None else str(value)
    return kept


class Recorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: set[Call] = set()
        self.invoked: set[str] = set()

    def hook(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        actor = ACTOR.get()
        if actor is None:
            return
        call = Call(
            actor=actor,
            service=model.service_model.service_name,
            operation=model.name,
            region=str(context.get("client_region") or ""),
            params=json.dumps(_kept(params), sort_keys=True, default=str),
        )
        context[_CONTEXT_KEY] = call  # the request context travels to after-call
        with self._lock:
            self._calls.add(call)

    def answered(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        call = context.get(_CONTEXT_KEY)
        if isinstance(call, Call) and getattr(http_response, "status_code", None) == 404:
            with self._lock:
                self._calls.add(dataclasses.replace(call, missing=True))

    def calls(self, actor_prefix: str = "") -> list[Call]:
        with self._lock:
            found = [c for c in self._calls if c.actor.startswith(actor_prefix)]
        return sorted(found, key=lambda c: (c.actor, c.service, c.operation, c.params))

    def note_invocation(self, task: str) -> None:
        with self._lock:
            self.invoked.add(task)


@contextlib.contextmanager
def acting_as(actor: str) -> Iterator[None]:
    token = ACTOR.set(actor)
    try:
        yield
    finally:
        ACTOR.reset(token)


def _attributed(task: str, handler: Callable[..., Any], recorder: Recorder) -> Callable[..., Any]:
    @functools.wraps(handler)
    def wrapper(event: Any, context: Any = None) -> Any:
        recorder.note_invocation(task)
        with acting_as(f"task:{task}"):
            return handler(event, context)

    return wrapper


@contextlib.contextmanager
def recording(tasks: list[str]) -> Iterator[Recorder]:
    """Hook every botocore session created from now on, and attribute each task handler's calls to its task."""
    recorder = Recorder()
    specs = [("provide-client-params.*.*", recorder.hook), ("after-call.*.*", recorder.answered)]
    # In place, as moto adds its hook: sessions read the list when they are created.
    botocore.handlers.BUILTIN_HANDLERS.extend(specs)
    with pytest.MonkeyPatch.context() as patch:
        # boto3's default session was built without the hook: start a new one that has it.
        patch.setattr(boto3, "DEFAULT_SESSION", None)
        for task in tasks:
            module = importlib.import_module(f"tasks.{task_names.module_name(task)}")
            patch.setattr(module, "handler", _attributed(task, module.handler, recorder))
        try:
            yield recorder
        finally:
            for spec in specs:
                botocore.handlers.BUILTIN_HANDLERS.remove(spec)
