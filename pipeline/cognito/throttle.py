"""Client-side rate limiting and throttling retries for Cognito, per request-rate quota category.

Cognito's quotas are per account and Region, per category of operations, and shared with the customer's own
production traffic. Every attempt (including retries) takes a token from its category's bucket; a throttled
attempt halves that category's rate (AIMD) and is retried with full-jitter exponential backoff; after
``max_attempts`` the pipeline raises :class:`~pipeline.core.errors.Throttled`, and the state machine backs off.

Categories and default rates follow "Quotas in Amazon Cognito" (user pools API operation categories).
"""

from __future__ import annotations

import functools
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from botocore.retries.standard import RetryEventAdapter, ThrottlingErrorDetector

from pipeline.core.errors import InvalidRequest, Throttled

if TYPE_CHECKING:
    from botocore.client import BaseClient

Clock = Callable[[], float]
Sleep = Callable[[float], None]

QUOTA_RPS: Mapping[str, float] = MappingProxyType(
    {
        "UserAuthentication": 120.0,
        "UserCreation": 50.0,
        "UserAccountRecovery": 30.0,
        "UserRead": 120.0,
        "UserUpdate": 25.0,
        "UserToken": 120.0,
        "UserResourceRead": 50.0,
        "UserResourceUpdate": 25.0,
        "UserList": 30.0,
        "UserPoolRead": 15.0,
        "UserPoolUpdate": 15.0,
        "UserPoolResourceRead": 20.0,
        "UserPoolResourceUpdate": 15.0,
        "UserPoolClientRead": 15.0,
        "UserPoolClientUpdate": 15.0,
        # Not a Cognito category: where an operation missing from OPERATION_CATEGORY goes, conservatively.
        "Uncategorized": 5.0,
    }
)

UNCATEGORIZED = "Uncategorized"

# Categories whose every operation is also capped per user pool (footnote 1 of the quota table).
PER_POOL_OPERATION_RPS: Mapping[str, float] = MappingProxyType(
    {
        "UserPoolResourceRead": 5.0,
        "UserPoolResourceUpdate": 5.0,
        "UserPoolClientRead": 5.0,
        "UserPoolClientUpdate": 5.0,
    }
)


def _categories(table: Mapping[str, tuple[str, ...]]) -> Mapping[str, str]:
    return MappingProxyType({op: category for category, ops in table.items() for op in ops})


