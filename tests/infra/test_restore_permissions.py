"""Restore permissions, the operator and approver roles, and the wiring AWS mode relies on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.core.task_names import function_name
from pipeline.operator.aws_engine import STACK_NAME, output_name
from pipeline.restore.approval import TOPIC_ENV
from tests.helpers.synth import Synth, as_list, role_name_of, statements


def _function(synth: Synth, task: str) -> dict[str, Any]:
    for res in synth.resources("AWS::Lambda::Function").values():
        if res["Properties"].get("FunctionName") == function_name(task):
            return res
    raise AssertionError(f"no function for {task}")


def _role_statements(synth: Synth, role_lid: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for res in synth.resources("AWS::IAM::Policy").values():
        if {"Ref": role_lid} in res["Properties"]["Roles"]:
            found.extend(statements(res["Properties"]["PolicyDocument"]))
    return found


def _task_statements(synth: Synth, task: str) -> list[dict[str, Any]]:
    role = _function(synth, task)["Properties"]["Role"]
    return _role_statements(synth, str(role["Fn::GetAtt"][0]))


def _actions(stmts: list[dict[str, Any]]) -> set[str]:
    return {a for s in stmts if s["Effect"] == "Allow" for a in as_list(s["Action"])}


def _role_lid(synth: Synth, name: str) -> str:
    for lid, res in synth.resources("AWS::IAM::Role").items():
        if role_name_of(res) == f"CognitoBackuperStack-{{Region}}-{name}":
            return lid
    raise AssertionError(f"no role {name}")


def _cognito_writes(actions: set[str]) -> set[str]:
    reads = ("cognito-idp:Describe", "cognito-idp:List", "cognito-idp:AdminGet")
    return {a for a in actions if a.startswith("cognito-idp:") and not a.startswith(reads)}


def test_record_decision_reads_approvals_and_writes_audit(default_synth: Synth) -> None:
    actions = _actions(_task_statements(default_synth, "RecordDecision"))
    assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket", "kms:Decrypt", "kms:GenerateDataKey"} <= actions
    assert not {a for a in actions if a.startswith(("cognito-idp:", "states:", "sns:"))}


def test_validate_request_writes_no_cognito(default_synth: Synth) -> None:
    actions = _actions(_task_statements(default_synth, "ValidateRequest"))
    assert _cognito_writes(actions) == set()
    assert "cognito-idp:DescribeUserPool" in actions
    assert {"s3:GetObject", "s3:ListBucket", "s3:PutObject", "kms:Decrypt", "kms:GenerateDataKey"} <= actions


def test_restore_users_creates_users_but_no_pools(default_synth: Synth) -> None:
    actions = _actions(_task_statements(default_synth, "RestoreUsers"))
    assert {
        "cognito-idp:AdminCreateUser",
        "cognito-idp:AdminSetUserPassword",
        "cognito-idp:AdminDisableUser",
        "cognito-idp:AdminGetUser",
        "cognito-idp:ListUsers",
    } <= actions
    assert "cognito-idp:CreateUserPool" not in actions
    assert "cognito-idp:CreateGroup" not in actions
    assert "iam:PassRole" not in actions
    # SignUp is an unauthenticated API: granting it would mean nothing.
    assert "cognito-idp:SignUp" not in actions


def test_restore_pool_config_passes_roles_to_cognito_only(default_synth: Synth) -> None:
    stmts = _task_statements(default_synth, "RestorePoolConfig")
    actions = _actions(stmts)
    assert {
        "cognito-idp:CreateUserPool",
        "cognito-idp:CreateGroup",
        "cognito-idp:SetUserPoolMfaConfig",
    } <= actions
    assert "cognito-idp:AdminCreateUser" not in actions
    (pass_role,) = [s for s in stmts if "iam:PassRole" in as_list(s["Action"])]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "cognito-idp.amazonaws.com"}}
    assert ":role/*" in json.dumps(pass_role["Resource"])


def test_finalize_target_pool_can_finalize_a_new_pool_and_nothing_else(default_synth: Synth) -> None:
    actions = _actions(_task_statements(default_synth, "FinalizeTargetPool"))
    assert {"cognito-idp:UpdateUserPool", "cognito-idp:DeleteUserPoolClient", "iam:PassRole"} <= actions
    assert not actions & {"cognito-idp:AdminCreateUser", "cognito-idp:AdminAddUserToGroup", "s3:PutObject"}


def test_restore_users_adds_each_user_to_its_groups(default_synth: Synth) -> None:
    actions = _actions(_task_statements(default_synth, "RestoreUsers"))
    assert {"cognito-idp:AdminAddUserToGroup", "cognito-idp:AdminListGroupsForUser"} <= actions
    assert "iam:PassRole" not in actions


def test_index_memberships_touches_no_pool(default_synth: Synth) -> None:
    actions = _actions(_task_statements(default_synth, "IndexMemberships"))
    assert not {a for a in actions if a.startswith("cognito-idp:")}
    assert {"s3:GetObject", "s3:PutObject", "kms:Decrypt", "kms:GenerateDataKey"} <= actions


def test_verify_restore_and_report_only_read_cognito(default_synth: Synth) -> None:
    for task in ("VerifyRestore", "WriteRestoreReport", "RequestApproval"):
        assert _cognito_writes(_actions(_task_statements(default_synth, task))) == set(), task
    assert "s3:PutObject" in _actions(_task_statements(default_synth, "VerifyRestore"))  # the sealed diff


def test_request_approval_gets_the_topic_under_the_name_the_pipeline_reads(default_synth: Synth) -> None:
    env = _function(default_synth, "RequestApproval")["Properties"]["Environment"]["Variables"]
    assert TOPIC_ENV in env
    assert "sns:Publish" in _actions(_task_statements(default_synth, "RequestApproval"))


def test_operator_may_start_but_not_decide(default_synth: Synth) -> None:
    actions = _actions(_role_statements(default_synth, _role_lid(default_synth, "operator")))
    assert {"states:StartExecution", "states:GetExecutionHistory", "cloudformation:DescribeStacks"} <= actions
    assert not {"states:SendTaskSuccess", "states:SendTaskFailure"} & actions
    assert _cognito_writes(actions) == set()


def test_approver_may_decide_but_not_start(default_synth: Synth) -> None:
    lid = _role_lid(default_synth, "approver")
    stmts = _role_statements(default_synth, lid)
    actions = _actions(stmts)
    assert {"states:SendTaskSuccess", "states:SendTaskFailure", "s3:GetObject"} <= actions
    assert "states:StartExecution" not in actions
    assert not {a for a in actions if a.startswith("cognito-idp:")}
    # Decisions and audit records are written by RecordDecision's role only (tests/security).
    assert "s3:PutObject" not in actions and "kms:GenerateDataKey" not in actions
    reads = json.dumps([s for s in stmts if "s3:GetObject" in as_list(s["Action"])])
    assert "/backups/approvals/*" in reads and '"/backups/*"' not in reads


def test_approver_key_use_is_bound_to_approval_contexts(default_synth: Synth) -> None:
    lid = _role_lid(default_synth, "approver")
    found = []
    for key in default_synth.resources("AWS::KMS::Key").values():
        for stmt in statements(key["Properties"]["KeyPolicy"]):
            if lid in json.dumps(stmt["Principal"]):
                found.append(stmt)
    assert len(found) == 2
    assert all("Condition" in s for s in found)
    conditions = json.dumps([s["Condition"] for s in found])
    assert "kms:EncryptionContextKeys" in conditions and "kms:ViaService" in conditions


@pytest.mark.parametrize("role", ["operator", "approver"])
def test_people_roles_need_a_source_identity(default_synth: Synth, role: str) -> None:
    trust = default_synth.template["Resources"][_role_lid(default_synth, role)]["Properties"]
    (assume,) = [s for s in statements(trust["AssumeRolePolicyDocument"]) if s["Action"] == "sts:AssumeRole"]
    # Session name and source identity are the caller's own user name (pipeline.restore.approval.principal_id).
    assert assume["Condition"] == {
        "StringEquals": {"sts:RoleSessionName": "${aws:username}", "sts:SourceIdentity": "${aws:username}"}
    }
    assert trust["MaxSessionDuration"] == 3600


def test_aws_mode_finds_its_outputs(default_synth: Synth) -> None:
    from infra.app import STACK_NAME as APP_STACK

    assert APP_STACK == STACK_NAME
    outputs = default_synth.template["Outputs"]
    for name in (
        output_name("backup"),
        output_name("restore"),
        "BackupPrefix",
        "OperatorRoleArn",
        "ApproverRoleArn",
    ):
        assert name in outputs


def test_access_roles_can_be_left_out(tmp_path: Any) -> None:
    from tests.helpers.synth import synth as _synth

    synth = _synth(tmp_path, {"accessRoles": "false"})
    names = {role_name_of(r) for r in synth.resources("AWS::IAM::Role").values()}
    assert not {"CognitoBackuperStack-{Region}-operator", "CognitoBackuperStack-{Region}-approver"} & names
