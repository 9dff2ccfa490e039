"""The restore drill's functions, their tag-scoped Cognito permissions, and the weekly drill schedule.

A drill writes to Cognito without an approval, so its tasks' roles may write only to user pools that carry the
drill tag (pipeline.drill.steps.DRILL_TAG), which the drill puts on the scratch pool in its own CreateUserPool:

- every action on a user pool (IAM resource type ``userpool``, whose condition keys include
  ``aws:ResourceTag/${TagKey}``: Service Authorization Reference, Amazon Cognito User Pools) is allowed only when
  the pool's drill tag is present and has the form of a drill id;
- CreateUserPool has no resource type; its condition keys are ``aws:RequestTag/${TagKey}`` and ``aws:TagKeys``:
  it is allowed only when the request itself carries the drill tag;
- ListUserPools (no resource type, no condition keys) cannot be limited by tag: it is granted alone, to the two
  tasks that look for a scratch pool by name, and it reads names and ids only. TagResource, UntagResource and
  UpdateUserPool (which also takes tags) are never granted: no drill task can put the tag on a pool it did not
  create. Whoever else may tag pools in the account could make a pool a drill's target: keep
  cognito-idp:TagResource for the ``cognito-backuper:drill`` key out of other principals' hands (an SCP can).

The Service Authorization Reference lists no dependent action for CreateUserPool, so its UserPoolTags need no
cognito-idp:TagResource; this is checked against the documentation only, not against a deployment.

iam:PassRole (to Cognito only) lets the scratch pool keep the backed-up group roles, which VerifyRestore compares.
S3 and KMS are the restore's: read the backup, write the drill's workspace and its audit record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.budget import TABLE_ACTIONS
from infra.functions import Targets, TaskFunction, user_pool_arns
from infra.orchestration import MachineSchedule
from infra.permissions import AUDIT, OBJECT, Seal, TaskNeeds
from infra.settings import Settings
from infra.suppressions import ANY_RESOURCE, USER_POOL_RESOURCE, acknowledge
from pipeline.cognito.throttle import BUDGET_TABLE_ENV, FRACTION_ENV
from pipeline.drill.steps import DRILL_ID_PREFIX, DRILL_TAG

DRILL_MACHINE = "drill"
TASK_PREFIX = "Drill"
# What a drill-tagged pool's tag looks like (pipeline.drill.steps.new_drill_id).
DRILL_TAG_VALUE = DRILL_ID_PREFIX + "*"
_RW = frozenset({"GetObject", "ListBucket", "PutObject"})
# The restore steps re-read the approved manifest by its pinned S3 version (pipeline.sealing.manifest.read_pinned).
_RW_PINNED = _RW | {"GetObjectVersion"}
_SEAL = frozenset({"Decrypt", "GenerateDataKey"})

TAG_SCOPED = (
    "The scratch pools are created at run time, so their ARNs are unknown at deploy time; every action is "
    "limited to user pools of this account and Region that carry the cognito-backuper:drill tag "
    "(aws:ResourceTag), which only the drill's own tagged CreateUserPool puts there."
)
UNTAGGABLE = (
    "ListUserPools and CreateUserPool have no IAM resource type: IAM only accepts Resource '*'. CreateUserPool "
    "is allowed only with the drill tag in the request (aws:RequestTag); ListUserPools reads names and ids."
)


@dataclass(frozen=True)
class DrillNeeds:
    """A drill task's row: S3 and KMS as infra.permissions.TaskNeeds, Cognito split by how IAM can scope it."""

    base: TaskNeeds
    tagged: frozenset[str] = frozenset()  # on pools carrying the drill tag only
    list_pools: bool = False  # ListUserPools: no resource type, no condition key
    create_pool: bool = False  # CreateUserPool: only with the drill tag in the request

    @property
    def cognito(self) -> frozenset[str]:
        return (
            self.tagged
            | ({"ListUserPools"} if self.list_pools else set())
            | ({"CreateUserPool"} if self.create_pool else set())
        )


def _row(
    s3: frozenset[str] = frozenset(),
    kms: frozenset[str] = frozenset(),
    tagged: tuple[str, ...] = (),
    *,
    list_pools: bool = False,
    create_pool: bool = False,
    long_running: bool = False,
    pass_role: bool = False,
    writes: tuple[str, ...] = (),
    seals: tuple[Seal, ...] = (),
    verifies_manifests: bool = False,
) -> DrillNeeds:
    base = TaskNeeds(
        s3=frozenset(s3),
        kms=frozenset(kms),
        long_running=long_running,
        pass_role=pass_role,
        mac=frozenset({"VerifyMac"}) if verifies_manifests else frozenset(),
        writes=writes,
        seals=seals,
    )
    return DrillNeeds(base, frozenset(tagged), list_pools, create_pool)


# A drill's workspace is a restore's (pipeline.restore.steps.workspace): sealed objects under <prefix>/restores/.
_WS_WRITES, _WS_SEALS = ("restores/*",), (OBJECT,)


