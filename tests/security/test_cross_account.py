"""The cross-account bypass: a role another account could assume to write into user pools without any approval.

The role is removed (SECURITY.md, section 1.2): a deployment that still asks for it stops at synth, and no role of
the template that may write to Cognito can be assumed by anything but Lambda (the restore tasks, which write only
after RecordDecision confirmed an approval). On the parent commit (24dbc05) the options synth created
``cognito-backuper-cross-account-restore``, trusted by account 210987654321 with AdminCreateUser, UpdateUserPool,
CreateIdentityProvider and iam:PassRole: both tests fail there.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.settings import InfraConfigError, settings_from_context
from tests.helpers.synth import Synth, as_list, statements

# Cognito actions that change a pool or its users (reads are List*/Describe*/Get*/AdminGet*/AdminList*).
_READ_PREFIXES = ("List", "Describe", "Get", "AdminGet", "AdminList")


@pytest.mark.parametrize(
    "context",
    [
        {"crossAccountTrustedAccountId": "210987654321", "crossAccountExternalId": "x" * 24},
        {"crossAccountTrustedAccountId": "210987654321"},
    ],
)
def test_asking_for_the_cross_account_role_stops_the_synth(context: dict[str, Any]) -> None:
    with pytest.raises(InfraConfigError, match="no longer supported"):
        settings_from_context(context.get)


def _writes_to_cognito(synth: Synth, role_lid: str) -> set[str]:
    found: set[str] = set()
    for policy in synth.resources("AWS::IAM::Policy").values():
        if {"Ref": role_lid} not in policy["Properties"]["Roles"]:
            continue
        for statement in statements(policy["Properties"]["PolicyDocument"]):
            for action in as_list(statement["Action"]):
                name = action.split(":", 1)[1] if action.startswith("cognito-idp:") else None
                if statement["Effect"] == "Allow" and name and not name.startswith(_READ_PREFIXES):
                    found.add(name)
    return found


def test_no_role_writing_to_cognito_is_assumable_by_people_or_other_accounts(any_synth: Synth) -> None:
    for lid, role in any_synth.resources("AWS::IAM::Role").items():
        writes = _writes_to_cognito(any_synth, lid)
        trust = statements(role["Properties"]["AssumeRolePolicyDocument"])
        principals = [s.get("Principal", {}) for s in trust if s["Effect"] == "Allow"]
        if writes:
            assert principals == [{"Service": "lambda.amazonaws.com"}], (lid, sorted(writes), principals)
        # No role trusts another account at all.
        assert "210987654321" not in json.dumps(principals), lid
        assert not any("sts:ExternalId" in json.dumps(s.get("Condition", {})) for s in trust), lid
