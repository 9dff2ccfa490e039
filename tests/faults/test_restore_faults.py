"""A restore under 30% Cognito throttling on the embedded local engine: the restored pool equals the backup."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.awsrequest import AWSResponse

from pipeline.core.layout import parse_backup_uri
from pipeline.operator.local_engine import LocalEngine
from pipeline.restore import diff
from pipeline.sealing.backup_reader import BackupReader
from tests.helpers.faults import COGNITO, Call, FaultInjector, SeededRandom, World, open_world, throttled
from tests.helpers.restore_flow import BackgroundRestore, decide, principal, restore_payload, wait_for_request

pytestmark = pytest.mark.e2e


@pytest.fixture
def world() -> Iterator[World]:
    # Small: at 30% throttling the limiter (AIMD) settles near 6-12 requests/s per category, so every user and
    # membership restored costs real seconds.
    with LocalEngine(embedded=True) as engine:
        yield open_world(engine, users=50, seed_value=41)


def test_a_restore_under_30_percent_throttling_is_faithful(world: World, faults: FaultInjector) -> None:
    uri = world.backup_uri()
    approver = principal(world.clients, "approver")
    rng = SeededRandom(108)  # each of the four writes below is throttled on its first call

    def throttle_30_percent(call: Call) -> AWSResponse | None:
        return throttled() if call.service == COGNITO and rng(call.operation) < 0.3 else None

    faults.add(throttle_30_percent)
    payload = restore_payload(world.clients, uri, new_pool="restored-under-throttling")
    run = BackgroundRestore(world.engine, world.account.storage, payload, timeout_s=600).start()
    request = wait_for_request(world.clients, world.account.storage, deadline_s=120)
    decide(world.engine, approver, world.account.storage, request.request_id, approve=True)
    outcome = run.wait(600)
    assert outcome.succeeded, outcome.message

    # Throttles hit the writes that matter, and every one was absorbed.
    for operation in ("AdminCreateUser", "AdminSetUserPassword", "AdminAddUserToGroup", "CreateGroup"):
        assert faults.injected[operation] > 0, operation
    out = outcome.output
    assert out["verification"]["passed"] is True
    # A RestoreUsers invocation that ran out of client attempts (Throttled) is retried by the ASL from the same
    # cursor: the users it had created already are then counted as existing, never created twice.
    assert out["report"]["created"] + out["report"]["existing"] == world.pool.users
    assert out["report"]["failed"] == 0

    reader = BackupReader.open(world.clients, parse_backup_uri(uri))
    report = diff.diff_pool(world.clients.cognito, reader, out["targetPoolId"], extra_allowed=False)
    assert report.identical, report.counts()
    assert report.users_compared == world.pool.users
