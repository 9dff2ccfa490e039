"""The drill's roles, judged by a real IAM evaluator against the synthesized template.

A drill runs on the local engine with its task handlers recorded; every call it made is then decided against the
drill roles' policies, with the scratch pool's tags as IAM would read them (aws:ResourceTag) and CreateUserPool's
request tags (aws:RequestTag). All must be allowed. Then the same calls are played against a production pool
(untagged, or tagged with the drill key but not a drill id): every one that names a pool must be refused, and so
must an untagged CreateUserPool.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import moto  # noqa: F401 - moto's hook must be in botocore's built-in handlers before the recorder's
import pytest

from infra.drill import DRILL_TASK_NEEDS
from pipeline.cognito import shared_budget
from pipeline.core.aws import default_clients, make_clients
from pipeline.drill.steps import DRILL_TAG
from pipeline.operator import demo, seed
from pipeline.operator.local_engine import LocalEngine
from pipeline.operator.runs import run_backup, run_drill
from pipeline.sealing.manifest_mac import DEFAULT_MAC_KEY
from tests.iam.iam_contract import (
    Authorization,
    ResolvedTemplate,
    World,
    authorizations,
    evaluate,
)
from tests.iam.iam_recorder import Call, recording
from tests.iam.test_iam_contract import ACCOUNT, PREFIX, REGION, _env, _principal

pytestmark = pytest.mark.e2e
DRILL_TASKS = sorted(DRILL_TASK_NEEDS)
PRODUCTION_POOL = f"{REGION}_Production0"


@dataclass
class DrillRun:
    calls: list[Call]
    world: World
    result: dict[str, Any]


@pytest.fixture(scope="module")
def drill_run() -> Iterator[DrillRun]:
    with pytest.MonkeyPatch.context() as patch:
        _env(patch)
        default_clients.cache_clear()
        with recording(DRILL_TASKS) as recorder, LocalEngine(embedded=True) as engine:
            clients = make_clients()
            account = demo.prepare_account(clients)
            storage = {k: str(v) for k, v in account.storage.items()}
            assert storage["prefix"] == PREFIX
            pool = seed.seed_pool(boto3.client("cognito-idp"), users=12, seed=5)
            backup = run_backup(
                engine, storage=account.storage, pool_ids=[pool.pool_id], all_pools=False, timeout_s=600
            )
            assert backup.succeeded, backup.message
            drilled = run_drill(
                engine, storage=account.storage, payload={"poolId": pool.pool_id, "sample": 5}, timeout_s=600
            )
            assert drilled.succeeded, drilled.message
            result = drilled.output["drills"][0]
            assert result["passed"] is True, result
            tags = {result["scratchPoolId"]: {DRILL_TAG: result["drillId"]}}
            mac_key = clients.kms.describe_key(KeyId=DEFAULT_MAC_KEY)["KeyMetadata"]["Arn"]
            world = World(
                REGION, ACCOUNT, storage["bucket"], storage["kmsKeyArn"], PREFIX, mac_key, pool_tags=tags
            )
            yield DrillRun(sorted(recorder.calls(), key=lambda c: c.describe()), world, result)
        default_clients.cache_clear()


@pytest.fixture(scope="module")
def template(drill_run: DrillRun, tmp_path_factory: pytest.TempPathFactory) -> ResolvedTemplate:
    from infra.app import SKIP_BUNDLING, build_app
    from infra.app import STACK_NAME as CDK_STACK

    outdir: Path = tmp_path_factory.mktemp("iam-drill-synth")
    app, _ = build_app({**SKIP_BUNDLING}, outdir=str(outdir))
    app.synth()
    raw = json.loads((outdir / f"{CDK_STACK}.template.json").read_text())
    world = drill_run.world
    physical: dict[str, dict[str, str]] = {}
    for output, values in {
        "BackupBucketName": {"Ref": world.bucket, "Arn": f"arn:aws:s3:::{world.bucket}"},
        "KmsKeyArn": {"Ref": world.key_arn.rsplit("/", 1)[-1], "Arn": world.key_arn},
        "MacKeyArn": {"Ref": world.mac_key_arn.rsplit("/", 1)[-1], "Arn": world.mac_key_arn},
        "RateBudgetTableName": {
            "Ref": shared_budget.LOCAL_TABLE,
            "Arn": world.table_arn(shared_budget.LOCAL_TABLE),
        },
    }.items():
        value = raw["Outputs"][output]["Value"]
        physical[value["Ref"] if "Ref" in value else value["Fn::GetAtt"][0]] = values
    return ResolvedTemplate(raw, world, physical)


def _decide(
    template: ResolvedTemplate, rows: list[tuple[str, Authorization]]
) -> list[tuple[str, Authorization, bool, str]]:
    policies: dict[str, Any] = dict(template.resource_policies())
    requests = []
    for actor, auth in rows:
        role, principal = _principal(template, actor)
        identity = template.identity_policies(role)
        policies.update(identity)
        auth.context.setdefault("aws:PrincipalArn", template.role_arn(role))
        auth.context.setdefault("aws:PrincipalAccount", ACCOUNT)
        requests.append((principal, ACCOUNT, auth, sorted(identity)))
    decisions = evaluate(requests, policies)
    return [
        (actor, auth, d.allowed, d.explain(auth.resource_policy))
        for (actor, auth), d in zip(rows, decisions, strict=True)
    ]


def _rows(run: DrillRun, world: World, calls: list[Call]) -> list[tuple[str, Authorization]]:
    return [(c.actor, auth) for c in calls for auth in authorizations(c, world)]


def test_every_call_of_a_drill_is_allowed_on_its_tagged_scratch_pool(
    drill_run: DrillRun, template: ResolvedTemplate
) -> None:
    actors = {c.actor for c in drill_run.calls}
    # The tasks that call AWS were all recorded (DrillSummarize calls nothing).
    assert {f"task:{t}" for t in DRILL_TASKS} - actors == {"task:DrillSummarize"}
    ops = {(c.actor, c.operation) for c in drill_run.calls if c.service == "cognito-idp"}
    assert ("task:DrillRestoreConfig", "CreateUserPool") in ops
    assert ("task:DrillCleanup", "DeleteUserPool") in ops
    assert ("task:DrillRestoreUsers", "AdminCreateUser") in ops
    denied = [
        f"{actor}: {auth.describe()} ({why})"
        for actor, auth, allowed, why in _decide(template, _rows(drill_run, drill_run.world, drill_run.calls))
        if not allowed
    ]
    assert denied == []


def _against(call: Call, pool_id: str) -> Call:
    params = call.parameters
    params["UserPoolId"] = pool_id
    return replace(call, params=json.dumps(params, sort_keys=True))


@pytest.mark.parametrize(
    "production_tags",
    [{}, {DRILL_TAG: "prod"}, {"cognito-backuper:restore-of": "x"}],
    ids=["untagged", "drill-key-not-a-drill-id", "other-tag"],
)
def test_the_drill_roles_are_refused_on_a_production_pool(
    drill_run: DrillRun, template: ResolvedTemplate, production_tags: dict[str, str]
) -> None:
    world = replace(drill_run.world, pool_tags={PRODUCTION_POOL: production_tags})
    on_pools = [
        _against(c, PRODUCTION_POOL)
        for c in drill_run.calls
        if c.service == "cognito-idp" and "UserPoolId" in c.parameters
    ]
    assert {c.operation for c in on_pools} >= {
        "AdminCreateUser",
        "AdminAddUserToGroup",
        "CreateGroup",
        "DeleteUserPool",
        "DescribeUserPool",
        "ListUsers",
    }
    decided = _decide(
        template,
        [
            (a, auth)
            for a, auth in _rows(drill_run, world, on_pools)
            if auth.action.startswith("cognito-idp:")
        ],
    )
    allowed = [f"{actor}: {auth.describe()}" for actor, auth, ok, _ in decided if ok]
    assert allowed == []


def test_create_user_pool_needs_the_drill_tag_in_the_request(
    drill_run: DrillRun, template: ResolvedTemplate
) -> None:
    created = next(c for c in drill_run.calls if c.operation == "CreateUserPool")
    assert created.parameters["UserPoolTags"][DRILL_TAG] == drill_run.result["drillId"]
    untagged = {k: v for k, v in created.parameters.items() if k != "UserPoolTags"}
    forged = {**created.parameters, "UserPoolTags": {DRILL_TAG: "prod"}}
    variants = [replace(created, params=json.dumps(p, sort_keys=True)) for p in (untagged, forged)]
    decided = _decide(template, [(c.actor, a) for c in variants for a in authorizations(c, drill_run.world)])
    assert [
        (auth.action, ok) for _, auth, ok, _ in decided if auth.action == "cognito-idp:CreateUserPool"
    ] == [
        ("cognito-idp:CreateUserPool", False),
        ("cognito-idp:CreateUserPool", False),
    ]


def test_no_drill_role_may_tag_or_update_a_pool(template: ResolvedTemplate) -> None:
    """The tag is the boundary: a drill role that could put it on a pool could make any pool its own."""
    granted: set[str] = set()
    for task in DRILL_TASKS:
        role, _ = _principal(template, f"task:{task}")
        for doc in template.identity_policies(role).values():
            for statement in doc["Statement"]:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                granted |= {a for a in actions if a.startswith("cognito-idp:")}
    assert (
        granted
        & {
            "cognito-idp:TagResource",
            "cognito-idp:UntagResource",
            "cognito-idp:UpdateUserPool",
            "cognito-idp:*",
        }
        == set()
    )
    assert "cognito-idp:DeleteUserPool" in granted