OPERATION_CATEGORY: Mapping[str, str] = _categories(
    {
        "UserAuthentication": (
            "AdminInitiateAuth",
            "InitiateAuth",
            "AdminRespondToAuthChallenge",
            "RespondToAuthChallenge",
        ),
        "UserCreation": ("SignUp", "ConfirmSignUp", "AdminCreateUser", "AdminConfirmSignUp"),
        "UserAccountRecovery": (
            "ForgotPassword",
            "ConfirmForgotPassword",
            "ChangePassword",
            "AdminResetUserPassword",
            "AdminSetUserPassword",
            "ResendConfirmationCode",
        ),
        "UserRead": ("AdminGetUser", "GetUser"),
        "UserUpdate": (
            "AdminDeleteUser",
            "AdminDeleteUserAttributes",
            "AdminDisableUser",
            "AdminEnableUser",
            "AdminUpdateUserAttributes",
            "AdminDisableProviderForUser",
            "AdminLinkProviderForUser",
            "AdminSetUserSettings",
            "AdminSetUserMFAPreference",
            "AdminUserGlobalSignOut",
            "DeleteUser",
            "DeleteUserAttributes",
            "UpdateUserAttributes",
            "SetUserMFAPreference",
            "SetUserSettings",
            "VerifyUserAttribute",
        ),
        "UserToken": ("GlobalSignOut", "RevokeToken", "GetTokensFromRefreshToken"),
        "UserResourceRead": (
            "AdminGetDevice",
            "AdminListDevices",
            "AdminListGroupsForUser",
            "AdminListUserAuthEvents",
            "GetDevice",
            "ListDevices",
        ),
        "UserResourceUpdate": (
            "AdminAddUserToGroup",
            "AdminRemoveUserFromGroup",
            "AdminForgetDevice",
            "AdminUpdateDeviceStatus",
            "AdminUpdateAuthEventFeedback",
            "ForgetDevice",
            "UpdateDeviceStatus",
            "ConfirmDevice",
        ),
        "UserList": ("ListUsers", "ListUsersInGroup"),
        "UserPoolRead": (
            "DescribeUserPool",
            "ListUserPools",
            "DescribeUserPoolDomain",
            "GetUserPoolMfaConfig",
            "GetLogDeliveryConfiguration",
            "ListTagsForResource",
        ),
        "UserPoolUpdate": (
            "CreateUserPool",
            "UpdateUserPool",
            "DeleteUserPool",
            "AddCustomAttributes",
            "SetUserPoolMfaConfig",
            "CreateUserPoolDomain",
            "UpdateUserPoolDomain",
            "DeleteUserPoolDomain",
            "SetLogDeliveryConfiguration",
            "TagResource",
            "UntagResource",
        ),
        "UserPoolResourceRead": (
            "ListGroups",
            "GetGroup",
            "ListIdentityProviders",
            "DescribeIdentityProvider",
            "GetIdentityProviderByIdentifier",
            "ListResourceServers",
            "DescribeResourceServer",
            "DescribeRiskConfiguration",
            "ListUserImportJobs",
            "DescribeUserImportJob",
            "GetCSVHeader",
            "GetSigningCertificate",
            "GetUICustomization",
        ),
        "UserPoolResourceUpdate": (
            "CreateGroup",
            "UpdateGroup",
            "DeleteGroup",
            "CreateIdentityProvider",
            "UpdateIdentityProvider",
            "DeleteIdentityProvider",
            "CreateResourceServer",
            "UpdateResourceServer",
            "DeleteResourceServer",
            "CreateUserImportJob",
            "StartUserImportJob",
            "StopUserImportJob",
            "SetRiskConfiguration",
            "SetUICustomization",
        ),
        "UserPoolClientRead": ("DescribeUserPoolClient", "ListUserPoolClients"),
        "UserPoolClientUpdate": ("CreateUserPoolClient", "UpdateUserPoolClient", "DeleteUserPoolClient"),
    }
)

# Error codes that mean "slow down". LimitExceededException is not one: Cognito uses it for resource-count and
# per-user attempt limits, which a quick retry cannot fix.
THROTTLE_CODES = frozenset(
    {"TooManyRequestsException", "ThrottlingException", "Throttling", "RequestLimitExceeded"}
)

# Process-wide share of each quota taken by default; the rest stays free for the customer's own traffic.
DEFAULT_FRACTION = 0.5
FRACTION_ENV = "COGNITO_BACKUPER_QUOTA_FRACTION"
# A ceiling in requests per second for every quota category, on top of the fraction.
MAX_RPS_ENV = "COGNITO_BACKUPER_MAX_RPS"
# The DynamoDB table of the deployment-wide budget (pipeline.cognito.shared_budget); unset: this process only.
BUDGET_TABLE_ENV = "COGNITO_BACKUPER_BUDGET_TABLE"


def category_of(operation_name: str) -> str:
    return OPERATION_CATEGORY.get(operation_name, UNCATEGORIZED)


