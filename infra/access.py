"""Who may ask for a restore and who may decide on it: two roles, never the same principal.

The operator role starts and follows the machines and reads backups (verify, diff, dry-run plans); it cannot
send a task token back. The approver role reads pending requests and records a decision; it cannot start a
restore. Both are assumable from this account only, by principals an IAM policy allows to, with a session name
and a source identity, so CloudTrail and the audit trail name the person. The pipeline refuses self-approval
on top of this (pipeline.restore.approval.same_principal).
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
from infra.permissions import SELECTION, TaskNeeds
from infra.suppressions import TASK_TOKENS, acknowledge, bucket_prefix_resource

OPERATOR_ROLE_NAME = "cognito-backuper-operator"
APPROVER_ROLE_NAME = "cognito-backuper-approver"
OPERATOR_PREFIX = (
    "Operators read any backup under the backup prefix (verify, diff, dry-run plans) and seal restore selections; "
    "object keys are created at run time, so the prefix is the narrowest resource."
)
APPROVER_PREFIX = (
    "Approval requests and audit records are created at run time under <prefix>/approvals/ and <prefix>/audit/; "
    "an approver may read the former and add decisions and audit records, nothing else."
)
EXECUTIONS = (
    "Execution ARNs are created at run time; the actions are limited to executions of the two named machines."
)
# Cognito reads the CLI makes for `restore --dry-run` and `diff` against a live pool (tests/iam records them).
OPERATOR_COGNITO_READS = ("DescribeUserPool", "ListUsers", "ListGroups", "ListUsersInGroup")


OPERATOR_KEY_NEEDS = TaskNeeds(
    kms=frozenset({"Decrypt", "GenerateDataKey", "DescribeKey"}), seals=(SELECTION,)
)


def _assumable(scope: Construct, construct_id: str, name: str, description: str) -> iam.Role:
    """Assumable from this account only (an identity policy must also allow it), with a source identity."""
    principal = iam.AccountRootPrincipal().with_conditions({"Null": {"sts:SourceIdentity": "false"}})
    role = iam.Role(
        scope,
        construct_id,
        role_name=name,
        description=description,
        assumed_by=principal,
        max_session_duration=Duration.hours(1),
    )
    trust = role.assume_role_policy
    if trust is not None:
        trust.add_statements(
            iam.PolicyStatement(actions=["sts:SetSourceIdentity"], principals=[iam.AccountRootPrincipal()])
        )
    return role


def _executions(name: str) -> str:
    return f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:execution:{name}:*"


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
            OPERATOR_ROLE_NAME,
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
                actions=["states:DescribeMapRun"],
                resources=[_map_runs(machine_names[n]) for n in machines],
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
            self, "ApproverRole", APPROVER_ROLE_NAME, "cognito-backuper approvers: approve or reject restores"
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
        self.approver.add_to_policy(
            iam.PolicyStatement(
                sid="RecordDecisions",
                actions=["s3:PutObject"],
                resources=[
                    bucket.arn_for_objects(f"{prefix}/approvals/*/decision.bin"),
                    bucket.arn_for_objects(f"{prefix}/audit/*"),
                ],
            )
        )
        approver_key = ["kms:Decrypt", "kms:GenerateDataKey"]
        self.approver.add_to_policy(
            iam.PolicyStatement(sid="BackupKey", actions=approver_key, resources=[key.key_arn])
        )
        # The key lets an approver open and seal approval and audit documents, and S3 use it for SSE-KMS on
        # the bucket: never decrypt a backup part (those contexts carry pool and backup, not approval/audit).
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="UseApproverDocuments",
                principals=[self.approver],
                actions=approver_key,
                resources=["*"],
                conditions={"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": ["approval", "audit"]}},
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
        acknowledge(self.approver, "IAM5[Resource::*]", TASK_TOKENS)
        acknowledge(
            self.approver,
            "IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            f"{machine_names['restore']}:*]",
            "Approvers check that the restore they decide on still waits; execution names are made at run time.",
        )
        for pattern in ("approvals/*", "approvals/*/decision.bin", "audit/*"):
            acknowledge(self.approver, _object_finding(bucket, f"{prefix}/{pattern}"), APPROVER_PREFIX)
        acknowledge(
            self.operator, _object_finding(bucket, f"{prefix}/restores/selections/*"), OPERATOR_PREFIX
        )


def _object_finding(bucket: s3.IBucket, pattern: str) -> str:
    """cdk-nag's finding id for ``<bucket arn>/<pattern>``."""
    base = bucket_prefix_resource(bucket, "X")
    return base.replace("/X/*]", f"/{pattern}]")
