"""The pool-restore harness the restore tests share: seed a pool, back it up with the real backup tasks, restore
it with the library, in one process on moto (plain functions, not fixtures)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from moto import mock_aws

from pipeline.backup import steps as backup
from pipeline.core.aws import Clients, make_clients
from pipeline.operator import demo, seed
from pipeline.restore.pool_restore import (
    PoolRestoreResult,
    finalize_new_pool,
    restore_pool_config,
)
from pipeline.restore.user_restore import UserOutcome, restore_user, restore_user_groups
from pipeline.sealing import manifest
from pipeline.sealing.backup_reader import BackupReader
from tests.helpers import task_chain

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient


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


def pinned(reader: BackupReader) -> dict[str, Any]:
    """The pin ValidateRequest records in a restore request: the manifest's SHA-256 and S3 version id."""
    _, pin = manifest.read_pinned(reader.clients, reader.loc)
    return {"manifestSha256": pin.sha256, "manifestVersionId": pin.version_id}
