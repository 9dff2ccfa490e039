"""The manifest's authentication: a KMS HMAC key that only WriteManifest may use to generate a tag.

A KMS data key would not do: anyone who may call ``kms:GenerateDataKey`` on the backup key could mint one and
authenticate a manifest of their own. An HMAC KMS key (KeySpec HMAC_256, KeyUsage GENERATE_VERIFY_MAC) never
leaves KMS; IAM grants ``kms:GenerateMac`` to WriteManifest's role alone and ``kms:VerifyMac`` to the readers.

The verifier never uses the key a manifest names: it asks KMS to verify the tag with the deployment's own MAC
key (``COGNITO_BACKUPER_MAC_KEY``, default the alias the CDK app creates), so a manifest tagged with any other
key fails. KMS GenerateMac takes at most 4,096 bytes, so the tag covers a SHA-256 of the canonical manifest,
behind a label that keeps it from standing for anything else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

import botocore.exceptions

from pipeline.core.aws import Clients, error_code, sdk_errors
from pipeline.core.errors import KeyAccessDenied, ManifestInvalid, TamperedError
from pipeline.sealing.envelope import KEY_ACCESS_CODES, canonical_json

MAC_KEY_ENV = "COGNITO_BACKUPER_MAC_KEY"
DEFAULT_MAC_KEY = "alias/cognito-backuper-manifest"
ALGORITHM: Final = "HMAC_SHA_256"  # KMS's MacAlgorithm name, stored as is
_LABEL = b"cognito-backuper manifest v2\n"


def configured_mac_key() -> str:
    """The deployment's MAC key: what the CDK app sets on the functions, or the CLI's ``--mac-key``."""
    return os.environ.get(MAC_KEY_ENV) or DEFAULT_MAC_KEY


def message(body: Mapping[str, Any]) -> bytes:
    return _LABEL + hashlib.sha256(canonical_json(dict(body))).digest()


def generate(clients: Clients, body: Mapping[str, Any]) -> dict[str, str]:
    """The ``authentication`` field for ``body``: the tag and the ARN of the key that made it."""
    with _mac_errors("GenerateMac"):
        response = clients.kms.generate_mac(
            KeyId=configured_mac_key(), Message=message(body), MacAlgorithm=ALGORITHM
        )
    return {
        "algorithm": ALGORITHM,
        # Informational (KMS answers the key ARN): verification always uses the deployment's key instead.
        "macKeyId": response["KeyId"],
        "mac": base64.b64encode(response["Mac"]).decode("ascii"),
    }


def verify(clients: Clients, body: Mapping[str, Any], auth: Mapping[str, Any], where: str) -> None:
    """TamperedError unless the deployment's MAC key verifies ``auth`` over ``body``."""
    try:
        mac = base64.b64decode(auth["mac"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ManifestInvalid(f"invalid manifest at {where}: authentication is not base64") from exc
    refused = TamperedError(
        f"manifest at {where} failed authentication with the deployment's manifest key: it was changed after "
        "it was written, or it was not written by this deployment's WriteManifest"
    )
    with _mac_errors("VerifyMac"):
        try:
            response = clients.kms.verify_mac(
                KeyId=configured_mac_key(), Message=message(body), Mac=mac, MacAlgorithm=ALGORITHM
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "KMSInvalidMacException":
                raise refused from exc
            raise
    if not response.get("MacValid"):
        raise refused


@contextmanager
def _mac_errors(operation: str) -> Iterator[None]:
    """KMS refusing the MAC key is an operator problem (policy, state, missing key), not tampering."""
    with sdk_errors():
        try:
            yield
        except botocore.exceptions.ClientError as exc:
            code = error_code(exc)
            if code in KEY_ACCESS_CODES:
                raise KeyAccessDenied(
                    f"KMS {operation} refused ({code}) with the manifest key {configured_mac_key()}: "
                    f"check that key, its policy, or {MAC_KEY_ENV} / --mac-key"
                ) from exc
            raise
