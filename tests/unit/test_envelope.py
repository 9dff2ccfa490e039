"""Envelope encryption against moto's KMS (in-process, no network)."""

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from mypy_boto3_kms import KMSClient

from pipeline.core.errors import KeyAccessDenied, TamperedError
from pipeline.sealing.envelope import MAGIC, encryption_context, open_sealed, seal

PLAINTEXT = b"user record: marker-3f9a alice@example.com" * 10
CONTEXT = encryption_context("us-east-1_AbC123", "20261127T202200Z-a1b2c3", "users/0a/part-00000.bin")


@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[KMSClient]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield boto3.client("kms")


@pytest.fixture
def key_arn(kms: KMSClient) -> str:
    return kms.create_key()["KeyMetadata"]["Arn"]


def _key_len(blob: bytes) -> int:
    return int.from_bytes(blob[4:6], "big")


def test_context_shape() -> None:
    assert CONTEXT == {
        "app": "cognito-backuper",
        "pool": "us-east-1_AbC123",
        "backup": "20261127T202200Z-a1b2c3",
        "object": "users/0a/part-00000.bin",
    }


def test_round_trip(kms: KMSClient, key_arn: str) -> None:
    blob = seal(kms, key_arn, PLAINTEXT, CONTEXT)
    assert blob.startswith(MAGIC)
    assert b"marker-3f9a" not in blob
    assert open_sealed(kms, blob, dict(CONTEXT)) == PLAINTEXT
    assert open_sealed(kms, blob, CONTEXT, key_id=key_arn) == PLAINTEXT


def test_each_seal_uses_fresh_key_and_nonce(kms: KMSClient, key_arn: str) -> None:
    assert seal(kms, key_arn, PLAINTEXT, CONTEXT) != seal(kms, key_arn, PLAINTEXT, CONTEXT)


def test_data_key_plaintext_is_not_in_blob(
    kms: KMSClient, key_arn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bytes] = []
    real: Callable[..., Any] = kms.generate_data_key

    def spy(**kwargs: Any) -> Any:
        response = real(**kwargs)
        seen.append(response["Plaintext"])
        return response

    monkeypatch.setattr(kms, "generate_data_key", spy)
    blob = seal(kms, key_arn, PLAINTEXT, CONTEXT)
    assert len(seen) == 1
    assert len(seen[0]) == 32
    assert seen[0] not in blob


@pytest.mark.parametrize("field", ["pool", "backup", "object", "app"])
def test_wrong_context_is_tampering(kms: KMSClient, key_arn: str, field: str) -> None:
    blob = seal(kms, key_arn, PLAINTEXT, CONTEXT)
    wrong = {**CONTEXT, field: CONTEXT[field] + "x"}
    with pytest.raises(TamperedError):
        open_sealed(kms, blob, wrong)


def test_extra_context_entry_is_tampering(kms: KMSClient, key_arn: str) -> None:
    blob = seal(kms, key_arn, PLAINTEXT, CONTEXT)
    with pytest.raises(TamperedError):
        open_sealed(kms, blob, {**CONTEXT, "extra": "1"})


def _flip(blob: bytes, index: int) -> bytes:
    changed = bytearray(blob)
    changed[index] ^= 0x01
    return bytes(changed)


@pytest.mark.parametrize("where", ["key-blob", "nonce", "ciphertext", "tag", "magic", "length"])
def test_flipped_byte_is_tampering(kms: KMSClient, key_arn: str, where: str) -> None:
    blob = seal(kms, key_arn, PLAINTEXT, CONTEXT)
    key_len = _key_len(blob)
    index = {
        "magic": 0,
        "length": 5,
        "key-blob": 6 + key_len // 2,
        "nonce": 6 + key_len + 3,
        "ciphertext": 6 + key_len + 12 + 5,
        "tag": len(blob) - 1,
    }[where]
    with pytest.raises(TamperedError):
        open_sealed(kms, _flip(blob, index), CONTEXT)


@pytest.mark.parametrize("keep", [0, 3, 5, 6, 40, -17, -1])
def test_truncated_blob_is_tampering(kms: KMSClient, key_arn: str, keep: int) -> None:
    blob = seal(kms, key_arn, PLAINTEXT, CONTEXT)
    with pytest.raises(TamperedError):
        open_sealed(kms, blob[:keep], CONTEXT)


def test_wrong_key_id_is_refused(kms: KMSClient, key_arn: str) -> None:
    other = kms.create_key()["KeyMetadata"]["Arn"]
    blob = seal(kms, key_arn, PLAINTEXT, CONTEXT)
    # Real KMS answers IncorrectKeyException (-> TamperedError); moto answers AccessDeniedException
    # (-> KeyAccessDenied). Either way the object does not open under a key it was not sealed with.
    with pytest.raises((TamperedError, KeyAccessDenied)):
        open_sealed(kms, blob, CONTEXT, key_id=other)


def test_missing_key_is_key_access_denied(kms: KMSClient) -> None:
    missing = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    with pytest.raises(KeyAccessDenied):
        seal(kms, missing, PLAINTEXT, CONTEXT)


def test_error_messages_carry_no_plaintext(kms: KMSClient, key_arn: str) -> None:
    blob = seal(kms, key_arn, PLAINTEXT, CONTEXT)
    with pytest.raises(TamperedError) as info:
        open_sealed(kms, _flip(blob, len(blob) - 1), CONTEXT)
    assert "marker-3f9a" not in str(info.value)
    assert "users/0a/part-00000.bin" in str(info.value)
