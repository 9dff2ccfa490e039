"""Shared fixtures: fake credentials and a Region for every test, so nothing can reach real AWS, and a moto server
in its own process for the tests that stand it in for an AWS account."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
from moto import mock_aws

from pipeline.core.aws import SDK_CONFIG, default_clients
from pipeline.operator import demo_restore

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/cognito-backuper-test-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/cognito-backuper-test-credentials")
    default_clients.cache_clear()
    yield
    default_clients.cache_clear()


@pytest.fixture
def cognito() -> Iterator[CognitoIdentityProviderClient]:
    """A Cognito client, configured as the pipeline's, on a fresh in-process moto (credentials: ``aws_env``)."""
    with mock_aws():
        yield boto3.client("cognito-idp", config=SDK_CONFIG)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """A separately started moto server, as an operator would run it; stopped at the end of the module.

    Its own process, not an in-process ThreadedMotoServer: that one would share moto's backends with the local
    engine's mock, so a test could not tell where a request went."""
    with demo_restore.moto_server() as url:
        yield url
