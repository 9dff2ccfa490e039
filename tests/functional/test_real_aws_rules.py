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
from moto import mock_aws

from pipeline.backup import steps as backup
from pipeline.cognito.reading import list_users_page
from pipeline.core.aws import Clients, default_clients, make_clients
from pipeline.core.errors import AuditRecordExists, KeyAccessDenied, PaginationTokenExpired
from pipeline.operator import demo, seed
from pipeline.restore.pool_restore import finalize_new_pool, restore_pool_config
from pipeline.restore.user_restore import restore_user
from pipeline.sealing import audit, store
from pipeline.sealing.audit import AuditSink
from tasks import write_manifest
from tests.helpers import task_chain
from tests.helpers.real_aws_doubles import answer_call, refuse_call

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


# --- Cognito: what CreateUserPool and friends refuse ----------------------------------------------------------

REQUIRE_VERIFICATION = (
    "All attributes in AttributesRequireVerificationBeforeUpdate must exist in AutoVerifiedAttributes"
)


def _cognito_pool_rules(cognito: Any) -> list[str]:
    """Cognito's documented refusals that moto does not make; returns the operations each refused."""
    refused: list[str] = []

    def rule(params: dict[str, Any], operation: str) -> tuple[str, str, int] | None:
        body = json.loads(params["body"] or b"{}")
        reason = None
        if operation in ("CreateUserPool", "UpdateUserPool"):
            required = (body.get("UserAttributeUpdateSettings") or {}).get(
                "AttributesRequireVerificationBeforeUpdate"
            )
            if required and not set(required) <= set(body.get("AutoVerifiedAttributes") or []):
                reason = REQUIRE_VERIFICATION
        if operation == "CreateIdentityProvider" and "ActiveEncryptionCertificate" in (
            body.get("ProviderDetails") or {}
        ):
            reason = "ActiveEncryptionCertificate is a read-only provider detail"
        if operation == "SetUserPoolMfaConfig" and (body.get("WebAuthnConfiguration") or {}).get(
            "RelyingPartyId"
        ):
            reason = "The relying party ID must be a domain of this user pool"  # the new pool owns none yet
        if reason is None:
            return None
        refused.append(operation)
        return "InvalidParameterException", reason, 400

    refuse_call(cognito, rule)
    return refused


def _backed_up_config() -> dict[str, Any]:
    return {
        "pool": {
            "Id": "us-east-1_Source1",
            "Name": "source",
            "Arn": "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_Source1",
            "EstimatedNumberOfUsers": 3,
            "AutoVerifiedAttributes": ["email"],
            "UserAttributeUpdateSettings": {"AttributesRequireVerificationBeforeUpdate": ["email"]},
            "DeletionProtection": "ACTIVE",
            "Policies": {"PasswordPolicy": {"MinimumLength": 12}},
            "EmailConfigurationFailure": "none",
            "SchemaAttributes": [],
        },
        "mfaConfig": {
            "MfaConfiguration": "OPTIONAL",
            "SoftwareTokenMfaConfiguration": {"Enabled": True},
            "WebAuthnConfiguration": {"RelyingPartyId": "source.auth.us-east-1.amazoncognito.com"},
        },
        "identityProviders": [
            {
                "ProviderName": "Corp",
                "ProviderType": "SAML",
                "ProviderDetails": {
                    "MetadataURL": "https://idp.example.com/metadata",
                    "ActiveEncryptionCertificate": "MIIC-source-pool-certificate",
                },
                "AttributeMapping": {"email": "mail"},
                "CreationDate": "2026-01-01T00:00:00+00:00",
            }
        ],
        "groups": [],
        "appClients": [],
        "resourceServers": [],
    }


def test_a_new_pool_gets_update_settings_with_auto_verification_and_only_what_it_can_take(
    clients: Clients,
) -> None:
    refused = _cognito_pool_rules(clients.cognito)
    config = _backed_up_config()
    result = restore_pool_config(
        clients.cognito, config, source="us-east-1_Source1/b1", new_pool_name="restored"
    )
    assert refused == []
    created = clients.cognito.describe_user_pool(UserPoolId=result.pool_id)["UserPool"]
    # Nothing that could send a message or block deleting a half-restored pool before the users are in.
    assert not created.get("AutoVerifiedAttributes")
    assert created.get("DeletionProtection", "INACTIVE") == "INACTIVE"

    finalize_new_pool(clients.cognito, result.pool_id, config, result.temp_client_id)
    assert refused == []
    final = clients.cognito.describe_user_pool(UserPoolId=result.pool_id)["UserPool"]
    assert final["AutoVerifiedAttributes"] == ["email"]
    assert final["UserAttributeUpdateSettings"] == {"AttributesRequireVerificationBeforeUpdate": ["email"]}
    assert final["DeletionProtection"] == "ACTIVE"

    assert sorted(result.dropped) == [
        "CreateIdentityProvider Corp: ProviderDetails.ActiveEncryptionCertificate",
        "SetUserPoolMfaConfig: WebAuthnConfiguration.RelyingPartyId",
    ]
    assert "MIIC" not in json.dumps(result.dropped)  # names only
    provider = clients.cognito.describe_identity_provider(UserPoolId=result.pool_id, ProviderName="Corp")
    assert (
        provider["IdentityProvider"]["ProviderDetails"]["MetadataURL"] == "https://idp.example.com/metadata"
    )


