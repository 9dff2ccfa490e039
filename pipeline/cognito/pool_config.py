"""Capture of a user pool's configuration: everything besides users and memberships that a restore recreates.

App client secrets are not kept: a recreated client gets a new ClientId, so its apps must be reconfigured
anyway, and a stored secret would only widen what a leaked backup key exposes. ``hadSecret`` records that the
client had one, so restore creates it with ``GenerateSecret``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from pipeline.cognito.reading import describe_pool, list_groups, pool_errors
from pipeline.core.aws import json_safe

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient

# Fields of DescribeUserPool that change without any configuration change.
VOLATILE_POOL_FIELDS = ("EstimatedNumberOfUsers",)
MAX_CLIENTS_PAGE = 60
MAX_PROVIDERS_PAGE = 60
MAX_RESOURCE_SERVERS_PAGE = 50  # ListResourceServers accepts at most 50


# Paginators: these tokens never leave the capture. Each page is one SDK call, so each goes through the budget.
def _app_clients(cognito: CognitoIdentityProviderClient, pool_id: str) -> list[dict[str, Any]]:
    clients = []
    pages = cognito.get_paginator("list_user_pool_clients").paginate(
        UserPoolId=pool_id, PaginationConfig={"PageSize": MAX_CLIENTS_PAGE}
    )
    for summary in (s for page in pages for s in page.get("UserPoolClients", [])):
        described = cognito.describe_user_pool_client(UserPoolId=pool_id, ClientId=summary["ClientId"])
        client: dict[str, Any] = json_safe(described["UserPoolClient"])
        client["hadSecret"] = client.pop("ClientSecret", None) is not None
        clients.append(client)
    return clients


def _identity_providers(cognito: CognitoIdentityProviderClient, pool_id: str) -> list[dict[str, Any]]:
    providers = []
    pages = cognito.get_paginator("list_identity_providers").paginate(
        UserPoolId=pool_id, PaginationConfig={"PageSize": MAX_PROVIDERS_PAGE}
    )
    for summary in (s for page in pages for s in page.get("Providers", [])):
        described = cognito.describe_identity_provider(
            UserPoolId=pool_id, ProviderName=summary["ProviderName"]
        )
        providers.append(json_safe(described["IdentityProvider"]))
    return providers


def _resource_servers(cognito: CognitoIdentityProviderClient, pool_id: str) -> list[dict[str, Any]]:
    # ListResourceServers returns the full ResourceServerType: no Describe call needed.
    pages = cognito.get_paginator("list_resource_servers").paginate(
        UserPoolId=pool_id, PaginationConfig={"PageSize": MAX_RESOURCE_SERVERS_PAGE}
    )
    return [json_safe(server) for page in pages for server in page.get("ResourceServers", [])]


def _domain(cognito: CognitoIdentityProviderClient, domain: str | None) -> dict[str, Any] | None:
    if not domain:
        return None
    description = cognito.describe_user_pool_domain(Domain=domain).get("DomainDescription") or {}
    # An unknown domain comes back as an empty description, not an error.
    return json_safe(description) if description.get("Domain") else None


def capture_pool_config(cognito: CognitoIdentityProviderClient, pool_id: str) -> dict[str, Any]:
    pool = describe_pool(cognito, pool_id)
    for field in VOLATILE_POOL_FIELDS:
        pool.pop(field, None)
    with pool_errors(pool_id):
        mfa = json_safe(cognito.get_user_pool_mfa_config(UserPoolId=pool_id))
        config: dict[str, Any] = {
            "pool": pool,
            "mfaConfig": mfa,
            "appClients": _app_clients(cognito, pool_id),
            "identityProviders": _identity_providers(cognito, pool_id),
            "resourceServers": _resource_servers(cognito, pool_id),
            "domain": _domain(cognito, pool.get("Domain")),
            "customDomain": _domain(cognito, pool.get("CustomDomain")),
        }
    config["groups"] = list_groups(cognito, pool_id)
    config["capturedAt"] = dt.datetime.now(dt.UTC).isoformat()
    return config