# What each drill task calls (pipeline/drill/steps.py and the restore steps it reuses).
DRILL_TASK_NEEDS: Mapping[str, DrillNeeds] = {
    # Lists the backups, reads their authenticated manifests (the MAC key is a KMS data key).
    "DrillPlan": _row(
        frozenset({"GetObject", "ListBucket"}), frozenset({"Decrypt"}), verifies_manifests=True
    ),
    # Verifies the whole backup, seals the sample; no Cognito at all.
    "DrillPrepare": _row(
        _RW_PINNED, _SEAL, long_running=True, writes=_WS_WRITES, seals=_WS_SEALS, verifies_manifests=True
    ),
    # pipeline.restore.pool_restore on a new pool: finds it again by name (ListUserPools, DescribeUserPool),
    # creates it tagged, its MFA, providers, servers, clients and groups. No domain: a drill takes none.
    "DrillRestoreConfig": _row(
        _RW_PINNED,
        _SEAL,
        (
            "DescribeUserPool",
            "SetUserPoolMfaConfig",
            "AddCustomAttributes",
            "ListIdentityProviders",
            "CreateIdentityProvider",
            "ListResourceServers",
            "CreateResourceServer",
            "ListUserPoolClients",
            "CreateUserPoolClient",
            "CreateGroup",
            "GetGroup",
        ),
        list_pools=True,
        create_pool=True,
        pass_role=True,
        writes=_WS_WRITES,
        seals=_WS_SEALS,
        verifies_manifests=True,
    ),
    "DrillIndexMemberships": _row(
        _RW_PINNED, _SEAL, long_running=True, writes=_WS_WRITES, seals=_WS_SEALS, verifies_manifests=True
    ),
    "DrillRestoreUsers": _row(
        _RW_PINNED,
        _SEAL,
        (
            "DescribeUserPool",
            "ListUsers",
            "AdminGetUser",
            "AdminCreateUser",
            "AdminSetUserPassword",
            "AdminUpdateUserAttributes",
            "AdminDisableUser",
            "AdminListGroupsForUser",
            "AdminAddUserToGroup",
        ),
        long_running=True,
        writes=_WS_WRITES,
        seals=_WS_SEALS,
        verifies_manifests=True,
    ),
    "DrillVerify": _row(
        _RW_PINNED,
        _SEAL,
        ("ListUsers", "ListGroups", "ListUsersInGroup"),
        long_running=True,
        writes=_WS_WRITES,
        seals=_WS_SEALS,
        verifies_manifests=True,
    ),
    # The drill's audit record, appended to the chain (reading its head: GetObject, Decrypt for its SSE-KMS).
    "DrillRecord": _row(_RW, _SEAL, writes=("audit/*",), seals=(AUDIT,)),
    # Finds the scratch pool by name, checks its drill tag, deletes it.
    "DrillCleanup": _row(tagged=("DescribeUserPool", "DeleteUserPool"), list_pools=True),
    "DrillSummarize": _row(),
}


def is_drill_task(task: str) -> bool:
    return task in DRILL_TASK_NEEDS


def drill_cognito_statements(needs: DrillNeeds) -> list[iam.PolicyStatement]:
    result = []
    if needs.tagged:
        result.append(
            iam.PolicyStatement(
                sid="CognitoOnDrillPools",
                actions=[f"cognito-idp:{a}" for a in sorted(needs.tagged)],
                resources=[user_pool_arns()],
                conditions={"StringLike": {f"aws:ResourceTag/{DRILL_TAG}": DRILL_TAG_VALUE}},
            )
        )
    if needs.create_pool:
        result.append(
            iam.PolicyStatement(
                sid="CreateDrillPools",
                actions=["cognito-idp:CreateUserPool"],
                resources=["*"],
                conditions={"StringLike": {f"aws:RequestTag/{DRILL_TAG}": DRILL_TAG_VALUE}},
            )
        )
    if needs.list_pools:
        result.append(
            iam.PolicyStatement(sid="ListPoolNames", actions=["cognito-idp:ListUserPools"], resources=["*"])
        )
    return result


class DrillTaskFunction(TaskFunction):
    """A drill task: TaskFunction with the drill's row, plus its tag-scoped Cognito statements."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        task: str,
        code: lambda_.Code,
        targets: Targets,
        log_retention: logs.RetentionDays,
        quota_fraction: float,
    ) -> None:
        drill = DRILL_TASK_NEEDS[task]
        super().__init__(
            scope,
            construct_id,
            task=task,
            code=code,
            targets=targets,
            log_retention=log_retention,
            quota_fraction=quota_fraction,
            needs=drill.base,
        )
        self.drill_needs = drill
        for statement in drill_cognito_statements(drill):
            self.role.add_to_policy(statement)
        if drill.cognito:
            self.function.add_environment(FRACTION_ENV, f"{quota_fraction:.6f}")
            if targets.budget_table is not None:
                # The deployment's shared rate budget (infra.budget): drills draw on the same share as backups.
                self.role.add_to_policy(
                    iam.PolicyStatement(
                        sid="SharedRateBudget",
                        actions=list(TABLE_ACTIONS),
                        resources=[targets.budget_table.table_arn],
                    )
                )
                self.function.add_environment(BUDGET_TABLE_ENV, targets.budget_table.table_name)
        if drill.tagged:
            acknowledge(self.role, USER_POOL_RESOURCE, TAG_SCOPED)
        if drill.list_pools or drill.create_pool:
            acknowledge(self.role, ANY_RESOURCE, UNTAGGABLE)


class WeeklyDrillSchedule(MachineSchedule):
    """The restore drill of each pool's latest backup (weekly by default)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, machine: sfn.IStateMachine, settings: Settings
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            machine=machine,
            suffix="restore-drill",
            description="Weekly restore drill of each pool's latest backup",
            expression=settings.drill_schedule_expression,
            timezone=settings.schedule_timezone,
            payload={"sample": settings.drill_sample_size},
            enabled=settings.drill_enabled,
        )
