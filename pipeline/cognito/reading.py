"""Reading pools, users, groups and memberships from Cognito, one page at a time.

Functions return plain JSON-ready records. Rate limiting and throttling retries are the client's business
(:func:`pipeline.cognito.throttle.install`), so these functions stay plain SDK calls with error translation.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from pipeline.cognito.shards import sub_filter
from pipeline.core.aws import error_code, json_safe, sdk_errors
from pipeline.core.errors import PaginationTokenExpired, PoolNotFound

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient

PAGE_LIMIT = 60  # the maximum Cognito accepts for ListUsers, ListGroups, ListUsersInGroup, ListUserPools


@contextmanager
def pool_errors(pool_id: str) -> Iterator[None]:
    """SDK errors as pipeline errors, with a missing pool named (its id is not user data)."""
    with sdk_errors():
        try:
            yield
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise PoolNotFound(f"user pool {pool_id} not found in this account and Region") from exc
            raise


def list_pool_ids(cognito: CognitoIdentityProviderClient) -> list[str]:
    # A paginator: the token never leaves this call. Each page is one SDK call, so each goes through the budget.
    pages = cognito.get_paginator("list_user_pools").paginate(PaginationConfig={"PageSize": PAGE_LIMIT})
    with sdk_errors():
        return [pool["Id"] for page in pages for pool in page.get("UserPools", []) if "Id" in pool]


def describe_pool(cognito: CognitoIdentityProviderClient, pool_id: str) -> dict[str, Any]:
    with pool_errors(pool_id):
        pool: dict[str, Any] = json_safe(cognito.describe_user_pool(UserPoolId=pool_id)["UserPool"])
    return pool


def estimated_users(cognito: CognitoIdentityProviderClient, pool_id: str) -> int:
    return int(describe_pool(cognito, pool_id).get("EstimatedNumberOfUsers", 0))


def _iso(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value) if value is not None else None


def user_record(item: Mapping[str, Any]) -> dict[str, Any]:
    """The record a backup stores (encrypted) for one ListUsers item, and what restore reads back."""
    record: dict[str, Any] = {
        "username": item["Username"],
        "attributes": {a["Name"]: a.get("Value", "") for a in item.get("Attributes", [])},
        "enabled": bool(item.get("Enabled", True)),
        "status": item.get("UserStatus"),
        "created": _iso(item.get("UserCreateDate")),
        "modified": _iso(item.get("UserLastModifiedDate")),
    }
    if item.get("MFAOptions"):
        record["mfa"] = json_safe(list(item["MFAOptions"]))
    return record


@dataclass(frozen=True)
class UserPage:
    users: list[dict[str, Any]]
    next_token: str | None


# Cognito's answer to an expired or foreign ListUsers PaginationToken (an InvalidParameterException):
# "Paging marker <token> is invalid for request <request id>". Other InvalidParameterExceptions (a malformed
# filter or limit) are not expired tokens: restarting the shard would only fail again.
_PAGING_MARKER_INVALID = re.compile(r"^Paging marker \S+ is invalid\b")


def _is_bad_token(exc: botocore.exceptions.ClientError) -> bool:
    message = str(exc.response.get("Error", {}).get("Message", ""))
    return error_code(exc) == "InvalidParameterException" and bool(_PAGING_MARKER_INVALID.match(message))


def list_users_page(
    cognito: CognitoIdentityProviderClient,
    pool_id: str,
    *,
    sub_prefix: str = "",
    token: str | None = None,
    limit: int = PAGE_LIMIT,
) -> UserPage:
    kwargs: dict[str, Any] = {"UserPoolId": pool_id, "Limit": limit}
    filt = sub_filter(sub_prefix)
    if filt:
        kwargs["Filter"] = filt
    if token:
        kwargs["PaginationToken"] = token
    with pool_errors(pool_id):
        try:
            page = cognito.list_users(**kwargs)
        except botocore.exceptions.ClientError as exc:
            if token and _is_bad_token(exc):
                shard = sub_prefix or "(all)"
                raise PaginationTokenExpired(
                    f"ListUsers pagination token for pool {pool_id} shard {shard} expired or is invalid"
                ) from exc
            raise
    return UserPage(
        users=[user_record(item) for item in page.get("Users", [])],
        next_token=page.get("PaginationToken") or None,
    )


def _group_record(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": item["GroupName"],
        "description": item.get("Description") or None,  # moto answers "" where AWS omits the field
        "precedence": item.get("Precedence"),
        "roleArn": item.get("RoleArn"),
    }


def groups_page(
    cognito: CognitoIdentityProviderClient, pool_id: str, token: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One ListGroups page as group records, and the next token (None after the last page)."""
    kwargs: dict[str, Any] = {"UserPoolId": pool_id, "Limit": PAGE_LIMIT}
    if token:
        kwargs["NextToken"] = token
    with pool_errors(pool_id):
        page = cognito.list_groups(**kwargs)
    return [_group_record(g) for g in page.get("Groups", [])], page.get("NextToken") or None


def list_groups(cognito: CognitoIdentityProviderClient, pool_id: str) -> list[dict[str, Any]]:
    pages = cognito.get_paginator("list_groups").paginate(
        UserPoolId=pool_id, PaginationConfig={"PageSize": PAGE_LIMIT}
    )
    with pool_errors(pool_id):
        return [_group_record(g) for page in pages for g in page.get("Groups", [])]


def group_members_page(
    cognito: CognitoIdentityProviderClient,
    pool_id: str,
    group: str,
    token: str | None,
    limit: int = PAGE_LIMIT,
) -> tuple[list[dict[str, str]], str | None]:
    """One page of a group's members as ``{"username", "sub"}`` and the next token.

    The ``sub`` places each membership in its user's shard, so a restore adds it right after the user.
    A group deleted since it was listed has no members left to back up: that is an empty last page, not an error.
    """
    kwargs: dict[str, Any] = {"UserPoolId": pool_id, "GroupName": group, "Limit": limit}
    if token:
        kwargs["NextToken"] = token
    with pool_errors(pool_id):
        try:
            page = cognito.list_users_in_group(**kwargs)
        except botocore.exceptions.ClientError as exc:
            # A missing pool and a missing group share ResourceNotFoundException; only the pool's names it.
            message = str(exc.response.get("Error", {}).get("Message", "")).lower()
            if error_code(exc) == "ResourceNotFoundException" and "user pool" not in message:
                return [], None
            raise
    members = [
        {
            "username": u["Username"],
            "sub": next((a["Value"] for a in u.get("Attributes", []) if a["Name"] == "sub"), ""),
        }
        for u in page.get("Users", [])
    ]
    return members, page.get("NextToken") or None


def list_group_members_page(
    cognito: CognitoIdentityProviderClient,
    pool_id: str,
    group: str,
    token: str | None,
    limit: int = PAGE_LIMIT,
) -> tuple[list[str], str | None]:
    """One page of a group's member usernames and the next token."""
    members, next_token = group_members_page(cognito, pool_id, group, token, limit)
    return [m["username"] for m in members], next_token
