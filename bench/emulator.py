"""A quota-faithful, in-memory Cognito user pools emulator for the benchmark (never part of the package).

- O(page) per page: ListUsers walks a per-pool list with an index cursor; ``Filter: sub ^= "x"`` walks a
  per-prefix index (1 and 2 hex digits), ListUsersInGroup a per-group member list.
- Server-side token buckets per quota category at the default rates (burst: one second of traffic), shared by
  every caller of one emulator (one account and Region); an empty bucket answers TooManyRequestsException.
- A modelled latency per operation, slept on the virtual clock after the request is admitted.
- :class:`CognitoClient` has boto3's method names and shapes and raises botocore ``ClientError``, so the
  pipeline's own functions run against it unchanged. botocore events do not fire for a fake, so it does what
  ``pipeline.cognito.throttle.install`` hooks do: ``RateBudget.acquire`` before every attempt, ``on_throttle`` and a
  full-jitter backoff on the virtual clock for a throttled one, ``on_success`` after a good one.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import botocore.session
from botocore.exceptions import ClientError
from botocore.paginate import Paginator

from bench.vclock import VirtualClock
from pipeline.cognito import throttle
from pipeline.core.errors import Throttled

Limiter = Callable[[str, str | None], float]

# Assumed service latencies (seconds) per call; not published by AWS. A 60-item page costs more than one user.
DEFAULT_LATENCY: Mapping[str, float] = {
    "ListUsers": 0.10,
    "ListUsersInGroup": 0.08,
    "AdminListGroupsForUser": 0.04,
    "ListGroups": 0.05,
    "AdminCreateUser": 0.06,
    "AdminSetUserPassword": 0.05,
    "AdminDisableUser": 0.04,
    "AdminAddUserToGroup": 0.04,
    "AdminGetUser": 0.03,
    "CreateGroup": 0.05,
}
DEFAULT_OP_LATENCY = 0.03
_EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
MAX_PAGE = 60


def client_error(code: str, message: str, operation: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},  # type: ignore[typeddict-item]
        operation,
    )


@dataclass
class Group:
    name: str
    precedence: int
    members: list[int] = field(default_factory=list)  # user indices, in insertion order
    member_set: set[int] = field(default_factory=set)


class Pool:
    """Users are indices; generated users derive their attributes from the index (compact at a million)."""

    def __init__(self, pool_id: str) -> None:
        self.pool_id = pool_id
        self.names: list[str] = []
        self.by_name: dict[str, int] = {}
        self.subs: list[str] = []
        self.enabled: list[bool] = []
        self.status: list[str] = []
        self.attrs: list[dict[str, str] | None] = []  # None: generated, see _attributes
        self.user_groups: list[list[str]] = []
        self.by_prefix: dict[str, list[int]] = {}
        self.groups: dict[str, Group] = {}

    def add_user(self, name: str, sub: str, status: str, enabled: bool, attrs: dict[str, str] | None) -> int:
        index = len(self.names)
        self.names.append(name)
        self.by_name[name] = index
        self.subs.append(sub)
        self.status.append(status)
        self.enabled.append(enabled)
        self.attrs.append(attrs)
        self.user_groups.append([])
        for n in (1, 2):
            self.by_prefix.setdefault(sub[:n], []).append(index)
        return index

    def add_member(self, group: str, index: int) -> bool:
        g = self.groups[group]
        if index in g.member_set:
            return False
        g.members.append(index)
        g.member_set.add(index)
        self.user_groups[index].append(group)
        return True

    def attributes(self, i: int) -> dict[str, str]:
        stored = self.attrs[i]
        if stored is not None:
            return {"sub": self.subs[i], **stored}
        name = self.names[i]
        return {
            "sub": self.subs[i],
            "email": f"{name}@example.com",
            "email_verified": "true",
            "name": f"Person {i}",
            "phone_number": f"+1555{i % 10_000_000:07d}",
            "custom:tier": ("free", "pro", "team")[i % 3],
        }

    def item(self, i: int, attributes_key: str = "Attributes") -> dict[str, Any]:
        return {
            "Username": self.names[i],
            attributes_key: [{"Name": k, "Value": v} for k, v in self.attributes(i).items()],
            "UserCreateDate": _EPOCH,
            "UserLastModifiedDate": _EPOCH,
            "Enabled": self.enabled[i],
            "UserStatus": self.status[i],
        }

    @property
    def memberships(self) -> int:
        return sum(len(g.members) for g in self.groups.values())


@dataclass(frozen=True)
class PoolSpec:
    users: int
    groups: int
    member_share: float = 0.6  # share of users in at least one group
    max_groups_per_user: int = 3
    disabled_share: float = 0.03
    unconfirmed_share: float = 0.05
    seed: int = 7
    largest_last: bool = False  # the most popular group sorts last by name (captured last) instead of first


def generate_pool(pool_id: str, spec: PoolSpec) -> Pool:
    """Deterministic users (random v4-like subs) and memberships: ``member_share`` of users in 1-3 groups,
    popular groups more likely (weights 1/rank)."""
    rng = random.Random(spec.seed)  # noqa: S311 (reproducible test data, not secrets)
    pool = Pool(pool_id)
    names = [
        f"g{k:02d}-{('staff', 'customers', 'beta', 'admins', 'partners')[k % 5]}" for k in range(spec.groups)
    ]
    for k, name in enumerate(names):
        pool.groups[name] = Group(name, precedence=k)
    weights = [1.0 / (k + 1) for k in range(spec.groups)]
    if spec.largest_last:
        weights.reverse()
    for i in range(spec.users):
        sub = f"{rng.getrandbits(128):032x}"
        sub = f"{sub[:8]}-{sub[8:12]}-4{sub[13:16]}-{sub[16:20]}-{sub[20:]}"
        draw = rng.random()
        status = "UNCONFIRMED" if draw < spec.unconfirmed_share else "CONFIRMED"
        enabled = rng.random() >= spec.disabled_share
        index = pool.add_user(f"user-{i:07d}", sub, status, enabled, None)
        if rng.random() < spec.member_share:
            count = rng.randint(1, min(spec.max_groups_per_user, spec.groups))
            for group in set(rng.choices(names, weights=weights, k=count)):
                pool.add_member(group, index)
    return pool


def generate_even_pool(pool_id: str, users: int, groups: int, seed: int = 7) -> Pool:
    """``users`` users split evenly over ``groups`` groups, one group each: no chain longer than the others."""
    rng = random.Random(seed)  # noqa: S311 (reproducible test data, not secrets)
    pool = Pool(pool_id)
    names = [f"g{k:02d}-even" for k in range(groups)]
    for k, name in enumerate(names):
        pool.groups[name] = Group(name, precedence=k)
    for i in range(users):
        sub = f"{rng.getrandbits(128):032x}"
        sub = f"{sub[:8]}-{sub[8:12]}-4{sub[13:16]}-{sub[16:20]}-{sub[20:]}"
        index = pool.add_user(f"user-{i:07d}", sub, "CONFIRMED", True, None)
        pool.add_member(names[i * groups // users], index)
    return pool


def _token(kind: str, key: str, position: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}|{key}|{position}".encode()).decode()


def _untoken(token: str | None, kind: str, key: str, operation: str) -> int:
    if not token:
        return 0
    try:
        got_kind, got_key, position = base64.urlsafe_b64decode(token.encode()).decode().split("|")
        if (got_kind, got_key) == (kind, key):
            return int(position)
    except (ValueError, UnicodeDecodeError):
        pass
    raise client_error("InvalidParameterException", "Invalid pagination token", operation)


def _page_limit(kwargs: Mapping[str, Any], key: str = "Limit") -> int:
    return max(1, min(MAX_PAGE, int(kwargs.get(key) or MAX_PAGE)))


class Emulator:
    """One account and Region: pools, quota buckets, call counts."""

    def __init__(
        self,
        clock: VirtualClock,
        *,
        latency: Mapping[str, float] = DEFAULT_LATENCY,
        default_latency: float = DEFAULT_OP_LATENCY,
        quotas: Mapping[str, float] = throttle.QUOTA_RPS,
        random_throttle: float = 0.0,
        seed: int = 5,
    ) -> None:
        self.clock = clock
        # A share of calls throttled at random although the quota has room: noise, not saturation.
        self.random_throttle = random_throttle
        self._noise = random.Random(seed)  # noqa: S311 (reproducible noise)
        self.latency = dict(latency)
        self.default_latency = default_latency
        self.pools: dict[str, Pool] = {}
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float, float]] = {}  # category -> (rate, tokens, stamp)
        self._quotas = quotas
        self.calls: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.server_cpu_s = 0.0  # CPU spent emulating, to keep it out of the client's measured CPU

    def add_pool(self, pool: Pool) -> Pool:
        self.pools[pool.pool_id] = pool
        return pool

    def _admit(self, operation: str, pool_id: str | None) -> bool:
        category = throttle.category_of(operation)
        limits = [(category, self._quotas.get(category, self._quotas[throttle.UNCATEGORIZED]))]
        per_pool = throttle.PER_POOL_OPERATION_RPS.get(category)
        if per_pool is not None and pool_id:
            limits.append((f"{operation}@{pool_id}", per_pool))
        now = self.clock.now()
        with self._lock:
            self.calls[operation] += 1
            state = []
            for key, rate in limits:
                _, tokens, stamp = self._buckets.get(key, (rate, rate, now))
                state.append((key, rate, min(rate, tokens + (now - stamp) * rate)))
            admitted = all(tokens >= 1.0 for _, _, tokens in state)
            if admitted and self.random_throttle and self._noise.random() < self.random_throttle:
                self.throttled[operation] += 1
                return False
            for key, rate, tokens in state:
                self._buckets[key] = (rate, tokens - 1.0 if admitted else tokens, now)
            if not admitted:
                self.throttled[operation] += 1
            return admitted

    def call(self, operation: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        pool_id = kwargs.get("UserPoolId")
        if not self._admit(operation, pool_id if isinstance(pool_id, str) else None):
            raise client_error("TooManyRequestsException", "Too many requests", operation, 429)
        started = time.thread_time()
        try:
            handler: Callable[[Mapping[str, Any]], dict[str, Any]] = getattr(self, "_" + operation)
            response = handler(kwargs)
        finally:
            spent = time.thread_time() - started
            with self._lock:
                self.server_cpu_s += spent
        self.clock.sleep(self.latency.get(operation, self.default_latency))
        return response

    # --- reads ---------------------------------------------------------------------------------------------------

    def _pool(self, kwargs: Mapping[str, Any], operation: str) -> Pool:
        pool = self.pools.get(str(kwargs.get("UserPoolId")))
        if pool is None:
            raise client_error("ResourceNotFoundException", "User pool does not exist.", operation)
        return pool

    def _user(self, pool: Pool, kwargs: Mapping[str, Any], operation: str) -> int:
        index = pool.by_name.get(str(kwargs.get("Username")))
        if index is None:
            raise client_error("UserNotFoundException", "User does not exist.", operation)
        return index

    def _DescribeUserPool(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        pool = self._pool(kwargs, "DescribeUserPool")
        policy = {"MinimumLength": 8, "RequireUppercase": True, "RequireLowercase": True}
        policy |= {"RequireNumbers": True, "RequireSymbols": False}
        return {
            "UserPool": {
                "Id": pool.pool_id,
                "Name": pool.pool_id,
                "EstimatedNumberOfUsers": len(pool.names),
                "UsernameAttributes": [],
                "Policies": {"PasswordPolicy": policy},
            }
        }

    def _GetUserPoolMfaConfig(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        self._pool(kwargs, "GetUserPoolMfaConfig")
        return {"MfaConfiguration": "OFF"}

    def _ListUserPoolClients(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        self._pool(kwargs, "ListUserPoolClients")
        return {"UserPoolClients": []}

    def _ListIdentityProviders(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        self._pool(kwargs, "ListIdentityProviders")
        return {"Providers": []}

    def _ListResourceServers(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        self._pool(kwargs, "ListResourceServers")
        return {"ResourceServers": []}

    def _ListUsers(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        pool = self._pool(kwargs, "ListUsers")
        filt = str(kwargs.get("Filter") or "")
        if not filt:
            key, indices = "", None
        elif filt.startswith('sub ^= "') and filt.endswith('"'):
            key = filt[len('sub ^= "') : -1]
            if len(key) not in (1, 2):
                raise client_error(
                    "InvalidParameterException", "emulator: 1-2 digit sub prefixes", "ListUsers"
                )
            indices = pool.by_prefix.get(key, [])
        else:
            raise client_error("InvalidParameterException", "emulator: unsupported filter", "ListUsers")
        start = _untoken(kwargs.get("PaginationToken"), "users", key, "ListUsers")
        end = start + _page_limit(kwargs)
        total = len(pool.names) if indices is None else len(indices)
        chosen = range(start, min(end, total)) if indices is None else indices[start:end]
        response: dict[str, Any] = {"Users": [pool.item(i) for i in chosen]}
        if end < total:
            response["PaginationToken"] = _token("users", key, end)
        return response

    def _ListGroups(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        pool = self._pool(kwargs, "ListGroups")
        names = sorted(pool.groups)
        start = _untoken(kwargs.get("NextToken"), "groups", "", "ListGroups")
        end = start + _page_limit(kwargs)
        groups = [
            {"GroupName": n, "UserPoolId": pool.pool_id, "Precedence": pool.groups[n].precedence}
            for n in names[start:end]
        ]
        response: dict[str, Any] = {"Groups": groups}
        if end < len(names):
            response["NextToken"] = _token("groups", "", end)
        return response

    def _ListUsersInGroup(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        pool = self._pool(kwargs, "ListUsersInGroup")
        name = str(kwargs.get("GroupName"))
        group = pool.groups.get(name)
        if group is None:
            raise client_error("ResourceNotFoundException", "Group not found.", "ListUsersInGroup")
        start = _untoken(kwargs.get("NextToken"), "members", name, "ListUsersInGroup")
        end = start + _page_limit(kwargs)
        response: dict[str, Any] = {"Users": [pool.item(i) for i in group.members[start:end]]}
        if end < len(group.members):
            response["NextToken"] = _token("members", name, end)
        return response

    def _AdminListGroupsForUser(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        pool = self._pool(kwargs, "AdminListGroupsForUser")
        index = self._user(pool, kwargs, "AdminListGroupsForUser")
        start = _untoken(kwargs.get("NextToken"), "user-groups", str(index), "AdminListGroupsForUser")
        end = start + _page_limit(kwargs)
        names = pool.user_groups[index]
        response: dict[str, Any] = {
            "Groups": [{"GroupName": n, "UserPoolId": pool.pool_id} for n in names[start:end]]
        }
        if end < len(names):
            response["NextToken"] = _token("user-groups", str(index), end)
        return response

    def _AdminGetUser(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        pool = self._pool(kwargs, "AdminGetUser")
        return pool.item(self._user(pool, kwargs, "AdminGetUser"), "UserAttributes")

    # --- writes --------------------------------------------------------------------------------------------------

    def _AdminCreateUser(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        pool = self._pool(kwargs, "AdminCreateUser")
        name = str(kwargs["Username"])
        with self._lock:
            if name in pool.by_name:
                raise client_error(
                    "UsernameExistsException", "User account already exists.", "AdminCreateUser"
                )
            attrs = {a["Name"]: a["Value"] for a in kwargs.get("UserAttributes", [])}
            sub = hashlib.sha256(f"{pool.pool_id}/{name}".encode()).hexdigest()[:32]
            sub = f"{sub[:8]}-{sub[8:12]}-4{sub[13:16]}-{sub[16:20]}-{sub[20:]}"
            index = pool.add_user(name, sub, "FORCE_CHANGE_PASSWORD", True, attrs)
        return {"User": pool.item(index)}

    def _AdminSetUserPassword(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        pool = self._pool(kwargs, "AdminSetUserPassword")
        index = self._user(pool, kwargs, "AdminSetUserPassword")
        if kwargs.get("Permanent"):
            pool.status[index] = "CONFIRMED"
        return {}

    def _AdminDisableUser(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        pool = self._pool(kwargs, "AdminDisableUser")
        pool.enabled[self._user(pool, kwargs, "AdminDisableUser")] = False
        return {}

    def _AdminAddUserToGroup(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        pool = self._pool(kwargs, "AdminAddUserToGroup")
        index = self._user(pool, kwargs, "AdminAddUserToGroup")
        if str(kwargs.get("GroupName")) not in pool.groups:
            raise client_error("ResourceNotFoundException", "Group not found.", "AdminAddUserToGroup")
        with self._lock:
            pool.add_member(str(kwargs["GroupName"]), index)
        return {}

    def _CreateGroup(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        pool = self._pool(kwargs, "CreateGroup")
        name = str(kwargs["GroupName"])
        with self._lock:
            if name in pool.groups:
                raise client_error(
                    "GroupExistsException", "A group with the name already exists.", "CreateGroup"
                )
            pool.groups[name] = Group(name, int(kwargs.get("Precedence") or 0))
        return {"Group": {"GroupName": name, "UserPoolId": pool.pool_id}}


class CognitoClient:
    """boto3's cognito-idp method names over an :class:`Emulator`, with the pipeline's client-side throttling."""

    def __init__(
        self,
        emulator: Emulator,
        *,
        budget: throttle.RateBudget | None = None,
        limiter: Limiter | None = None,
        max_attempts: int = 8,
        base_delay: float = 0.2,
        max_delay: float = 20.0,
        seed: int = 11,
    ) -> None:
        self.emulator = emulator
        self.budget = budget
        self.limiter = limiter or (budget.acquire if budget is not None else None)
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._rng = random.Random(seed)  # noqa: S311 (backoff jitter)

    def _call(self, operation: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        pool_id = kwargs.get("UserPoolId")
        category = throttle.category_of(operation)
        attempt = 0
        while True:
            attempt += 1
            if self.limiter is not None:
                self.limiter(operation, pool_id if isinstance(pool_id, str) else None)
            try:
                response = self.emulator.call(operation, kwargs)
            except ClientError as exc:
                if not throttle.is_throttle(exc.response, None):
                    raise
                if self.budget is not None:
                    self.budget.on_throttle(category)
                if attempt >= self.max_attempts:
                    raise Throttled(f"Cognito kept throttling {operation} after {attempt} attempts") from exc
                delay = throttle.backoff_delay(
                    attempt, base_delay=self.base_delay, max_delay=self.max_delay, rng=self._rng.random
                )
                self.emulator.clock.sleep(delay)
                continue
            if self.budget is not None:
                self.budget.on_success(category)
            return response

    def describe_user_pool(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("DescribeUserPool", kwargs)

    def get_user_pool_mfa_config(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("GetUserPoolMfaConfig", kwargs)

    def list_user_pool_clients(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("ListUserPoolClients", kwargs)

    def list_identity_providers(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("ListIdentityProviders", kwargs)

    def list_resource_servers(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("ListResourceServers", kwargs)

    def list_users(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("ListUsers", kwargs)

    def get_paginator(self, name: str) -> Paginator[Any]:
        """boto3's paginator over this client's methods, from botocore's own paginator model for Cognito."""
        operation = "".join(part.title() for part in name.split("_"))
        session = botocore.session.get_session()
        model = session.get_service_model("cognito-idp").operation_model(operation)
        config = session.get_paginator_model("cognito-idp").get_paginator(operation)
        return Paginator(getattr(self, name), config, model)

    def list_groups(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("ListGroups", kwargs)

    def list_users_in_group(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("ListUsersInGroup", kwargs)

    def admin_list_groups_for_user(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("AdminListGroupsForUser", kwargs)

    def admin_get_user(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("AdminGetUser", kwargs)

    def admin_create_user(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("AdminCreateUser", kwargs)

    def admin_set_user_password(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("AdminSetUserPassword", kwargs)

    def admin_disable_user(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("AdminDisableUser", kwargs)

    def admin_add_user_to_group(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("AdminAddUserToGroup", kwargs)

    def create_group(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("CreateGroup", kwargs)


def pipeline_budget(clock: VirtualClock, fraction: float = 1.0) -> throttle.RateBudget:
    """The pipeline's own RateBudget, bound to the virtual clock."""
    return throttle.RateBudget(fraction=fraction, clock=clock.now, sleep=clock.sleep)


def global_limiter(clock: VirtualClock, rps: float) -> Limiter:
    """One cap for every call, whatever its category (the retired AWS solution's COGNITO_TPS)."""
    bucket = throttle.TokenBucket(rps, 1.0, clock=clock.now, sleep=clock.sleep)

    def acquire(_operation: str, _pool: str | None) -> float:
        return bucket.acquire()

    return acquire
