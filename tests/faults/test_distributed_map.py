"""Large pools export and restore their shards through a distributed Map (ShardsAtScale ->
ExportShardsDistributed, RestoreAtScale -> RestoreShardsDistributed).

The threshold is an operator knob of the execution input (``distributedShardThreshold``), so a small pool can take
the distributed branch here exactly as a 500k-user pool takes it by default.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from pipeline.backup import steps as backup
from pipeline.cognito import shards
from pipeline.core.contracts import PoolState
from pipeline.core.errors import InvalidRequest
from pipeline.core.layout import parse_backup_uri
from pipeline.operator.local_engine import LocalEngine
from pipeline.restore import diff
from pipeline.sealing.backup_reader import BackupReader
from tests.helpers.faults import COGNITO, Call, FaultInjector, World, cognito_error, contents, open_world
from tests.helpers.restore_flow import BackgroundRestore, decide, principal, restore_payload, wait_for_request
from tests.helpers.task_payloads import TaskPayloads, record_tasks

USERS = 300


def _state(estimated: int, execution: dict[str, Any] | None = None) -> PoolState:
    state: dict[str, Any] = {
        "job": {"poolId": "us-east-1_x", "backupId": "b", "storage": {}, "startedAt": "t"},
        "config": {"configKey": "k", "estimatedUsers": estimated, "groups": 0, "appClients": 0},
    }
    if execution is not None:
        state["execution"] = execution
    return state  # type: ignore[return-value]


def test_plan_goes_distributed_from_256_shards_by_default() -> None:
    assert backup.plan(_state(1_000)) == {"shards": [""], "distributed": False, "groupSlices": []}
    assert backup.plan(_state(100_000))["distributed"] is False
    big = backup.plan(_state(600_000, {"poolIds": ["us-east-1_x"], "allPools": False}))
    assert len(big["shards"]) == shards.DISTRIBUTED_FROM_SHARDS and big["distributed"] is True


def test_the_execution_input_can_lower_the_threshold() -> None:
    assert backup.plan(_state(100_000, {"distributedShardThreshold": 16}))["distributed"] is True
    assert backup.plan(_state(100_000, {"distributedShardThreshold": 17}))["distributed"] is False
    assert backup.plan(_state(10, {"distributedShardThreshold": 1}))["distributed"] is True


@pytest.mark.parametrize("bad", [0, -3, "16", 2.5, True])
def test_a_malformed_threshold_is_refused(bad: object) -> None:
    with pytest.raises(InvalidRequest, match="distributedShardThreshold"):
        backup.plan(_state(100_000, {"distributedShardThreshold": bad}))


# -- end to end ------------------------------------------------------------------------------------------------------


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """A small pool planned as 16 shards (PlanShards runs in this process), so it seeds in seconds."""
    monkeypatch.setattr(shards, "SINGLE_SHARD_BELOW", USERS - 100)
    with LocalEngine(embedded=True) as engine:
        yield open_world(engine, users=USERS, seed_value=5)


def _run(world: World, threshold: int | None) -> tuple[str, Any]:
    """Starts the backup with an optional threshold in the execution input; returns its ARN and result."""
    storage = world.account.storage
    arn = world.engine.deploy(
        "backup",
        {
            "BackupBucket": storage["bucket"],
            "KmsKeyArn": storage["kmsKeyArn"],
            "BackupPrefix": storage["prefix"],
        },
    )
    payload: dict[str, Any] = {"poolIds": [world.pool.pool_id], "allPools": False}
    if threshold is not None:
        payload[shards.THRESHOLD_INPUT_KEY] = threshold
    execution = world.engine.start(arn, payload)
    return execution, world.engine.follow(execution, timeout_s=300)


ASL = Path(__file__).resolve().parents[2] / "statemachines" / "backup.asl.json"


def _entered(world: World, execution: str) -> set[str]:
    return {
        str(e["stateEnteredEventDetails"]["name"])
        for e in world.engine.history(execution)
        if "stateEnteredEventDetails" in e
    }


def _planned_distributed(payloads: TaskPayloads) -> list[bool]:
    """What ShardsAtScale chose from, per run: PlanShards runs inside the pool's child execution, whose history
    moto's interpreter does not expose, so its result is read where it passes."""
    return [bool(result["distributed"]) for _, result in payloads.of("PlanShards")]


