"""BackupEachPool's ItemReader reads the run's pool list (an SSE-KMS object): the backup machine's role may read
that folder and decrypt through S3, the key policy names that role, and the restore machine gets neither."""

from __future__ import annotations

import json
from typing import Any

from tests.helpers.synth import Synth, as_list, statements


def _role_statements(synth: Synth, name: str) -> tuple[str, list[dict[str, Any]]]:
    machines = synth.resources("AWS::StepFunctions::StateMachine").values()
    machine = next(m for m in machines if m["Properties"]["StateMachineName"] == name)
    role = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    found = [
        st
        for policy in synth.resources("AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for st in statements(policy["Properties"]["PolicyDocument"])
    ]
    return role, found


def test_the_backup_machine_reads_and_decrypts_only_the_runs_folder(default_synth: Synth) -> None:
    role, found = _role_statements(default_synth, "cognito-backuper-backup")
    (read,) = [st for st in found if st.get("Sid") == "ReadMapItems"]
    assert as_list(read["Action"]) == ["s3:GetObject"]
    assert json.dumps(read["Resource"]).endswith('"/backups/runs/*"]]}')
    (decrypt,) = [st for st in found if st.get("Sid") == "DecryptMapItems"]
    assert as_list(decrypt["Action"]) == ["kms:Decrypt"]
    assert "kms:ViaService" in decrypt["Condition"]["StringEquals"]
    keys = default_synth.resources("AWS::KMS::Key").values()
    key_statements = [st for key in keys for st in statements(key["Properties"]["KeyPolicy"])]
    (granted,) = [st for st in key_statements if st.get("Sid") == "DecryptMapItemsForBackupMachine"]
    assert json.dumps(granted["Principal"]).count(role) == 1
    assert as_list(granted["Action"]) == ["kms:Decrypt"]


def test_the_restore_machine_reads_no_map_items(default_synth: Synth) -> None:
    _, found = _role_statements(default_synth, "cognito-backuper-restore")
    assert not [st for st in found if "s3:GetObject" in as_list(st["Action"])]
