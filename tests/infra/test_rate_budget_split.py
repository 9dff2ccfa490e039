"""On AWS every Lambda process limits itself, so the account's share of the quotas is split between the tasks
that can call Cognito at the same time."""

from __future__ import annotations

from conftest import Synth

from infra.asl import concurrent_cognito_tasks, discover
from pipeline.task_names import function_name
from pipeline.throttle import DEFAULT_FRACTION, FRACTION_ENV


def _env(synth: Synth, task: str) -> dict[str, str]:
    for res in synth.resources("AWS::Lambda::Function").values():
        if res["Properties"].get("FunctionName") == function_name(task):
            env: dict[str, str] = res["Properties"]["Environment"]["Variables"]
            return env
    raise AssertionError(task)


def test_concurrent_tasks_come_from_the_widest_map_plus_the_memberships_branch() -> None:
    assert concurrent_cognito_tasks(discover()) == 9  # ExportShards' MaxConcurrency 8, plus memberships


def test_cognito_tasks_get_their_share_and_others_none(default_synth: Synth) -> None:
    share = float(_env(default_synth, "ExportUsers")[FRACTION_ENV])
    assert abs(share * concurrent_cognito_tasks(discover()) - DEFAULT_FRACTION) < 1e-5
    assert float(_env(default_synth, "RestoreUsers")[FRACTION_ENV]) == share
    assert FRACTION_ENV not in _env(default_synth, "PlanShards")
