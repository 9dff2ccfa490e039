"""Pool configuration restore on moto: new pools, re-runs, merges into existing pools, selective groups.

Also home of the small harness the user-restore and diff tests import (plain functions, not fixtures):
seed a pool, back it up with the real backup tasks, restore it with the library.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import task_chain
from moto import mock_aws

from pipeline.backup import steps as backup
from pipeline.core.aws import Clients, make_clients
from pipeline.core.errors import InvalidRequest
from pipeline.operator import demo, seed
from pipeline.restore.pool_restore import (
    RESTORE_TAG,
    TEMP_CLIENT_NAME,
    PoolRestoreResult,
    finalize_new_pool,
    restore_pool_config,
)
from pipeline.restore.user_restore import UserOutcome, restore_user, restore_user_groups
from pipeline.sealing.backup_reader import BackupReader

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient


# --- harness ------------------------------------------------------------------------------------------------


@dataclass
class World:
    clients: Clients
    cognito: CognitoIdentityProviderClient  # unthrottled: the rate budget would only slow moto tests down
    account: demo.DemoAccount
    pool: seed.SeededPool


@dataclass
class Restored:
    config: PoolRestoreResult
    outcomes: list[UserOutcome]
    memberships: tuple[int, int, int]

    @property
    def username_map(self) -> dict[str, str]:
        return {o.old_username: o.new_username for o in self.outcomes if o.new_username}


def make_world(users: int = 40, *, email: bool = False, seed_value: int = 3) -> Iterator[World]:
    with mock_aws():
        clients = make_clients()
        account = demo.prepare_account(clients)
        cognito = boto3.client("cognito-idp")
        pool = seed.seed_pool(cognito, users=users, seed=seed_value, username_attribute_email=email)
        yield World(clients, cognito, account, pool)


def backup_pool(world: World, pool_id: str | None = None) -> BackupReader:
    """A verified backup through the same task handlers the state machine runs."""
    pool_id = pool_id or world.pool.pool_id
    state = task_chain.run_backup(world.account.storage, pool_id)
    return BackupReader.open(world.clients, backup.location(state["job"]))


def source_of(reader: BackupReader) -> str:
    return f"{reader.loc.pool_id}/{reader.loc.backup_id}"


def restore(
    cognito: CognitoIdentityProviderClient,
    reader: BackupReader,
    *,
    new_pool_name: str | None = None,
    target_pool_id: str | None = None,
    users: set[str] | None = None,
    groups: set[str] | None = None,
    finalize: bool = True,
) -> Restored:
    """What the restore state machine does, in order, in one process."""
    config = reader.config()
    result = restore_pool_config(
        cognito,
        config,
        source=source_of(reader),
        new_pool_name=new_pool_name,
        target_pool_id=target_pool_id,
        groups=groups,
    )
    pool = config["pool"]
    groups_of: dict[str, list[str]] = {}
    for m in reader.memberships():
        if groups is None or m["group"] in groups:
            groups_of.setdefault(m["username"], []).append(m["group"])
    outcomes: list[UserOutcome] = []
    counts = (0, 0, 0)
    missing: set[str] = set()
    for record in reader.users():
        if users is not None and record["username"] not in users:
            continue
        outcome = restore_user(
            cognito,
            result.pool_id,
            record,
            username_attributes=pool.get("UsernameAttributes") or [],
            password_policy=(pool.get("Policies") or {}).get("PasswordPolicy"),
            temp_client_id=result.temp_client_id,
        )
        outcomes.append(outcome)
        added = restore_user_groups(
            cognito, result.pool_id, outcome, groups_of.get(record["username"], []), missing
        )
        counts = (counts[0] + added[0], counts[1] + added[1], counts[2] + added[2])
    if finalize and new_pool_name is not None:
        finalize_new_pool(cognito, result.pool_id, config, result.temp_client_id)
    return Restored(result, outcomes, counts)


def pool_names(cognito: CognitoIdentityProviderClient) -> list[str]:
    return [p["Name"] for p in cognito.list_user_pools(MaxResults=60)["UserPools"]]


def client_names(cognito: CognitoIdentityProviderClient, pool_id: str) -> list[str]:
    clients = cognito.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]
    return sorted(c["ClientName"] for c in clients)


def groups_of(cognito: CognitoIdentityProviderClient, pool_id: str) -> dict[str, tuple[Any, ...]]:
    return {
        g["GroupName"]: (g.get("Description"), g.get("Precedence"), g.get("RoleArn"))
        for g in cognito.list_groups(UserPoolId=pool_id)["Groups"]
    }


# --- tests --------------------------------------------------------------------------------------------------


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