@pytest.mark.e2e
def test_a_forced_distributed_map_backs_up_the_same_content_as_the_inline_one(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    payloads = record_tasks(monkeypatch, [ASL.read_text()])
    _, inline = _run(world, threshold=None)
    assert inline.status == "SUCCEEDED", inline.cause
    assert _planned_distributed(payloads) == [False]

    dist_arn, dist = _run(world, threshold=16)
    assert dist.status == "SUCCEEDED", dist.cause
    assert _planned_distributed(payloads) == [False, True]
    kinds = {e["type"] for e in world.engine.history(dist_arn)}
    assert {"MapRunStarted", "MapRunSucceeded"} <= kinds

    (first,) = inline.output["backups"]
    (second,) = dist.output["backups"]
    assert second["verified"] is True and second["uri"] != first["uri"]
    assert len(BackupReader.open(world.clients, parse_backup_uri(second["uri"])).doc["shards"]) == 16
    expected = contents(world.clients, first["uri"])
    assert sum(expected.users.values()) == USERS
    assert contents(world.clients, second["uri"]) == expected


@pytest.mark.e2e
def test_a_failed_shard_in_the_distributed_map_fails_the_backup(
    world: World, faults: FaultInjector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tolerance 0: one shard's child execution failing fails the Map, caught as the pool's failure; no manifest."""
    payloads = record_tasks(monkeypatch, [ASL.read_text()])
    lock = threading.Lock()
    denied = [0]

    def deny_shard_a(call: Call) -> AWSResponse | None:
        if (
            call.service == COGNITO
            and call.operation == "ListUsers"
            and '"a"' in str(call.params.get("Filter"))
        ):
            with lock:
                denied[0] += 1
            return cognito_error("NotAuthorizedException", "not authorized to list users")
        return None

    faults.add(deny_shard_a)
    execution, result = _run(world, threshold=16)
    assert denied[0] >= 1
    assert result.status == "FAILED"
    # On AWS the Map itself fails (States.ExceedToleratedFailureThreshold). moto's interpreter lets a failed child
    # come back as null while the Map succeeds: WriteManifest's own check of every planned shard stops it there,
    # inside the pool's child execution, which reports the pool's failure, and the run fails for it.
    ((_, written),) = payloads.of("WriteManifest")
    assert written["errorType"] == "IncompleteBackup"
    assert "1 of 16 shards did not report completion" in written["cause"]
    assert result.error == "PoolBackupsFailed", result.cause
    assert "1 of 1 pools have no verified backup" in str(result.cause)
    assert "IncompleteBackup (1 of 16 shards did not report completion)" in str(result.cause)
    assert "CollectBackups" in _entered(world, execution)
    listed = world.clients.s3.list_objects_v2(Bucket=world.account.storage["bucket"])
    assert not [o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith("manifest.json")]


@pytest.mark.e2e
def test_a_forced_distributed_map_restores_a_faithful_pool(world: World) -> None:
    _, backed_up = _run(world, threshold=None)
    assert backed_up.status == "SUCCEEDED", backed_up.cause
    uri = backed_up.output["backups"][0]["uri"]
    payload = restore_payload(world.clients, uri, new_pool="restored-at-scale")
    payload[shards.THRESHOLD_INPUT_KEY] = 16
    run = BackgroundRestore(world.engine, world.account.storage, payload, timeout_s=600).start()
    request = wait_for_request(world.clients, world.account.storage, deadline_s=120)
    decide(
        world.engine,
        principal(world.clients, "approver"),
        world.account.storage,
        request.request_id,
        approve=True,
    )
    outcome = run.wait(600)
    assert outcome.succeeded, outcome.message

    entered = _entered(world, outcome.execution_arn)
    assert {"RestoreAtScale", "RestoreShardsDistributed", "FinalizeTargetPool"} <= entered
    assert "RestoreShards" not in entered
    assert {"MapRunStarted", "MapRunSucceeded"} <= {
        e["type"] for e in world.engine.history(outcome.execution_arn)
    }
    report = outcome.output["report"]
    assert (report["created"], report["failed"]) == (USERS, 0)
    assert report["membershipsAdded"] == world.pool.memberships
    reader = BackupReader.open(world.clients, parse_backup_uri(uri))
    compared = diff.diff_pool(
        world.clients.cognito, reader, outcome.output["targetPoolId"], extra_allowed=False
    )
    assert compared.identical, compared.counts()