class TokenBucket:
    """A thread-safe token bucket that reserves tokens up front, so waiters are served in arrival order.

    A caller takes its tokens immediately (the balance may go negative) and sleeps until the refill has paid
    the debt; sleeping happens outside the lock.
    """

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = burst
        self._stamp = clock()
        self._lock = threading.Lock()

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> float:
        return self._burst

    def set_rate(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        with self._lock:
            self._refill()
            self._rate = rate

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def acquire(self, n: float = 1.0) -> float:
        """Take ``n`` tokens, sleeping as long as needed; returns the seconds waited."""
        if n <= 0:
            return 0.0
        with self._lock:
            self._refill()
            self._tokens -= n
            wait = -self._tokens / self._rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


class RateBudget:
    """One bucket per quota category at a fraction of its default rate, adapting to throttling (AIMD).

    ``on_throttle`` multiplies the category's rate by ``decrease`` (never below ``floor``); each
    ``on_success`` adds back ``ceiling * recovery`` until the ceiling is reached again.
    """

    def __init__(
        self,
        *,
        fraction: float = 1.0,
        max_rps: float | None = None,
        quotas: Mapping[str, float] = QUOTA_RPS,
        burst: float = 1.0,
        decrease: float = 0.5,
        recovery: float = 0.05,
        floor: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if not 0 < fraction <= 1:
            raise InvalidRequest(f"quota fraction must be in (0, 1], got {fraction}")
        if max_rps is not None and max_rps <= 0:
            raise InvalidRequest(f"max_rps must be positive, got {max_rps}")
        self.fraction = fraction
        self.ceilings: dict[str, float] = {
            cat: min(rps * fraction, max_rps) if max_rps is not None else rps * fraction
            for cat, rps in quotas.items()
        }
        self._burst = burst
        self._decrease = decrease
        self._recovery = recovery
        self._floor = floor
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, TokenBucket] = {}
        self._pool_buckets: dict[tuple[str, str], TokenBucket] = {}
        self.calls: Counter[str] = Counter()
        self.throttles: Counter[str] = Counter()
        self.waited = 0.0

    def _new_bucket(self, rate: float) -> TokenBucket:
        return TokenBucket(rate, min(self._burst, max(rate, 1.0)), clock=self._clock, sleep=self._sleep)

    def bucket(self, category: str) -> TokenBucket:
        with self._lock:
            found = self._buckets.get(category)
            if found is None:
                found = self._new_bucket(self.ceilings.get(category, self.ceilings[UNCATEGORIZED]))
                self._buckets[category] = found
            return found

    def _pool_bucket(self, operation_name: str, category: str, pool_id: str) -> TokenBucket | None:
        per_pool = PER_POOL_OPERATION_RPS.get(category)
        if per_pool is None:
            return None
        key = (operation_name, pool_id)
        with self._lock:
            found = self._pool_buckets.get(key)
            if found is None:
                found = self._new_bucket(min(per_pool * self.fraction, self.ceilings[category]))
                self._pool_buckets[key] = found
            return found

    def rate(self, category: str) -> float:
        return self.bucket(category).rate

    def acquire(self, operation_name: str, pool_id: str | None = None) -> float:
        """Wait for the right to send one request of ``operation_name``; returns the seconds waited."""
        category = category_of(operation_name)
        with self._lock:
            self.calls[operation_name] += 1
        waited = self.bucket(category).acquire()
        if pool_id:
            pool_bucket = self._pool_bucket(operation_name, category, pool_id)
            if pool_bucket is not None:
                waited += pool_bucket.acquire()
        with self._lock:
            self.waited += waited
        return waited

    def on_throttle(self, category: str) -> None:
        bucket = self.bucket(category)
        with self._lock:
            self.throttles[category] += 1
            floor = min(self._floor, self.ceilings.get(category, self._floor))
            bucket.set_rate(max(floor, bucket.rate * self._decrease))

    def on_success(self, category: str) -> None:
        bucket = self.bucket(category)
        ceiling = self.ceilings.get(category, self.ceilings[UNCATEGORIZED])
        if bucket.rate >= ceiling:
            return
        with self._lock:
            bucket.set_rate(min(ceiling, bucket.rate + ceiling * self._recovery))

    def total_calls(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def stats(self) -> dict[str, dict[str, int]]:
        """Calls (attempts) and throttles per quota category so far, e.g. for metrics."""
        with self._lock:
            calls: Counter[str] = Counter()
            for operation, n in self.calls.items():
                calls[category_of(operation)] += n
            return {
                category: {"calls": calls[category], "throttles": self.throttles[category]}
                for category in sorted(set(calls) | set(self.throttles))
            }


def _rate_settings() -> tuple[float, float | None]:
    raw = os.environ.get(FRACTION_ENV, "")
    try:
        fraction = float(raw) if raw else DEFAULT_FRACTION
    except ValueError as exc:
        raise InvalidRequest(f"{FRACTION_ENV} must be a number in (0, 1]") from exc
    raw_cap = os.environ.get(MAX_RPS_ENV, "")
    try:
        max_rps = float(raw_cap) if raw_cap else None
    except ValueError as exc:
        raise InvalidRequest(f"{MAX_RPS_ENV} must be a positive number") from exc
    if max_rps is not None and max_rps <= 0:
        raise InvalidRequest(f"{MAX_RPS_ENV} must be a positive number")
    return fraction, max_rps


@functools.cache
def default_budget() -> RateBudget:
    """The budget shared by every Cognito client in this process (all concurrent tasks draw from it)."""
    fraction, max_rps = _rate_settings()
    return RateBudget(fraction=fraction, max_rps=max_rps)


@functools.cache
def task_budget() -> RateBudget:
    """The budget of the task handlers' clients (:func:`pipeline.core.aws.default_clients`).

    With a table named in ``COGNITO_BACKUPER_BUDGET_TABLE`` (the deployed stack's Lambdas, the embedded local
    engine's tasks) it is shared by every task process of the deployment (:mod:`pipeline.cognito.shared_budget`);
    without one it is :func:`default_budget`. The operator's own commands always use :func:`default_budget`.
    """
    table = os.environ.get(BUDGET_TABLE_ENV, "")
    if not table:
        return default_budget()
    from pipeline.cognito import shared_budget

    fraction, max_rps = _rate_settings()
    return shared_budget.for_table(table, fraction=fraction, max_rps=max_rps)


_POOL_CONTEXT_KEY = "cognito_backuper_pool_id"


def backoff_delay(attempt: int, *, base_delay: float, max_delay: float, rng: Callable[[], float]) -> float:
    """Full jitter: uniform in [0, min(max_delay, base_delay * 2**(attempt-1)))."""
    return rng() * min(max_delay, base_delay * 2.0 ** max(0, attempt - 1))


def is_throttle(parsed: Mapping[str, Any] | None, status: int | None) -> bool:
    code = str((parsed or {}).get("Error", {}).get("Code", ""))
    return code in THROTTLE_CODES or status == 429


def install(
    client: BaseClient,
    budget: RateBudget,
    *,
    max_attempts: int = 8,
    base_delay: float = 0.2,
    max_delay: float = 20.0,
    sleep: Sleep = time.sleep,
    rng: Callable[[], float] = random.random,
) -> None:
    """Rate-limit every attempt of a cognito-idp client and retry its throttled calls ourselves.

    Installing twice on one client is a no-op (handlers carry unique ids). botocore's own retry handler
    still retries 5xx and connection errors; ours answers first for every response botocore would retry as
    throttling: a throttle (THROTTLE_CODES) is retried here, paced by the budget, and anything else botocore
    counts as throttling (LimitExceededException: a resource-count or per-user limit) is not retried at all.
    """
    if max_attempts < 1:
        raise InvalidRequest("max_attempts must be at least 1")
    events = client.meta.events
    service = client.meta.service_model.service_id.hyphenize()

    def remember_pool(params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
        pool_id = params.get("UserPoolId")
        if isinstance(pool_id, str):
            context[_POOL_CONTEXT_KEY] = pool_id

    def take_token(request: Any, event_name: str, **_: Any) -> None:
        context = getattr(request, "context", None) or {}
        budget.acquire(event_name.rsplit(".", 1)[-1], context.get(_POOL_CONTEXT_KEY))

    sdk_throttling = ThrottlingErrorDetector(RetryEventAdapter())

    def retry_throttle(
        response: tuple[Any, Mapping[str, Any]] | None, operation: Any, attempts: int, **kwargs: Any
    ) -> float | bool | None:
        if response is None:
            return None
        http, parsed = response
        if not is_throttle(parsed, getattr(http, "status_code", None)):
            # False (not None) stops botocore's handler from retrying what it takes for throttling.
            is_sdk_throttle = sdk_throttling.is_throttling_error(
                response=response, operation=operation, attempts=attempts, **kwargs
            )
            return False if is_sdk_throttle else None
        budget.on_throttle(category_of(operation.name))
        if attempts >= max_attempts:
            raise Throttled(f"Cognito kept throttling {operation.name} after {attempts} attempts")
        sleep(backoff_delay(attempts, base_delay=base_delay, max_delay=max_delay, rng=rng))
        # Non-None tells botocore to retry; we already slept with the injected sleep.
        return 0.0

    def note_success(http_response: Any, model: Any, **_: Any) -> None:
        if getattr(http_response, "status_code", 500) < 300:
            budget.on_success(category_of(model.name))

    prefix = f"cognito-backuper-throttle-{id(client)}"
    events.register(f"before-parameter-build.{service}", remember_pool, unique_id=f"{prefix}-pool")
    events.register_first(f"before-send.{service}", take_token, unique_id=f"{prefix}-token")
    events.register_first(f"needs-retry.{service}", retry_throttle, unique_id=f"{prefix}-retry")  # type: ignore[arg-type]
    events.register(f"after-call.{service}", note_success, unique_id=f"{prefix}-success")
