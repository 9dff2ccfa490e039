"""Pool configuration restore on moto: new pools, re-runs, merges into existing pools, selective groups.

The harness lives in tests/helpers/restore_world.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from pipeline.core.errors import InvalidRequest
from pipeline.restore.pool_restore import (
    RESTORE_TAG,
    TEMP_CLIENT_NAME,
    finalize_new_pool,
    restore_pool_config,
)
from tests.helpers.restore_world import (
    World,
    backup_pool,
    client_names,
    groups_of,
    make_world,
    pool_names,
    source_of,
)

if TYPE_CHECKING:
    pass


@pytest.fixture
def world() -> Iterator[World]:
    yield from make_world(users=10)


def test_new_pool_recreates_the_configuration_and_defers_what_could_send_messages(world: World) -> None:
    cognito = world.cognito
    reader = backup_pool(world)
    config = reader.config()
    # What a production pool would carry: triggers and auto-verification must wait until after the users.
    config["pool"]["AutoVerifiedAttributes"] = ["email"]
    config["pool"]["LambdaConfig"] = {"PreSignUp": "arn:aws:lambda:us-east-1:123456789012:function:pre"}
    result = restore_pool_config(cognito, config, source=source_of(reader), new_pool_name="restored")

    assert result.created
    pool = cognito.describe_user_pool(UserPoolId=result.pool_id)["UserPool"]
    assert pool["Name"] == "restored"
    assert pool["UserPoolTags"] == {"purpose": "cognito-backuper-demo", RESTORE_TAG: source_of(reader)}
    assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] == 12
    assert {a["Name"] for a in pool["SchemaAttributes"]} >= {
        "custom:tenant_id",
        "custom:plan",
        "custom:seats",
    }
    assert not pool.get("AutoVerifiedAttributes")
    assert not pool.get("LambdaConfig")
    assert groups_of(cognito, result.pool_id) == groups_of(cognito, world.pool.pool_id)
    assert (result.groups_created, result.groups_existing) == (5, 0)
    assert client_names(cognito, result.pool_id) == sorted(["demo-web", "demo-backend", TEMP_CLIENT_NAME])
    assert result.app_clients_created == 2
    old_clients = {c["ClientName"]: c for c in config["appClients"]}
    assert set(result.client_id_map) == {c["ClientId"] for c in old_clients.values()}
    backend_id = result.client_id_map[old_clients["demo-backend"]["ClientId"]]
    described = cognito.describe_user_pool_client(UserPoolId=result.pool_id, ClientId=backend_id)
    assert described["UserPoolClient"].get("ClientSecret")  # hadSecret -> a new secret
    assert (
        described["UserPoolClient"]["ExplicitAuthFlows"] == old_clients["demo-backend"]["ExplicitAuthFlows"]
    )
    # The source pool still owns its domain prefix: reported, not stolen.
    assert result.domain is None
    assert any(c.startswith(f"domain {config['domain']['Domain']}") for c in result.conflicts)
    assert result.temp_client_id is not None

    finalize_new_pool(cognito, result.pool_id, config, result.temp_client_id)
    pool = cognito.describe_user_pool(UserPoolId=result.pool_id)["UserPool"]
    assert pool["AutoVerifiedAttributes"] == ["email"]
    assert pool["LambdaConfig"] == config["pool"]["LambdaConfig"]
    assert pool["Policies"]["PasswordPolicy"]["MinimumLength"] == 12  # not reset by UpdateUserPool
    assert pool["UserPoolTags"][RESTORE_TAG] == source_of(reader)
    assert TEMP_CLIENT_NAME not in client_names(cognito, result.pool_id)
    finalize_new_pool(cognito, result.pool_id, config, result.temp_client_id)  # a retried finalize is fine


def test_rerun_reuses_the_pool_it_created(world: World) -> None:
    cognito = world.cognito
    reader = backup_pool(world)
    config = reader.config()
    first = restore_pool_config(cognito, config, source=source_of(reader), new_pool_name="restored")
    again = restore_pool_config(cognito, config, source=source_of(reader), new_pool_name="restored")
    assert again.pool_id == first.pool_id
    assert not again.created
    assert pool_names(cognito).count("restored") == 1
    assert (again.groups_created, again.groups_existing, again.app_clients_created) == (0, 5, 0)
    assert again.client_id_map == first.client_id_map
    assert again.temp_client_id == first.temp_client_id
    assert client_names(cognito, first.pool_id).count(TEMP_CLIENT_NAME) == 1


def test_a_foreign_pool_with_the_same_name_is_never_reused(world: World) -> None:
    cognito = world.cognito
    reader = backup_pool(world)
    cognito.create_user_pool(PoolName="taken")
    with pytest.raises(InvalidRequest, match="already exists"):
        restore_pool_config(cognito, reader.config(), source=source_of(reader), new_pool_name="taken")
    assert pool_names(cognito).count("taken") == 1


def test_merge_adds_what_is_missing_and_reports_what_differs(world: World) -> None:
    cognito = world.cognito
    pool_id = world.pool.pool_id
    reader = backup_pool(world)
    config = reader.config()
    cognito.delete_group(UserPoolId=pool_id, GroupName="billing")
    cognito.update_group(UserPoolId=pool_id, GroupName="editors", Description="Changed since", Precedence=11)
    config["pool"]["SchemaAttributes"].append(
        {"Name": "custom:region", "AttributeDataType": "String", "Mutable": True, "Required": False}
    )
    before = groups_of(cognito, pool_id)

    result = restore_pool_config(cognito, config, source=source_of(reader), target_pool_id=pool_id)

    assert not result.created
    assert (result.groups_created, result.groups_existing) == (1, 4)
    assert result.conflicts == ["group editors: description, precedence differ; left unchanged"]
    after = groups_of(cognito, pool_id)
    assert after["editors"] == before["editors"]  # never overwritten
    assert after["billing"] == ("Sees invoices and plans", 30, None)
    names = {
        a["Name"] for a in cognito.describe_user_pool(UserPoolId=pool_id)["UserPool"]["SchemaAttributes"]
    }
    assert "custom:region" in names
    assert result.app_clients_created == 0
    assert client_names(cognito, pool_id) == ["demo-backend", "demo-web"]
    assert result.temp_client_id is None  # an existing pool may send codes on SignUp
    assert result.domain == config["domain"]["Domain"]


def test_selective_groups_into_an_existing_pool_touch_nothing_else(world: World) -> None:
    cognito = world.cognito
    reader = backup_pool(world)
    target = cognito.create_user_pool(PoolName="empty")["UserPool"]["Id"]
    result = restore_pool_config(
        cognito, reader.config(), source=source_of(reader), target_pool_id=target, groups={"admins"}
    )
    assert (result.groups_created, result.app_clients_created, result.domain) == (1, 0, None)
    assert list(groups_of(cognito, target)) == ["admins"]
    assert client_names(cognito, target) == []
    with pytest.raises(InvalidRequest, match="not in the backup"):
        restore_pool_config(
            cognito, reader.config(), source=source_of(reader), target_pool_id=target, groups={"nope"}
        )


def test_a_free_domain_is_recreated(world: World) -> None:
    cognito = world.cognito
    reader = backup_pool(world)
    config = reader.config()
    cognito.delete_user_pool_domain(Domain=config["domain"]["Domain"], UserPoolId=world.pool.pool_id)
    result = restore_pool_config(cognito, config, source=source_of(reader), new_pool_name="restored")
    assert result.domain == config["domain"]["Domain"]
    assert result.conflicts == []
    owner = cognito.describe_user_pool_domain(Domain=config["domain"]["Domain"])["DomainDescription"][
        "UserPoolId"
    ]
    assert owner == result.pool_id


def test_target_and_new_name_are_exclusive(world: World) -> None:
    reader = backup_pool(world)
    with pytest.raises(InvalidRequest):
        restore_pool_config(world.cognito, reader.config(), source=source_of(reader))
    with pytest.raises(InvalidRequest):
        restore_pool_config(
            world.cognito, reader.config(), source="x/y", target_pool_id=world.pool.pool_id, new_pool_name="n"
        )
