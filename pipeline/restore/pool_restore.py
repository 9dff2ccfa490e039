"""Recreating a backed-up pool configuration: into a new pool, or merged into an existing one.

Rules:
- Nothing is ever sent to users during a restore. A new pool is created without Lambda triggers and without
  auto-verified attributes (either could send messages or reject users); :func:`finalize_new_pool` applies them
  once the users are in.
- A merge into an existing pool only adds: missing groups, custom attributes, app clients, identity providers
  and resource servers. Anything present but different is reported as a conflict and left unchanged.
- Re-running is safe: a new pool is found again by its name and its ``cognito-backuper:restore-of`` tag, and
  everything already there (by name) is reused.

SDK requests are built from the backed-up SDK responses by keeping only the members the operation's input
model accepts (:func:`_fit`), so read-only fields (ids, dates, statuses) never reach a write call. What is left
out of a new pool's requests, beyond the plainly read-only fields, is named (never its value) in
``PoolRestoreResult.dropped`` and the restore report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import botocore.exceptions
from botocore.model import ListShape, MapShape, Shape, StructureShape

from pipeline.cognito.reading import describe_pool, pool_errors
from pipeline.core.aws import error_code
from pipeline.core.errors import InvalidRequest

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient

RESTORE_TAG = "cognito-backuper:restore-of"
TEMP_CLIENT_NAME = "cognito-backuper-restore"
PAGE = 60

# Applied by finalize_new_pool, after the users: triggers and auto-verification could send messages or reject
# restored users; verification templates may need the domain. UserAttributeUpdateSettings goes with
# AutoVerifiedAttributes: Cognito refuses it otherwise ("All attributes in AttributesRequireVerificationBeforeUpdate
# must exist in AutoVerifiedAttributes"). DeletionProtection last, so a failed restore's pool can still be deleted.
DEFERRED_POOL_FIELDS = (
    "LambdaConfig",
    "AutoVerifiedAttributes",
    "UserAttributeUpdateSettings",
    "DeletionProtection",
    "VerificationMessageTemplate",
    "SmsVerificationMessage",
    "EmailVerificationMessage",
    "EmailVerificationSubject",
)
# Legacy duplicates of VerificationMessageTemplate: sending both makes Cognito refuse the request.
LEGACY_VERIFICATION_FIELDS = (
    "SmsVerificationMessage",
    "EmailVerificationMessage",
    "EmailVerificationSubject",
)
# DescribeUserPool members a new pool cannot take as they are: ids, dates, statuses, and what other calls
# recreate (schema, domains). Anything else CreateUserPool's input model lacks is reported as dropped.
POOL_OUTPUT_ONLY = frozenset(
    {
        "Id",
        "Name",
        "Arn",
        "Status",
        "CreationDate",
        "LastModifiedDate",
        "EstimatedNumberOfUsers",
        "SchemaAttributes",
        "Domain",
        "CustomDomain",
        "EmailConfigurationFailure",
        "SmsConfigurationFailure",
    }
)
# ProviderDetails keys that DescribeIdentityProvider returns but Cognito generates itself (the pool's own SAML
# encryption certificate): a new provider gets its own.
IDP_READ_ONLY_DETAILS = ("ActiveEncryptionCertificate",)
# Errors that mean "this piece of configuration cannot be recreated here": reported, the rest goes on.
CONFIG_REJECTED = frozenset(
    {
        "InvalidParameterException",
        "InvalidOAuthFlowException",
        "ScopeDoesNotExistException",
        "DuplicateProviderException",
        "UnsupportedIdentityProviderException",
        "InvalidSmsRoleTrustRelationshipException",
        "InvalidSmsRoleAccessPolicyException",
        "InvalidEmailRoleAccessPolicyException",
        "FeatureUnavailableInTierException",
        "LimitExceededException",
    }
)


@dataclass
class PoolRestoreResult:
    pool_id: str
    created: bool
    groups_created: int = 0
    groups_existing: int = 0
    app_clients_created: int = 0
    identity_providers_created: int = 0
    resource_servers_created: int = 0
    domain: str | None = None
    conflicts: list[str] = field(default_factory=list)  # names groups, attributes, clients: never users
    client_id_map: dict[str, str] = field(default_factory=dict)  # backed-up ClientId -> ClientId in the pool
    temp_client_id: str | None = None  # for SignUp of UNCONFIRMED users; deleted by finalize_new_pool
    dropped: list[str] = field(
        default_factory=list
    )  # "Operation: field path" left out of a request; no values


def _fit(value: Any, shape: Shape | None, dropped: list[str] | None = None, path: str = "") -> Any:
    """``value`` reduced to what ``shape`` accepts (unknown members and nulls dropped, recursively); the paths
    of dropped members with a value are appended to ``dropped``."""
    if value is None:
        return None
    if isinstance(shape, StructureShape):
        if not isinstance(value, Mapping):
            return None
        fitted = {}
        for k, v in value.items():
            if k in shape.members:
                fitted[k] = _fit(v, shape.members[k], dropped, f"{path}{k}.")
            elif dropped is not None and v not in (None, "", [], {}):
                dropped.append(f"{path}{k}")
        return {k: v for k, v in fitted.items() if v is not None}
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [_fit(v, shape.member, dropped, path) for v in value]
    if isinstance(shape, MapShape) and isinstance(value, Mapping):
        return {k: _fit(v, shape.value, dropped, path) for k, v in value.items()}
    return value


def request(
    cognito: CognitoIdentityProviderClient,
    operation: str,
    value: Mapping[str, Any],
    dropped: list[str] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``operation`` taken from a backed-up response; ``dropped`` collects the paths of
    members the operation's input model does not accept."""
    shape = cognito.meta.service_model.operation_model(operation).input_shape
    fitted: dict[str, Any] = _fit(value, shape, dropped) or {}
    return fitted


