"""An expired ListUsers pagination token restarts its shard cleanly; leftover parts never reach the manifest."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from pipeline.backup import steps as backup
from pipeline.cognito import reading as cognito_read
from pipeline.core.layout import parse_backup_uri
from pipeline.operator.local_engine import LocalEngine
from pipeline.sealing.backup_reader import BackupReader
from tests.helpers.faults import COGNITO, Call, FaultInjector, World, cognito_error, contents, open_world

pytestmark = pytest.mark.e2e

PART = 60
USERS = 240  # four parts of one shard: ListUsers pages of 60, one page per ExportUsers invocation


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup, "USERS_PER_PART", PART)


@pytest.fixture
def world() -> Iterator[World]:
    with LocalEngine(embedded=True) as engine:
        yield open_world(engine, users=USERS, seed_value=23)


def _live_usernames(world: World) -> list[str]:
    names: list[str] = []
    token: str | None = None
    while True:
        page = cognito_read.list_users_page(world.clients.cognito, world.pool.pool_id, token=token)
        names.extend(u["username"] for u in page.users)
        token = page.next_token
        if token is None:
            return names


def _stored_keys(world: World, root: str) -> set[str]:
    pages = world.clients.s3.get_paginator("list_objects_v2").paginate(
        Bucket=world.account.storage["bucket"], Prefix=root
    )
    return {o["Key"] for p in pages for o in p.get("Contents", [])}


@pytest.mark.parametrize("deleted", [0, 130], ids=["same-pool", "users-deleted-meanwhile"])
def test_an_expired_token_restarts_the_shard_and_drops_leftover_parts(
    world: World, faults: FaultInjector, deleted: int
) -> None:
    """The token of the fourth page expires; with 130 users deleted meanwhile the restart writes two parts, so the
    first pass's third part is left over: WriteManifest must remove it and the backup must still verify."""
    lock = threading.Lock()
    tokened_calls = [0]
    victims = _live_usernames(world)[-deleted:] if deleted else []
    cognito = boto3.client("cognito-idp")

    def expire_fourth_page(call: Call) -> AWSResponse | None:
        if call.service != COGNITO or call.operation != "ListUsers" or "PaginationToken" not in call.params:
            return None
        with lock:
            tokened_calls[0] += 1
            if tokened_calls[0] != 3:
                return None
        for username in victims:
            cognito.admin_delete_user(UserPoolId=world.pool.pool_id, Username=username)
        return cognito_error(
            "InvalidParameterException", "Paging marker AAAA is invalid for request 0000-fault"
        )

    faults.add(expire_fourth_page)
    outcome = world.backup()
    assert outcome.succeeded, outcome.message
    assert faults.injected["ListUsers"] == 1

    uri = outcome.backups[0]["uri"]
    stored = contents(world.clients, uri)
    live = _live_usernames(world)
    assert len(live) == USERS - deleted
    assert stored.usernames == Counter(live)  # every user exactly once, none of the deleted ones

    loc = parse_backup_uri(uri)
    reader = BackupReader.open(world.clients, loc)
    listed = {loc.root + o["name"] for o in reader.doc["objects"]}
    assert _stored_keys(world, loc.root) == listed | {loc.manifest_key}
    user_parts = sorted(k for k in listed if "/users/" in k)
    expected_parts = -(-(USERS - deleted) // PART)
    assert user_parts == [loc.user_part_key("", p) for p in range(expected_parts)]
    if deleted:
        # The first pass had written part 2 before the token expired; the restarted shard ended at part 1.
        assert loc.user_part_key("", 2) not in _stored_keys(world, loc.root)
