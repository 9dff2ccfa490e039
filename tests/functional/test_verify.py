import json
from collections.abc import Iterator

import pytest

from pipeline.backup.verify import VerifyReport, verify_backup
from pipeline.core.errors import BackupNotFound, IntegrityError, TamperedError
from pipeline.sealing.manifest import build_manifest, write_manifest
from pipeline.sealing.store import StoredObject, put_sealed
from tests.helpers.backup_parts import (
    EXPECTED,
    SHARDS,
    STARTED_AT,
    Env,
    config,
    mocked_env,
    users,
    write_parts,
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    yield from mocked_env(monkeypatch)


def _seal_backup(env: Env, objects: list[StoredObject], groups: int = 2) -> None:
    doc = build_manifest(
        env.loc,
        region=env.clients.region,
        kms_key_arn=env.key_arn,
        started_at=STARTED_AT,
        shards=SHARDS,
        objects=objects,
        groups=groups,
    )
    write_manifest(env.clients, env.loc, doc)


@pytest.fixture
def backup(env: Env) -> Env:
    _seal_backup(env, write_parts(env))
    return env


def _body(env: Env, name: str) -> bytes:
    return env.clients.s3.get_object(Bucket=env.loc.bucket, Key=env.loc.root + name)["Body"].read()


def _put(env: Env, name: str, body: bytes) -> None:
    env.clients.s3.put_object(Bucket=env.loc.bucket, Key=env.loc.root + name, Body=body)


def test_valid_backup_passes(backup: Env) -> None:
    progress: list[tuple[str, int, int]] = []
    report = verify_backup(backup.clients, backup.loc, on_object=lambda *a: progress.append(a))
    assert report == VerifyReport(
        uri=backup.loc.uri,
        users=EXPECTED["users"],
        groups=EXPECTED["groups"],
        memberships=EXPECTED["memberships"],
        objects=EXPECTED["parts"],
    )
    assert [p[1:] for p in progress] == [(i, 5) for i in range(1, 6)]
    assert {p[0] for p in progress} == {
        "config.bin",
        "users/0/part-00000.bin",
        "users/0/part-00001.bin",
        "users/1/part-00000.bin",
        "memberships/000/part-00000.bin",
    }


def test_one_changed_byte_is_a_hash_mismatch(backup: Env) -> None:
    name = "users/1/part-00000.bin"
    body = bytearray(_body(backup, name))
    body[len(body) // 2] ^= 0x01
    _put(backup, name, bytes(body))
    with pytest.raises(IntegrityError, match=r"hash mismatch in users/1/part-00000\.bin"):
        verify_backup(backup.clients, backup.loc)


def test_deleted_part(backup: Env) -> None:
    backup.clients.s3.delete_object(Bucket=backup.loc.bucket, Key=backup.loc.root + "users/0/part-00001.bin")
    with pytest.raises(IntegrityError, match=r"missing part users/0/part-00001\.bin"):
        verify_backup(backup.clients, backup.loc)


def test_part_swapped_with_another_part_of_the_backup(backup: Env) -> None:
    _put(backup, "users/0/part-00000.bin", _body(backup, "users/0/part-00001.bin"))
    with pytest.raises(IntegrityError):
        verify_backup(backup.clients, backup.loc)


def test_planted_object(backup: Env) -> None:
    _put(backup, "users/0/part-00002.bin", _body(backup, "users/0/part-00001.bin"))
    with pytest.raises(IntegrityError, match=r"not named in the manifest: users/0/part-00002\.bin"):
        verify_backup(backup.clients, backup.loc)


def test_tampered_manifest(backup: Env) -> None:
    key = backup.loc.manifest_key
    doc = json.loads(backup.clients.s3.get_object(Bucket=backup.loc.bucket, Key=key)["Body"].read())
    doc["counts"]["memberships"] += 1
    doc["objects"][-1]["records"] += 1
    backup.clients.s3.put_object(Bucket=backup.loc.bucket, Key=key, Body=json.dumps(doc).encode())
    with pytest.raises(TamperedError):
        verify_backup(backup.clients, backup.loc)


def test_no_manifest(env: Env) -> None:
    write_parts(env)
    with pytest.raises(BackupNotFound):
        verify_backup(env.clients, env.loc)


def test_duplicate_user_across_parts(env: Env) -> None:
    clients, loc, key_arn = env.clients, env.loc, env.key_arn
    objects = [
        put_sealed(clients, loc, key_arn, loc.config_key, [config(1)]),
        put_sealed(clients, loc, key_arn, loc.user_part_key("0", 0), users(3, 0)),
        put_sealed(clients, loc, key_arn, loc.user_part_key("1", 0), users(2, 2)),  # user-00002 again
    ]
    _seal_backup(env, objects, groups=1)
    with pytest.raises(IntegrityError, match="duplicate user across parts") as info:
        verify_backup(clients, loc)
    assert "user-0000" not in str(info.value)


def test_group_count_must_match_config(env: Env) -> None:
    clients, loc, key_arn = env.clients, env.loc, env.key_arn
    objects = [
        put_sealed(clients, loc, key_arn, loc.config_key, [config(3)]),
        put_sealed(clients, loc, key_arn, loc.user_part_key("0", 0), users(1)),
    ]
    _seal_backup(env, objects, groups=2)
    with pytest.raises(IntegrityError, match="groups"):
        verify_backup(clients, loc)
