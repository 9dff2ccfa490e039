"""CapturePoolConfig and RestorePoolConfig on a pool of 10,000 groups at the deployed rate (virtual clock).

Each Lambda process gets DEFAULT_FRACTION divided by the tasks that can run at once (infra.stack): at that rate,
ListGroups and CreateGroup for 10,000 groups take longer than one Lambda call may run, so each call works in
slices under its budget and resumes from the cursor it returned.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.emulator import CognitoClient, Emulator, PoolSpec, generate_pool, pipeline_budget
from bench.vclock import VirtualClock
from infra.asl import concurrent_cognito_tasks, discover
from infra.functions import SHORT_TIMEOUT
from pipeline.cognito import pool_config, throttle
from pipeline.core.lambda_runtime import RESERVE_S
from pipeline.restore import pool_restore

GROUPS = 10_000
TIMEOUT_S = SHORT_TIMEOUT.to_seconds()  # the deployed timeout of both configuration functions
BUDGET_S = TIMEOUT_S - RESERVE_S  # what time_budget gives a call with the whole timeout ahead of it


def _deployed_client(clock: VirtualClock, pool_id: str) -> CognitoClient:
    emulator = Emulator(clock)
    emulator.add_pool(generate_pool(pool_id, PoolSpec(users=0, groups=GROUPS)))
    fraction = throttle.DEFAULT_FRACTION / concurrent_cognito_tasks(discover())
    return CognitoClient(emulator, budget=pipeline_budget(clock, fraction=fraction))


def test_capture_of_10000_groups_stops_before_each_budget_and_resumes_without_loss_or_duplication() -> None:
    clock = VirtualClock()
    cognito: Any = _deployed_client(clock, "us-east-1_Groups0001")
    phase, token = pool_config.SETTINGS, None
    records: list[dict[str, Any]] = []
    durations: list[float] = []
    while phase != pool_config.DONE:
        started = clock.now()
        captured = pool_config.capture_slice(
            cognito, "us-east-1_Groups0001", phase, token, deadline=started + BUDGET_S, clock=clock.now
        )
        durations.append(clock.now() - started)
        phase, token = captured.phase, captured.token
        records.extend(captured.records)
        assert len(durations) < 100, "the capture does not progress"

    config = pool_config.assemble(records)
    names = Counter(g["name"] for g in config["groups"])
    assert len(names) == GROUPS and set(names.values()) == {1}
    assert sorted(g["precedence"] for g in config["groups"]) == list(range(GROUPS))
    # The whole capture at the deployed rate would not fit one Lambda call; every slice stops in its budget,
    # give or take the one page in flight when the budget ran out, well before the timeout.
    assert sum(durations) > TIMEOUT_S
    assert len(durations) > 1
    assert max(durations) < BUDGET_S + 10.0 < TIMEOUT_S


class _TargetClient(CognitoClient):
    """GetGroup, which the emulator does not model (a retried slice reads the groups it finds existing)."""

    def get_group(self, **kwargs: Any) -> dict[str, Any]:
        group = self.emulator.pools[kwargs["UserPoolId"]].groups[kwargs["GroupName"]]
        return {"Group": {"GroupName": group.name, "Precedence": group.precedence}}


def test_restore_of_10000_groups_stops_before_each_budget_and_resumes_without_loss_or_duplication() -> None:
    clock = VirtualClock()
    target = "us-east-1_Target0001"
    emulator = Emulator(clock)
    emulator.add_pool(generate_pool(target, PoolSpec(users=0, groups=0)))
    fraction = throttle.DEFAULT_FRACTION / concurrent_cognito_tasks(discover())
    cognito: Any = _TargetClient(emulator, budget=pipeline_budget(clock, fraction=fraction))
    backed_up = [
        {"name": f"group-{i:05d}", "description": None, "precedence": i, "roleArn": None}
        for i in range(GROUPS)
    ]
    config = {
        "pool": {},
        "groups": backed_up,
        "appClients": [],
        "identityProviders": [],
        "resourceServers": [],
    }

    def slice_from(phase: str, index: int, pool_id: str | None) -> pool_restore.ConfigSlice:
        return pool_restore.restore_pool_config_slice(
            cognito,
            config,
            source="us-east-1_Source0001/b",
            target_pool_id=target,
            phase=phase,
            index=index,
            pool_id=pool_id,
            deadline=clock.now() + BUDGET_S,
            clock=clock.now,
        )

    phase, index, pool_id = pool_restore.POOL_PHASE, 0, None
    created = existing = 0
    durations: list[float] = []
    while phase != pool_restore.DONE_PHASE:
        started = clock.now()
        done = slice_from(phase, index, pool_id)
        durations.append(clock.now() - started)
        if len(durations) == 3:
            # The call crashed after its work but before Step Functions kept its result: the retry gets the
            # same cursor and only finds its own groups.
            again = slice_from(phase, index, pool_id)
            assert (again.result.groups_created, again.result.conflicts) == (0, [])
            existing += again.result.groups_existing
        created += done.result.groups_created
        phase, index, pool_id = done.phase, done.index, done.result.pool_id
        assert len(durations) < 200, "the restore does not progress"

    groups = emulator.pools[target].groups
    assert sorted(groups) == [g["name"] for g in backed_up]
    assert {name: g.precedence for name, g in groups.items()} == {
        g["name"]: g["precedence"] for g in backed_up
    }
    assert created == GROUPS and existing > 0
    assert sum(durations) > TIMEOUT_S
    assert max(durations) < BUDGET_S + 10.0 < TIMEOUT_S
