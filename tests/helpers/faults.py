"""Fault injection for the tasks' AWS calls, and the steps the fault tests share (fixtures: tests/faults/conftest.py).

Faults are botocore ``before-send`` handlers on the clients the tasks build (``pipeline.core.aws.make_clients`` as
``default_clients`` calls it inside the local engine); a handler that returns a response stops the request before
it reaches moto, exactly as a throttled or failed request never reaches the service. The test's own clients
(seeding, reading the backup back) are built by the unpatched ``make_clients`` bound at import and see no fault.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders

from pipeline.cognito import throttle
from pipeline.core import aws
from pipeline.core.aws import Clients, default_clients, make_clients
from pipeline.core.layout import parse_backup_uri
from pipeline.operator import demo, seed
from pipeline.operator.local_engine import LocalEngine
from pipeline.operator.runs import Outcome, run_backup
from pipeline.sealing.backup_reader import BackupReader

COGNITO = "cognito-identity-provider"
S3 = "s3"


class _Raw:
    """The raw stream botocore reads an injected response's body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _headers(values: dict[str, str]) -> HTTPHeaders:
    headers = HTTPHeaders()
    for key, value in values.items():
        headers[key] = value
    return headers


def cognito_error(code: str, message: str, status: int = 400) -> AWSResponse:
    """A JSON-protocol error reply, as Cognito sends it."""
    body = json.dumps({"__type": code, "message": message}).encode()
    headers = _headers({"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code})
    return AWSResponse("https://cognito-idp.us-east-1.amazonaws.com/", status, headers, _Raw(body))


def s3_error(code: str, status: int) -> AWSResponse:
    """An S3 REST-XML error reply (500 InternalError, 503 SlowDown)."""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>injected {code}</Message><RequestId>fault</RequestId></Error>"
    ).encode()
    return AWSResponse(
        "https://s3.amazonaws.com/", status, _headers({"Content-Type": "application/xml"}), _Raw(body)
    )


def throttled() -> AWSResponse:
    return cognito_error("TooManyRequestsException", "Rate exceeded")


@dataclass(frozen=True)
class Call:
    """One attempt as a rule sees it: service, operation, the request's JSON body (Cognito) and attempt number."""

    service: str
    operation: str
    params: dict[str, Any]
    attempt: int
    request: AWSPreparedRequest


Rule = Callable[[Call], AWSResponse | None]


@dataclass
class FaultInjector:
    """Rules tried in order on every attempt of the tasks' Cognito and S3 clients; counts what they injected."""

    rules: list[Rule] = field(default_factory=list)
    injected: Counter[str] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, rule: Rule) -> None:
        with self.lock:
            self.rules.append(rule)

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()

    def on_send(self, request: AWSPreparedRequest, event_name: str, **_: Any) -> AWSResponse | None:
        service, operation = event_name.split(".", 2)[1:]
        context = getattr(request, "context", None) or {}
        attempt = int((context.get("retries") or {}).get("attempt", 1))
        call = Call(service, operation, _json_body(request) if service == COGNITO else {}, attempt, request)
        with self.lock:
            rules = list(self.rules)
        for rule in rules:
            response = rule(call)
            if response is not None:
                with self.lock:
                    self.injected[operation] += 1
                return response
        with self.lock:
            self.sent[operation] += 1
        return None

    def install(self, clients: Clients) -> None:
        # Registered on the service's node (not the root), after the rate limiter's register_first token
        # handler and before moto's root-level stubber: a faulted attempt still spends its token, as on AWS.
        clients.cognito.meta.events.register(f"before-send.{COGNITO}", self.on_send)  # type: ignore[arg-type]
        clients.s3.meta.events.register(f"before-send.{S3}", self.on_send)  # type: ignore[arg-type]


def _json_body(request: AWSPreparedRequest) -> dict[str, Any]:
    body = request.body
    if isinstance(body, bytes | str) and body:
        try:
            parsed = json.loads(body)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultInjector]:
    """An injector on every client the tasks build from now on (the local engine's default_clients)."""
    injector = FaultInjector()
    real = aws.make_clients

    def faulty(session: boto3.Session | None = None, *, budget: throttle.RateBudget | None = None) -> Clients:
        clients = real(session, budget=budget)
        injector.install(clients)
        return clients

    monkeypatch.setattr(aws, "make_clients", faulty)
    default_clients.cache_clear()
    yield injector
    default_clients.cache_clear()


@pytest.fixture(autouse=True)
def full_quota(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto has no quotas; run the limiter at the full default rates so the suite stays quick."""
    monkeypatch.setenv(throttle.FRACTION_ENV, "1.0")
    throttle.default_budget.cache_clear()
    yield
    throttle.default_budget.cache_clear()


class SeededRandom:
    """Thread-safe seeded streams, one per key (an operation's name): the n-th call of an operation draws the
    same number each run, whichever thread makes it, however the threads interleave."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._streams: dict[str, random.Random] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str = "") -> float:
        with self._lock:
            stream = self._streams.setdefault(key, random.Random(f"{self._seed}:{key}"))
            return stream.random()


# -- what a backup holds, to compare runs -------------------------------------------------------------------------

UserKey = tuple[str, tuple[tuple[str, str], ...], bool, str | None]


@dataclass(frozen=True)
class Contents:
    users: Counter[UserKey]
    memberships: Counter[tuple[str, str]]

    @property
    def usernames(self) -> Counter[str]:
        return Counter(u[0] for u in self.users.elements())


def contents(clients: Clients, uri: str) -> Contents:
    """Decrypted users (username, attributes, enabled, status) and memberships, as multisets: duplicates show."""
    reader = BackupReader.open(clients, parse_backup_uri(uri))
    users = Counter(
        (u["username"], tuple(sorted(u["attributes"].items())), bool(u["enabled"]), u["status"])
        for u in reader.users()
    )
    members = Counter((m["group"], m["username"]) for m in reader.memberships())
    return Contents(users, members)


@dataclass
class World:
    engine: LocalEngine
    clients: Clients
    account: demo.DemoAccount
    pool: seed.SeededPool

    def backup(self, timeout_s: float = 300.0) -> Outcome:
        return run_backup(
            self.engine,
            storage=self.account.storage,
            pool_ids=[self.pool.pool_id],
            all_pools=False,
            timeout_s=timeout_s,
        )

    def backup_uri(self, timeout_s: float = 300.0) -> str:
        outcome = self.backup(timeout_s)
        assert outcome.succeeded, outcome.message
        (result,) = outcome.backups
        assert result["verified"] is True
        return str(result["uri"])


def open_world(engine: LocalEngine, users: int, seed_value: int) -> World:
    clients = make_clients()
    account = demo.prepare_account(clients)
    pool = seed.seed_pool(boto3.client("cognito-idp"), users=users, seed=seed_value)
    return World(engine, clients, account, pool)
