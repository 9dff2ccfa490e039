"""AWS clients from the standard credential chain, and translation of the SDK's own failures.

Credentials and Region come only from boto3's chain (environment, shared config, role); endpoints from the standard
``AWS_ENDPOINT_URL[_SERVICE]`` variables: that is how the local engine and a separate moto server are reached.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions
from botocore.config import Config

from pipeline import __version__
from pipeline.core.errors import (
    AccessDenied,
    CredentialsMissing,
    EndpointUnreachable,
    PipelineError,
    RegionMissing,
)

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sts import STSClient

    from pipeline.cognito.throttle import RateBudget

# Cognito throttling is handled by the pipeline's own per-quota limiter and backoff (pipeline.cognito.throttle),
# which also stops botocore from retrying what it takes for throttling; botocore's standard mode still retries
# transient 5xx and connection errors a few times (tests/cli/test_retry_layers.py).
SDK_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    user_agent_extra=f"cognito-backuper/{__version__}",
    connect_timeout=10,
    read_timeout=60,
)


# AWS_REGION is what the AWS CLI and Lambda set; this botocore reads only AWS_DEFAULT_REGION. The first one set wins.
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
NO_REGION = "no AWS Region configured: set AWS_REGION or AWS_DEFAULT_REGION, or a region in the AWS profile"


def _profile_not_found(exc: botocore.exceptions.ProfileNotFound) -> CredentialsMissing:
    return CredentialsMissing(
        f"the AWS profile {exc.kwargs.get('profile', '?')!r} is not in the AWS configuration"
    )


def standard_session() -> boto3.Session:
    """The standard credential chain, with both Region variables honoured; an unknown profile in one line."""
    region = next((os.environ[name] for name in REGION_VARIABLES if os.environ.get(name)), None)
    try:
        return boto3.Session(region_name=region)
    except botocore.exceptions.ProfileNotFound as exc:
        raise _profile_not_found(exc) from exc


@dataclass(frozen=True)
class Clients:
    cognito: CognitoIdentityProviderClient
    s3: S3Client
    kms: KMSClient
    sts: STSClient
    region: str


def make_clients(session: boto3.Session | None = None, *, budget: RateBudget | None = None) -> Clients:
    """Clients whose Cognito calls all draw from ``budget``, by default the process-wide rate budget
    (pipeline.cognito.throttle)."""
    from pipeline.cognito import throttle

    session = session or standard_session()
    region = session.region_name
    if not region:
        raise RegionMissing(NO_REGION)
    cognito = session.client("cognito-idp", config=SDK_CONFIG)
    throttle.install(cognito, budget or throttle.default_budget())
    return Clients(
        cognito=cognito,
        s3=session.client("s3", config=SDK_CONFIG),
        kms=session.client("kms", config=SDK_CONFIG),
        sts=session.client("sts", config=SDK_CONFIG),
        region=region,
    )


@functools.cache
def default_clients() -> Clients:
    """Clients reused across warm Lambda invocations, drawing from the deployment's rate budget when the task
    has one (``throttle.task_budget``). The local engine clears this cache around each run."""
    from pipeline.cognito import throttle

    return make_clients(budget=throttle.task_budget())


def error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def sdk_errors() -> Iterator[None]:
    """Turn the SDK's environment failures into the pipeline's one-line errors."""
    try:
        yield
    except PipelineError:
        raise
    except botocore.exceptions.ProfileNotFound as exc:
        raise _profile_not_found(exc) from exc
    except botocore.exceptions.NoCredentialsError as exc:
        raise CredentialsMissing(
            "no AWS credentials found: configure the AWS CLI, a profile, or environment variables"
        ) from exc
    except botocore.exceptions.NoRegionError as exc:
        raise RegionMissing(NO_REGION) from exc
    except botocore.exceptions.EndpointConnectionError as exc:
        raise EndpointUnreachable(
            f"cannot reach the AWS endpoint: {exc.kwargs.get('endpoint_url', '?')}"
        ) from exc
    except botocore.exceptions.ClientError as exc:
        code = error_code(exc)
        if code in {
            "AccessDenied",
            "AccessDeniedException",
            "UnauthorizedOperation",
            "NotAuthorizedException",
        }:
            op = exc.operation_name
            raise AccessDenied(f"access denied to {op}: check the IAM permissions of the caller") from exc
        if code in {
            "InvalidClientTokenId",
            "UnrecognizedClientException",
            "ExpiredToken",
            "ExpiredTokenException",
        }:
            raise CredentialsMissing(f"AWS credentials were rejected ({code})") from exc
        raise


def caller_arn(clients: Clients) -> str:
    """The authenticated identity behind the credentials in use."""
    with sdk_errors():
        return clients.sts.get_caller_identity()["Arn"]


def json_safe(value: Any) -> Any:
    """SDK responses hold datetimes; state payloads and backups need JSON."""
    import datetime as _dt

    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode()
    return value
