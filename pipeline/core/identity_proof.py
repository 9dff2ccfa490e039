"""Who a person is, proven to the pipeline: a signed STS GetCallerIdentity request the pipeline executes itself.

The method of HashiCorp Vault's AWS IAM auth: the person's CLI signs (SigV4, its own credentials) a
``POST Action=GetCallerIdentity&Version=2011-06-15`` to the STS endpoint and hands over the signed request, not
its credentials. A pipeline task sends that exact request to STS; STS checks the signature and answers with the
signer's ARN. Nobody can produce a proof for another principal without that principal's secret key.

What binds a proof to one use:
- a signed ``X-Cognito-Backuper-Purpose`` header (``restore:<execution name>``, ``approve:<request id>``,
  ``reject:<request id>``): STS ignores it but the signature covers it, so a proof made for one purpose fails for
  another (Vault's ``X-Vault-AWS-IAM-Server-ID`` does the same);
- freshness: its ``X-Amz-Date`` is at most :data:`MAX_AGE_S` old (STS itself refuses signatures older than
  15 minutes);
- the endpoint: the verifier only ever calls its own STS endpoint (its Region and partition, or the endpoint the
  deployment configures), and refuses a proof signed for any other host, Region or service. It never follows a
  URL from the proof.

A proof carries the signer's session token (as Vault's does); without the secret key it signs nothing, and the
signed request can only ever be GetCallerIdentity. It travels in execution input or a task token's output, and is
never written to S3 or logs.

On the local engine, moto's STS answers the executed request for the access key named in the signed
``Authorization`` header (an IAM user's key maps to that user, an assumed role's key to its session); moto does
not check signatures, so forgery and replay are refused by the checks here (tests/security). moto maps only
header-signed requests, not query-string presigned URLs (``X-Amz-Credential``): header signing is also what Vault
uses, so that is the form here, with no compatibility shim.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.exceptions
from botocore import UNSIGNED
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config

from pipeline.core.aws import Clients, error_code
from pipeline.core.errors import EndpointUnreachable, IdentityNotProven

PURPOSE_HEADER = "X-Cognito-Backuper-Purpose"
BODY = "Action=GetCallerIdentity&Version=2011-06-15"
CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
MAX_AGE_S = (
    300  # a proof is made just before it is sent; five minutes covers a slow Lambda start and clock skew
)
MAX_SKEW_S = 60  # a proof from the future: clocks differ by that much at most
# The headers a proof may carry: exactly what SigV4 signs here, nothing a verifier would have to interpret.
_PROOF_HEADERS = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token", PURPOSE_HEADER, "Content-Type")
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[A-Za-z0-9]{1,128})/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9-]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<sig>[0-9a-f]{64})$",
    re.ASCII,
)
_PURPOSE = re.compile(r"^(restore|approve|reject):[A-Za-z0-9_.:-]{1,128}$", re.ASCII)
_VERIFY_CONFIG = Config(
    signature_version=UNSIGNED,  # the proof's own signature is sent, never the verifier's
    connect_timeout=5,
    read_timeout=10,
    retries={"max_attempts": 2, "mode": "standard"},
)


def purpose(kind: str, subject: str) -> str:
    value = f"{kind}:{subject}"
    if not _PURPOSE.match(value):
        raise IdentityNotProven(f"not a proof purpose: {kind!r}")
    return value


def make_proof(session: boto3.Session, clients: Clients, for_purpose: str) -> dict[str, Any]:
    """Sign a GetCallerIdentity request for ``for_purpose`` with the caller's own credentials."""
    credentials = session.get_credentials()
    if credentials is None:
        raise IdentityNotProven("no AWS credentials to prove who you are")
    endpoint = sts_endpoint(clients)
    request = AWSRequest(
        method="POST",
        url=endpoint,
        data=BODY,
        headers={"Content-Type": CONTENT_TYPE, PURPOSE_HEADER: for_purpose},
    )
    SigV4Auth(credentials.get_frozen_credentials(), "sts", clients.region).add_auth(request)
    headers = {name: request.headers[name] for name in _PROOF_HEADERS if name in request.headers}
    return {"method": "POST", "url": endpoint, "body": BODY, "headers": headers}


