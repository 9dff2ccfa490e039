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
