"""Who may ask for a restore and who may decide on it: two roles, never the same principal.

The operator role starts and follows the machines and reads backups (verify, diff, dry-run plans, audit --verify);
it cannot send a task token back. The approver role reads pending requests and sends a task token back with its
identity proof; it cannot start a restore, and writes nothing: RecordDecision records the decision. Both are
assumable from this account only, by IAM users an IAM policy allows to, with the session name and the source
identity pinned to the caller's own user name, so CloudTrail and the audit trail name the person and nobody can
approve their own request under another session name (pipeline.restore.approval.principal_id).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.functions import key_uses
from infra.naming import role_name
from infra.permissions import SELECTION, TaskNeeds
from infra.suppressions import TASK_TOKENS, acknowledge, bucket_prefix_resource

# Role names are <stack name>-<Region>-<suffix> (infra.naming).
OPERATOR_ROLE_SUFFIX = "operator"
APPROVER_ROLE_SUFFIX = "approver"
OPERATOR_PREFIX = (
    "Operators read any backup under the backup prefix (verify, diff, dry-run plans) and seal restore selections; "
    "object keys are created at run time, so the prefix is the narrowest resource."
)
APPROVER_PREFIX = (
    "Approval requests are created at run time under <prefix>/approvals/; an approver may read them, nothing "
    "else (decisions and audit records are written by the pipeline's RecordDecision task)."
)
EXECUTIONS = (
    "Execution ARNs are created at run time; the actions are limited to executions of the two named machines."
)
# Cognito reads the CLI makes for `restore --dry-run` and `diff` against a live pool (tests/iam records them).
OPERATOR_COGNITO_READS = ("DescribeUserPool", "ListUsers", "ListGroups", "ListUsersInGroup")


# The session name and the source identity must be the caller's own IAM user name: the pipeline compares people
# by session name (pipeline.restore.approval.principal_id), so nobody may pick another one. ${aws:username} exists
# only for IAM users: role chaining (a role session assuming these roles) cannot satisfy it and is refused.
PERSON_CONDITIONS = {
    "StringEquals": {"sts:RoleSessionName": "${aws:username}", "sts:SourceIdentity": "${aws:username}"}
}
OPERATOR_KEY_NEEDS = TaskNeeds(
    kms=frozenset({"Decrypt", "GenerateDataKey", "DescribeKey"}), seals=(SELECTION,)
)


def _assumable(scope: Construct, construct_id: str, name: str, description: str) -> iam.Role:
    """Assumable from this account only (an identity policy must also allow it), as the caller's own user name."""
    principal = iam.AccountRootPrincipal().with_conditions(PERSON_CONDITIONS)
    role = iam.Role(
        scope,
        construct_id,
        role_name=role_name(scope, name),
        description=description,
        assumed_by=principal,
        max_session_duration=Duration.hours(1),
    )
    trust = role.assume_role_policy
    if trust is not None:
        trust.add_statements(
            iam.PolicyStatement(
                actions=["sts:SetSourceIdentity"],
                principals=[iam.AccountRootPrincipal()],
                conditions={"StringEquals": {"sts:SourceIdentity": "${aws:username}"}},
            )
        )
    return role


def _executions(name: str) -> str:
    return f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:execution:{name}:*"