def _pages(call: Callable[..., Any], key: str, **kwargs: Any) -> list[Any]:
    items: list[Any] = []
    token: str | None = None
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        items.extend(page.get(key, []))
        token = page.get("NextToken")
        if not token:
            return items


def _try(conflicts: list[str], what: str, call: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
    """Run a create call; a configuration Cognito rejects here becomes a conflict (and None), not a failure."""
    try:
        return call(**kwargs)
    except botocore.exceptions.ClientError as exc:
        code = error_code(exc)
        if code not in CONFIG_REJECTED:
            raise
        conflicts.append(f"{what} not created ({code})")
        return None


# --- schema -------------------------------------------------------------------------------------------------

_STANDARD_IMMUTABLE = frozenset({"sub"})


def _is_custom(name: str) -> bool:
    return name.startswith(("custom:", "dev:custom:"))


def _schema_entry(attribute: Mapping[str, Any]) -> dict[str, Any]:
    """A SchemaAttributeType for CreateUserPool / AddCustomAttributes from a DescribeUserPool entry."""
    name = str(attribute["Name"])
    entry: dict[str, Any] = {
        k: attribute[k]
        for k in ("AttributeDataType", "DeveloperOnlyAttribute", "Mutable", "Required")
        if attribute.get(k) is not None
    }
    if _is_custom(name):
        entry["Name"] = name.removeprefix("dev:").removeprefix("custom:")
        entry.pop("Required", None)  # Cognito refuses required custom attributes
    else:
        entry["Name"] = name
    for key in ("StringAttributeConstraints", "NumberAttributeConstraints"):
        if attribute.get(key):
            entry[key] = dict(attribute[key])
    return entry


def _schema(pool: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Custom attributes, plus standard ones whose Required/Mutable differ from Cognito's defaults."""
    schema = []
    for attribute in pool.get("SchemaAttributes") or []:
        name = str(attribute.get("Name", ""))
        changed = attribute.get("Required") or attribute.get("Mutable") is False
        if _is_custom(name) or (name not in _STANDARD_IMMUTABLE and changed):
            schema.append(_schema_entry(attribute))
    return schema


# --- the pool itself ----------------------------------------------------------------------------------------


def _pool_settings(pool: Mapping[str, Any]) -> dict[str, Any]:
    settings = {k: v for k, v in pool.items() if k not in DEFERRED_POOL_FIELDS}
    policies = settings.get("Policies") or {}
    admin = settings.get("AdminCreateUserConfig")
    if admin and "TemporaryPasswordValidityDays" in (policies.get("PasswordPolicy") or {}):
        # Cognito refuses the deprecated UnusedAccountValidityDays next to TemporaryPasswordValidityDays.
        settings["AdminCreateUserConfig"] = {
            k: v for k, v in admin.items() if k != "UnusedAccountValidityDays"
        }
    return settings


def _find_restored_pool(cognito: CognitoIdentityProviderClient, name: str, source: str) -> str | None:
    """The pool an earlier run of this restore created, found by name and tag; None when there is none yet."""
    foreign = []
    for summary in _pages(cognito.list_user_pools, "UserPools", MaxResults=PAGE):
        if summary.get("Name") != name:
            continue
        pool_id = str(summary["Id"])
        tags = describe_pool(cognito, pool_id).get("UserPoolTags") or {}
        if tags.get(RESTORE_TAG) == source:
            return pool_id
        foreign.append(pool_id)
    if foreign:
        # Pool names are not unique in Cognito, but a second pool of the same name would confuse everyone.
        raise InvalidRequest(
            f"a user pool named {name!r} already exists ({', '.join(foreign)}) and is not a restore of {source}: "
            "choose another name, or restore into that pool explicitly"
        )
    return None


def _create_pool(
    cognito: CognitoIdentityProviderClient,
    config: Mapping[str, Any],
    name: str,
    source: str,
    result_dropped: list[str],
) -> str:
    pool = config["pool"]
    dropped: list[str] = []
    kwargs = request(cognito, "CreateUserPool", _pool_settings(pool), dropped)
    result_dropped.extend(f"CreateUserPool: {p}" for p in dropped if p not in POOL_OUTPUT_ONLY)
    kwargs.update(PoolName=name, MfaConfiguration="OFF")  # MFA follows through SetUserPoolMfaConfig
    kwargs["UserPoolTags"] = {**(pool.get("UserPoolTags") or {}), RESTORE_TAG: source}
    schema = _schema(pool)
    if schema:
        kwargs["Schema"] = schema
    created = cognito.create_user_pool(**kwargs)["UserPool"]
    pool_id = str(created["Id"])
    mfa = dict(config.get("mfaConfig") or {})
    webauthn = dict(mfa.get("WebAuthnConfiguration") or {})
    if webauthn.pop("RelyingPartyId", None):
        # The relying party is the source pool's domain, which the new pool does not own (passkeys are not
        # in a backup either): Cognito then uses the new pool's own domain.
        mfa["WebAuthnConfiguration"] = webauthn
        result_dropped.append("SetUserPoolMfaConfig: WebAuthnConfiguration.RelyingPartyId")
    if mfa.get("MfaConfiguration", "OFF") != "OFF":
        try:
            cognito.set_user_pool_mfa_config(
                **request(cognito, "SetUserPoolMfaConfig", mfa), UserPoolId=pool_id
            )
        except botocore.exceptions.ClientError as exc:
            # A pool restored with weaker MFA than its backup would be a silent downgrade: stop instead.
            raise InvalidRequest(
                f"cannot apply the backed-up MFA configuration to pool {pool_id} ({error_code(exc)})"
            ) from exc
    return pool_id


# --- pieces of configuration, each "create what is missing by name" -----------------------------------------


def _merge_custom_attributes(
    cognito: CognitoIdentityProviderClient, pool_id: str, pool: Mapping[str, Any], result: PoolRestoreResult
) -> None:
    live = {a["Name"]: a for a in describe_pool(cognito, pool_id).get("SchemaAttributes") or []}
    missing = []
    for attribute in pool.get("SchemaAttributes") or []:
        name = str(attribute.get("Name", ""))
        if not _is_custom(name):
            continue
        current = live.get(name)
        if current is None:
            missing.append(_schema_entry(attribute))
            continue
        differs = [k for k in ("AttributeDataType", "Mutable") if current.get(k) != attribute.get(k)]
        if differs:
            result.conflicts.append(f"attribute {name}: {', '.join(differs)} differ; left unchanged")
    if missing:
        cognito.add_custom_attributes(UserPoolId=pool_id, CustomAttributes=missing)  # type: ignore[arg-type]


def _identity_providers(
    cognito: CognitoIdentityProviderClient, pool_id: str, config: Mapping[str, Any], result: PoolRestoreResult
) -> None:
    existing = {
        p["ProviderName"]
        for p in _pages(cognito.list_identity_providers, "Providers", UserPoolId=pool_id, MaxResults=PAGE)
    }
    for provider in config.get("identityProviders") or []:
        name = provider["ProviderName"]
        if name in existing:
            continue
        kwargs = request(cognito, "CreateIdentityProvider", provider)
        kwargs["UserPoolId"] = pool_id
        details = dict(kwargs.get("ProviderDetails") or {})
        for key in IDP_READ_ONLY_DETAILS:
            if details.pop(key, None) is not None:
                result.dropped.append(f"CreateIdentityProvider {name}: ProviderDetails.{key}")
        if "ProviderDetails" in kwargs:
            kwargs["ProviderDetails"] = details
        if _try(result.conflicts, f"identity provider {name}", cognito.create_identity_provider, kwargs):
            result.identity_providers_created += 1


def _resource_servers(
    cognito: CognitoIdentityProviderClient, pool_id: str, config: Mapping[str, Any], result: PoolRestoreResult
) -> None:
    existing = {
        s["Identifier"]
        for s in _pages(cognito.list_resource_servers, "ResourceServers", UserPoolId=pool_id, MaxResults=50)
    }
    for server in config.get("resourceServers") or []:
        identifier = server["Identifier"]
        if identifier in existing:
            continue
        kwargs = request(cognito, "CreateResourceServer", server)
        kwargs["UserPoolId"] = pool_id
        what = f"resource server {identifier}"
        if _try(result.conflicts, what, cognito.create_resource_server, kwargs):
            result.resource_servers_created += 1


def _live_clients(cognito: CognitoIdentityProviderClient, pool_id: str) -> dict[str, str]:
    """ClientName -> ClientId; with duplicate names the first one wins, as a restore only needs one."""
    names: dict[str, str] = {}
    for c in _pages(cognito.list_user_pool_clients, "UserPoolClients", UserPoolId=pool_id, MaxResults=PAGE):
        names.setdefault(str(c.get("ClientName", "")), str(c["ClientId"]))
    return names


def _app_clients(
    cognito: CognitoIdentityProviderClient,
    pool_id: str,
    config: Mapping[str, Any],
    result: PoolRestoreResult,
    start: int,
    out_of_time: Callable[[], bool],
) -> int:
    """Creates the missing app clients from the ``start``-th backed-up one; returns where the next slice resumes."""
    clients = list(config.get("appClients") or [])
    if start >= len(clients):
        return len(clients)
    existing = _live_clients(cognito, pool_id)
    index = start
    while index < len(clients) and (index == start or not out_of_time()):
        client = clients[index]
        index += 1
        name, old_id = str(client.get("ClientName", "")), str(client.get("ClientId", ""))
        if name in existing:
            result.client_id_map[old_id] = existing[name]
            continue
        kwargs = request(cognito, "CreateUserPoolClient", client)
        kwargs.pop("ClientSecret", None)  # never in a backup; a new secret is generated instead
        kwargs.update(UserPoolId=pool_id, ClientName=name, GenerateSecret=bool(client.get("hadSecret")))
        created = _try(result.conflicts, f"app client {name}", cognito.create_user_pool_client, kwargs)
        if created:
            result.client_id_map[old_id] = existing[name] = str(created["UserPoolClient"]["ClientId"])
            result.app_clients_created += 1
    return index


def _temp_client(cognito: CognitoIdentityProviderClient, pool_id: str, pool: Mapping[str, Any]) -> str | None:
    """A secret-less client for SignUp of UNCONFIRMED users, or None where SignUp must not be used.

    A pool that allows only admin-created users refuses SignUp; opening it up for the restore would let
    strangers sign up meanwhile, so its UNCONFIRMED users fall back to FORCE_CHANGE_PASSWORD instead.
    """
    if (pool.get("AdminCreateUserConfig") or {}).get("AllowAdminCreateUserOnly"):
        return None
    existing = _live_clients(cognito, pool_id).get(TEMP_CLIENT_NAME)
    if existing:
        return existing
    created = cognito.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName=TEMP_CLIENT_NAME,
        GenerateSecret=False,
        ExplicitAuthFlows=["ALLOW_REFRESH_TOKEN_AUTH"],  # SignUp needs no sign-in flow
        PreventUserExistenceErrors="LEGACY",  # an existing user must surface as UsernameExistsException
    )
    return str(created["UserPoolClient"]["ClientId"])


def _domain(
    cognito: CognitoIdentityProviderClient,
    pool_id: str,
    description: Mapping[str, Any] | None,
    result: PoolRestoreResult,
) -> None:
    if not description or not description.get("Domain"):
        return
    name = str(description["Domain"])
    owner = (cognito.describe_user_pool_domain(Domain=name).get("DomainDescription") or {}).get("UserPoolId")
    if owner == pool_id:
        result.domain = result.domain or name
        return
    if owner:
        result.conflicts.append(f"domain {name} is in use by pool {owner}; not created")
        return
    kwargs = request(cognito, "CreateUserPoolDomain", description)
    kwargs.update(Domain=name, UserPoolId=pool_id)
    if _try(result.conflicts, f"domain {name}", cognito.create_user_pool_domain, kwargs):
        result.domain = result.domain or name


def _domains(
    cognito: CognitoIdentityProviderClient, pool_id: str, config: Mapping[str, Any], result: PoolRestoreResult
) -> None:
    live = describe_pool(cognito, pool_id)
    for key, live_key in (("domain", "Domain"), ("customDomain", "CustomDomain")):
        wanted = config.get(key) or {}
        current = live.get(live_key)
        if current and wanted.get("Domain") and current != wanted["Domain"]:
            # A pool has one domain of each kind: never replace the existing one.
            result.conflicts.append(f"{key} {wanted['Domain']} not created: the pool already has {current}")
            continue
        _domain(cognito, pool_id, wanted, result)


def _wanted_groups(config: Mapping[str, Any], only: Collection[str] | None) -> list[dict[str, Any]]:
    """The backed-up groups to restore, sorted by name: a slice's index into this list is its cursor."""
    backed_up = {g["name"]: g for g in config.get("groups") or []}
    if only is not None:
        unknown = sorted(set(only) - set(backed_up))
        if unknown:
            raise InvalidRequest(f"groups not in the backup: {', '.join(unknown)}")
    return [backed_up[name] for name in sorted(backed_up) if only is None or name in only]


def _groups(
    cognito: CognitoIdentityProviderClient,
    pool_id: str,
    wanted: list[dict[str, Any]],
    result: PoolRestoreResult,
    start: int,
    out_of_time: Callable[[], bool],
) -> int:
    """Creates the groups from the ``start``-th on; an existing one is read (GetGroup) and compared instead.

    One call per group, never a listing of the pool's groups per slice: 10,000 groups would be 167 ListGroups
    pages in every slice. Returns where the next slice resumes.
    """
    index = start
    while index < len(wanted) and (index == start or not out_of_time()):
        group = wanted[index]
        index += 1
        name = group["name"]
        kwargs: dict[str, Any] = {"UserPoolId": pool_id, "GroupName": name}
        for key, arg in (
            ("description", "Description"),
            ("precedence", "Precedence"),
            ("roleArn", "RoleArn"),
        ):
            if group.get(key) is not None:
                kwargs[arg] = group[key]
        try:
            cognito.create_group(**kwargs)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "GroupExistsException":  # there before, or made by an interrupted slice
                raise
            result.groups_existing += 1
            live = cognito.get_group(UserPoolId=pool_id, GroupName=name)["Group"]
            current = {
                "description": live.get("Description") or None,
                "precedence": live.get("Precedence"),
                "roleArn": live.get("RoleArn"),
            }
            differs = [k for k in ("description", "precedence", "roleArn") if current.get(k) != group.get(k)]
            if differs:
                result.conflicts.append(f"group {name}: {', '.join(differs)} differ; left unchanged")
            continue
        result.groups_created += 1
    return index


# --- entry points -------------------------------------------------------------------------------------------


# Phases of a restore of the configuration, in order: a slice resumes at (phase, index).
POOL_PHASE, CLIENTS_PHASE, GROUPS_PHASE, DONE_PHASE = "pool", "appClients", "groups", "done"
CONFIG_PHASES = (POOL_PHASE, CLIENTS_PHASE, GROUPS_PHASE, DONE_PHASE)


@dataclass
class ConfigSlice:
    """One slice of a configuration restore: what it did, and where the next one resumes."""

    result: PoolRestoreResult
    phase: str
    index: int

    @property
    def done(self) -> bool:
        return self.phase == DONE_PHASE


def restore_pool_config_slice(
    cognito: CognitoIdentityProviderClient,
    config: Mapping[str, Any],
    *,
    source: str,
    target_pool_id: str | None = None,
    new_pool_name: str | None = None,
    groups: Collection[str] | None = None,
    phase: str = POOL_PHASE,
    index: int = 0,
    pool_id: str | None = None,
    created: bool = False,
    deadline: float = float("inf"),
    clock: Callable[[], float] = time.monotonic,
) -> ConfigSlice:
    """Restores the configuration from (``phase``, ``index``) until it ends or ``deadline`` passes.

    Thousands of app clients or groups take longer at the deployed rate than one Lambda call may run; each
    piece is "create what is missing by name", so a retried slice only finds its own work done. ``pool_id``
    and ``created`` carry the first slice's pool to the next ones.
    """
    if (target_pool_id is None) == (new_pool_name is None):
        raise InvalidRequest("restore either into an existing pool or into a new pool, not both or neither")
    if phase not in CONFIG_PHASES:
        raise InvalidRequest(f"unknown configuration restore phase {phase!r}")
    full = new_pool_name is not None or groups is None
    wanted = _wanted_groups(config, groups)
    progressed = phase == POOL_PHASE
    if phase == POOL_PHASE:
        result = _restore_pool(cognito, config, source, target_pool_id, new_pool_name, full)
        phase, index = (CLIENTS_PHASE if full else GROUPS_PHASE), 0
    else:
        if pool_id is None:
            raise InvalidRequest("a configuration restore slice after the first needs the pool id")
        result = PoolRestoreResult(pool_id=pool_id, created=created)

    def out_of_time() -> bool:
        return clock() >= deadline

    # Each slice makes progress (a called piece creates at least one item), then goes on while time is left.
    with pool_errors(result.pool_id):
        if phase == CLIENTS_PHASE and (not progressed or not out_of_time()):
            clients = config.get("appClients") or []
            index = _app_clients(cognito, result.pool_id, config, result, index, out_of_time)
            progressed = progressed or bool(clients)
            if index >= len(clients):
                phase, index = GROUPS_PHASE, 0
        if phase == GROUPS_PHASE and (not progressed or not out_of_time()):
            index = _groups(cognito, result.pool_id, wanted, result, index, out_of_time)
            if index >= len(wanted):
                phase, index = DONE_PHASE, 0
    return ConfigSlice(result=result, phase=phase, index=index)


def _restore_pool(
    cognito: CognitoIdentityProviderClient,
    config: Mapping[str, Any],
    source: str,
    target_pool_id: str | None,
    new_pool_name: str | None,
    full: bool,
) -> PoolRestoreResult:
    """The first slice: the pool itself (found again or created), and the pieces that are few by nature."""
    pool = config["pool"]
    if new_pool_name is not None:
        with pool_errors(str(pool.get("Id", "?"))):
            pool_id = _find_restored_pool(cognito, new_pool_name, source)
            created = pool_id is None
            dropped: list[str] = []
            if pool_id is None:
                pool_id = _create_pool(cognito, config, new_pool_name, source, dropped)
        result = PoolRestoreResult(pool_id=pool_id, created=created, dropped=dropped)
    else:
        assert target_pool_id is not None
        result = PoolRestoreResult(pool_id=target_pool_id, created=False)
    with pool_errors(result.pool_id):
        if full:
            if not result.created:
                _merge_custom_attributes(cognito, result.pool_id, pool, result)
            _identity_providers(cognito, result.pool_id, config, result)
            _resource_servers(cognito, result.pool_id, config, result)
            _domains(cognito, result.pool_id, config, result)
        if new_pool_name is not None:
            result.temp_client_id = _temp_client(cognito, result.pool_id, pool)
    return result


def restore_pool_config(
    cognito: CognitoIdentityProviderClient,
    config: Mapping[str, Any],
    *,
    source: str,
    target_pool_id: str | None = None,
    new_pool_name: str | None = None,
    groups: Collection[str] | None = None,
) -> PoolRestoreResult:
    """Create (``new_pool_name``) or merge into (``target_pool_id``) a pool from a backed-up configuration.

    ``source`` is ``"<source pool id>/<backup id>"``: the tag that lets a re-run find the pool it created.
    ``groups`` restricts the restore to these groups; into an existing pool nothing else is then touched.
    Without a time budget: the whole configuration in one slice.
    """
    return restore_pool_config_slice(
        cognito,
        config,
        source=source,
        target_pool_id=target_pool_id,
        new_pool_name=new_pool_name,
        groups=groups,
    ).result


def finalize_new_pool(
    cognito: CognitoIdentityProviderClient,
    pool_id: str,
    config: Mapping[str, Any],
    temp_client_id: str | None,
) -> None:
    """After the users: triggers, auto-verification and verification messages; the temporary client goes.

    UpdateUserPool resets every setting it is not given to its default, so the request carries the pool's
    current settings with the deferred ones laid over them.
    """
    backed_up = config["pool"]
    with pool_errors(pool_id):
        live = describe_pool(cognito, pool_id)
        settings = _pool_settings(live)
        for key in DEFERRED_POOL_FIELDS:
            if backed_up.get(key) is not None:
                settings[key] = backed_up[key]
        if settings.get("VerificationMessageTemplate"):
            for key in LEGACY_VERIFICATION_FIELDS:
                settings.pop(key, None)
        kwargs = request(cognito, "UpdateUserPool", settings)
        kwargs["UserPoolId"] = pool_id
        kwargs.pop("PoolName", None)
        cognito.update_user_pool(**kwargs)
        if temp_client_id:
            try:
                cognito.delete_user_pool_client(UserPoolId=pool_id, ClientId=temp_client_id)
            except botocore.exceptions.ClientError as exc:
                message = str(exc.response.get("Error", {}).get("Message", "")).lower()
                if error_code(exc) != "ResourceNotFoundException" or "user pool" in message:
                    raise  # only an already deleted client (a re-run) is fine
