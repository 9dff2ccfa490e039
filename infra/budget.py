"""The deployment's shared Cognito rate budget: one small on-demand DynamoDB table (pipeline.cognito.shared_budget).

Every task that calls Cognito leases tokens from it with conditional UpdateItem, so the quota share is spread over
the tasks running at the moment, not split in fixed slices.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from pipeline.cognito import shared_budget

# UpdateItem only: a failed conditional write returns the current item (pipeline.cognito.shared_budget).
TABLE_ACTIONS = ("dynamodb:UpdateItem",)


class RateBudgetTable(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=shared_budget.KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=RemovalPolicy.DESTROY,
            # Nothing here is worth recovering (buckets seconds old, rebuilt on first use), but point-in-time
            # recovery costs next to nothing on a table of a few hundred bytes and keeps cdk-nag's DDB3 satisfied.
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
        )
        CfnOutput(scope, "RateBudgetTableName", value=self.table.table_name)
