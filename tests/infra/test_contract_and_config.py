"""ASL <-> tasks <-> CDK substitutions, the permission table, settings from context, and the bundler (offline)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from infra import asl, bundling, drill, permissions
from infra.settings import InfraConfigError, Settings, settings_from_context
from pipeline.core import task_names
from tests.helpers.synth import Synth

ROOT = Path(__file__).resolve().parents[2]


def test_every_placeholder_of_every_machine_is_substituted(default_synth: Synth) -> None:
    machines = default_synth.resources("AWS::StepFunctions::StateMachine")
    by_name = {m["Properties"]["StateMachineName"]: m["Properties"] for m in machines.values()}
    files = sorted((ROOT / "statemachines").glob("*.asl.json"))
    assert len(files) == len(by_name)
    for path in files:
        props = by_name[f"cognito-backuper-{path.name.removesuffix('.asl.json')}"]
        text = path.read_text()
        assert task_names.placeholders(text) == set(props["DefinitionSubstitutions"])
        for name, value in props["DefinitionSubstitutions"].items():
            if name.endswith(task_names.FUNCTION_SUFFIX):
                assert list(value) == ["Fn::GetAtt"], name


def test_every_function_placeholder_has_a_task_module_and_a_permission_row() -> None:
    missing = []
    for spec in asl.discover():
        for task in spec.tasks:
            if not drill.is_drill_task(task):  # the drill's rows are in infra.drill, tag-scoped
                permissions.needs_for(task)
            module = ROOT / "tasks" / f"{task_names.module_name(task)}.py"
            if not module.is_file():
                missing.append(str(module.relative_to(ROOT)))
    assert missing == [], f"task modules missing: {missing}"


def _write(directory: Path, name: str, body: str) -> None:
    (directory / f"{name}.asl.json").write_text(body)


def test_unknown_setting_placeholder_fails_loudly(tmp_path: Path) -> None:
    _write(tmp_path, "backup", '{"a": "${EnumeratePoolsFunctionArn}", "b": "${SomethingElse}"}')
    with pytest.raises(InfraConfigError, match="SomethingElse"):
        asl.discover(tmp_path)


def test_machines_are_ordered_after_the_machines_they_start(tmp_path: Path) -> None:
    _write(tmp_path, "a-restore", '{"m": "${BackupStateMachineArn}", "f": "${ValidateRequestFunctionArn}"}')
    _write(tmp_path, "backup", '{"f": "${ExportUsersFunctionArn}", "b": "${BackupBucket}"}')
    specs = asl.discover(tmp_path)
    assert [s.name for s in specs] == ["backup", "a-restore"]
    assert specs[1].starts == ("backup",)
    assert specs[0].settings == ("BackupBucket",)
    _write(tmp_path, "orphan", '{"m": "${MissingStateMachineArn}"}')
    with pytest.raises(InfraConfigError, match="missing"):
        asl.discover(tmp_path)


def test_task_without_a_permission_row_fails_loudly() -> None:
    with pytest.raises(InfraConfigError, match="TASK_NEEDS"):
        permissions.needs_for("DoSomethingNew")


def test_permission_table_is_closed() -> None:
    for needs in permissions.TASK_NEEDS.values():
        assert needs.s3 <= permissions.S3_ACTIONS
        assert needs.kms <= permissions.KMS_ACTIONS
        assert all(a[0].isupper() and "*" not in a for a in needs.cognito)
    with pytest.raises(InfraConfigError):
        permissions.TaskNeeds(s3=frozenset({"*"}))
    restore = {a for needs in permissions.TASK_NEEDS.values() if needs.restore for a in needs.cognito}
    assert "AdminCreateUser" in restore
    # A new-pool restore finds the pool an earlier run of it created (by name and restore tag).
    assert "ListUserPools" in restore
    # SignUp is unauthenticated: an IAM grant for it would mean nothing.
    assert "SignUp" not in restore


def _context(values: dict[str, Any]) -> Settings:
    return settings_from_context(values.get)


def test_settings_accept_cli_strings_and_json() -> None:
    s = _context(
        {"enableTrail": "true", "retentionDays": "400", "backupPoolIds": "eu-west-1_Ab1,eu-west-1_Cd2"}
    )
    assert s.enable_trail is True
    assert s.retention_days == 400
    assert s.backup_pool_ids == ("eu-west-1_Ab1", "eu-west-1_Cd2")
    assert s.all_pools is False
    assert _context({"backupPoolIds": []}).all_pools is True


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"crossAccountTrustedAccountId": "123456789012"}, "no longer supported"),
        ({"crossAccountExternalId": "x" * 20}, "no longer supported"),
        ({"auditRetentionDays": 10}, "auditRetentionDays"),
        ({"backupPrefix": "/backups/"}, "backupPrefix"),
        ({"backupPoolIds": ["not a pool"]}, "backupPoolIds"),
        ({"retentionDays": 10, "glacierTransitionDays": 30}, "glacierTransitionDays"),
        ({"enableTrail": "maybe"}, "enableTrail"),
        ({"objectLockMode": "STRICT"}, "objectLockMode"),
    ],
)
def test_bad_context_stops_the_synth(values: dict[str, Any], key: str) -> None:
    with pytest.raises(InfraConfigError, match=key):
        _context(values)


def test_pip_command_targets_arm64_lambda_binaries_only(tmp_path: Path) -> None:
    command = bundling.pip_command(tmp_path, ["boto3>=1.35"], "3.14")
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    assert "--only-binary=:all:" in command
    assert command[command.index("--python-version") + 1] == "3.14"
    assert command[command.index("--implementation") + 1] == "cp"
    assert "manylinux2014_aarch64" in command
    assert command[command.index("--target") + 1] == str(tmp_path)
    assert command[-1] == "boto3>=1.35"


def test_runtime_dependencies_are_the_base_ones() -> None:
    deps = bundling.runtime_dependencies(ROOT)
    assert any(d.startswith("boto3") for d in deps)
    assert any(d.startswith("cryptography") for d in deps)
    assert not any(d.startswith(("moto", "aws-cdk-lib", "pytest")) for d in deps)


def test_local_bundling_copies_packages_without_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr("infra.bundling.subprocess.run", lambda cmd, check: calls.append(cmd))
    out = tmp_path / "asset"
    out.mkdir()
    assert bundling.PipLocalBundling(ROOT, "3.14").try_bundle(str(out), image=None) is True  # type: ignore[arg-type]
    assert len(calls) == 1
    assert "--only-binary=:all:" in calls[0]
    assert (out / "tasks" / "export_users.py").is_file()
    assert (out / "pipeline" / "core" / "task_names.py").is_file()
    assert not (out / "pipeline" / "operator").exists()
    assert (out / "statemachines" / "backup.asl.json").is_file()
    assert not list(out.rglob("__pycache__"))
    assert not (out / "tests").exists()
