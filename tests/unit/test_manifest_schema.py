"""The manifest's JSON Schema and the checks the schema cannot express (no AWS needed)."""

import copy
from typing import Any

import pytest

from pipeline.core.errors import InvalidRequest, ManifestInvalid
from pipeline.core.layout import BackupLocation
from pipeline.sealing.manifest import build_manifest, check_consistency, kind_of, shard_of, validate
from pipeline.sealing.store import StoredObject

LOC = BackupLocation("cb-bucket", "backups", "eu-west-1_AbC123", "20261127T202200Z-a1b2c3")
KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _obj(name: str, records: int) -> StoredObject:
    return StoredObject(key=LOC.root + name, name=name, sha256="ab" * 32, size=100 + records, records=records)


OBJECTS = [
    _obj("users/0/part-00000.bin", 10),
    _obj("memberships/000/part-00000.bin", 4),
    _obj("config.bin", 1),
    _obj("users/0/part-00001.bin", 5),
    _obj("users/f/part-00000.bin", 7),
]


def _body() -> dict[str, Any]:
    return build_manifest(
        LOC,
        region="eu-west-1",
        kms_key_arn=KEY,
        started_at="2026-11-27T20:22:00+00:00",
        shards=["0", "f"],
        objects=OBJECTS,
        groups=3,
    )


def _full() -> dict[str, Any]:
    doc = _body()
    doc["authentication"] = {
        "algorithm": "HMAC_SHA_256",
        "macKeyId": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "mac": "A" * 43 + "=",
    }
    return doc


def test_build_derives_kinds_shards_and_counts() -> None:
    doc = _body()
    assert doc["formatVersion"] == 2
    assert doc["tool"].startswith("cognito-backuper/")
    assert (doc["poolId"], doc["backupId"], doc["region"]) == (LOC.pool_id, LOC.backup_id, "eu-west-1")
    assert doc["counts"] == {"users": 22, "groups": 3, "memberships": 4, "parts": 5}
    assert [(o["name"], o["kind"], o.get("shard")) for o in doc["objects"]] == [
        ("config.bin", "config", None),
        ("users/0/part-00000.bin", "users", "0"),
        ("users/0/part-00001.bin", "users", "0"),
        ("users/f/part-00000.bin", "users", "f"),
        ("memberships/000/part-00000.bin", "memberships", None),
    ]
    assert "authentication" not in doc
    validate(doc, authenticated=False)
    check_consistency(doc)


def test_unsharded_part_maps_to_empty_shard() -> None:
    name = LOC.relative(LOC.user_part_key("", 0))
    assert (kind_of(name), shard_of(name)) == ("users", "")
    doc = build_manifest(
        LOC,
        region="eu-west-1",
        kms_key_arn=KEY,
        started_at="2026-11-27T20:22:00Z",
        shards=[""],
        objects=[_obj("config.bin", 1), _obj(name, 3)],
        groups=0,
    )
    assert doc["objects"][1]["shard"] == ""
    validate(doc, authenticated=False)
    check_consistency(doc)


def test_unknown_object_name_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        kind_of("users/part-00000.bin")
    with pytest.raises(InvalidRequest):
        kind_of("notes.txt")


def test_valid_full_manifest_passes() -> None:
    validate(_full())


def test_authentication_is_required_on_read() -> None:
    with pytest.raises(ManifestInvalid, match="missing field authentication"):
        validate(_body())


def test_unauthenticated_body_still_requires_other_fields() -> None:
    doc = _body()
    del doc["poolId"]
    with pytest.raises(ManifestInvalid, match="missing field poolId"):
        validate(doc, authenticated=False)


def _mutate(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(_full())
    target: Any = doc
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is _DELETE:
        del target[int(last) if last.isdigit() else last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("counts.users", _DELETE, "missing field counts.users"),
        ("backupId", _DELETE, "missing field backupId"),
        ("objects.1.sha256", _DELETE, "missing field objects.1.sha256"),
        ("counts.users", "22", "counts.users"),
        ("counts.parts", -1, "counts.parts"),
        ("formatVersion", 1, "formatVersion"),
        ("objects.1.sha256", "AB" * 32, "objects.1.sha256"),
        ("objects.1.sha256", "ab" * 31, "objects.1.sha256"),
        ("objects.1.records", 1.5, "objects.1.records"),
        ("objects.0.name", "users/0/part-00000.bin", "objects.0.name"),
        ("objects.1.name", "users/0/../../x.bin", "objects.1.name"),
        ("objects.1.kind", "secrets", "objects.1.kind"),
        ("shards", [], "shards"),
        ("shards", ["0", "0"], "shards"),
        ("shards", ["zz"], "shards.0"),
        ("startedAt", "yesterday", "startedAt"),
        ("poolId", "not a pool", "poolId"),
        ("kmsKeyArn", "my-key", "kmsKeyArn"),
        ("authentication.algorithm", "MD5", "authentication.algorithm"),
        ("authentication.mac", "short", "authentication.mac"),
        ("extra", "field", "unexpected field"),
        ("objects.1.extra", 1, "unexpected field in objects.1"),
    ],
)
def test_schema_rejects(path: str, value: Any, message: str) -> None:
    with pytest.raises(ManifestInvalid) as info:
        validate(_mutate(path, value))
    assert message in str(info.value)


def test_error_never_echoes_values() -> None:
    with pytest.raises(ManifestInvalid) as info:
        validate(_mutate("region", "secret-value@example.com"))
    assert "secret-value" not in str(info.value)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("counts.users", 21),
        ("counts.memberships", 5),
        ("counts.parts", 4),
        ("objects.2.shard", "f"),
        ("objects.2.name", "users/0/part-00000.bin"),
    ],
)
def test_consistency_rejects(path: str, value: Any) -> None:
    doc = _mutate(path, value)
    validate(doc)
    with pytest.raises(ManifestInvalid):
        check_consistency(doc)


def test_consistency_rejects_unplanned_shard() -> None:
    doc = _full()
    doc["shards"] = ["0"]
    with pytest.raises(ManifestInvalid, match="shard"):
        check_consistency(doc)
