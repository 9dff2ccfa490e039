"""Pool configuration capture against moto."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from pipeline.cognito.pool_config import capture_pool_config
from pipeline.core.errors import PoolNotFound
from pipeline.operator.seed import seed_pool


def test_captures_the_whole_configuration(cognito: Any) -> None:
    seeded = seed_pool(cognito, users=8, seed=1)
    pool_id = seeded.pool_id
    cognito.create_identity_provider(
        UserPoolId=pool_id,
        ProviderName="corp-saml",
        ProviderType="SAML",
        ProviderDetails={"MetadataURL": "https://idp.example.com/metadata"},
        AttributeMapping={"email": "mail"},
    )
    cognito.create_resource_server(
        UserPoolId=pool_id,
        Identifier="https://api.example.com",
        Name="api",
        Scopes=[{"ScopeName": "read", "ScopeDescription": "Read things"}],
    )
    secret = cognito.describe_user_pool_client(
        UserPoolId=pool_id,
        ClientId=next(
            c["ClientId"]
            for c in cognito.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]
            if c["ClientName"] == "demo-backend"
        ),
    )["UserPoolClient"]["ClientSecret"]

    config = capture_pool_config(cognito, pool_id)

    text = json.dumps(config)  # JSON-ready throughout
    assert secret not in text
    assert "ClientSecret" not in text
    assert config["pool"]["Id"] == pool_id
    assert "EstimatedNumberOfUsers" not in config["pool"]
    assert "CreationDate" in config["pool"]
    assert {a["Name"] for a in config["pool"]["SchemaAttributes"]} >= {"custom:tenant_id", "custom:seats"}
    assert config["mfaConfig"]["MfaConfiguration"] == "OFF"
    clients = {c["ClientName"]: c for c in config["appClients"]}
    assert clients["demo-backend"]["hadSecret"] is True
    assert clients["demo-web"]["hadSecret"] is False
    assert "ALLOW_USER_SRP_AUTH" in clients["demo-web"]["ExplicitAuthFlows"]
    assert [p["ProviderName"] for p in config["identityProviders"]] == ["corp-saml"]
    assert config["identityProviders"][0]["AttributeMapping"] == {"email": "mail"}
    assert config["resourceServers"][0]["Identifier"] == "https://api.example.com"
    assert config["resourceServers"][0]["Scopes"][0]["ScopeName"] == "read"
    assert config["domain"]["Domain"] == config["pool"]["Domain"]
    assert config["customDomain"] is None
    assert {g["name"] for g in config["groups"]} == set(seeded.groups)
    dt.datetime.fromisoformat(config["capturedAt"])
    for email in seeded.emails:  # no user data in the configuration
        assert email not in text


def test_bare_pool(cognito: Any) -> None:
    pool_id = cognito.create_user_pool(PoolName="bare")["UserPool"]["Id"]
    config = capture_pool_config(cognito, pool_id)
    assert config["appClients"] == []
    assert config["identityProviders"] == []
    assert config["resourceServers"] == []
    assert config["groups"] == []
    assert config["domain"] is None


def test_many_clients_are_paged(cognito: Any) -> None:
    pool_id = cognito.create_user_pool(PoolName="busy")["UserPool"]["Id"]
    for i in range(63):
        cognito.create_user_pool_client(UserPoolId=pool_id, ClientName=f"c{i:02d}")
    config = capture_pool_config(cognito, pool_id)
    assert sorted(c["ClientName"] for c in config["appClients"]) == [f"c{i:02d}" for i in range(63)]


def test_missing_pool(cognito: Any) -> None:
    with pytest.raises(PoolNotFound):
        capture_pool_config(cognito, "us-east-1_nope")
