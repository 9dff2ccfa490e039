"""DrillCleanup deletes only what is a drill's: its own pool, or a timed-out drill's, each by its tag (moto)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pipeline.core.aws import make_clients
from pipeline.drill import steps as drill

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


def _pool(cognito: Any, name: str, tags: dict[str, str] | None = None) -> str:
    return str(cognito.create_user_pool(PoolName=name, UserPoolTags=tags or {})["UserPool"]["Id"])


def _names(cognito: Any) -> set[str]:
    return {p["Name"] for p in cognito.list_user_pools(MaxResults=60)["UserPools"]}


def test_cleanup_deletes_its_own_pool_and_a_timed_out_drills_but_nothing_else(cognito: Any) -> None:
    mine = drill.new_drill_id(NOW)
    old = drill.new_drill_id(NOW - dt.timedelta(days=8))
    running = drill.new_drill_id(NOW - dt.timedelta(days=1))
    forged = drill.new_drill_id(NOW - dt.timedelta(days=9))
    _pool(cognito, drill.scratch_pool_name(mine), {drill.DRILL_TAG: mine})
    _pool(cognito, drill.scratch_pool_name(old), {drill.DRILL_TAG: old})
    _pool(cognito, drill.scratch_pool_name(running), {drill.DRILL_TAG: running})
    # A pool named like an old drill's but not tagged as its: never a drill's to delete.
    _pool(cognito, drill.scratch_pool_name(forged), {"team": "identity"})
    _pool(cognito, "production", {})
    result = drill.delete_scratch_pool(make_clients(), {"drillId": mine}, None, now=NOW)
    assert len(result["deleted"]) == 2
    assert _names(cognito) == {
        drill.scratch_pool_name(running),
        drill.scratch_pool_name(forged),
        "production",
    }


def test_cleanup_of_a_pool_named_in_the_cursor_checks_its_tag_too(cognito: Any) -> None:
    mine = drill.new_drill_id(NOW)
    production = _pool(cognito, "production", {})
    result = drill.delete_scratch_pool(make_clients(), {"drillId": mine}, {"poolId": production}, now=NOW)
    assert result == {"deleted": []} and _names(cognito) == {"production"}
    # Run again after the pool is gone: nothing to do, no error.
    assert drill.delete_scratch_pool(make_clients(), {"drillId": mine}, None, now=NOW) == {"deleted": []}
