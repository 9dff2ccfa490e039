import json
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.core.errors import (
    BackupExists,
    BackupNotFound,
    BucketNotFound,
    InvalidRequest,
    ManifestInvalid,
    TamperedError,
)
from pipeline.core.layout import BackupLocation
from pipeline.sealing.manifest import build_manifest, list_backups, read_manifest, write_manifest
from tests.helpers.backup_parts import EXPECTED, MARKER, SHARDS, STARTED_AT, Env, mocked_env, write_parts


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    yield from mocked_env(monkeypatch)


def _manifest(env: Env, loc: BackupLocation | None = None) -> dict[str, Any]:
    target = env if loc is None else Env(env.clients, env.key_arn, loc)
    return build_manifest(
        target.loc,
        region=env.clients.region,
        kms_key_arn=env.key_arn,
        started_at=STARTED_AT,
        shards=SHARDS,
        objects=write_parts(target),
        groups=2,
    )


def _stored(env: Env) -> dict[str, Any]:
    body = env.clients.s3.get_object(Bucket=env.loc.bucket, Key=env.loc.manifest_key)["Body"].read()
    return dict(json.loads(body))


def _overwrite(env: Env, document: Any) -> None:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    env.clients.s3.put_object(Bucket=env.loc.bucket, Key=env.loc.manifest_key, Body=body)


def test_round_trip(env: Env) -> None:
    doc = _manifest(env)
    write_manifest(env.clients, env.loc, doc)
    read = read_manifest(env.clients, env.loc)
    assert {k: v for k, v in read.items() if k != "authentication"} == doc
    assert read["counts"] == EXPECTED
    assert read["authentication"]["algorithm"] == "HMAC_SHA_256"
    assert read_manifest(env.clients, env.loc, expected_key_arn=env.key_arn) == read


def test_stored_with_sse_kms_and_without_user_data(env: Env) -> None:
    write_manifest(env.clients, env.loc, _manifest(env))
    head = env.clients.s3.head_object(Bucket=env.loc.bucket, Key=env.loc.manifest_key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == env.key_arn
    raw = env.clients.s3.get_object(Bucket=env.loc.bucket, Key=env.loc.manifest_key)["Body"].read()
    assert MARKER.encode() not in raw
    assert b"user-0000" not in raw


def test_second_write_is_refused(env: Env) -> None:
    doc = _manifest(env)
    write_manifest(env.clients, env.loc, doc)
    first = _stored(env)
    with pytest.raises(BackupExists):
        write_manifest(env.clients, env.loc, {**doc, "counts": {**doc["counts"], "groups": 3}})
    assert _stored(env) == first


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["counts"].update(users=d["counts"]["users"] + 1),
        lambda d: d["counts"].update(groups=d["counts"]["groups"] + 1),
        lambda d: d["objects"][1].update(sha256="0" * 64),
        lambda d: d.update(completedAt="2030-01-01T00:00:00+00:00"),
        lambda d: d["authentication"].update(mac="A" * 43 + "="),
    ],
    ids=["users-count", "groups-count", "object-hash", "time", "mac"],
)
def test_tampered_manifest_is_detected(env: Env, change: Any) -> None:
    write_manifest(env.clients, env.loc, _manifest(env))
    doc = _stored(env)
    change(doc)
    _overwrite(env, doc)
    with pytest.raises(TamperedError):
        read_manifest(env.clients, env.loc)


def test_manifest_copied_to_another_backup_is_detected(env: Env) -> None:
    write_manifest(env.clients, env.loc, _manifest(env))
    other = BackupLocation(env.loc.bucket, env.loc.prefix, env.loc.pool_id, "20261128T000000Z-ffffff")
    doc = _stored(env)
    doc["backupId"] = other.backup_id  # a consistent copy: names the new place, keeps the old MAC
    env.clients.s3.put_object(Bucket=other.bucket, Key=other.manifest_key, Body=json.dumps(doc).encode())
    with pytest.raises(TamperedError):
        read_manifest(env.clients, other)
    doc["backupId"] = env.loc.backup_id  # an unchanged copy: names the old place
    env.clients.s3.put_object(Bucket=other.bucket, Key=other.manifest_key, Body=json.dumps(doc).encode())
    with pytest.raises(TamperedError):
        read_manifest(env.clients, other)


