"""The drill's pure parts: the sample, the scratch pool's configuration, the summary, the metric document."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest

from pipeline.core import metrics
from pipeline.core.errors import InvalidRequest
from pipeline.drill import steps as drill


class FakeReader:
    def __init__(self, n: int) -> None:
        self.names = [f"user-{i:04d}" for i in range(n)]

    def users(self) -> list[dict[str, Any]]:
        return [{"username": name} for name in self.names]


def test_the_sample_has_the_asked_size_distinct_names_and_all_of_a_small_backup() -> None:
    reader = FakeReader(500)
    sample = drill._sample(reader, 40, random.Random(1))  # type: ignore[arg-type]
    assert len(sample) == len(set(sample)) == 40 and set(sample) <= set(reader.names)
    assert drill._sample(FakeReader(7), 1000, random.Random(1)) == FakeReader(7).names  # type: ignore[arg-type]


def test_the_sample_is_uniform_not_the_first_users() -> None:
    """Reservoir sampling: over many draws every user is picked about size/n of the time."""
    reader = FakeReader(20)
    rng = random.Random(7)
    counts = Counter(name for _ in range(4000) for name in drill._sample(reader, 5, rng))  # type: ignore[arg-type]
    expected = 4000 * 5 / 20
    assert set(counts) == set(reader.names)
    assert all(0.85 * expected < c < 1.15 * expected for c in counts.values()), counts


@pytest.mark.parametrize("bad", [0, -1, 100_001, True, "10", None])
def test_a_sample_outside_1_to_100000_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidRequest, match="sample"):
        drill.check_sample(bad)


def test_the_scratch_configuration_carries_the_drill_tag_and_no_domain() -> None:
    drill_id = drill.new_drill_id()
    config: dict[str, Any] = {
        "pool": {"Id": "eu-west-1_Prod", "UserPoolTags": {"team": "id", drill.DRILL_TAG: "forged"}},
        "domain": {"Domain": "login-prod"},
        "customDomain": {"Domain": "login.example.com"},
        "groups": [{"name": "admins"}],
    }
    scratch = drill.drill_config(config, drill_id)
    assert scratch["pool"]["UserPoolTags"] == {"team": "id", drill.DRILL_TAG: drill_id}
    assert scratch["domain"] is None and scratch["customDomain"] is None
    assert scratch["groups"] == config["groups"]
    assert config["pool"]["UserPoolTags"][drill.DRILL_TAG] == "forged"  # the backup's own copy is untouched
    assert drill.scratch_pool_name(drill_id) == f"cognito-backuper-drill-{drill_id}"
    with pytest.raises(InvalidRequest):
        drill.drill_config(config, "rr-20261127T202200Z-0123456789ab")


def test_the_summary_counts_a_missing_result_as_failed() -> None:
    summary = drill.summarize([{"poolId": "a", "passed": True}, None, {"poolId": "c", "passed": False}])
    assert (summary["passed"], summary["failed"]) == (1, 2)
    assert drill.summarize([{"passed": True}]) == {"drills": [{"passed": True}], "passed": 1, "failed": 0}


def test_the_drill_metrics_are_emf_in_the_cognitobackuper_namespace() -> None:
    lines: list[str] = []
    metrics.emit_drill(
        "eu-west-1_Prod", passed=False, duration_s=12.3456, sample_size=250, printer=lines.append
    )
    docs = [json.loads(line) for line in lines]
    values = {}
    for doc in docs:
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "CognitoBackuper"
        assert directive["Dimensions"] == [["PoolId"]]  # exactly what the dashboard graphs
        assert doc["PoolId"] == "eu-west-1_Prod"
        ((name,),) = [[m["Name"] for m in directive["Metrics"]]]
        values[name] = doc[name][0] if isinstance(doc[name], list) else doc[name]
    assert values == {
        metrics.DRILL_PASSED.name: 0.0,
        metrics.DRILL_DURATION.name: 12.346,
        metrics.DRILL_SAMPLE.name: 250.0,
    }


def test_in_lambda_the_metric_goes_to_stdout_and_nowhere_else_outside(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    metrics.emit_drill("p_1", passed=True, duration_s=1, sample_size=1)
    assert capsys.readouterr().out == ""  # the CLI's stdout is its result
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "cognito-backuper-drill-record")
    metrics.emit_drill("p_1", passed=True, duration_s=1, sample_size=1)
    assert '"RestoreDrillPassed"' in capsys.readouterr().out
