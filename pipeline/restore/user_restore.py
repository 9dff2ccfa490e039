"""Recreating backed-up users and their group memberships, one user at a time, never sending a message.

Each user's groups are added right after the user: user creation (UserCreation, UserAccountRecovery quotas)
and group adds (UserResourceUpdate) then draw on their quotas at the same time instead of one after the other.

Fidelity rules (what a restored user looks like):
- Attributes: everything but ``sub`` (Cognito always assigns a new one: the outcome carries old and new) and the
  read-only ``identities`` / ``cognito:*``; the e-mail and phone verified flags included.
- Password: Cognito exports none. Each user gets a random password that is never stored or shown, and signs in
  again through "forgot password".
- Status: CONFIRMED stays CONFIRMED (random permanent password); FORCE_CHANGE_PASSWORD stays; UNCONFIRMED stays
  UNCONFIRMED through SignUp on the restore's temporary client (created while the pool auto-verifies nothing,
  so no code is sent); where there is no such client, the user is created FORCE_CHANGE_PASSWORD (nobody knows
  its temporary password, so it cannot sign in either) and the outcome says so. RESET_REQUIRED and other
  states also become FORCE_CHANGE_PASSWORD: AdminResetUserPassword would send a message.
- ``preferred_username`` in pools where it is an alias: Cognito refuses it on an unconfirmed account ("Preferred
  username cannot be provided for unconfirmed account, since user pool is configured for preferred username
  alias"; an alias belongs to confirmed accounts only, so setting it after SignUp is no way out either). Such an
  UNCONFIRMED user is created FORCE_CHANGE_PASSWORD with the attribute, as without SignUp: keeping the
  attribute (how the user signs in) outweighs keeping a status it cannot sign in with anyway.
- Federated users (EXTERNAL_PROVIDER) cannot be created: Cognito recreates them at their next sign-in through
  their identity provider. They are reported as "federated"; nothing is linked.

Re-running is safe: an existing user is never modified, with one exception that finishes an interrupted
restore (see :func:`_finish_interrupted`). Outcomes and errors never carry attribute values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from pipeline.cognito.reading import pool_errors
from pipeline.core.aws import error_code
from pipeline.restore.passwords import random_password

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient

CREATED, EXISTING, FEDERATED, FAILED = "created", "existing", "federated", "failed"
READ_ONLY_ATTRIBUTES = frozenset({"sub", "identities"})
VERIFIED_FLAGS = ("email_verified", "phone_number_verified")
# A user never signed in yet: only these states may be completed by a re-run.
NOT_SIGNED_IN = frozenset({"FORCE_CHANGE_PASSWORD", "UNCONFIRMED"})
# Cognito refusing one user's data (or a trigger refusing it): that user fails, the restore goes on.
USER_REJECTED = frozenset(
    {
        "InvalidParameterException",
        "InvalidPasswordException",
        "UserLambdaValidationException",
        "InvalidLambdaResponseException",
        "UnexpectedLambdaException",
        "CodeDeliveryFailureException",
        "UserNotFoundException",
    }
)


@dataclass(frozen=True)
class UserOutcome:
    old_username: str
    new_username: str | None
    old_sub: str | None
    new_sub: str | None
    result: str  # "created" | "existing" | "federated" | "failed"
    note: str | None = None  # why, in words that carry no user data


@dataclass(frozen=True)
class _Live:
    username: str
    sub: str | None
    status: str
    enabled: bool
    attributes: dict[str, str]


def _writable(attributes: Mapping[str, str]) -> dict[str, str]:
    return {
        k: v for k, v in attributes.items() if k not in READ_ONLY_ATTRIBUTES and not k.startswith("cognito:")
    }


def _attribute_list(attributes: Mapping[str, str]) -> list[Any]:
    return [{"Name": k, "Value": v} for k, v in attributes.items()]


def _sign_in_name(record: Mapping[str, Any], username_attributes: Sequence[str]) -> tuple[str, str] | None:
    """What to create the user with, and the attribute it comes from ("username" in plain pools).

    In pools whose UsernameAttributes are e-mail and/or phone, the backed-up username is an opaque id that
    Cognito will not accept back: the user is created by its e-mail (or phone) and gets a new username.
    """
    if not username_attributes:
        return str(record["username"]), "username"
    attributes = record.get("attributes") or {}
    for name in ("email", "phone_number"):
        if name in username_attributes and attributes.get(name):
            return str(attributes[name]), name
    return None


def _live(item: Mapping[str, Any], attributes_key: str) -> _Live:
    attributes = {a["Name"]: a.get("Value", "") for a in item.get(attributes_key, [])}
    return _Live(
        username=str(item["Username"]),
        sub=attributes.get("sub"),
        status=str(item.get("UserStatus", "")),
        enabled=bool(item.get("Enabled", True)),
        attributes=attributes,
    )


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _get(cognito: CognitoIdentityProviderClient, pool_id: str, username: str) -> _Live | None:
    try:
        return _live(cognito.admin_get_user(UserPoolId=pool_id, Username=username), "UserAttributes")
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "UserNotFoundException":
            return None
        raise


def _find(cognito: CognitoIdentityProviderClient, pool_id: str, name: str, kind: str) -> _Live | None:
    """The user signing in as ``name``. AdminGetUser first: it reads what was just written, and takes an
    e-mail or phone username too, while ListUsers is eventually consistent. The filtered listing is left for
    a value AdminGetUser cannot resolve (an e-mail or phone that is no user's sign-in name yet)."""
    live = _get(cognito, pool_id, name)
    if live is not None or kind == "username":
        return live
    page = cognito.list_users(UserPoolId=pool_id, Filter=f'{kind} = "{_quote(name)}"', Limit=2)
    users = page.get("Users", [])
    return _live(users[0], "Attributes") if users else None


def _set_password(cognito: CognitoIdentityProviderClient, pool_id: str, username: str, policy: Any) -> None:
    cognito.admin_set_user_password(
        UserPoolId=pool_id, Username=username, Password=random_password(policy), Permanent=True
    )


def _sign_up(
    cognito: CognitoIdentityProviderClient,
    pool_id: str,
    name: str,
    kind: str,
    attributes: Mapping[str, str],
    policy: Any,
    client_id: str,
) -> tuple[str, str | None]:
    # SignUp cannot set the verified flags or developer-only attributes: the admin API adds them after.
    by_client = {k: v for k, v in attributes.items() if k not in VERIFIED_FLAGS and not k.startswith("dev:")}
    by_admin = {k: v for k, v in attributes.items() if k not in by_client}
    signed_up = cognito.sign_up(
        ClientId=client_id,
        Username=name,
        Password=random_password(policy),
        UserAttributes=_attribute_list(by_client),
    )
    if by_admin:
        cognito.admin_update_user_attributes(
            UserPoolId=pool_id, Username=name, UserAttributes=_attribute_list(by_admin)
        )
    sub = signed_up.get("UserSub")
    if kind == "username":
        return name, sub
    # In e-mail or phone username pools the username is new: read it back by sub (AdminGetUser takes the sub
    # as the username), never from ListUsers, which may not list the user yet.
    live = _get(cognito, pool_id, sub) if sub else None
    return (live.username, live.sub) if live else (name, sub)


def _create(
    cognito: CognitoIdentityProviderClient,
    pool_id: str,
    record: Mapping[str, Any],
    sign_in: tuple[str, str],
    policy: Any,
    temp_client_id: str | None,
    alias_attributes: Sequence[str],
) -> UserOutcome:
    name, kind = sign_in
    attributes = _writable(record.get("attributes") or {})
    status = str(record.get("status") or "")
    note: str | None = None
    alias_refused = "preferred_username" in alias_attributes and bool(attributes.get("preferred_username"))
    if status == "UNCONFIRMED" and temp_client_id and not alias_refused:
        username, sub = _sign_up(cognito, pool_id, name, kind, attributes, policy, temp_client_id)
    else:
        created = cognito.admin_create_user(
            UserPoolId=pool_id,
            Username=name,
            UserAttributes=_attribute_list(attributes),
            TemporaryPassword=random_password(policy),
            MessageAction="SUPPRESS",
        )["User"]
        live = _live(created, "Attributes")
        username, sub = live.username, live.sub
        if status == "UNCONFIRMED" and temp_client_id and alias_refused:
            note = (
                "status FORCE_CHANGE_PASSWORD instead of UNCONFIRMED: an unconfirmed account cannot hold the "
            )
            note += "preferred_username alias"
        elif status not in ("CONFIRMED", "FORCE_CHANGE_PASSWORD"):
            note = f"status FORCE_CHANGE_PASSWORD instead of {status or 'unknown'}: no message may be sent"
    # The password before disabling: Cognito refuses AdminSetUserPassword for a disabled user. A run stopped
    # in between leaves an enabled CONFIRMED user, which a re-run disables only in a pool it created.
    if status == "CONFIRMED":
        _set_password(cognito, pool_id, username, policy)
    if not record.get("enabled", True):
        cognito.admin_disable_user(UserPoolId=pool_id, Username=username)
    return UserOutcome(str(record["username"]), username, _old_sub(record), sub, CREATED, note)


def _finish_interrupted(
    cognito: CognitoIdentityProviderClient,
    pool_id: str,
    record: Mapping[str, Any],
    live: _Live,
    policy: Any,
    owns_pool: bool,
) -> list[str]:
    """Complete a user whose creation was interrupted by an earlier run; return the steps done.

    Only in a pool this restore created (``owns_pool``), where every user is ours: a user that has never signed in
    (FORCE_CHANGE_PASSWORD or UNCONFIRMED) while the backup says it should be disabled, CONFIRMED or carry
    verified flags was created by a run that stopped before its follow-up calls. :func:`_create` sets the password
    before disabling (Cognito refuses the password of a disabled user), so a run stopped in between leaves an
    enabled CONFIRMED user, which is disabled here. In a pool that existed before the restore nothing existing is
    ever changed, as the dry run says: a pre-existing user invited but never signed in looks the same as a
    half-created one, so a half-created user there is left as it is and VerifyRestore reports the difference.
    """
    if not owns_pool:
        return []
    if live.status not in NOT_SIGNED_IN:
        if live.status == "CONFIRMED" and live.enabled and not record.get("enabled", True):
            cognito.admin_disable_user(UserPoolId=pool_id, Username=live.username)
            return ["disabled"]
        return []
    done = []
    if live.status == "UNCONFIRMED":
        wanted = _writable(record.get("attributes") or {})
        missing = {k: wanted[k] for k in VERIFIED_FLAGS if k in wanted and k not in live.attributes}
        if missing:
            cognito.admin_update_user_attributes(
                UserPoolId=pool_id, Username=live.username, UserAttributes=_attribute_list(missing)
            )
            done.append("verified flags set")
    # A disabled user takes no password; this run's order never leaves one disabled before its password.
    if live.status == "FORCE_CHANGE_PASSWORD" and record.get("status") == "CONFIRMED" and live.enabled:
        _set_password(cognito, pool_id, live.username, policy)
        done.append("confirmed with a random password")
    if live.enabled and not record.get("enabled", True):
        cognito.admin_disable_user(UserPoolId=pool_id, Username=live.username)
        done.append("disabled")
    return done


def _old_sub(record: Mapping[str, Any]) -> str | None:
    sub = (record.get("attributes") or {}).get("sub")
    return str(sub) if sub else None


def _is_federated(record: Mapping[str, Any]) -> bool:
    return record.get("status") == "EXTERNAL_PROVIDER" or "identities" in (record.get("attributes") or {})


def restore_user(
    cognito: CognitoIdentityProviderClient,
    pool_id: str,
    record: Mapping[str, Any],
    *,
    username_attributes: Sequence[str],
    password_policy: Mapping[str, Any] | None,
    temp_client_id: str | None,
    owns_pool: bool = False,
    alias_attributes: Sequence[str] = (),
) -> UserOutcome:
    """Create one backed-up user (a record of :func:`pipeline.cognito.reading.user_record`) in ``pool_id``.

    Per-user refusals (invalid data, a trigger's veto, an alias owned by someone else) come back as a "failed"
    outcome with the error code as the note; pool-level failures (missing pool, access, throttling) raise.
    """
    old_username, old_sub = str(record["username"]), _old_sub(record)
    if _is_federated(record):
        note = "federated user: recreated by Cognito at its next sign-in through its identity provider"
        return UserOutcome(old_username, None, old_sub, None, FEDERATED, note)
    sign_in = _sign_in_name(record, username_attributes)
    if sign_in is None:
        note = "no e-mail or phone number to use as the username in this pool"
        return UserOutcome(old_username, None, old_sub, None, FAILED, note)
    with pool_errors(pool_id):
        try:
            try:
                return _create(
                    cognito, pool_id, record, sign_in, password_policy, temp_client_id, alias_attributes
                )
            except botocore.exceptions.ClientError as exc:
                code = error_code(exc)
                if code not in ("UsernameExistsException", "AliasExistsException"):
                    raise
                live = _find(cognito, pool_id, *sign_in)
                if live is None:
                    taken = f"{code}: the e-mail or phone number belongs to another user"
                    return UserOutcome(old_username, None, old_sub, None, FAILED, taken)
                done = _finish_interrupted(cognito, pool_id, record, live, password_policy, owns_pool)
                finished = f"finished an interrupted restore: {', '.join(done)}" if done else None
                return UserOutcome(old_username, live.username, old_sub, live.sub, EXISTING, finished)
        except botocore.exceptions.ClientError as exc:
            code = error_code(exc)
            if code not in USER_REJECTED:
                raise
            return UserOutcome(old_username, None, old_sub, None, FAILED, f"{exc.operation_name}: {code}")


def _groups_of(cognito: CognitoIdentityProviderClient, pool_id: str, username: str) -> set[str]:
    pages = cognito.get_paginator("admin_list_groups_for_user").paginate(
        UserPoolId=pool_id, Username=username, PaginationConfig={"PageSize": 60}
    )
    return {g["GroupName"] for page in pages for g in page.get("Groups", []) if "GroupName" in g}


def restore_user_groups(
    cognito: CognitoIdentityProviderClient,
    pool_id: str,
    outcome: UserOutcome,
    groups: Sequence[str],
    missing_groups: set[str],
) -> tuple[int, int, int]:
    """Add a just-restored user to its backed-up groups; returns (added, already there, skipped).

    A user this restore created is in no group yet, so its groups are added without a look. An existing user's
    groups are read once (AdminListGroupsForUser) and only the missing ones added; adding twice would be harmless,
    the look keeps the counts true. A user that was not restored, or a group the pool lacks, is skipped;
    ``missing_groups`` remembers such groups across the users of one invocation.
    """
    if outcome.result not in (CREATED, EXISTING):
        return 0, 0, len(groups)
    if not groups:
        return 0, 0, 0
    username = outcome.new_username or outcome.old_username
    added = already = skipped = 0
    with pool_errors(pool_id):
        current = _groups_of(cognito, pool_id, username) if outcome.result == EXISTING else set()
        for group in groups:
            if group in missing_groups:
                skipped += 1
            elif group in current:
                already += 1
            else:
                result = _add(cognito, pool_id, username, group)
                added += result == _ADDED
                skipped += result != _ADDED
                if result == _NO_GROUP:
                    missing_groups.add(group)
    return added, already, skipped


_ADDED, _NO_GROUP, _NO_USER = "added", "no group", "no user"


def _add(cognito: CognitoIdentityProviderClient, pool_id: str, username: str, group: str) -> str:
    try:
        cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=username, GroupName=group)
    except botocore.exceptions.ClientError as exc:
        message = str(exc.response.get("Error", {}).get("Message", "")).lower()
        code = error_code(exc)
        if code == "UserNotFoundException":
            return _NO_USER  # deleted by someone else since it was restored
        if code == "ResourceNotFoundException" and "user pool" not in message:
            return _NO_GROUP
        raise
    return _ADDED
