"""`--all-pools` at 1,000 pools: BackupEachPool's history and payloads do not grow with the number of pools.

The parent execution's events are counted from the ASL's structure as bench/history.py counts them; EnumeratePools
runs for real against 1,000 empty pools on moto; a run of a few pools goes through the distributed Map on the local
engine end to end, with the output's inline bound forced below the number of pools.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from bench import history
from pipeline.backup import run_objects
from pipeline.backup import steps as backup
from pipeline.core.aws import make_clients
from pipeline.core.layout import parse_backup_uri
from pipeline.operator import demo, seed
from pipeline.operator.local_engine import LocalEngine
from pipeline.operator.runs import run_backup
from pipeline.sealing import manifest
from tests.helpers.task_payloads import record_tasks

ASL = Path(__file__).resolve().parents[2] / "statemachines" / "backup.asl.json"
POOLS = 1_000
PAYLOAD_LIMIT = 256 * 1024
# A realistic value for each field a state selects: the longest of its kind.
SAMPLE = {
    "poolId": "ap-southeast-2_AbCdEfGhI",
    "backupId": "20261127T020000Z-0123456789ab",
    "uri": "s3://a-backup-bucket-name-of-sixty-three-characters-at-most-0000/backups/"
    "ap-southeast-2_AbCdEfGhI/20261127T020000Z-0123456789ab/",
    "users": 10_000_000,
    "groups": 10_000,
    "memberships": 100_000_000,
    "verified": True,
}


def _state_events(state: dict[str, Any], items: int) -> int:
    """Events one visit of ``state`` adds to the history it runs in (each loop taken once)."""
    kind = state["Type"]
    if kind == "Fail":
        return 0
    if kind == "Map":
        config = state.get("ItemProcessor", {}).get("ProcessorConfig", {})
        if config.get("Mode") == "DISTRIBUTED":
            return history.MAP_FIXED + history.MAP_RUN  # the children's events are in their own histories
        inner = state.get("ItemProcessor") or state["Iterator"]
        return history.MAP_FIXED + items * (history.MAP_PER_ITERATION + _processor_events(inner, 1))
    events = history.EVENTS[kind]
    for branch in state.get("Branches", []):
        events += _processor_events(branch, 1)
    return events


def _processor_events(processor: dict[str, Any], items: int) -> int:
    return sum(_state_events(s, items) for s in processor["States"].values())


def _parent_events(pools: int) -> int:
    return history.EXECUTION + _processor_events(history.load_asl(ASL), pools)


def _selected(parameters: dict[str, Any]) -> dict[str, Any]:
    return {k.removesuffix(".$"): SAMPLE[v.rsplit(".", 1)[-1]] for k, v in parameters.items()}


def test_the_parent_history_of_a_1000_pool_backup_stays_under_the_quota() -> None:
    events = _parent_events(POOLS)
    assert events < history.HISTORY_QUOTA
    # Independent of the number of pools: each pool's states are in its own child execution.
    assert events == _parent_events(1)


def test_the_map_result_of_1000_pools_stays_far_below_the_payload_limit() -> None:
    pool_map = history.load_asl(ASL)["States"]["BackupEachPool"]
    assert (
        "ItemReader" in pool_map and "ItemsPath" not in pool_map
    )  # the pools are not in the state's payload
    end = next(s for s in pool_map["ItemProcessor"]["States"].values() if s.get("End"))
    per_pool = len(json.dumps(_selected(end["Parameters"]), separators=(",", ":"))) + 1
    assert per_pool <= 32
    assert POOLS * per_pool < PAYLOAD_LIMIT // 8


@pytest.fixture
def cheap_pools(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto parses the same bundled RSA key again for every pool it creates (a third of a second each): once here."""
    from moto.cognitoidp import models

    key = models.jwk.RSAKey.import_key(  # type: ignore[attr-defined]
        models.load_resource("cognitoidp/resources/jwks-private.json")  # type: ignore[attr-defined]
    )
    monkeypatch.setattr(models, "jwk", SimpleNamespace(RSAKey=SimpleNamespace(import_key=lambda _data: key)))


