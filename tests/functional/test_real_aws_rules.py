"""Rules of real AWS that moto does not enforce, each played against the code that must honour it.

Where moto accepts what the service refuses (or answers differently), the test injects the documented reply
through a botocore event (see real_aws_doubles), so each test fails on code that relies on moto's leniency.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest
import task_chain
from moto import mock_aws
from real_aws_doubles import refuse_call

from pipeline.backup import steps as backup
from pipeline.cognito.reading import list_users_page
from pipeline.core.aws import Clients, default_clients, make_clients
from pipeline.core.errors import AuditRecordExists, KeyAccessDenied, PaginationTokenExpired
from pipeline.operator import demo, seed
from pipeline.sealing import audit, store
from pipeline.sealing.audit import AuditSink
from tasks import write_manifest

BUCKET = "cb-real-aws-rules"


@pytest.fixture
def clients() -> Iterator[Clients]:
    with mock_aws():
        made = make_clients(boto3.Session())
        made.s3.create_bucket(Bucket=BUCKET)
        yield made


# --- KMS: DescribeKey's KeyUsage defaults to ENCRYPT_DECRYPT ------------------------------------------------


def _describe_key_without(clients: Clients, member: str) -> None:
    def drop(parsed: dict[str, Any], **_: Any) -> None:
        parsed.get("KeyMetadata", {}).pop(member, None)

    clients.kms.meta.events.register("after-call.kms.DescribeKey", drop)


def test_a_key_whose_description_omits_key_usage_is_an_encryption_key(clients: Clients) -> None:
    account = demo.prepare_account(clients)
    _describe_key_without(clients, "KeyUsage")
    checked = backup._check_storage(clients, account.storage)
    assert checked["kmsKeyArn"].startswith("arn:aws:kms:")


def test_a_signing_key_is_still_refused(clients: Clients) -> None:
    account = demo.prepare_account(clients)
    key = clients.kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["Arn"]
    with pytest.raises(KeyAccessDenied, match="not an enabled encryption key"):
        backup._check_storage(clients, {**account.storage, "kmsKeyArn": key})


# --- S3: 409 ConditionalRequestConflict on a conditional write means "retry" -------------------------------


def _conflicts(clients: Clients, times: int) -> list[str]:
    """The next ``times`` conditional PutObjects answer 409; returns the keys each conditional attempt named."""
    attempts: list[str] = []

    def rule(params: dict[str, Any], operation: str) -> tuple[str, str, int] | None:
        if operation != "PutObject" or params["headers"].get("If-None-Match") != "*":
            return None
        attempts.append(str(params["url_path"]).rsplit("/", 1)[-1])
        if len(attempts) > times:
            return None
        return "ConditionalRequestConflict", "A conflicting conditional operation is in progress", 409

    refuse_call(clients.s3, rule)
    return attempts


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "CONFLICT_BASE_DELAY_S", 0.0, raising=False)


def _sink(clients: Clients) -> AuditSink:
    key = clients.kms.create_key()["KeyMetadata"]["Arn"]
    return AuditSink(clients=clients, bucket=BUCKET, kms_key_arn=key)


def test_a_conflicting_create_only_audit_write_is_retried_not_called_a_duplicate(
    clients: Clients, no_backoff: None
) -> None:
    sink = _sink(clients)
    attempts = _conflicts(clients, times=2)
    audit.put_document(sink, "audit/x.bin", {"a": 1}, {"app": "t"}, create_only=True)
    assert len(attempts) == 3
    assert audit.get_document(sink, "audit/x.bin", {"app": "t"}) == {"a": 1}


def test_an_existing_audit_key_is_still_refused(clients: Clients, no_backoff: None) -> None:
    sink = _sink(clients)
    audit.put_document(sink, "audit/x.bin", {"a": 1}, {"app": "t"}, create_only=True)
    _conflicts(clients, times=1)  # the conflict, then the retry finds the key: 412
    with pytest.raises(AuditRecordExists):
        audit.put_document(sink, "audit/x.bin", {"a": 2}, {"app": "t"}, create_only=True)
    assert audit.get_document(sink, "audit/x.bin", {"app": "t"}) == {"a": 1}


def test_a_conflict_that_never_clears_is_an_error_not_a_duplicate(clients: Clients, no_backoff: None) -> None:
    sink = _sink(clients)
    attempts = _conflicts(clients, times=100)
    with pytest.raises(botocore.exceptions.ClientError, match="ConditionalRequestConflict"):
        audit.put_document(sink, "audit/x.bin", {"a": 1}, {"app": "t"}, create_only=True)
    assert len(attempts) == store.CONFLICT_ATTEMPTS


def test_put_if_absent_backs_off_with_full_jitter() -> None:
    calls: list[int] = []
    slept: list[float] = []

    def put() -> None:
        calls.append(1)
        if len(calls) < 4:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "ConditionalRequestConflict", "Message": "conflict"}}, "PutObject"
            )

    assert store.put_if_absent(put, sleep=slept.append, jitter=lambda: 0.5) is True
    assert slept == [store.CONFLICT_BASE_DELAY_S * 0.5 * 2**i for i in range(3)]


def test_a_conflicting_manifest_write_is_retried(no_backoff: None) -> None:
    with mock_aws():
        account = demo.prepare_account(make_clients())
        pool = seed.seed_pool(boto3.client("cognito-idp"), users=5, seed=3)
        state = task_chain.run_backup(account.storage, pool.pool_id, write=False)
        attempts = _conflicts(default_clients(), times=1)  # the clients the task handlers use
        manifest = write_manifest.handler(state)
        assert attempts == ["manifest.json", "manifest.json"]
        assert manifest["users"] == pool.users


# --- Cognito: an expired ListUsers token ---------------------------------------------------------------------

# What Cognito answers for a stale or foreign PaginationToken (aws/aws-sdk-js#3705 quotes it in full).
PAGING_MARKER_INVALID = (
    "Paging marker CAISsAIIARKJAggDEoQC is invalid for request adaa2d40-d1bd-4da4-ab5c-ed2a2e20b341"
)


def _list_users_answers(cognito: Any, code: str, message: str) -> None:
    def rule(params: dict[str, Any], operation: str) -> tuple[str, str, int] | None:
        if operation == "ListUsers" and "PaginationToken" in json.loads(params["body"] or b"{}"):
            return code, message, 400
        return None

    refuse_call(cognito, rule)


@pytest.fixture
def pool(clients: Clients) -> str:
    return str(clients.cognito.create_user_pool(PoolName="p")["UserPool"]["Id"])


def test_cognitos_paging_marker_reply_is_an_expired_token(clients: Clients, pool: str) -> None:
    _list_users_answers(clients.cognito, "InvalidParameterException", PAGING_MARKER_INVALID)
    with pytest.raises(PaginationTokenExpired, match=pool):
        list_users_page(clients.cognito, pool, sub_prefix="a", token="stale")


@pytest.mark.parametrize(
    ("code", "message"),
    [
        # A malformed request that mentions a token is not an expired token: restarting the shard would loop.
        (
            "InvalidParameterException",
            "1 validation error detected: Value at 'paginationToken' failed to satisfy constraint",
        ),
        ("InvalidParameterException", "Invalid pagination token"),
        ("InvalidToken", "Invalid Token: Invalid token"),  # moto's own reply, which Cognito never sends
    ],
)
def test_other_refusals_are_not_taken_for_an_expired_token(
    clients: Clients, pool: str, code: str, message: str
) -> None:
    _list_users_answers(clients.cognito, code, message)
    with pytest.raises(botocore.exceptions.ClientError, match=code):
        list_users_page(clients.cognito, pool, token="something")
