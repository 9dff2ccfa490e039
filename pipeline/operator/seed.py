"""A realistic demo user pool: custom attributes, app clients, a domain, groups, and users in every state.

Deterministic for a given ``seed`` (names, attributes, states, memberships); passwords are random and never
kept. No message is ever sent: AdminCreateUser suppresses its invitation, and the pool auto-verifies nothing,
so SignUp sends no code. E-mail addresses are under example.com, phone numbers in the fictional +1-555 range.

The seeder calls its client directly, without the pipeline's rate budget: it exists for demos and tests
(moto); on AWS botocore's own retries absorb the occasional throttle. The demo writes its users straight into
the embedded Cognito (``user_writes``, :mod:`pipeline.operator.local_engine.moto_seed`), the same calls without
the HTTP round trip; everything else, and every test, goes through the API.
"""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.core.aws import sdk_errors
from pipeline.core.errors import InvalidRequest

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient
    from mypy_boto3_cognito_idp.type_defs import AttributeTypeTypeDef

    from pipeline.operator.local_engine.moto_seed import DirectCognito

Progress = Callable[[int, int], None]

DISABLED_SHARE = 0.05
UNCONFIRMED_SHARE = 0.05
GROUPED_SHARE = 0.60
EMAIL_VERIFIED_SHARE = 0.90
PHONE_VERIFIED_SHARE = 0.30
PROGRESS_EVERY = 100

# name, description, precedence, has a role
GROUPS: tuple[tuple[str, str, int, bool], ...] = (
    ("admins", "Pool administrators", 1, True),
    ("editors", "Can edit content", 10, False),
    ("viewers", "Read-only access", 20, False),
    ("billing", "Sees invoices and plans", 30, False),
    ("beta-testers", "Early access to new features", 40, False),
)
PLANS = ("free", "pro", "enterprise")
_WORDS = (
    "amber", "birch", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "iris", "juniper",
    "kestrel", "lagoon", "maple", "nectar", "onyx", "prairie", "quartz", "raven", "sierra", "tundra",
)  # fmt: skip
_GIVEN = ("Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam")
_FAMILY = ("Archer", "Brook", "Castillo", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jensen")


@dataclass(frozen=True)
class SeededPool:
    pool_id: str
    users: int
    disabled: int
    unconfirmed: int
    groups: dict[str, int]
    memberships: int
    emails: list[str]
    phones: list[str]


@dataclass(frozen=True)
class _Person:
    index: int
    username: str
    email: str
    phone: str
    attributes: list[AttributeTypeTypeDef]
    unconfirmed: bool
    disabled: bool
    groups: tuple[str, ...]


def _password() -> str:
    # Satisfies the seeded policy (upper, lower, digit, symbol, length); random, used once, never stored.
    return f"Aa1!{secrets.token_urlsafe(18)}"


def _people(count: int, seed: int, email_usernames: bool) -> list[_Person]:
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not a secret
    unconfirmed = set(rng.sample(range(count), round(count * UNCONFIRMED_SHARE)))
    confirmed = [i for i in range(count) if i not in unconfirmed]
    disabled = set(rng.sample(confirmed, min(len(confirmed), round(count * DISABLED_SHARE))))
    group_names = [g[0] for g in GROUPS]
    people = []
    for i in range(count):
        word = rng.choice(_WORDS)
        email = f"user{i:05d}.{word}@example.com"
        phone = f"+1555{i:07d}"
        attributes = {
            "email": email,
            "phone_number": phone,
            "given_name": rng.choice(_GIVEN),
            "family_name": rng.choice(_FAMILY),
            "custom:tenant_id": f"tenant-{rng.randrange(1, 40):03d}",
            "custom:plan": rng.choice(PLANS),
            "custom:seats": str(rng.randrange(1, 500)),
        }
        is_unconfirmed = i in unconfirmed
        if not is_unconfirmed:
            # SignUp cannot set verification flags; only admin-created users carry them.
            attributes["email_verified"] = "true" if rng.random() < EMAIL_VERIFIED_SHARE else "false"
            attributes["phone_number_verified"] = "true" if rng.random() < PHONE_VERIFIED_SHARE else "false"
        groups: tuple[str, ...] = ()
        if rng.random() < GROUPED_SHARE:
            groups = tuple(rng.sample(group_names, rng.randint(1, 3)))
        people.append(
            _Person(
                index=i,
                username=email if email_usernames else f"user{i:05d}",
                email=email,
                phone=phone,
                attributes=[{"Name": k, "Value": v} for k, v in attributes.items()],
                unconfirmed=is_unconfirmed,
                disabled=i in disabled,
                groups=groups,
            )
        )
    return people


def _create_pool(cognito: CognitoIdentityProviderClient, name: str, email_usernames: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "PoolName": name,
        "MfaConfiguration": "OFF",
        "Policies": {
            "PasswordPolicy": {
                "MinimumLength": 12,
                "RequireUppercase": True,
                "RequireLowercase": True,
                "RequireNumbers": True,
                "RequireSymbols": True,
                "TemporaryPasswordValidityDays": 7,
            }
        },
        # AutoVerifiedAttributes deliberately left unset: SignUp then sends no verification message.
        "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": False},
        "Schema": [
            {"Name": "tenant_id", "AttributeDataType": "String", "Mutable": True,
             "StringAttributeConstraints": {"MinLength": "1", "MaxLength": "64"}},
            {"Name": "plan", "AttributeDataType": "String", "Mutable": True,
             "StringAttributeConstraints": {"MinLength": "1", "MaxLength": "32"}},
            {"Name": "seats", "AttributeDataType": "Number", "Mutable": True,
             "NumberAttributeConstraints": {"MinValue": "0", "MaxValue": "100000"}},
        ],
        "UserPoolTags": {"purpose": "cognito-backuper-demo"},
    }  # fmt: skip
    if email_usernames:
        kwargs["UsernameAttributes"] = ["email"]
    pool: dict[str, Any] = dict(cognito.create_user_pool(**kwargs)["UserPool"])
    return pool