def sts_endpoint(clients: Clients) -> str:
    """The STS endpoint the standard configuration resolves for this Region (regional, or AWS_ENDPOINT_URL*)."""
    return str(clients.sts.meta.endpoint_url).rstrip("/") + "/"


def verify_proof(
    proof: Any,
    expected_purpose: str,
    *,
    region: str,
    endpoint: str | None = None,
    now: dt.datetime | None = None,
) -> str:
    """Execute a proof against this deployment's STS endpoint and return the ARN STS names; refuse anything else."""
    sts = boto3.client("sts", region_name=region, config=_VERIFY_CONFIG, endpoint_url=endpoint)
    own = str(sts.meta.endpoint_url).rstrip("/") + "/"
    headers = _checked_headers(proof, expected_purpose, own, region, now or dt.datetime.now(dt.UTC))

    def replay(request: Any, **_: Any) -> None:
        for name, value in headers.items():
            request.headers[name] = value

    sts.meta.events.register("before-sign.sts.GetCallerIdentity", replay)
    try:
        arn = str(sts.get_caller_identity()["Arn"])
    except botocore.exceptions.EndpointConnectionError as exc:
        raise EndpointUnreachable(f"cannot reach STS at {own} to check an identity proof") from exc
    except botocore.exceptions.ClientError as exc:
        raise IdentityNotProven(f"STS refused the identity proof ({error_code(exc)})") from exc
    return arn


def _checked_headers(
    proof: Any, expected_purpose: str, endpoint: str, region: str, now: dt.datetime
) -> dict[str, str]:
    if not isinstance(proof, Mapping):
        raise IdentityNotProven(
            "no identity proof: the requester and the approver are proven by a signed STS request"
        )
    if proof.get("method") != "POST" or proof.get("body") != BODY:
        raise IdentityNotProven("the identity proof is not a GetCallerIdentity request")
    if not _same_endpoint(str(proof.get("url") or ""), endpoint):
        raise IdentityNotProven(
            f"the identity proof is for another endpoint than this deployment's STS ({endpoint})"
        )
    raw = proof.get("headers")
    if not isinstance(raw, Mapping) or set(raw) - set(_PROOF_HEADERS):
        raise IdentityNotProven("the identity proof carries unexpected headers")
    headers = {str(k): str(v) for k, v in raw.items()}
    auth = _AUTH.match(headers.get("Authorization", ""))
    if auth is None:
        raise IdentityNotProven("the identity proof is not signed with SigV4")
    if auth["service"] != "sts" or auth["region"] != region:
        raise IdentityNotProven(
            f"the identity proof is signed for {auth['service']} in {auth['region']}, not sts in {region}"
        )
    signed = set(auth["signed"].split(";"))
    if not {"host", "x-amz-date", PURPOSE_HEADER.lower()} <= signed:
        raise IdentityNotProven("the identity proof does not sign its host, date and purpose")
    if headers.get(PURPOSE_HEADER) != expected_purpose:
        raise IdentityNotProven(f"the identity proof was made for another purpose, not {expected_purpose}")
    try:
        signed_at = dt.datetime.strptime(headers.get("X-Amz-Date", ""), "%Y%m%dT%H%M%SZ").replace(
            tzinfo=dt.UTC
        )
    except ValueError as exc:
        raise IdentityNotProven("the identity proof has no signing time") from exc
    age = (now - signed_at).total_seconds()
    if age > MAX_AGE_S or age < -MAX_SKEW_S:
        raise IdentityNotProven(
            f"the identity proof is not fresh (signed {int(age)} s ago; at most {MAX_AGE_S} s)"
        )
    return headers


def _same_endpoint(url: str, endpoint: str) -> bool:
    a, b = urlsplit(url), urlsplit(endpoint)
    return (a.scheme, a.netloc.lower(), a.path or "/") == (
        b.scheme,
        b.netloc.lower(),
        b.path or "/",
    ) and not (a.query or a.fragment)