def test_a_field_create_user_pool_does_not_know_is_reported_by_name(clients: Clients) -> None:
    config = _backed_up_config()
    config["pool"]["FutureSetting"] = {"Secret": "value-never-reported"}
    result = restore_pool_config(clients.cognito, config, source="us-east-1_Source1/b1", new_pool_name="r2")
    assert "CreateUserPool: FutureSetting" in result.dropped
    assert not any(name.startswith("CreateUserPool: Id") for name in result.dropped)
    assert "value-never-reported" not in json.dumps(result.dropped)


# --- Cognito: no password for a disabled user ---------------------------------------------------------------


def _refuse_passwords_of_disabled_users(cognito: Any) -> list[str]:
    """Cognito answers AdminSetUserPassword for a disabled user with NotAuthorizedException; moto sets it."""
    disabled: set[str] = set()
    refused: list[str] = []

    def rule(params: dict[str, Any], operation: str) -> tuple[str, str, int] | None:
        body = json.loads(params["body"] or b"{}")
        user = str(body.get("Username", ""))
        if operation == "AdminDisableUser":
            disabled.add(user)
        elif operation == "AdminEnableUser":
            disabled.discard(user)
        elif operation == "AdminSetUserPassword" and user in disabled:
            refused.append(user)
            return "NotAuthorizedException", "User is disabled.", 400
        return None

    refuse_call(cognito, rule)
    return refused


def _confirmed_disabled(username: str) -> dict[str, Any]:
    return {
        "username": username,
        "attributes": {"sub": "old-sub", "email": f"{username}@example.com", "email_verified": "true"},
        "enabled": False,
        "status": "CONFIRMED",
    }


def test_a_disabled_confirmed_user_gets_its_password_before_it_is_disabled(
    clients: Clients, pool: str
) -> None:
    refused = _refuse_passwords_of_disabled_users(clients.cognito)
    kwargs: dict[str, Any] = {"username_attributes": [], "password_policy": None, "temp_client_id": None}
    outcome = restore_user(clients.cognito, pool, _confirmed_disabled("dora"), **kwargs)
    assert (outcome.result, refused) == ("created", [])
    user = clients.cognito.admin_get_user(UserPoolId=pool, Username="dora")
    assert (user["UserStatus"], user["Enabled"]) == ("CONFIRMED", False)


def test_a_run_stopped_between_password_and_disable_is_finished_in_a_pool_it_created(
    clients: Clients, pool: str
) -> None:
    _refuse_passwords_of_disabled_users(clients.cognito)
    cognito = clients.cognito
    cognito.admin_create_user(UserPoolId=pool, Username="ed", MessageAction="SUPPRESS")
    cognito.admin_set_user_password(
        UserPoolId=pool, Username="ed", Password="Aa1!" + "x" * 16, Permanent=True
    )
    kwargs: dict[str, Any] = {"username_attributes": [], "password_policy": None, "temp_client_id": None}
    merged = restore_user(cognito, pool, _confirmed_disabled("ed"), **kwargs)
    assert (merged.result, merged.note) == ("existing", None)  # someone else's pool: never changed
    assert cognito.admin_get_user(UserPoolId=pool, Username="ed")["Enabled"] is True
    owned = restore_user(cognito, pool, _confirmed_disabled("ed"), **kwargs, owns_pool=True)
    assert owned.note == "finished an interrupted restore: disabled"
    assert cognito.admin_get_user(UserPoolId=pool, Username="ed")["Enabled"] is False


# --- Cognito: ListUsers lags behind writes ---------------------------------------------------------------------


def _listing_lags(cognito: Any) -> None:
    """ListUsers has not caught up with the users just written (it is eventually consistent)."""
    answer_call(cognito, lambda _params, operation: {"Users": []} if operation == "ListUsers" else None)


@pytest.fixture
def email_pool(clients: Clients) -> tuple[str, str]:
    cognito = clients.cognito
    pool_id = str(cognito.create_user_pool(PoolName="e", UsernameAttributes=["email"])["UserPool"]["Id"])
    client = cognito.create_user_pool_client(UserPoolId=pool_id, ClientName="t")["UserPoolClient"]["ClientId"]
    return pool_id, str(client)


EMAIL_KWARGS: dict[str, Any] = {"username_attributes": ["email"], "password_policy": None}


def _unconfirmed(old_username: str, email: str) -> dict[str, Any]:
    return {
        "username": old_username,
        "attributes": {"sub": "old", "email": email},
        "enabled": True,
        "status": "UNCONFIRMED",
    }


