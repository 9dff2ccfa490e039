import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.core.errors import AccessDenied, BucketNotFound, IntegrityError, KeyAccessDenied, TamperedError
from pipeline.core.layout import BackupLocation
from pipeline.sealing.store import get_sealed, head_stored, put_sealed
from tests.helpers.backup_parts import MARKER, Env, mocked_env, users


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    yield from mocked_env(monkeypatch)


def test_put_carries_sse_kms_and_checksum(env: Env) -> None:
    clients, loc, key_arn = env.clients, env.loc, env.key_arn
    sent: list[dict[str, str]] = []

    def capture(request: Any, **_: Any) -> None:
        sent.append(dict(request.headers.items()))

    clients.s3.meta.events.register("before-send.s3.PutObject", capture)
    key = loc.user_part_key("0a", 0)
    stored = put_sealed(clients, loc, key_arn, key, users(3))

    head = clients.s3.head_object(Bucket=loc.bucket, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key_arn
    assert head["Metadata"] == {"records": "3", "sha256": stored.sha256}
    assert head["ContentType"] == "application/octet-stream"

    body = clients.s3.get_object(Bucket=loc.bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == stored.sha256
    assert stored.size == len(body)
    assert (stored.key, stored.name, stored.records) == (key, "users/0a/part-00000.bin", 3)

    assert len(sent) == 1
    headers = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in sent[0].items()}
    assert headers["x-amz-server-side-encryption"] == "aws:kms"
    assert headers["x-amz-server-side-encryption-aws-kms-key-id"] == key_arn
    assert headers["x-amz-checksum-sha256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()


def test_body_holds_no_plaintext(env: Env) -> None:
    clients, loc, key_arn = env.clients, env.loc, env.key_arn
    key = loc.user_part_key("0a", 0)
    put_sealed(clients, loc, key_arn, key, users(50))
    body = clients.s3.get_object(Bucket=loc.bucket, Key=key)["Body"].read()
    assert MARKER.encode() not in body
    assert b"user-00001" not in body
    assert body.startswith(b"CBK1")


def test_round_trip(env: Env) -> None:
    clients, loc, key_arn = env.clients, env.loc, env.key_arn
    key = loc.membership_part_key(1, 2)
    records = [{"group": "admins", "username": "user-00001"}]
    stored = put_sealed(clients, loc, key_arn, key, records)
    assert get_sealed(clients, loc, key) == records
    assert get_sealed(clients, loc, key, expected_sha256=stored.sha256, kms_key_arn=key_arn) == records


def test_rewrite_same_key_is_idempotent(env: Env) -> None:
    clients, loc, key_arn = env.clients, env.loc, env.key_arn
    key = loc.user_part_key("", 0)
    put_sealed(clients, loc, key_arn, key, users(2))
    put_sealed(clients, loc, key_arn, key, users(2))
    assert get_sealed(clients, loc, key) == users(2)
    listed = clients.s3.list_objects_v2(Bucket=loc.bucket, Prefix=loc.root)["Contents"]
    assert [o["Key"] for o in listed] == [key]


def test_moved_object_fails_to_open(env: Env) -> None:
    clients, loc, key_arn = env.clients, env.loc, env.key_arn
    source, target = loc.user_part_key("0a", 0), loc.user_part_key("0a", 1)
    put_sealed(clients, loc, key_arn, source, users(2))
    clients.s3.copy_object(Bucket=loc.bucket, Key=target, CopySource={"Bucket": loc.bucket, "Key": source})
    with pytest.raises(TamperedError):
        get_sealed(clients, loc, target)


def test_object_moved_to_another_backup_fails(env: Env) -> None:
    clients, loc, key_arn = env.clients, env.loc, env.key_arn
    other = BackupLocation(loc.bucket, loc.prefix, loc.pool_id, "20261128T000000Z-ffffff")
    key = loc.user_part_key("0a", 0)
    put_sealed(clients, loc, key_arn, key, users(2))
    moved = other.user_part_key("0a", 0)
    clients.s3.copy_object(Bucket=loc.bucket, Key=moved, CopySource={"Bucket": loc.bucket, "Key": key})
    with pytest.raises(TamperedError):
        get_sealed(clients, other, moved)


def test_hash_mismatch_names_the_object(env: Env) -> None:
    clients, loc, key_arn = env.clients, env.loc, env.key_arn
    key = loc.user_part_key("0a", 0)
    put_sealed(clients, loc, key_arn, key, users(2))
    with pytest.raises(IntegrityError, match=r"hash mismatch in users/0a/part-00000\.bin") as info:
        get_sealed(clients, loc, key, expected_sha256="0" * 64)
    assert MARKER not in str(info.value)


def test_missing_object(env: Env) -> None:
    clients, loc = env.clients, env.loc
    key = loc.user_part_key("0a", 7)
    with pytest.raises(IntegrityError, match=r"missing part users/0a/part-00007\.bin"):
        get_sealed(clients, loc, key)
    with pytest.raises(IntegrityError, match=r"missing part users/0a/part-00007\.bin"):
        head_stored(clients, loc, key)


def test_head_stored_matches_put(env: Env) -> None:
    clients, loc, key_arn = env.clients, env.loc, env.key_arn
    stored = put_sealed(clients, loc, key_arn, loc.config_key, [{"groups": []}])
    assert head_stored(clients, loc, loc.config_key) == stored


def test_head_stored_rejects_foreign_object(env: Env) -> None:
    clients, loc = env.clients, env.loc
    key = loc.user_part_key("0a", 0)
    clients.s3.put_object(Bucket=loc.bucket, Key=key, Body=b"not ours")
    with pytest.raises(IntegrityError, match="metadata"):
        head_stored(clients, loc, key)


def test_missing_bucket(env: Env) -> None:
    clients, key_arn = env.clients, env.key_arn
    nowhere = BackupLocation("cb-no-such-bucket", "", "us-east-1_AbC123", "20261127T202200Z-a1b2c3")
    with pytest.raises(BucketNotFound):
        put_sealed(clients, nowhere, key_arn, nowhere.config_key, [{"groups": []}])
    with pytest.raises(BucketNotFound):
        get_sealed(clients, nowhere, nowhere.config_key)
    with pytest.raises(BucketNotFound):
        head_stored(clients, nowhere, nowhere.config_key)


def test_unknown_kms_key(env: Env) -> None:
    clients, loc = env.clients, env.loc
    missing = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    with pytest.raises(KeyAccessDenied):
        put_sealed(clients, loc, missing, loc.config_key, [{"groups": []}])


def test_key_outside_backup_is_refused(env: Env) -> None:
    clients, loc, key_arn = env.clients, env.loc, env.key_arn
    from pipeline.core.errors import InvalidRequest

    with pytest.raises(InvalidRequest):
        put_sealed(clients, loc, key_arn, "elsewhere/part.bin", [])


def test_part_sealed_under_another_key_is_refused_when_pinned(env: Env) -> None:
    clients, loc, key_arn = env.clients, env.loc, env.key_arn
    other_key = clients.kms.create_key()["KeyMetadata"]["Arn"]
    key = loc.user_part_key("0a", 0)
    put_sealed(clients, loc, other_key, key, users(2))
    assert get_sealed(clients, loc, key) == users(2)  # unpinned, KMS picks the key from the blob
    # Real KMS: IncorrectKeyException (TamperedError); moto: AccessDeniedException (KeyAccessDenied).
    with pytest.raises((TamperedError, KeyAccessDenied)):
        get_sealed(clients, loc, key, kms_key_arn=key_arn)


def test_bucket_policy_denial_is_access_denied(env: Env) -> None:
    clients, loc, key_arn = env.clients, env.loc, env.key_arn
    deny_all = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": f"arn:aws:s3:::{loc.bucket}/*"}
        ],
    }
    clients.s3.put_bucket_policy(Bucket=loc.bucket, Policy=json.dumps(deny_all))
    with pytest.raises(AccessDenied):
        put_sealed(clients, loc, key_arn, loc.config_key, [{"groups": []}])
