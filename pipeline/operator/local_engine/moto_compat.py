"""Compatibility shims for running the pipeline on moto in-process; each does what AWS does, nothing more.

1. The ``states:startExecution`` integrations of moto's Step Functions interpreter. moto's port leaves request
and response normalisation out for this integration: it calls botocore with the ASL's PascalCase parameters
(``StateMachineArn``) where botocore's model is camelCase, and hands the camelCase responses to code that reads
PascalCase (``ExecutionArn``). Step Functions itself does both conversions, so the shim does exactly that;
``statemachines/restore.asl.json`` then runs unchanged here and on AWS.

2. Thread safety of moto's Cognito emulation. Map states run tasks concurrently, and moto's Cognito backend
iterates dictionaries that other requests modify ("OrderedDict mutated during iteration"). The service itself
is safe under concurrent calls, so each emulated Cognito request is made atomic with a readers-writer lock:
reads (the List, Describe and Get actions, which only iterate) run side by side, and a request that may change
anything runs alone. A Map of export tasks only reads, so its shards no longer queue behind one another.

3. O(page) paging of ListUsers and ListUsersInGroup (:mod:`.moto_paging`), which moto makes quadratic.

4. SendTaskFailure's ``cause``. moto 5.2.5's HTTP layer reads only ``error`` and drops the cause, which Step
Functions hands to the Catch as ``$.error.Cause``; a rejection carries the rejecting person's identity proof
there (pipeline.restore.approval.decide). The shim passes the cause through, as the service does.

5. ListExecutions with ``mapRunArn``. AWS lists a distributed Map Run's child executions; moto ignores the
parameter and fails without a ``stateMachineArn``. moto keeps those children to itself (no execution, no
history), so the shim answers what moto can: no executions. Progress counts the children's work from the task
results the local engine sees (:mod:`.hidden_tasks`) and the Map Run's counts from DescribeMapRun.

6. Atomic DynamoDB writes. DynamoDB applies a conditional write to an item atomically; moto checks the condition
and writes in separate steps, so two threads can both pass a version check (measured: 800 successful
conditional increments left the counter at 775). The shared rate budget (pipeline.cognito.shared_budget) relies
on that atomicity, so each emulated DynamoDB request runs alone.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from typing import Any

from pipeline.operator.local_engine import moto_paging
from pipeline.operator.local_engine.rwlock import ReadWriteLock

_MARK = "_cognito_backuper_compat"
_COGNITO_LOCK = ReadWriteLock()
_DYNAMODB_LOCK = threading.Lock()


def _camel(key: str) -> str:
    return key[:1].lower() + key[1:]


def _pascal(key: str) -> str:
    return key[:1].upper() + key[1:]


def _rename_keys(mapping: dict[str, Any], rename: Any) -> None:
    for key in list(mapping):
        new = rename(key)
        if new != key:
            mapping[new] = mapping.pop(key)


def cognito_writes() -> AbstractContextManager[None]:
    """Hold the embedded Cognito alone, as a request that changes it does (for writes around the API)."""
    return _COGNITO_LOCK.writing()


def install() -> None:
    """Every shim, once per process."""
    _install_sfn_integration()
    _install_task_failure_cause()
    _install_cognito_lock()
    install_dynamodb_lock()
    moto_paging.install()
    _install_map_run_children()


def _install_map_run_children() -> None:
    from moto.core.responses import ActionResult
    from moto.stepfunctions.responses import StepFunctionResponse

    cls: Any = StepFunctionResponse
    if getattr(cls, _MARK + "_map_runs", False):
        return
    original = cls.list_executions

    def list_executions(self: Any) -> Any:
        if self._get_param("mapRunArn") and not self._get_param("stateMachineArn"):
            return ActionResult({"executions": []})
        return original(self)

    cls.list_executions = list_executions
    setattr(cls, _MARK + "_map_runs", True)


def install_dynamodb_lock() -> None:
    from moto.dynamodb.responses import DynamoHandler

    cls: Any = DynamoHandler
    if getattr(cls, _MARK, False):
        return
    original = cls.call_action

    def call_action(self: Any) -> Any:
        with _DYNAMODB_LOCK:
            return original(self)

    cls.call_action = call_action
    setattr(cls, _MARK, True)


def _install_cognito_lock() -> None:
    from moto.cognitoidp.responses import CognitoIdpResponse

    cls: Any = CognitoIdpResponse
    if getattr(cls, _MARK, False):
        return
    original = cls.call_action

    def call_action(self: Any) -> Any:
        if _is_read(self):
            with _COGNITO_LOCK.reading():
                return original(self)
        with _COGNITO_LOCK.writing():
            return original(self)

    cls.call_action = call_action
    setattr(cls, _MARK, True)


def _is_read(response: Any) -> bool:
    from moto.core.utils import camelcase_to_underscores

    try:
        action = camelcase_to_underscores(response._get_action())
    except Exception:  # noqa: BLE001 - an action we cannot name is treated as a write: the safe side
        return False
    return action in moto_paging.READ_METHODS


def _install_task_failure_cause() -> None:
    from moto.core.responses import EmptyResult
    from moto.stepfunctions.responses import StepFunctionResponse

    cls: Any = StepFunctionResponse
    if getattr(cls.send_task_failure, _MARK, False):
        return

    def send_task_failure(self: Any) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
        )
        return EmptyResult()

    setattr(send_task_failure, _MARK, True)
    cls.send_task_failure = send_task_failure


def _install_sfn_integration() -> None:
    """Patch the interpreter's Step Functions integration."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_sfn as sfn_service,
    )

    cls: Any = sfn_service.StateTaskServiceSfn
    if getattr(cls, _MARK, False):
        return
    original_parameters = cls._normalise_parameters
    original_eval = cls._eval_service_task

    def normalise_parameters(
        self: Any,
        parameters: dict[str, Any],
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        original_parameters(self, parameters, boto_service_name, service_action_name)
        _rename_keys(parameters, _camel)

    def normalise_response(
        self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None
    ) -> None:
        if isinstance(response, dict):
            _rename_keys(response, _pascal)

    def eval_service_task(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        original_eval(self, env, *args, **kwargs)
        normalise_response(self, env.stack[-1])

    cls._normalise_parameters = normalise_parameters
    cls._normalise_response = normalise_response
    cls._eval_service_task = eval_service_task
    setattr(cls, _MARK, True)
