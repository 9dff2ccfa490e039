"""What each task function may do: THE one table of least-privilege needs, per task.

The seed's single policy (security guide 3.1) is split here per function. A task that is not in the table
stops the synth: a new ``${XFunctionArn}`` in an ASL file needs a row here, never a guessed default. Restore
rows are written ahead of ``restore.asl.json``; adjust them when its tasks land.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from infra.settings import InfraConfigError

S3_ACTIONS = frozenset({"GetObject", "PutObject", "DeleteObject", "ListBucket"})
KMS_ACTIONS = frozenset({"GenerateDataKey", "Decrypt", "DescribeKey"})
# IAM defines no resource type for these, so they only work with Resource "*"; every other Cognito action is
# scoped to user pool ARNs.
COGNITO_ACCOUNT_WIDE = frozenset({"ListUserPools", "CreateUserPool", "DescribeUserPoolDomain"})

_CONFIG_READ = (
    "DescribeUserPool",
    "ListUserPoolClients",
    "DescribeUserPoolClient",
    "ListIdentityProviders",
    "DescribeIdentityProvider",
    "ListResourceServers",
    "DescribeResourceServer",
    "DescribeUserPoolDomain",
    "ListGroups",
)


@dataclass(frozen=True)
class TaskNeeds:
    cognito: frozenset[str] = frozenset()
    s3: frozenset[str] = frozenset()
    kms: frozenset[str] = frozenset()
    # sns:Publish on the notification topic (approval requests).
    notify: bool = False
    # Acts on a restore target pool: its Cognito actions also go to the optional cross-account restore role.
    restore: bool = False
    # Pages through a whole shard or backup: the 15-minute Lambda maximum and more memory.
    long_running: bool = False

    def __post_init__(self) -> None:
        if not self.s3 <= S3_ACTIONS or not self.kms <= KMS_ACTIONS:
            raise InfraConfigError(f"unknown S3 or KMS action in {sorted(self.s3 | self.kms)}")

    @property
    def cognito_pool_scoped(self) -> list[str]:
        return sorted(self.cognito - COGNITO_ACCOUNT_WIDE)

    @property
    def cognito_account_wide(self) -> list[str]:
        return sorted(self.cognito & COGNITO_ACCOUNT_WIDE)


def _needs(
    cognito: Iterable[str] = (),
    s3: Iterable[str] = (),
    kms: Iterable[str] = (),
    *,
    notify: bool = False,
    restore: bool = False,
    long_running: bool = False,
) -> TaskNeeds:
    return TaskNeeds(frozenset(cognito), frozenset(s3), frozenset(kms), notify, restore, long_running)


TASK_NEEDS: Mapping[str, TaskNeeds] = {
    # Backup (statemachines/backup.asl.json); derived from what pipeline.backup calls.
    # HeadBucket needs ListBucket; DescribeKey checks the key before any work starts.
    "EnumeratePools": _needs(["ListUserPools", "DescribeUserPool"], ["ListBucket"], ["DescribeKey"]),
    "CapturePoolConfig": _needs(_CONFIG_READ, ["PutObject"], ["GenerateDataKey"]),
    # Pure planning from the captured estimate: no AWS access at all.
    "PlanShards": _needs(),
    "ExportUsers": _needs(["ListUsers"], ["PutObject"], ["GenerateDataKey"], long_running=True),
    "ExportGroupMemberships": _needs(
        ["ListGroups", "ListUsersInGroup"], ["PutObject"], ["GenerateDataKey"], long_running=True
    ),
    # HeadObject is authorised by GetObject; leftover parts of a restarted shard are deleted before sealing;
    # GenerateDataKey makes the manifest's MAC key.
    "WriteManifest": _needs(
        (), ["GetObject", "ListBucket", "PutObject", "DeleteObject"], ["GenerateDataKey"]
    ),
    "VerifyBackup": _needs((), ["GetObject", "ListBucket"], ["Decrypt"], long_running=True),
    # Restore (statemachines/restore.asl.json, DESIGN.md section 6). Audit records (request, decision, report)
    # are sealed objects under the backup prefix, hence PutObject + GenerateDataKey.
    "ValidateRequest": _needs(
        ["DescribeUserPool"],
        ["GetObject", "ListBucket", "PutObject"],
        ["Decrypt", "GenerateDataKey", "DescribeKey"],
        long_running=True,
    ),
    "RequestApproval": _needs((), ["PutObject"], ["GenerateDataKey"], notify=True),
    "RecordDecision": _needs((), ["PutObject"], ["GenerateDataKey"]),
    "RestorePoolConfig": _needs(
        [
            "CreateUserPool",
            "DescribeUserPool",
            "AddCustomAttributes",
            "CreateUserPoolClient",
            "CreateIdentityProvider",
            "CreateResourceServer",
            "CreateUserPoolDomain",
            "CreateGroup",
            "ListGroups",
        ],
        ["GetObject", "ListBucket"],
        ["Decrypt"],
        restore=True,
    ),
    "RestoreUsers": _needs(
        ["AdminCreateUser", "AdminGetUser", "AdminDisableUser", "AdminUpdateUserAttributes", "ListUsers"],
        ["GetObject", "ListBucket", "PutObject"],
        ["Decrypt", "GenerateDataKey"],
        restore=True,
        long_running=True,
    ),
    "RestoreMemberships": _needs(
        ["AdminAddUserToGroup", "ListUsersInGroup"],
        ["GetObject", "ListBucket"],
        ["Decrypt"],
        restore=True,
        long_running=True,
    ),
    "VerifyRestore": _needs(
        ["DescribeUserPool", "ListUsers", "ListGroups", "ListUsersInGroup"],
        ["GetObject", "ListBucket"],
        ["Decrypt"],
        restore=True,
        long_running=True,
    ),
    "WriteRestoreReport": _needs((), ["GetObject", "ListBucket", "PutObject"], ["GenerateDataKey"]),
}


def needs_for(task: str) -> TaskNeeds:
    try:
        return TASK_NEEDS[task]
    except KeyError:
        raise InfraConfigError(
            f"task {task} has no row in infra.permissions.TASK_NEEDS: add its least-privilege needs there"
        ) from None


def restore_cognito_actions() -> list[str]:
    """What the cross-account restore role may do on Cognito: the union of the restore tasks' needs."""
    return sorted({a for needs in TASK_NEEDS.values() if needs.restore for a in needs.cognito})