def _map_run_children(name: str) -> str:
    """A distributed Map's child executions: ``execution:<machine>/<label or map run id>:<name>``."""
    return f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:execution:{name}/*"


def _map_runs(name: str) -> str:
    return f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:mapRun:{name}/*"


class AccessRoles(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        machines: Mapping[str, sfn.IStateMachine],
        machine_names: Mapping[str, str],
        stack_arn: str,
        bucket: s3.IBucket,
        prefix: str,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        objects = bucket.arn_for_objects(f"{prefix}/*")
        listing = iam.PolicyStatement(
            sid="ListBackupPrefix",
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": ["", prefix, f"{prefix}/*"]}},
        )

        self.operator = _assumable(
            self,
            "OperatorRole",
            OPERATOR_ROLE_SUFFIX,
            "cognito-backuper operators: run backups, request restores",
        )
        self.operator.add_to_policy(
            iam.PolicyStatement(
                sid="StartMachines",
                actions=["states:StartExecution"],
                resources=[m.state_machine_arn for m in machines.values()],
            )
        )
        self.operator.add_to_policy(
            iam.PolicyStatement(
                sid="ReadMachines",
                actions=["states:DescribeStateMachine"],
                resources=[m.state_machine_arn for m in machines.values()],
            )
        )
        self.operator.add_to_policy(
            iam.PolicyStatement(
                sid="FollowExecutions",
                actions=["states:DescribeExecution", "states:GetExecutionHistory", "states:StopExecution"],
                resources=[_executions(machine_names[n]) for n in machines],
            )
        )
        # Progress at scale: a distributed Map's item counts (shards or pools done) come from its Map Run.
        self.operator.add_to_policy(
            iam.PolicyStatement(
                sid="FollowMapRuns",
                actions=["states:DescribeMapRun", "states:ListExecutions"],
                resources=[_map_runs(machine_names[n]) for n in machines],
            )
        )
        # ... and the users and shards from the children's histories (read only: no StopExecution).
        self.operator.add_to_policy(
            iam.PolicyStatement(
                sid="FollowMapRunChildren",
                actions=["states:DescribeExecution", "states:GetExecutionHistory"],
                resources=[_map_run_children(machine_names[n]) for n in machines],
            )
        )
        self.operator.add_to_policy(
            iam.PolicyStatement(
                sid="FindStack", actions=["cloudformation:DescribeStacks"], resources=[stack_arn]
            )
        )
        self.operator.add_to_policy(listing)
        self.operator.add_to_policy(
            iam.PolicyStatement(sid="ReadBackups", actions=["s3:GetObject"], resources=[objects])
        )
        # audit --verify reads every version of every audit record (an overwrite leaves two).
        self.operator.add_to_policy(
            iam.PolicyStatement(
                sid="VerifyAuditTrail",
                actions=["s3:ListBucketVersions"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{prefix}/audit/*"]}},
            )
        )
        self.operator.add_to_policy(
            iam.PolicyStatement(
                sid="ReadAuditVersions",
                actions=["s3:GetObjectVersion"],
                resources=[bucket.arn_for_objects(f"{prefix}/audit/*")],
            )
        )
        self.operator.add_to_policy(
            iam.PolicyStatement(
                sid="SealSelections",
                actions=["s3:PutObject"],
                resources=[bucket.arn_for_objects(f"{prefix}/restores/selections/*")],
            )
        )
        self.operator.add_to_policy(
            iam.PolicyStatement(
                sid="ReadPools",
                actions=[f"cognito-idp:{a}" for a in OPERATOR_COGNITO_READS],
                resources=[f"arn:{Aws.PARTITION}:cognito-idp:{Aws.REGION}:{Aws.ACCOUNT_ID}:userpool/*"],
            )
        )
        # Reading backups and reports, SSE-KMS through S3, and sealing its selections: never a backup part.
        for sid, actions, conditions in key_uses(OPERATOR_KEY_NEEDS):
            self.operator.add_to_policy(
                iam.PolicyStatement(
                    sid=sid, actions=actions, resources=[key.key_arn], conditions=conditions or None
                )
            )
            key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"Operator{sid}",
                    principals=[self.operator],
                    actions=actions,
                    resources=["*"],
                    conditions=conditions or None,
                )
            )

        self.approver = _assumable(
            self,
            "ApproverRole",
            APPROVER_ROLE_SUFFIX,
            "cognito-backuper approvers: approve or reject restores",
        )
        self.approver.add_to_policy(
            iam.PolicyStatement(
                sid="Decide", actions=["states:SendTaskSuccess", "states:SendTaskFailure"], resources=["*"]
            )
        )
        # A decision is recorded only while the restore still waits for it: the approver checks the execution.
        self.approver.add_to_policy(
            iam.PolicyStatement(
                sid="SeeWaitingRestores",
                actions=["states:DescribeExecution"],
                resources=[_executions(machine_names["restore"])],
            )
        )
        self.approver.add_to_policy(listing)
        self.approver.add_to_policy(
            iam.PolicyStatement(
                sid="ReadRequests",
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{prefix}/approvals/*")],
            )
        )
        # No S3 write and no GenerateDataKey: the decision and its audit record are written by RecordDecision's
        # own role, after it checked the approver's identity proof (pipeline.restore.approval.record_decision).
        approver_key = ["kms:Decrypt"]
        self.approver.add_to_policy(
            iam.PolicyStatement(sid="BackupKey", actions=approver_key, resources=[key.key_arn])
        )
        # The key lets an approver open approval requests (their task tokens), and S3 use it for SSE-KMS on
        # the bucket: never decrypt a backup part (those contexts carry pool and backup, not approval).
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="UseApproverDocuments",
                principals=[self.approver],
                actions=approver_key,
                resources=["*"],
                conditions={"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": ["approval"]}},
            )
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="UseApproverThroughS3",
                principals=[self.approver],
                actions=approver_key,
                resources=["*"],
                # Only when S3 calls KMS for an object the approver's S3 permissions reach (the bucket's ARN
                # cannot be named here: the bucket already depends on this key).
                conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
            )
        )

        acknowledge(self.operator, bucket_prefix_resource(bucket, prefix), OPERATOR_PREFIX)
        acknowledge(
            self.operator,
            "IAM5[Resource::arn:<AWS::Partition>:cognito-idp:<AWS::Region>:<AWS::AccountId>:userpool/*]",
            "Operators compare backups with any pool of this account (diff, dry-run); reads only.",
        )
        for name in machine_names.values():
            acknowledge(
                self.operator,
                f"IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:{name}:*]",
                EXECUTIONS,
            )
            acknowledge(
                self.operator,
                f"IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:mapRun:{name}/*]",
                "Map Runs are named by Step Functions at run time, under their state machine's name.",
            )
            acknowledge(
                self.operator,
                f"IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:{name}/*]",
                "A distributed Map's child executions are named at run time, under their state machine's name.",
            )
        acknowledge(self.approver, "IAM5[Resource::*]", TASK_TOKENS)
        acknowledge(
            self.approver,
            "IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            f"{machine_names['restore']}:*]",
            "Approvers check that the restore they decide on still waits; execution names are made at run time.",
        )
        for pattern in ("approvals/*",):
            acknowledge(self.approver, _object_finding(bucket, f"{prefix}/{pattern}"), APPROVER_PREFIX)
        acknowledge(
            self.operator, _object_finding(bucket, f"{prefix}/restores/selections/*"), OPERATOR_PREFIX
        )
        acknowledge(
            self.operator,
            _object_finding(bucket, f"{prefix}/audit/*"),
            "Audit records are created at run time; audit --verify reads every version of them.",
        )


def _object_finding(bucket: s3.IBucket, pattern: str) -> str:
    """cdk-nag's finding id for ``<bucket arn>/<pattern>``."""
    base = bucket_prefix_resource(bucket, "X")
    return base.replace("/X/*]", f"/{pattern}]")