def test_unexpected_key_is_detected(env: Env) -> None:
    write_manifest(env.clients, env.loc, _manifest(env))
    other = env.clients.kms.create_key()["KeyMetadata"]["Arn"]
    with pytest.raises(TamperedError):
        read_manifest(env.clients, env.loc, expected_key_arn=other)


def test_invalid_json(env: Env) -> None:
    _overwrite(env, b"{not json")
    with pytest.raises(ManifestInvalid, match="not JSON"):
        read_manifest(env.clients, env.loc)


def test_schema_failure_on_read(env: Env) -> None:
    write_manifest(env.clients, env.loc, _manifest(env))
    doc = _stored(env)
    del doc["counts"]["memberships"]
    _overwrite(env, doc)
    with pytest.raises(ManifestInvalid, match=r"counts\.memberships"):
        read_manifest(env.clients, env.loc)


def test_missing_manifest(env: Env) -> None:
    with pytest.raises(BackupNotFound):
        read_manifest(env.clients, env.loc)


def test_missing_bucket(env: Env) -> None:
    nowhere = BackupLocation("cb-no-such-bucket", "", env.loc.pool_id, env.loc.backup_id)
    with pytest.raises(BucketNotFound):
        read_manifest(env.clients, nowhere)
    with pytest.raises(BucketNotFound):
        list_backups(env.clients, "cb-no-such-bucket", "backups")


def test_write_refuses_invalid_or_misplaced_manifest(env: Env) -> None:
    doc = _manifest(env)
    with pytest.raises(ManifestInvalid):
        write_manifest(env.clients, env.loc, {**doc, "counts": {**doc["counts"], "users": 1}})
    other = BackupLocation(env.loc.bucket, env.loc.prefix, env.loc.pool_id, "20261128T000000Z-ffffff")
    with pytest.raises(InvalidRequest):
        write_manifest(env.clients, other, doc)
    with pytest.raises(BackupNotFound):
        read_manifest(env.clients, env.loc)


def test_list_backups(env: Env) -> None:
    first = env.loc
    second = BackupLocation(first.bucket, first.prefix, first.pool_id, "20261128T000000Z-ffffff")
    third = BackupLocation(first.bucket, first.prefix, "us-east-1_Zzz999", "20261101T000000Z-000000")
    broken = BackupLocation(first.bucket, first.prefix, first.pool_id, "20261129T000000Z-bbbbbb")
    for loc in (first, second, third):
        write_manifest(env.clients, loc, _manifest(env, loc))
    env.clients.s3.put_object(Bucket=first.bucket, Key=broken.manifest_key, Body=b"{}")
    env.clients.s3.put_object(Bucket=first.bucket, Key="backups/readme.txt", Body=b"x")
    env.clients.s3.put_object(
        Bucket=first.bucket, Key="elsewhere/us-east-1_AbC123/x/manifest.json", Body=b"x"
    )

    listed = list_backups(env.clients, first.bucket, "backups")
    assert [(e["poolId"], e["backupId"]) for e in listed] == [
        (first.pool_id, first.backup_id),
        (first.pool_id, second.backup_id),
        (first.pool_id, broken.backup_id),
        (third.pool_id, third.backup_id),
    ]
    assert listed[0] == {
        "uri": first.uri,
        "poolId": first.pool_id,
        "backupId": first.backup_id,
        "completedAt": listed[0]["completedAt"],
        **EXPECTED,
    }
    assert listed[0]["completedAt"].startswith("20")
    assert "invalid manifest" in listed[2]["error"]
    assert "users" not in listed[2]
    assert all("error" not in e for i, e in enumerate(listed) if i != 2)

    one_pool = list_backups(env.clients, first.bucket, "/backups/", pool_id=third.pool_id)
    assert [e["uri"] for e in one_pool] == [third.uri]
    assert list_backups(env.clients, first.bucket, "nothing-here") == []
