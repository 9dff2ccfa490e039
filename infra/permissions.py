"""What each task function may do: THE one table of least-privilege needs, per task.

The seed's single policy (security guide 3.1) is split here per function. A task that is not in the table
stops the synth: a new ``${XFunctionArn}`` in an ASL file needs a row here, never a guessed default. Each row
lists what the task's pipeline code calls (pipeline/backup/steps.py; in pipeline/restore/: steps.py,
pool_restore.py, user_restore.py, diff.py, approval.py; pipeline/sealing/audit.py); SECURITY.md carries the same
table for operators. The IAM contract (tests/iam) holds every row to the calls the tasks really make: none
refused by the synthesized policies, none granted that no call needs (or a commented allow-list entry).

S3 notes: HeadObject is authorised by GetObject, and a HEAD or GET of a missing key answers 404 only to a caller
that may ListBucket (403 otherwise), so every task that checks whether an object exists also lists. Every
PutObject asks for SSE-KMS, which needs kms:GenerateDataKey, and every sealed object needs GenerateDataKey to
write and Decrypt to read. sts:GetCallerIdentity (RecordDecision, WriteRestoreReport, CollectBackups) and
cognito-idp:SignUp (RestoreUsers, UNCONFIRMED users) need no IAM permission.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from infra.settings import InfraConfigError

# GetObjectVersion: a restore re-reads the approved manifest by its pinned S3 version id.
S3_ACTIONS = frozenset({"GetObject", "GetObjectVersion", "PutObject", "DeleteObject", "ListBucket"})
KMS_ACTIONS = frozenset({"GenerateDataKey", "Decrypt", "DescribeKey"})
# The manifest MAC key (infra.signing): GenerateMac for WriteManifest alone, VerifyMac for manifest readers.
MAC_ACTIONS = frozenset({"GenerateMac", "VerifyMac"})
# IAM defines no resource type for these, so they only work with Resource "*"; every other Cognito action is
# scoped to user pool ARNs.
COGNITO_ACCOUNT_WIDE = frozenset({"ListUserPools", "CreateUserPool", "DescribeUserPoolDomain"})

# pipeline.cognito.pool_config: ListResourceServers returns every server in full, so no DescribeResourceServer;
# DescribeUserPool omits the TOTP (software token) MFA setting, so GetUserPoolMfaConfig reads it.
_CONFIG_READ = (
    "DescribeUserPool",
    "GetUserPoolMfaConfig",
    "ListUserPoolClients",
    "DescribeUserPoolClient",
    "ListIdentityProviders",
    "DescribeIdentityProvider",
    "ListResourceServers",
    "DescribeUserPoolDomain",
    "ListGroups",
)


@dataclass(frozen=True)
class Seal:
    """One kind of document a task may generate data keys for, named by its encryption context's keys.

    Each kind's context has its own set of keys (pipeline.sealing.envelope, audit, restore.approval, restore.steps):
    a role may seal only the kinds it writes, so a backup task cannot seal an audit record or an approval, and the
    operator only its selections. Bound with kms:EncryptionContextKeys: the IAM evaluator of the contract
    (tests/iam) ignores kms:EncryptionContext:<key>, and a condition no test evaluates is one no test proves.
    """

    marker: str  # the key only this kind's context has
    keys: tuple[str, ...]  # every key its context may have


OBJECT = Seal("pool", ("app", "pool", "backup", "object"))  # backup parts and a restore's workspace objects
AUDIT = Seal("audit", ("app", "audit"))
APPROVAL = Seal("approval", ("app", "approval", "object"))
SELECTION = Seal("selection", ("app", "selection"))


@dataclass(frozen=True)
class TaskNeeds:
    cognito: frozenset[str] = frozenset()
    s3: frozenset[str] = frozenset()
    kms: frozenset[str] = frozenset()
    # sns:Publish on the notification topic (approval requests).
    notify: bool = False
    # Acts on a restore target pool (only after RecordDecision confirmed an approval).
    restore: bool = False
    # Pages through a whole shard or backup: the 15-minute Lambda maximum and more memory.
    long_running: bool = False
    # iam:PassRole to Cognito only: CreateGroup with a group RoleArn, Create/UpdateUserPool with an SMS role.
    pass_role: bool = False
    # HeadBucket: authorised as s3:ListBucket on the bucket, with no s3:prefix key in the request, so a listing
    # grant conditioned on s3:prefix never matches it. Such a task gets ListBucket on the bucket unconditioned.
    head_bucket: bool = False
    mac: frozenset[str] = frozenset()
    # Where s3:PutObject reaches, as key patterns under <prefix>/: only the objects the task writes.
    writes: tuple[str, ...] = ()
    # What kms:GenerateDataKey may seal directly (outside SSE-KMS through S3): only the objects the task writes.
    seals: tuple[Seal, ...] = ()
    # Deletes a whole backup folder that has no manifest (its config.bin too): PurgeIncompleteBackup only.
    purges: bool = False

    def __post_init__(self) -> None:
        if not self.s3 <= S3_ACTIONS or not self.kms <= KMS_ACTIONS or not self.mac <= MAC_ACTIONS:
            raise InfraConfigError(f"unknown S3 or KMS action in {sorted(self.s3 | self.kms | self.mac)}")
        if ("PutObject" in self.s3) != bool(self.writes):
            raise InfraConfigError(
                "a task that writes objects names the keys it writes (writes=), and only then"
            )
        if self.seals and "GenerateDataKey" not in self.kms:
            raise InfraConfigError("seals= needs kms GenerateDataKey")
        if self.purges and "DeleteObject" not in self.s3:
            raise InfraConfigError("purges needs s3 DeleteObject")
        if self.head_bucket and "ListBucket" not in self.s3:
            raise InfraConfigError("head_bucket needs s3 ListBucket")

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
    pass_role: bool = False,
    head_bucket: bool = False,
    mac: Iterable[str] = (),
    writes: Iterable[str] = (),
    seals: Iterable[Seal] = (),
    purges: bool = False,
) -> TaskNeeds:
    return TaskNeeds(
        frozenset(cognito),
        frozenset(s3),
        frozenset(kms),
        notify,
        restore,
        long_running,
        pass_role,
        head_bucket,
        frozenset(mac),
        tuple(writes),
        tuple(seals),
        purges,
    )


TASK_NEEDS: Mapping[str, TaskNeeds] = {
    # Backup (statemachines/backup.asl.json); derived from what pipeline.backup.steps calls.
    # HeadBucket checks the bucket (s3:ListBucket, no s3:prefix); DescribeKey checks the key before any work.
    # It also writes the run's pool list (<prefix>/runs/<run>/pools.json) for BackupEachPool's ItemReader.
    "EnumeratePools": _needs(
        ["ListUserPools", "DescribeUserPool"],
        ["ListBucket", "PutObject"],
        ["DescribeKey", "GenerateDataKey"],
        head_bucket=True,
        writes=["runs/*"],
    ),
    # In slices: the last one reads the sealed work parts back to seal config.bin, and lists the pool's earlier
    # backups to read the newest manifest's memberships per slice (pipeline.backup.chain_hints).
    "CapturePoolConfig": _needs(
        _CONFIG_READ,
        ["GetObject", "ListBucket", "PutObject"],
        ["GenerateDataKey", "Decrypt"],
        writes=["*/config.bin", "*/work/*"],
        seals=[OBJECT],
    ),
    # Pure planning from the captured estimate: no AWS access at all.
    "PlanShards": _needs(),
    "ExportUsers": _needs(
        ["ListUsers"],
        ["PutObject"],
        ["GenerateDataKey"],
        long_running=True,
        writes=["*/users/*"],
        seals=[OBJECT],
    ),
    # The group names come from the sealed config.bin, so the slices list the captured groups.
    "ExportGroupMemberships": _needs(
        ["ListUsersInGroup"],
        ["GetObject", "PutObject"],
        ["GenerateDataKey", "Decrypt"],
        long_running=True,
        writes=["*/memberships/*"],
        seals=[OBJECT],
    ),
    # HeadObject is authorised by GetObject; leftover parts of a restarted shard are deleted before sealing;
    # GenerateDataKey is SSE-KMS of the manifest; GenerateMac authenticates it: no other role holds it.
    "WriteManifest": _needs(
        (),
        ["GetObject", "ListBucket", "PutObject", "DeleteObject"],
        ["GenerateDataKey"],
        mac=["GenerateMac"],
        writes=["*/manifest.json"],
    ),
    "VerifyBackup": _needs(
        (), ["GetObject", "ListBucket"], ["Decrypt"], long_running=True, mac=["VerifyMac"]
    ),
    # Reads the run's pool list and every pool's authenticated manifest, writes the run's summary and one sealed
    # audit record per pool (backup.completed / backup.failed), reading the audit chain's head.
    "CollectBackups": _needs(
        (),
        ["GetObject", "ListBucket", "PutObject"],
        ["Decrypt", "GenerateDataKey"],
        long_running=True,
        mac=["VerifyMac"],
        writes=["runs/*", "audit/*"],
        seals=[AUDIT],
    ),
    # Purges one backup folder without a manifest (cognito-backuper purge-incomplete): lists it, deletes its
    # objects, writes the backup.purged audit record (reading the chain's head). The only DeleteObject an operator
    # can cause, and only here.
    "PurgeIncompleteBackup": _needs(
        (),
        ["GetObject", "ListBucket", "DeleteObject", "PutObject"],
        ["Decrypt", "GenerateDataKey"],
        writes=["audit/*"],
        seals=[AUDIT],
        purges=True,
    ),
    # Restore (statemachines/restore.asl.json). Audit records, approvals and the restore
    # workspace are sealed objects under <prefix>/audit/, <prefix>/approvals/ and <prefix>/restores/.
    # Reads only on Cognito: verifies the whole backup, checks the target, reads and re-seals the selection.
    # It pins the manifest (version id and SHA-256) and verifies that very version.
    "ValidateRequest": _needs(
        ["DescribeUserPool"],
        ["GetObject", "GetObjectVersion", "ListBucket", "PutObject"],
        ["Decrypt", "GenerateDataKey"],
        long_running=True,
        mac=["VerifyMac"],
        writes=["restores/*"],
        seals=[OBJECT],
    ),
    # Checks for a decision (HEAD), reads a previous request, writes the audit record and the sealed request.
    "RequestApproval": _needs(
        (),
        ["GetObject", "ListBucket", "PutObject"],
        ["Decrypt", "GenerateDataKey"],
        notify=True,
        writes=["approvals/*", "audit/*"],
        seals=[APPROVAL, AUDIT],
    ),
    # Reads approvals/<id>/request.bin and decision.bin and the audit chain's head; executes the approver's
    # identity proof (an STS call signed by the approver: no permission of its own); writes the decision and
    # audit records (and refusals).
    "RecordDecision": _needs(
        (),
        ["GetObject", "ListBucket", "PutObject"],
        ["Decrypt", "GenerateDataKey"],
        writes=["approvals/*", "audit/*"],
        seals=[APPROVAL, AUDIT],
    ),
    "RestorePoolConfig": _needs(
        [
            "ListUserPools",
            "DescribeUserPool",
            "CreateUserPool",
            "SetUserPoolMfaConfig",
            "AddCustomAttributes",
            "ListIdentityProviders",
            "CreateIdentityProvider",
            "ListResourceServers",
            "CreateResourceServer",
            "ListUserPoolClients",
            "CreateUserPoolClient",
            "DescribeUserPoolDomain",
            "CreateUserPoolDomain",
            # Groups in slices: CreateGroup, and GetGroup for one that exists (no ListGroups per slice).
            "CreateGroup",
            "GetGroup",
        ],
        ["GetObject", "GetObjectVersion", "ListBucket", "PutObject"],
        ["Decrypt", "GenerateDataKey"],
        restore=True,
        pass_role=True,
        mac=["VerifyMac"],
        writes=["restores/*"],
        seals=[OBJECT],
    ),
    "RestoreUsers": _needs(
        [
            "DescribeUserPool",
            "ListUsers",
            "AdminGetUser",
            "AdminCreateUser",
            "AdminSetUserPassword",
            "AdminUpdateUserAttributes",
            "AdminDisableUser",
            "AdminListGroupsForUser",
            "AdminAddUserToGroup",
        ],
        ["GetObject", "GetObjectVersion", "ListBucket", "PutObject"],
        ["Decrypt", "GenerateDataKey"],
        restore=True,
        long_running=True,
        mac=["VerifyMac"],
        writes=["restores/*"],
        seals=[OBJECT],
    ),
    # Reads the backup's membership parts, writes one sealed index per shard into the restore's workspace.
    "IndexMemberships": _needs(
        (),
        ["GetObject", "GetObjectVersion", "ListBucket", "PutObject"],
        ["Decrypt", "GenerateDataKey"],
        restore=True,
        long_running=True,
        mac=["VerifyMac"],
        writes=["restores/*"],
        seals=[OBJECT],
    ),
    # UpdateUserPool with the deferred settings, DeleteUserPoolClient of the temporary SignUp client.
    "FinalizeTargetPool": _needs(
        ["DescribeUserPool", "UpdateUserPool", "DeleteUserPoolClient"],
        ["GetObject", "GetObjectVersion", "ListBucket"],
        ["Decrypt"],
        restore=True,
        pass_role=True,
        mac=["VerifyMac"],
    ),
    # The diff command's reads; the sealed diff goes to the restore workspace.
    "VerifyRestore": _needs(
        ["ListUsers", "ListGroups", "ListUsersInGroup"],
        ["GetObject", "GetObjectVersion", "ListBucket", "PutObject"],
        ["Decrypt", "GenerateDataKey"],
        restore=True,
        long_running=True,
        mac=["VerifyMac"],
        writes=["restores/*"],
        seals=[OBJECT],
    ),
    # Lists the id maps, writes the sealed report and the outcome's audit record (reading the chain's head:
    # GetObject, and Decrypt for its SSE-KMS).
    "WriteRestoreReport": _needs(
        (),
        ["GetObject", "ListBucket", "PutObject"],
        ["Decrypt", "GenerateDataKey"],
        writes=["restores/*", "audit/*"],
        seals=[OBJECT, AUDIT],
    ),
}


def needs_for(task: str) -> TaskNeeds:
    try:
        return TASK_NEEDS[task]
    except KeyError:
        raise InfraConfigError(
            f"task {task} has no row in infra.permissions.TASK_NEEDS: add its least-privilege needs there"
        ) from None


# The tasks that append to the audit chain (pipeline.sealing.audit.record): with Object Lock on, each locks its
# records for the audit retention (s3:PutObjectRetention on <prefix>/audit/*, infra/functions.py).
AUDIT_WRITERS = frozenset(
    {
        "RequestApproval",
        "RecordDecision",
        "WriteRestoreReport",
        "CollectBackups",
        "PurgeIncompleteBackup",
        "DrillRecord",
    }
)
