"""cdk-nag AwsSolutions findings accepted on purpose, each on the exact construct, with the reason it is safe.

cdk-nag 3 runs as a CDK policy-validation plugin: an acknowledgment is ``Validations.of(c).acknowledge``
with the finding id; ``AwsSolutions-IAM5[Resource::...]`` names the one wildcard resource accepted.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from constructs import IConstruct

ACCOUNT_WIDE_COGNITO = (
    "ListUserPools, DescribeUserPoolDomain and CreateUserPool have no IAM resource type: IAM only accepts "
    "Resource '*' for them. Each is granted alone in its own statement, only to the tasks that call it."
)
USER_POOLS = (
    "The pools are chosen at run time (every pool by default), so pool ARNs are unknown at deploy time; the "
    "resource is limited to user pools of this account and Region and the actions to this task's row of "
    "infra.permissions.TASK_NEEDS."
)
BACKUP_PREFIX = (
    "Backup objects are created at run time under <prefix>/<pool-id>/<backup-id>/; access is limited to the "
    "backup prefix of this one bucket, with only the S3 actions this task needs."
)
STATES_SERVICE = (
    "Step Functions log delivery (logs:CreateLogDelivery and related) and X-Ray (xray:PutTraceSegments and "
    "related) actions do not support resource-level permissions; CDK adds exactly these named actions."
)


def acknowledge(construct: IConstruct, finding: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=f"AwsSolutions-{finding}", reason=reason))


DISTRIBUTED_CHILDREN = (
    "A distributed Map's child executions are created at run time; DescribeExecution and StopExecution are "
    "limited to the child executions of this one machine (named <machine>/<map run>:<child>)."
)
NESTED_EXECUTIONS = (
    "Execution ARNs of the nested machine are created at run time; DescribeExecution and StopExecution are "
    "limited to executions of that one named machine (what startExecution.sync:2 needs)."
)

ROLE_HANDOVER = (
    "A restored group keeps its backed-up RoleArn and a restored pool its SMS role, both chosen at run time from the "
    "backup; iam:PassRole is limited to roles of this account and, by iam:PassedToService, to Cognito."
)
TASK_TOKENS = (
    "states:SendTaskSuccess and SendTaskFailure have no IAM resource type. The task token is the capability: it is "
    "sealed under <prefix>/approvals/ with the backup key, which only the approver and restore roles may use."
)
ACCOUNT_ROLES_RESOURCE = "IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role/*]"
ANY_RESOURCE = "IAM5[Resource::*]"
USER_POOL_RESOURCE = (
    "IAM5[Resource::arn:<AWS::Partition>:cognito-idp:<AWS::Region>:<AWS::AccountId>:userpool/*]"
)


def bucket_prefix_resource(bucket: IConstruct, prefix: str) -> str:
    """The finding id cdk-nag gives ``<bucket arn>/<prefix>/*``: it names the bucket by its logical id."""
    stack = Stack.of(bucket)
    cfn = bucket.node.default_child
    if not isinstance(cfn, CfnElement):
        raise TypeError("expected an L2 bucket with a CloudFormation resource")
    return f"IAM5[Resource::<{stack.resolve(stack.get_logical_id(cfn))}.Arn>/{prefix}/*]"
