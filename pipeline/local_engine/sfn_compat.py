"""A compatibility shim for moto's Step Functions interpreter: the ``states:startExecution`` integrations.

moto's port of the interpreter leaves request and response normalisation out for this integration: it calls
botocore with the ASL's PascalCase parameters (``StateMachineArn``) where botocore's model is camelCase, and hands the
camelCase responses to code that reads PascalCase (``ExecutionArn``). Step Functions itself does both conversions, so
the shim does exactly that and nothing else; ``statemachines/restore.asl.json`` then runs unchanged here and on AWS.
"""

from __future__ import annotations

from typing import Any

_MARK = "_cognito_backuper_compat"


def _camel(key: str) -> str:
    return key[:1].lower() + key[1:]


def _pascal(key: str) -> str:
    return key[:1].upper() + key[1:]


def _rename_keys(mapping: dict[str, Any], rename: Any) -> None:
    for key in list(mapping):
        new = rename(key)
        if new != key:
            mapping[new] = mapping.pop(key)


def install() -> None:
    """Patch the interpreter's Step Functions integration once per process."""
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