@pytest.mark.usefixtures("cheap_pools")
def test_enumerate_pools_lists_1000_pools_in_s3_and_returns_a_constant_payload() -> None:
    from moto import mock_aws

    with mock_aws():
        clients = make_clients()
        account = demo.prepare_account(clients)
        raw = boto3.client("cognito-idp")  # seeding is not the pipeline: no rate budget
        for i in range(POOLS):
            raw.create_user_pool(PoolName=f"pool-{i:04d}")
        event: Any = {"allPools": True, "storage": account.storage, "run": "nightly-run"}
        out = backup.enumerate_pools(clients, event)
        jobs = run_objects.read_pools(clients, account.storage, out["poolsKey"])
    assert out["pools"] == POOLS == len({j["poolId"] for j in jobs})
    assert len({j["backupId"] for j in jobs}) == POOLS
    assert len(json.dumps(out)) < 512


@pytest.mark.e2e
def test_a_few_pools_back_up_through_the_distributed_map_with_the_summary_in_s3(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fewer backups inline than pools: the CLI's runner must read the rest from the run's summary object.
    monkeypatch.setattr(backup, "INLINE_BACKUPS", 2)
    with LocalEngine(embedded=True) as engine:
        clients = make_clients()
        account = demo.prepare_account(clients)
        cognito = boto3.client("cognito-idp")
        pools = [seed.seed_pool(cognito, users=20 + i, name=f"pool-{i}", seed=i) for i in range(3)]
        outcome = run_backup(engine, storage=account.storage, pool_ids=[], all_pools=True, timeout_s=600)
        assert outcome.succeeded, outcome.message
        out = outcome.output
        assert out["pools"] == 3 and out["truncated"] is True and len(out["backups"]) == 2
        assert out["users"] == sum(p.users for p in pools)
        by_pool = {b["poolId"]: b for b in outcome.backups}
        assert sorted(by_pool) == sorted(p.pool_id for p in pools)
        for pool in pools:
            loc = parse_backup_uri(by_pool[pool.pool_id]["uri"])
            assert manifest.read_manifest(clients, loc)["counts"]["users"] == pool.users
            assert by_pool[pool.pool_id]["users"] == pool.users and by_pool[pool.pool_id]["verified"]
        kinds = [e["type"] for e in engine.history(outcome.execution_arn)]
        assert "MapRunStarted" in kinds and "MapRunSucceeded" in kinds
        assert len(kinds) <= _parent_events(3) == _parent_events(POOLS)


@pytest.mark.e2e
def test_capture_pool_config_loops_one_page_per_call_and_seals_the_whole_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A zero budget: every CapturePoolConfig call reads one page (or the settings) and the Choice loops."""
    import tasks.capture_pool_config as capture_task
    from pipeline.cognito import pool_config, reading
    from pipeline.sealing import store

    monkeypatch.setattr(capture_task, "time_budget", lambda _context: 0.0)
    monkeypatch.setattr(reading, "PAGE_LIMIT", 2)  # ListGroups pages of 2: several group slices
    payloads = record_tasks(monkeypatch, [ASL.read_text()])
    with LocalEngine(embedded=True) as engine:
        clients = make_clients()
        account = demo.prepare_account(clients)
        pool = seed.seed_pool(boto3.client("cognito-idp"), users=30, seed=3)
        outcome = run_backup(
            engine, storage=account.storage, pool_ids=[pool.pool_id], all_pools=False, timeout_s=600
        )
        assert outcome.succeeded, outcome.message
        (backup_result,) = outcome.backups
        loc = parse_backup_uri(backup_result["uri"])
        (sealed,) = store.get_sealed(clients, loc, loc.config_key)
        whole = pool_config.capture_pool_config(clients.cognito, pool.pool_id)
        leftovers = clients.s3.list_objects_v2(Bucket=loc.bucket, Prefix=loc.root + "work/").get("KeyCount")
    calls = payloads.of("CapturePoolConfig")
    phases = [result["phase"] for _, result in calls]
    assert len(calls) >= 2 + len(pool.groups) // 2
    assert phases[-1] == pool_config.DONE and phases.count(pool_config.DONE) == 1
    assert sorted(g["name"] for g in sealed["groups"]) == sorted(pool.groups)
    assert len({g["name"] for g in sealed["groups"]}) == len(sealed["groups"])
    # moto makes up a new AWSAccountId in every DescribeUserPoolDomain answer: compare the domain by name.
    varying = {"capturedAt", "domain"}
    assert {k: v for k, v in sealed.items() if k not in varying} == {
        k: v for k, v in whole.items() if k not in varying
    }
    assert sealed["domain"]["Domain"] == whole["domain"]["Domain"]
    assert not leftovers  # WriteManifest removed the work parts
