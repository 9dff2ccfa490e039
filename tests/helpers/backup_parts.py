"""Fixtures and builders shared by the store, manifest and verify tests (imported explicitly)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipeline.core.aws import Clients, make_clients
from pipeline.core.layout import BackupLocation
from pipeline.operator.demo import create_mac_key
from pipeline.sealing.store import StoredObject, put_sealed

BUCKET = "cb-test-backups"
POOL_ID = "us-east-1_AbC123"
BACKUP_ID = "20261127T202200Z-a1b2c3"
STARTED_AT = "2026-11-27T20:22:00+00:00"
MARKER = "pii-marker-7c1e"  # planted in every record: must never appear in S3 in plaintext


@dataclass(frozen=True)
class Env:
    clients: Clients
    key_arn: str
    loc: BackupLocation


def mocked_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """moto-backed clients, a KMS key and an empty bucket.

    Each test file wraps this in its own ``env`` fixture: importing fixtures across modules trips the
    linter, and registering them as a plugin would leak fixture names into other helpers' tests.
    """
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_KMS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        clients = make_clients(boto3.Session())
        key_arn = clients.kms.create_key(Description="backup key")["KeyMetadata"]["Arn"]
        create_mac_key(clients)
        clients.s3.create_bucket(Bucket=BUCKET)
        clients.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        loc = BackupLocation(bucket=BUCKET, prefix="backups", pool_id=POOL_ID, backup_id=BACKUP_ID)
        yield Env(clients, key_arn, loc)


def users(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "username": f"user-{i:05d}",
            "enabled": True,
            "status": "CONFIRMED",
            "attributes": {"email": f"{MARKER}-{i}@example.com", "sub": f"{i:08x}-0000"},
        }
        for i in range(start, start + count)
    ]


def config(groups: int) -> dict[str, Any]:
    return {
        "pool": {"Id": POOL_ID, "Name": "test", "EstimatedNumberOfUsers": 0},
        "groups": [{"name": f"group-{g}", "precedence": g} for g in range(groups)],
        "appClients": [],
    }


def write_parts(env: Env) -> list[StoredObject]:
    """A small sharded backup: config with 2 groups, shards 0 and 1 (3 user parts), 1 membership part."""
    clients, loc, key_arn = env.clients, env.loc, env.key_arn
    return [
        put_sealed(clients, loc, key_arn, loc.config_key, [config(2)]),
        put_sealed(clients, loc, key_arn, loc.user_part_key("0", 0), users(3, 0)),
        put_sealed(clients, loc, key_arn, loc.user_part_key("0", 1), users(2, 3)),
        put_sealed(clients, loc, key_arn, loc.user_part_key("1", 0), users(4, 5)),
        put_sealed(
            clients,
            loc,
            key_arn,
            loc.membership_part_key(0, 0),
            [{"group": "group-0", "username": "user-00000"}, {"group": "group-1", "username": "user-00001"}],
        ),
    ]


SHARDS = ["0", "1"]
EXPECTED = {"users": 9, "groups": 2, "memberships": 2, "parts": 5}
