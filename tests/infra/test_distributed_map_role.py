"""A DISTRIBUTED Map starts child executions of its own machine: only that machine's role may do so."""

from __future__ import annotations

import json
from typing import Any

from tests.helpers.synth import Synth, as_list, statements


def _machine_actions(synth: Synth, name: str) -> dict[str, list[str]]:
    """Action -> resources (as JSON text) allowed to the role of the state machine called ``name``."""
    machines = synth.resources("AWS::StepFunctions::StateMachine").values()
    machine = next(m for m in machines if m["Properties"]["StateMachineName"] == name)
    role = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    allowed: dict[str, list[str]] = {}
    for policy in synth.resources("AWS::IAM::Policy").values():
        if {"Ref": role} not in policy["Properties"]["Roles"]:
            continue
        for st in statements(policy["Properties"]["PolicyDocument"]):
            if st["Effect"] != "Allow":
                continue
            for action in as_list(st["Action"]):
                allowed.setdefault(action, []).extend(json.dumps(r) for r in as_list(st["Resource"]))
    return allowed


def test_backup_machine_may_start_and_follow_its_own_map_runs(default_synth: Synth) -> None:
    allowed = _machine_actions(default_synth, "cognito-backuper-backup")
    assert any("stateMachine:cognito-backuper-backup" in r for r in allowed["states:StartExecution"])
    follow: Any = allowed["states:DescribeExecution"]
    assert any("execution:cognito-backuper-backup/*" in r for r in follow)
    assert any("execution:cognito-backuper-backup/*" in r for r in allowed["states:StopExecution"])


def test_restore_machine_starts_the_backup_machine_and_its_own_map_runs_only(default_synth: Synth) -> None:
    allowed = _machine_actions(default_synth, "cognito-backuper-restore")
    starts = allowed["states:StartExecution"]
    own = [r for r in starts if "stateMachine:cognito-backuper-restore" in r]
    assert len(own) == 1  # RestoreShardsDistributed's child executions
    others = [r for r in starts if r not in own]
    assert others and all("BackupMachineStateMachine" in r for r in others)  # the pre-restore snapshot
    assert any("execution:cognito-backuper-restore/*" in r for r in allowed["states:DescribeExecution"])