def _domain_prefix(name: str, pool_id: str) -> str:
    # Domain prefixes are global: make them unique per pool; Cognito reserves "aws", "amazon" and "cognito".
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "pool"
    slug = re.sub(r"aws|amazon|cognito", "x", slug)
    return f"{slug[:40]}-{pool_id.split('_')[-1].lower()}"[:63].strip("-")


def seed_pool(
    cognito: CognitoIdentityProviderClient,
    *,
    users: int = 1000,
    name: str = "demo-pool",
    seed: int = 7,
    username_attribute_email: bool = False,
    on_progress: Progress | None = None,
    user_writes: DirectCognito | None = None,
) -> SeededPool:
    """Create and fill a demo pool; returns what was created, for demos and tests to check against.

    ``user_writes`` creates the users (and their passwords, states and memberships) instead of ``cognito``.
    """
    if users < 0:
        raise InvalidRequest("users must not be negative")
    people = _people(users, seed, username_attribute_email)
    with sdk_errors():
        pool = _create_pool(cognito, name, username_attribute_email)
        pool_id = str(pool["Id"])
        account = str(pool.get("Arn", "arn:aws:cognito-idp:r:000000000000:x")).split(":")[4]
        client_id = cognito.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName="demo-web",
            GenerateSecret=False,
            ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            PreventUserExistenceErrors="ENABLED",
        )["UserPoolClient"]["ClientId"]
        cognito.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName="demo-backend",
            GenerateSecret=True,
            ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )
        cognito.create_user_pool_domain(UserPoolId=pool_id, Domain=_domain_prefix(name, pool_id))
        for group, description, precedence, has_role in GROUPS:
            group_kwargs: dict[str, Any] = {
                "UserPoolId": pool_id,
                "GroupName": group,
                "Description": description,
                "Precedence": precedence,
            }
            if has_role:
                group_kwargs["RoleArn"] = f"arn:aws:iam::{account}:role/cognito-backuper-demo-{group}"
            cognito.create_group(**group_kwargs)

        members = {g[0]: 0 for g in GROUPS}
        writes = user_writes if user_writes is not None else cognito
        for done, person in enumerate(people, start=1):
            _create_user(writes, pool_id, client_id, person, members)
            if on_progress and (done % PROGRESS_EVERY == 0 or done == len(people)):
                on_progress(done, len(people))
    return SeededPool(
        pool_id=pool_id,
        users=len(people),
        disabled=sum(p.disabled for p in people),
        unconfirmed=sum(p.unconfirmed for p in people),
        groups=members,
        memberships=sum(members.values()),
        emails=[p.email for p in people],
        phones=[p.phone for p in people],
    )


def _create_user(
    cognito: CognitoIdentityProviderClient | DirectCognito,
    pool_id: str,
    client_id: str,
    person: _Person,
    members: dict[str, int],
) -> None:
    if person.unconfirmed:
        # Only SignUp yields UNCONFIRMED (AdminCreateUser gives FORCE_CHANGE_PASSWORD).
        username = cognito.sign_up(
            ClientId=client_id,
            Username=person.username,
            Password=_password(),
            UserAttributes=person.attributes,
        )["UserSub"]
        username = username if person.username == person.email else person.username
    else:
        created = cognito.admin_create_user(
            UserPoolId=pool_id,
            Username=person.username,
            UserAttributes=person.attributes,
            MessageAction="SUPPRESS",
        )
        username = created["User"]["Username"]
        cognito.admin_set_user_password(
            UserPoolId=pool_id, Username=username, Password=_password(), Permanent=True
        )
        if person.disabled:
            cognito.admin_disable_user(UserPoolId=pool_id, Username=username)
    for group in person.groups:
        cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=username, GroupName=group)
        members[group] += 1
