"""Capture of a user pool's configuration: everything besides users and memberships that a restore recreates.

App client secrets are not kept: a recreated client gets a new ClientId, so its apps must be reconfigured
anyway, and a stored secret would only widen what a leaked backup key exposes. ``hadSecret`` records that the
client had one, so restore creates it with ``GenerateSecret``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
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


def _pages(call: Callable[..., Any], items_key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        yield from page.get(items_key, [])
        token = page.get("NextToken")
        if not token:
            return


def _app_clients(cognito: CognitoIdentityProviderClient, pool_id: str) -> list[dict[str, Any]]:
    clients = []
    for summary in _pages(
        cognito.list_user_pool_clients, "UserPoolClients", UserPoolId=pool_id, MaxResults=MAX_CLIENTS_PAGE
    ):
        described = cognito.describe_user_pool_client(UserPoolId=pool_id, ClientId=summary["ClientId"])
        client: dict[str, Any] = json_safe(described["UserPoolClient"])
        client["hadSecret"] = client.pop("ClientSecret", None) is not None
        clients.append(client)
    return clients


def _identity_providers(cognito: CognitoIdentityProviderClient, pool_id: str) -> list[dict[str, Any]]:
    providers = []
    for summary in _pages(
        cognito.list_identity_providers, "Providers", UserPoolId=pool_id, MaxResults=MAX_PROVIDERS_PAGE
    ):
        described = cognito.describe_identity_provider(
            UserPoolId=pool_id, ProviderName=summary["ProviderName"]
        )
        providers.append(json_safe(described["IdentityProvider"]))
    return providers


def _resource_servers(cognito: CognitoIdentityProviderClient, pool_id: str) -> list[dict[str, Any]]:
    # ListResourceServers returns the full ResourceServerType: no Describe call needed.
    return [
        json_safe(server)
        for server in _pages(
            cognito.list_resource_servers,
            "ResourceServers",
            UserPoolId=pool_id,
            MaxResults=MAX_RESOURCE_SERVERS_PAGE,
        )
    ]


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