def test_a_signed_up_user_is_read_back_without_listing(clients: Clients, email_pool: tuple[str, str]) -> None:
    pool_id, client_id = email_pool
    _listing_lags(clients.cognito)
    outcome = restore_user(
        clients.cognito,
        pool_id,
        _unconfirmed("old-id", "fay@example.com"),
        **EMAIL_KWARGS,
        temp_client_id=client_id,
    )
    live = clients.cognito.admin_get_user(UserPoolId=pool_id, Username="fay@example.com")
    sub = next(a["Value"] for a in live["UserAttributes"] if a["Name"] == "sub")
    assert (outcome.result, outcome.new_username, outcome.new_sub) == ("created", live["Username"], sub)


def test_a_user_created_by_an_interrupted_run_is_found_without_listing(
    clients: Clients, email_pool: tuple[str, str]
) -> None:
    pool_id, _ = email_pool
    first = clients.cognito.admin_create_user(
        UserPoolId=pool_id,
        Username="gus@example.com",
        UserAttributes=[{"Name": "email", "Value": "gus@example.com"}],
        MessageAction="SUPPRESS",
    )["User"]
    _listing_lags(clients.cognito)
    record = {**_unconfirmed("old-id", "gus@example.com"), "status": "FORCE_CHANGE_PASSWORD"}
    outcome = restore_user(clients.cognito, pool_id, record, **EMAIL_KWARGS, temp_client_id=None)
    assert (outcome.result, outcome.new_username) == ("existing", first["Username"])


# --- Cognito: preferred_username on an unconfirmed account -----------------------------------------------------

PREFERRED_ALIAS_REFUSED = (
    "Preferred username cannot be provided for unconfirmed account, since user pool is configured for preferred "
    "username alias."
)


def _refuse_preferred_username_while_unconfirmed(cognito: Any) -> None:
    """SignUp (and any write to an unconfirmed account) may not carry preferred_username in an alias pool."""

    def unconfirmed(body: dict[str, Any]) -> bool:
        user = cognito.admin_get_user(UserPoolId=body["UserPoolId"], Username=body["Username"])
        return bool(user["UserStatus"] == "UNCONFIRMED")

    def rule(params: dict[str, Any], operation: str) -> tuple[str, str, int] | None:
        body = json.loads(params["body"] or b"{}")
        if "preferred_username" not in {a["Name"] for a in body.get("UserAttributes") or []}:
            return None
        if operation == "SignUp" or (operation == "AdminUpdateUserAttributes" and unconfirmed(body)):
            return "InvalidParameterException", PREFERRED_ALIAS_REFUSED, 400
        return None

    refuse_call(cognito, rule)


def test_an_unconfirmed_user_keeps_its_preferred_username_in_an_alias_pool(clients: Clients) -> None:
    cognito = clients.cognito
    pool_id = cognito.create_user_pool(PoolName="a", AliasAttributes=["preferred_username", "email"])[
        "UserPool"
    ]["Id"]
    client_id = cognito.create_user_pool_client(UserPoolId=pool_id, ClientName="t")["UserPoolClient"][
        "ClientId"
    ]
    _refuse_preferred_username_while_unconfirmed(cognito)
    record = {
        "username": "hal",
        "attributes": {"sub": "old", "email": "hal@example.com", "preferred_username": "hally"},
        "enabled": True,
        "status": "UNCONFIRMED",
    }
    outcome = restore_user(
        cognito,
        pool_id,
        record,
        username_attributes=[],
        password_policy=None,
        temp_client_id=client_id,
        alias_attributes=["preferred_username", "email"],
    )
    assert outcome.result == "created", outcome
    assert outcome.note is not None and "preferred_username" in outcome.note
    user = cognito.admin_get_user(UserPoolId=pool_id, Username="hal")
    assert {a["Name"]: a["Value"] for a in user["UserAttributes"]}["preferred_username"] == "hally"
    assert user["UserStatus"] == "FORCE_CHANGE_PASSWORD"


def test_an_unconfirmed_user_without_the_alias_still_signs_up(clients: Clients) -> None:
    cognito = clients.cognito
    pool_id = cognito.create_user_pool(PoolName="a", AliasAttributes=["preferred_username"])["UserPool"]["Id"]
    client_id = cognito.create_user_pool_client(UserPoolId=pool_id, ClientName="t")["UserPoolClient"][
        "ClientId"
    ]
    _refuse_preferred_username_while_unconfirmed(cognito)
    record = {"username": "ida", "attributes": {"sub": "old", "email": "ida@example.com"}, "enabled": True}
    outcome = restore_user(
        cognito,
        pool_id,
        {**record, "status": "UNCONFIRMED"},
        username_attributes=[],
        password_policy=None,
        temp_client_id=client_id,
        alias_attributes=["preferred_username"],
    )
    assert (outcome.result, outcome.note) == ("created", None)
    assert cognito.admin_get_user(UserPoolId=pool_id, Username="ida")["UserStatus"] == "UNCONFIRMED"
