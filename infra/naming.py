"""Account-global names that carry the stack name and Region, so two deployments can live side by side.

IAM role names are global to the account and at most 64 characters: the stack name is checked at synth time
against the longest Region name, since the Region itself may only be known at deploy time.
"""

from __future__ import annotations

from aws_cdk import Aws, Stack, Token
from constructs import Construct

from infra.settings import InfraConfigError

ROLE_NAME_MAX = 64
LONGEST_REGION = len("us-isof-south-1")


def deployment_name(suffix: str) -> str:
    """Dashboards, alarms, topics, key aliases: ``<stack name>-<Region>-<suffix>``."""
    return f"{Aws.STACK_NAME}-{Aws.REGION}-{suffix}"


def role_name(scope: Construct, suffix: str) -> str:
    """An IAM role name ``<stack name>-<Region>-<suffix>`` that fits IAM's 64 characters in every Region."""
    stack = Stack.of(scope).stack_name
    if Token.is_unresolved(stack):
        raise InfraConfigError("role names need a stack name known at synth time")
    longest = len(stack) + 1 + LONGEST_REGION + 1 + len(suffix)
    if longest > ROLE_NAME_MAX:
        raise InfraConfigError(
            f"role name {stack}-<Region>-{suffix} can reach {longest} characters, over IAM's {ROLE_NAME_MAX}: "
            "use a shorter stack name"
        )
    return f"{stack}-{Aws.REGION}-{suffix}"
