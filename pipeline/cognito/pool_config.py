"""Capture of a user pool's configuration: everything besides users and memberships that a restore recreates.

App client secrets are not kept: a recreated client gets a new ClientId, so its apps must be reconfigured
anyway, and a stored secret would only widen what a leaked backup key exposes. ``hadSecret`` records that the
client had one, so restore creates it with ``GenerateSecret``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.cognito.reading import describe_pool, groups_page, pool_errors
from pipeline.core.aws import json_safe

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient

# Fields of DescribeUserPool that change without any configuration change.
VOLATILE_POOL_FIELDS = ("EstimatedNumberOfUsers",)
MAX_CLIENTS_PAGE = 60
MAX_PROVIDERS_PAGE = 60
MAX_RESOURCE_SERVERS_PAGE = 50  # ListResourceServers accepts at most 50


def _page(
    call: Callable[..., Any], items_key: str, token: str | None, **kwargs: Any
) -> tuple[list[dict[str, Any]], str | None]:
    page = call(**kwargs, **({"NextToken": token} if token else {}))
    return list(page.get(items_key, [])), page.get("NextToken") or None


def _app_clients_page(
    cognito: CognitoIdentityProviderClient, pool_id: str, token: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    summaries, token = _page(
        cognito.list_user_pool_clients,
        "UserPoolClients",
        token,
        UserPoolId=pool_id,
        MaxResults=MAX_CLIENTS_PAGE,
    )
    clients = []
    for summary in summaries:
        described = cognito.describe_user_pool_client(UserPoolId=pool_id, ClientId=summary["ClientId"])
        client: dict[str, Any] = json_safe(described["UserPoolClient"])
        client["hadSecret"] = client.pop("ClientSecret", None) is not None
        clients.append(client)
    return clients, token


def _identity_providers_page(
    cognito: CognitoIdentityProviderClient, pool_id: str, token: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    summaries, token = _page(
        cognito.list_identity_providers, "Providers", token, UserPoolId=pool_id, MaxResults=MAX_PROVIDERS_PAGE
    )
    providers = []
    for summary in summaries:
        described = cognito.describe_identity_provider(
            UserPoolId=pool_id, ProviderName=summary["ProviderName"]
        )
        providers.append(json_safe(described["IdentityProvider"]))
    return providers, token


def _resource_servers_page(
    cognito: CognitoIdentityProviderClient, pool_id: str, token: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    # ListResourceServers returns the full ResourceServerType: no Describe call needed.
    servers, token = _page(
        cognito.list_resource_servers,
        "ResourceServers",
        token,
        UserPoolId=pool_id,
        MaxResults=MAX_RESOURCE_SERVERS_PAGE,
    )
    return [json_safe(s) for s in servers], token


def _domain(cognito: CognitoIdentityProviderClient, domain: str | None) -> dict[str, Any] | None:
    if not domain:
        return None
    description = cognito.describe_user_pool_domain(Domain=domain).get("DomainDescription") or {}
    # An unknown domain comes back as an empty description, not an error.
    return json_safe(description) if description.get("Domain") else None


def _settings(cognito: CognitoIdentityProviderClient, pool_id: str) -> dict[str, Any]:
    pool = describe_pool(cognito, pool_id)
    for field in VOLATILE_POOL_FIELDS:
        pool.pop(field, None)
    with pool_errors(pool_id):
        return {
            "pool": pool,
            "mfaConfig": json_safe(cognito.get_user_pool_mfa_config(UserPoolId=pool_id)),
            "domain": _domain(cognito, pool.get("Domain")),
            "customDomain": _domain(cognito, pool.get("CustomDomain")),
        }


Pager = Callable[["CognitoIdentityProviderClient", str, str | None], tuple[list[dict[str, Any]], str | None]]
# The listed pieces, in capture order; "pool" (the settings, one step) comes first and DONE last.
LISTED: dict[str, Pager] = {
    "appClients": _app_clients_page,
    "identityProviders": _identity_providers_page,
    "resourceServers": _resource_servers_page,
    "groups": groups_page,
}
SETTINGS = "pool"
DONE = "done"
PHASES = (SETTINGS, *LISTED, DONE)


@dataclass(frozen=True)
class CaptureSlice:
    """What one slice captured (``{"kind", "value"}`` records) and where the next slice resumes."""

    phase: str
    token: str | None
    records: list[dict[str, Any]]


def capture_slice(
    cognito: CognitoIdentityProviderClient,
    pool_id: str,
    phase: str,
    token: str | None,
    *,
    deadline: float,
    clock: Callable[[], float],
) -> CaptureSlice:
    """Pages from (``phase``, ``token``) until the configuration ends or ``deadline`` passes.

    A pool of thousands of groups or app clients takes longer at the deployed rate than one Lambda call may
    run, so the capture stops between pages and resumes from the cursor; at least one page is read per slice.
    """
    if phase not in PHASES:
        raise ValueError(f"unknown capture phase {phase!r}")
    records: list[dict[str, Any]] = []
    while phase != DONE and (not records or clock() < deadline):
        if phase == SETTINGS:
            records.append({"kind": SETTINGS, "value": _settings(cognito, pool_id)})
            phase, token = PHASES[PHASES.index(phase) + 1], None
            continue
        with pool_errors(pool_id):
            items, token = LISTED[phase](cognito, pool_id, token)
        records.extend({"kind": phase, "value": item} for item in items)
        if token is None:
            phase = PHASES[PHASES.index(phase) + 1]
    return CaptureSlice(phase=phase, token=token, records=records)


def assemble(records: Iterable[Mapping[str, Any]], captured_at: dt.datetime | None = None) -> dict[str, Any]:
    """The configuration document (as :func:`capture_pool_config` returns it) from every slice's records."""
    config: dict[str, Any] = {kind: [] for kind in LISTED}
    settings: Mapping[str, Any] | None = None
    for record in records:
        kind, value = record["kind"], record["value"]
        if kind == SETTINGS:
            settings = value
        else:
            config[kind].append(value)
    if settings is None:
        raise ValueError("the captured records hold no pool settings")
    config.update(settings)
    config["capturedAt"] = (captured_at or dt.datetime.now(dt.UTC)).isoformat()
    return config


def capture_pool_config(cognito: CognitoIdentityProviderClient, pool_id: str) -> dict[str, Any]:
    """The whole configuration in one go (no time budget): for tools that are not bound by Lambda's limit."""
    result = capture_slice(cognito, pool_id, SETTINGS, None, deadline=float("inf"), clock=lambda: 0.0)
    return assemble(result.records)
