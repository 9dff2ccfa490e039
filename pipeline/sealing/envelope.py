"""KMS envelope encryption of backup objects with AES-256-GCM.

Each object gets its own data key from KMS GenerateDataKey under an encryption context naming the pool,
the backup and the object. The same context, canonically serialised, is the GCM associated data, so a
sealed object only opens where it was written: moving or swapping it fails authentication. The caller
passes the context it EXPECTS, derived from where it read the object, and it is checked exactly.

Blob layout (big-endian):
``b"CBK1" | u16 len(encrypted key) | encrypted key | 12-byte nonce | ciphertext+tag``.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import botocore.exceptions
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pipeline.core.aws import error_code, sdk_errors
from pipeline.core.errors import KeyAccessDenied, TamperedError

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

MAGIC = b"CBK1"
# The alias the CDK app gives the backup key (infra.storage): where the CLI finds the deployment's key.
BACKUP_KEY_ALIAS = "alias/cognito-backuper"
APP = "cognito-backuper"
NONCE_BYTES = 12
TAG_BYTES = 16
_KEY_LEN = struct.Struct(">H")

# KMS refusing to use the key is an operator problem (policy, state), not tampering.
KEY_ACCESS_CODES = frozenset(
    {
        "AccessDeniedException",
        "NotFoundException",
        "DisabledException",
        "KMSInvalidStateException",
        "KeyUnavailableException",
        "InvalidKeyUsageException",
        "InvalidGrantTokenException",
    }
)
# The ciphertext does not belong to this context or to the expected key.
_TAMPER_CODES = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})


@dataclass(frozen=True)
class DataKey:
    plaintext: bytes
    encrypted: bytes


def encryption_context(pool_id: str, backup_id: str, object_name: str) -> dict[str, str]:
    return {"app": APP, "pool": pool_id, "backup": backup_id, "object": object_name}


def canonical_json(value: object) -> bytes:
    """The one serialisation used for associated data and MACs: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def generate_data_key(kms: KMSClient, key_id: str, context: Mapping[str, str]) -> DataKey:
    with _kms_errors("GenerateDataKey"):
        response = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=dict(context))
    return DataKey(plaintext=response["Plaintext"], encrypted=response["CiphertextBlob"])


def decrypt_data_key(
    kms: KMSClient, encrypted_key: bytes, context: Mapping[str, str], key_id: str | None = None
) -> bytes:
    with _kms_errors("Decrypt"):
        if key_id is None:
            response = kms.decrypt(CiphertextBlob=encrypted_key, EncryptionContext=dict(context))
        else:
            response = kms.decrypt(
                CiphertextBlob=encrypted_key, EncryptionContext=dict(context), KeyId=key_id
            )
    return response["Plaintext"]


def seal(kms: KMSClient, key_id: str, plaintext: bytes, context: Mapping[str, str]) -> bytes:
    data_key = generate_data_key(kms, key_id, context)
    if len(data_key.encrypted) > 0xFFFF:
        raise KeyAccessDenied("KMS returned an encrypted data key too large to store")
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(data_key.plaintext).encrypt(nonce, plaintext, canonical_json(dict(context)))
    encrypted_key = data_key.encrypted
    del data_key  # the plaintext key lives no longer than this call
    return MAGIC + _KEY_LEN.pack(len(encrypted_key)) + encrypted_key + nonce + ciphertext


def open_sealed(kms: KMSClient, blob: bytes, context: Mapping[str, str], key_id: str | None = None) -> bytes:
    encrypted_key, nonce, ciphertext = _parse(blob)
    key = decrypt_data_key(kms, encrypted_key, context, key_id)
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, canonical_json(dict(context)))
    except InvalidTag as exc:
        raise TamperedError(f"authentication failed for object {context.get('object', '?')}") from exc
    except ValueError as exc:  # a data key of the wrong size: not one this tool asked for
        raise TamperedError(f"unexpected data key for object {context.get('object', '?')}") from exc
    finally:
        del key


def _parse(blob: bytes) -> tuple[bytes, bytes, bytes]:
    if blob[: len(MAGIC)] != MAGIC:
        raise TamperedError("not a sealed object (bad magic)")
    header = len(MAGIC) + _KEY_LEN.size
    if len(blob) < header:
        raise TamperedError("sealed object is truncated")
    (key_len,) = _KEY_LEN.unpack_from(blob, len(MAGIC))
    nonce_at = header + key_len
    body_at = nonce_at + NONCE_BYTES
    if key_len == 0 or len(blob) < body_at + TAG_BYTES:
        raise TamperedError("sealed object is truncated")
    return blob[header:nonce_at], blob[nonce_at:body_at], blob[body_at:]


@contextmanager
def _kms_errors(operation: str) -> Iterator[None]:
    # Inside sdk_errors so credentials/endpoint failures still get their generic translation.
    with sdk_errors():
        try:
            yield
        except botocore.exceptions.ClientError as exc:
            code = error_code(exc)
            if code in _TAMPER_CODES:
                raise TamperedError(f"KMS {operation}: wrong encryption context or key") from exc
            if code in KEY_ACCESS_CODES:
                raise KeyAccessDenied(
                    f"KMS {operation} refused ({code}): check the key's state and policy"
                ) from exc
            raise
