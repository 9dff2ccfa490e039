"""The IAM contract: every AWS call the tasks and the two people make is allowed by the synthesized stack, and the
stack grants nothing that no call needs.

moto evaluates no IAM policy, so the backup and restore machines run here on the embedded local engine, driven by
the CLI in AWS mode (the deployed-stack path: CloudFormation outputs, StartExecution, DescribeExecution, history)
under the operator, while the approver lists, approves and rejects from the CLI. Every call is recorded with its
actor (iam_recorder) and decided by @cloud-copilot/iam-simulate against the template the CDK app synthesizes: the
actor's role policies, the bucket policy and the key policy, with the condition keys the real request carries.
The scheduled CheckPendingApprovals runs while each restore waits for its decision, under its own role.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import boto3
import moto  # noqa: F401 - moto's hook must be in botocore's built-in handlers before the recorder's
import pytest

import tasks.check_pending_approvals as check_pending
from infra.access import APPROVER_ROLE_SUFFIX, OPERATOR_ROLE_SUFFIX
from infra.approval_watch import SCHEDULED_TASKS
from infra.permissions import AUDIT_WRITERS, TASK_NEEDS, TaskNeeds
from pipeline.cognito import shared_budget, throttle
from pipeline.core import task_names
from pipeline.core.aws import default_clients, make_clients
from pipeline.core.layout import BackupLocation, parse_backup_uri
from pipeline.operator import demo, seed
from pipeline.operator.aws_engine import STACK_NAME, output_name
from pipeline.operator.cli import main
from pipeline.operator.local_engine import LocalEngine
from pipeline.restore import approval, approval_watch
from pipeline.restore import steps as restore
from pipeline.sealing.manifest_mac import DEFAULT_MAC_KEY
from tests.iam.iam_contract import (
    Authorization,
    Decision,
    ResolvedTemplate,
    UnmappedCall,
    World,
    authorizations,
    evaluate,
)
from tests.iam.iam_recorder import Call, Recorder, acting_as, recording

REGION = "us-east-1"
ACCOUNT = "123456789012"
PREFIX = "backups"  # the template's default backupPrefix
OPERATOR = "operator"
APPROVER = "approver"
# The state machines' tasks and the scheduled ones (infra.approval_watch), each with its own role.
TASKS = sorted(TASK_NEEDS) + sorted(SCHEDULED_TASKS)
KEY_ALIAS = "alias/cognito-backuper"
RECORD_ENV = "IAM_CONTRACT_OUT"

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


@dataclass
class Recorded:
    recorder: Recorder
    world: World
    physical: dict[str, dict[str, str]]  # template output name -> physical values


def _env(patch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA", "AWS_SESSION_TOKEN"):
        patch.delenv(var, raising=False)
    patch.setenv("AWS_ACCESS_KEY_ID", "testing")
    patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    patch.setenv("AWS_DEFAULT_REGION", REGION)
    patch.setenv("AWS_REGION", REGION)
    patch.setenv("AWS_CONFIG_FILE", "/nonexistent/cognito-backuper-test-config")
    patch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/cognito-backuper-test-credentials")
    # moto has no quotas: the limiter at full rate keeps the run short.
    patch.setenv(throttle.FRACTION_ENV, "1.0")


def _cli(actor: str, *argv: str, exit_codes: tuple[int, ...] = (0,)) -> dict[str, Any]:
    """One CLI command as a person: its calls are recorded as ``<actor>:<command>``; its JSON result."""
    buffer = StringIO()
    with acting_as(f"{actor}:{argv[0]}"), redirect_stdout(buffer):
        code = main([*argv, "--json"])
    assert code in exit_codes, f"{' '.join(argv)} exited {code}: {buffer.getvalue()[-2000:]}"
    result: dict[str, Any] = json.loads(buffer.getvalue())
    return result


class Approver:
    """The second person: an IAM user of the account, whose credentials the CLI picks up from the environment."""

    def __init__(self) -> None:
        iam = boto3.client("iam")
        iam.create_user(UserName="approver")
        key = iam.create_access_key(UserName="approver")["AccessKey"]
        self._key = (key["AccessKeyId"], key["SecretAccessKey"])
        self._lock = threading.Lock()

    def run(self, *argv: str) -> dict[str, Any]:
        with self._lock, pytest.MonkeyPatch.context() as patch:
            patch.setenv("AWS_ACCESS_KEY_ID", self._key[0])
            patch.setenv("AWS_SECRET_ACCESS_KEY", self._key[1])
            return _cli(APPROVER, *argv)


def _restore_with_decision(
    storage: dict[str, str],
    approver: Approver,
    restore_args: list[str],
    *,
    restore_arn: str,
    approve: bool,
    exit_codes: tuple[int, ...] = (0,),
) -> dict[str, Any]:
    """The operator's ``restore`` waits in a thread while the approver lists and decides."""
    result: dict[str, Any] = {}

    def requester() -> None:
        try:
            result["out"] = _cli(
                OPERATOR,
                "restore",
                *restore_args,
                "--approval-timeout",
                "300",
                "--quiet",
                exit_codes=exit_codes,
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            result["error"] = exc

    thread = threading.Thread(target=requester, daemon=True)
    thread.start()
    clients = make_clients()
    sink = restore.audit_sink(clients, storage)  # type: ignore[arg-type]
    deadline = time.monotonic() + 300
    while not approval.pending(sink):
        assert thread.is_alive(), result.get("error")
        assert time.monotonic() < deadline, "no approval request within 300 s"
        time.sleep(0.2)
    # The schedule's check meanwhile: it finds this restore waiting in RequestApproval (the handler looked up
    # now, so the recorder's wrapper runs it as task:CheckPendingApprovals).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(approval_watch.MACHINE_ENV, restore_arn)
        checked = check_pending.handler({}, None)
    assert checked["pendingApprovals"] == 1, checked
    listed = approver.run("approvals", "--bucket", storage["bucket"], "--prefix", PREFIX)
    (request,) = listed["pending"]
    verb = "approve" if approve else "reject"
    approver.run(
        verb, request["requestId"], "--bucket", storage["bucket"], "--prefix", PREFIX, "--reason", "iam"
    )
    thread.join(600)
    assert not thread.is_alive(), "restore still running after 600 s"
    if "error" in result:
        raise result["error"]
    out: dict[str, Any] = result["out"]
    return out


def _configure(cognito: Any, pool_id: str) -> None:
    """What the demo pool lacks and a real one has: MFA, an identity provider, a resource server, a domain."""
    cognito.set_user_pool_mfa_config(
        UserPoolId=pool_id, SoftwareTokenMfaConfiguration={"Enabled": True}, MfaConfiguration="OPTIONAL"
    )
    cognito.create_identity_provider(
        UserPoolId=pool_id,
        ProviderName="corp",
        ProviderType="OIDC",
        ProviderDetails={
            "client_id": "corp-client",
            "authorize_scopes": "openid",
            "oidc_issuer": "https://idp.example.com",
            "attributes_request_method": "GET",
        },
        AttributeMapping={"email": "email"},
    )
    cognito.create_resource_server(
        UserPoolId=pool_id,
        Identifier="https://api.example.com",
        Name="api",
        Scopes=[{"ScopeName": "read", "ScopeDescription": "read"}],
    )
    cognito.create_user_pool_domain(
        UserPoolId=pool_id, Domain=f"iam-contract-{pool_id.split('_')[-1][:8].lower()}"
    )


def _plant_leftovers(clients: Any, uri: str, key_arn: str) -> str:
    """A backup folder with parts and no manifest, as an interrupted backup leaves it (setup: not recorded)."""
    done = parse_backup_uri(uri)
    cut = BackupLocation(done.bucket, done.prefix, done.pool_id, "20261202T010000Z-c0ffee")
    for item in clients.s3.list_objects_v2(Bucket=done.bucket, Prefix=done.root)["Contents"]:
        if not item["Key"].endswith("manifest.json"):
            clients.s3.copy_object(
                Bucket=done.bucket,
                Key=cut.root + done.relative(item["Key"]),
                CopySource={"Bucket": done.bucket, "Key": item["Key"]},
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=key_arn,
            )
    return cut.uri


@pytest.fixture(scope="module")
def recorded() -> Iterator[Recorded]:
    """Backup, list, verify, dry run, diff, and three restores (new pool, existing pool, rejected), recorded."""
    with pytest.MonkeyPatch.context() as patch:
        _env(patch)
        default_clients.cache_clear()
        throttle.default_budget.cache_clear()
        with recording(TASKS) as recorder, LocalEngine(embedded=True) as engine:
            clients = make_clients()
            account = demo.prepare_account(clients)
            storage = {k: str(v) for k, v in account.storage.items()}
            assert storage["prefix"] == PREFIX
            topic = boto3.client("sns").create_topic(Name="cognito-backuper-approvals")["TopicArn"]
            patch.setenv(approval.TOPIC_ENV, topic)
            cognito = boto3.client("cognito-idp")
            pool = seed.seed_pool(cognito, users=12, seed=11)
            _configure(cognito, pool.pool_id)
            assert clients.kms.describe_key(KeyId=KEY_ALIAS)["KeyMetadata"]["Arn"] == storage["kmsKeyArn"]
            subs = {
                "BackupBucket": storage["bucket"],
                "KmsKeyArn": storage["kmsKeyArn"],
                "BackupPrefix": PREFIX,
            }
            backup_arn = engine.deploy("backup", subs)
            restore_arn = engine.deploy("restore", {**subs, "BackupStateMachineArn": backup_arn})
            outputs = {output_name("backup"): backup_arn, output_name("restore"): restore_arn}
            boto3.client("cloudformation").create_stack(
                StackName=STACK_NAME,
                TemplateBody=json.dumps(
                    {
                        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
                    }
                ),
            )
            approver = Approver()
            location = ["--bucket", storage["bucket"], "--prefix", PREFIX]

            # The operator: no --engine, so the CLI finds the deployed stack as it would on AWS; the key by alias.
            backup = _cli(OPERATOR, "backup", "--all-pools", *location, "--kms-key", KEY_ALIAS, "--quiet")
            uri = backup["backups"][0]["uri"]
            _cli(OPERATOR, "list", *location)
            _cli(OPERATOR, "verify", uri, "--quiet")
            _cli(OPERATOR, "restore", "--backup", uri, "--target-pool", pool.pool_id, "--dry-run", "--quiet")
            _cli(OPERATOR, "diff", uri, "--pool-id", pool.pool_id)

            group = next(name for name, members in pool.groups.items() if members)
            some_user = cognito.list_users_in_group(UserPoolId=pool.pool_id, GroupName=group, Limit=1)[
                "Users"
            ][0]["Username"]
            created = _restore_with_decision(
                storage,
                approver,
                ["--backup", uri, "--new-pool", "iam"],
                restore_arn=restore_arn,
                approve=True,
            )
            assert created["verification"]["passed"] is True, created
            # A bare existing pool: the merge adds custom attributes, providers, servers and groups to it.
            target = cognito.create_user_pool(PoolName="existing-target")["UserPool"]["Id"]
            # A member already there: the merge looks it up and reads its groups instead of creating it.
            cognito.admin_create_user(UserPoolId=target, Username=some_user, MessageAction="SUPPRESS")
            # Its report may list differences (the bare pool's own settings); the calls are what is recorded here.
            merged = _restore_with_decision(
                storage,
                approver,
                ["--backup", uri, "--target-pool", target],
                restore_arn=restore_arn,
                approve=True,
                exit_codes=(0, 1),
            )
            assert merged.get("error") in (None, "RestoreNotVerified"), merged
            # A selection (sealed by the operator, re-sealed by ValidateRequest), then rejected.
            refused = _restore_with_decision(
                storage,
                approver,
                ["--backup", uri, "--new-pool", "refused", "--user", some_user],
                restore_arn=restore_arn,
                approve=False,
                exit_codes=(1,),
            )
            assert refused["error"] == "ApprovalRejected", refused
            # An interrupted backup's leftovers (parts copied under another id, no manifest), purged by the
            # operator through the backup machine's PurgeIncompleteBackup task: the operator has no DeleteObject.
            leftovers = _plant_leftovers(clients, uri, storage["kmsKeyArn"])
            purged = _cli(OPERATOR, "purge-incomplete", leftovers, "--idle-minutes", "0", "--quiet")
            assert purged["purged"]["uri"] == leftovers, purged
            # The operator checks the audit trail the restores wrote.
            audit_check = _cli(OPERATOR, "audit", "--verify", *location)
            assert audit_check["intact"] is True, audit_check

            mac_key = clients.kms.describe_key(KeyId=DEFAULT_MAC_KEY)["KeyMetadata"]["Arn"]
            world = World(REGION, ACCOUNT, storage["bucket"], storage["kmsKeyArn"], PREFIX, mac_key)
            physical = {
                "BackupBucketName": {"Ref": storage["bucket"], "Arn": f"arn:aws:s3:::{storage['bucket']}"},
                "KmsKeyArn": {"Ref": storage["kmsKeyArn"].rsplit("/", 1)[-1], "Arn": storage["kmsKeyArn"]},
                "NotificationTopicArn": {"Ref": topic, "TopicArn": topic},
                "RateBudgetTableName": {
                    "Ref": shared_budget.LOCAL_TABLE,
                    "Arn": world.table_arn(shared_budget.LOCAL_TABLE),
                },
                "MacKeyArn": {"Ref": mac_key.rsplit("/", 1)[-1], "Arn": mac_key},
                output_name("backup"): {"Ref": backup_arn, "Name": backup_arn.rsplit(":", 1)[-1]},
                output_name("restore"): {"Ref": restore_arn, "Name": restore_arn.rsplit(":", 1)[-1]},
            }
            yield Recorded(recorder, world, physical)
        default_clients.cache_clear()
        throttle.default_budget.cache_clear()


@pytest.fixture(scope="module")
def template(recorded: Recorded, tmp_path_factory: pytest.TempPathFactory) -> ResolvedTemplate:
    from infra.app import SKIP_BUNDLING, build_app
    from infra.app import STACK_NAME as CDK_STACK

    outdir: Path = tmp_path_factory.mktemp("iam-synth")
    app, _ = build_app({**SKIP_BUNDLING}, outdir=str(outdir))
    app.synth()
    raw = json.loads((outdir / f"{CDK_STACK}.template.json").read_text())
    # The logical ids behind the outputs are the resources the test account really holds.
    physical: dict[str, dict[str, str]] = {}
    for output, values in recorded.physical.items():
        value = raw["Outputs"][output]["Value"]
        logical = value["Ref"] if "Ref" in value else value["Fn::GetAtt"][0]
        physical[logical] = values
    return ResolvedTemplate(raw, recorded.world, physical)


@dataclass(frozen=True)
class Judged:
    actor: str
    call: Call
    auth: Authorization
    decision: Decision


def _principal(template: ResolvedTemplate, actor: str) -> tuple[str, str]:
    """(role logical id, session principal ARN) of a task or a person."""
    kind, name = actor.split(":", 1)
    if kind == "task":
        role = template.role_of_function(task_names.function_name(name))
    else:
        suffix = OPERATOR_ROLE_SUFFIX if kind == OPERATOR else APPROVER_ROLE_SUFFIX
        wanted = f"CognitoBackuperStack-{template.resolve({'Ref': 'AWS::Region'})}-{suffix}"
        role = next(
            lid
            for lid, res in template.resources.items()
            if res["Type"] == "AWS::IAM::Role"
            and template.resolve(res["Properties"].get("RoleName")) == wanted
        )
    role_name = template.role_arn(role).rsplit("/", 1)[-1]
    return role, f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/{kind}-session"


@pytest.fixture(scope="module")
def judged(recorded: Recorded, template: ResolvedTemplate) -> list[Judged]:
    """Every recorded call's IAM requests, decided in one evaluator run."""
    policies: dict[str, Any] = dict(template.resource_policies())
    rows: list[tuple[str, Call, Authorization]] = []
    requests: list[tuple[str, str, Authorization, list[str]]] = []
    unmapped: list[str] = []
    for call in recorded.recorder.calls():
        role, principal = _principal(template, call.actor)
        identity = template.identity_policies(role)
        policies.update(identity)
        try:
            auths = authorizations(call, recorded.world)
        except UnmappedCall as exc:
            unmapped.append(f"{call.actor}: {exc}")
            continue
        for auth in auths:
            auth.context.setdefault("aws:PrincipalArn", template.role_arn(role))
            auth.context.setdefault("aws:PrincipalAccount", ACCOUNT)
            rows.append((call.actor, call, auth))
            requests.append((principal, ACCOUNT, auth, sorted(identity)))
    assert not unmapped, "calls the contract cannot translate into IAM requests:\n" + "\n".join(
        sorted(set(unmapped))
    )
    decisions = evaluate(requests, policies)
    result = [Judged(a, c, auth, d) for (a, c, auth), d in zip(rows, decisions, strict=True)]
    _write_record(result)
    return result


def _write_record(judged: list[Judged]) -> None:
    """With IAM_CONTRACT_OUT set to a directory, every decided request as JSON lines, one file per xdist worker."""
    out = os.environ.get(RECORD_ENV)
    if not out:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    path = Path(out) / f"iam-contract-{worker}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for j in judged:
            row = {
                "actor": j.actor,
                "call": f"{j.call.service}:{j.call.operation}",
                "params": j.call.parameters,
                "missing": j.call.missing,
                "action": j.auth.action,
                "resource": j.auth.resource,
                "context": j.auth.context,
                "decision": j.decision.result,
                "deciding": j.decision.explain(j.auth.resource_policy),
            }
            f.write(json.dumps(row, sort_keys=True) + "\n")


def _denials(judged: list[Judged], keep: Callable[[str], bool]) -> list[str]:
    return sorted(
        {
            f"{j.actor}: {j.call.service}:{j.call.operation} needs {j.auth.describe()} "
            f"{json.dumps(j.auth.context, sort_keys=True)} -> {j.decision.result}: "
            f"{j.decision.explain(j.auth.resource_policy)}"
            for j in judged
            if keep(j.actor) and not j.decision.allowed
        }
    )


def _coverage_gaps(recorded: Recorded, judged: list[Judged]) -> list[str]:
    gaps = [f"task never ran: {t}" for t in sorted(set(TASKS) - recorded.recorder.invoked)]
    calling = {c.actor.split(":", 1)[1] for c in recorded.recorder.calls("task:")}
    gaps += [
        f"task with permissions made no call: {t}"
        for t in TASKS
        if (t in SCHEDULED_TASKS or TASK_NEEDS[t] != TaskNeeds()) and t not in calling
    ]
    actors = {j.actor for j in judged}
    wanted = [f"{OPERATOR}:{c}" for c in ("backup", "list", "verify", "restore", "purge-incomplete")]
    wanted += [f"{APPROVER}:{c}" for c in ("approvals", "approve", "reject")]
    gaps += [f"no call recorded for {actor}" for actor in wanted if actor not in actors]
    return gaps


def _granted(template: ResolvedTemplate, role: str) -> set[str]:
    """Actions a role's own policies allow, and those the key policy grants it by name."""
    granted: set[str] = set()
    role_arn = template.role_arn(role)

    def actions(statement: dict[str, Any]) -> list[str]:
        value = statement.get("Action", [])
        return [value] if isinstance(value, str) else list(value)

    for doc in template.identity_policies(role).values():
        for statement in doc["Statement"]:
            if statement["Effect"] == "Allow":
                granted.update(actions(statement))
    for doc in template.resource_policies().values():
        for statement in doc["Statement"]:
            principal = statement.get("Principal", {})
            named = principal.get("AWS") if isinstance(principal, dict) else None
            if statement["Effect"] == "Allow" and role_arn in (
                [named] if isinstance(named, str) else named or []
            ):
                granted.update(actions(statement))
    return granted


def _overgranted(judged: list[Judged], template: ResolvedTemplate) -> list[str]:
    """Granted actions no recorded call needs, unless allow-listed; and allow-list entries that are reached."""
    needed: dict[str, set[str]] = {}
    for j in judged:
        role, _ = _principal(template, j.actor)
        needed.setdefault(role, set()).add(j.auth.action)
    roles = {_principal(template, f"task:{t}")[0]: f"task:{t}" for t in TASKS}
    roles.update({_principal(template, f"{p}:x")[0]: p for p in (OPERATOR, APPROVER)})
    found = [
        f"{who} ({role}) is granted {action}, which no recorded call needs"
        for role, who in sorted(roles.items())
        for action in sorted(_granted(template, role) - needed.get(role, set()))
        if (who, action) not in UNREACHED
    ]
    found += [
        f"UNREACHED lists {action} for {who}, but the scenario reaches it: remove the entry"
        for (who, action) in sorted(UNREACHED)
        if action in needed.get(_role_of(template, who), set())
    ]
    return found


def test_iam_contract(recorded: Recorded, judged: list[Judged], template: ResolvedTemplate) -> None:
    """One test, so that the scenario runs once per session whatever worker xdist gives it to."""
    sections = {
        "coverage: what the scenario must exercise": _coverage_gaps(recorded, judged),
        "task calls the deployed roles would refuse": _denials(judged, lambda a: a.startswith("task:")),
        "operator and approver CLI calls the deployed roles would refuse": _denials(
            judged, lambda a: not a.startswith("task:")
        ),
        "least privilege (remove the grant, or allow-list it in UNREACHED with a reason)": _overgranted(
            judged, template
        ),
        # Leftovers of an interrupted backup are removed by the PurgeIncompleteBackup task, never by a person.
        "people who may delete backup objects": [
            f"{who} is granted s3:DeleteObject"
            for who in (OPERATOR, APPROVER)
            if {"s3:DeleteObject", "s3:*", "*"} & _granted(template, _role_of(template, who))
        ],
    }
    failing = {title: problems for title, problems in sections.items() if problems}
    assert not failing, "\n".join(
        f"{title}:\n" + "\n".join(f"  {p}" for p in problems) for title, problems in failing.items()
    )


def _role_of(template: ResolvedTemplate, who: str) -> str:
    return _principal(template, who if ":" in who and who.startswith("task:") else f"{who}:x")[0]


# Granted actions the recorded scenario cannot reach, each with the reason it is still needed. Keep it short:
# an entry that the scenario does reach fails the test, so the list cannot go stale.
_LAMBDA_LOGS = "the Lambda runtime writes the function's log stream; no handler call does"
_MISSING_KEY = (
    "reads objects that can be missing (a damaged backup, a decision not yet written): S3 answers 404 only to a "
    "caller that may s3:ListBucket with the key as s3:prefix, 403 otherwise, and the error would then say "
    "'access denied' instead of 'missing'; every read of the scenario finds its object"
)
UNREACHED: dict[tuple[str, str], str] = {
    **{(f"task:{t}", "logs:CreateLogStream"): _LAMBDA_LOGS for t in TASKS},
    **{(f"task:{t}", "logs:PutLogEvents"): _LAMBDA_LOGS for t in TASKS},
    **{
        (f"task:{t}", "s3:ListBucket"): _MISSING_KEY
        for t in (
            "FinalizeTargetPool",
            "IndexMemberships",
            "RestorePoolConfig",
            "RestoreUsers",
        )
    },
    **{
        (f"task:{t}", "s3:PutObjectRetention"): (
            "audit records are locked for the audit retention on a bucket with Object Lock; the local account's "
            "bucket has none (moto refuses lock headers there), so the scenario writes them unlocked"
        )
        for t in sorted(AUDIT_WRITERS)
    },
    ("task:RestorePoolConfig", "cognito-idp:GetGroup"): (
        "a group the target already has (a re-run, or a merge into a pool with it) is read, not listed; the "
        "scenario's targets lack the backup's groups (tests/functional/test_config_restore_slices.py plays it)"
    ),
    ("task:RestoreUsers", "cognito-idp:AdminUpdateUserAttributes"): (
        "UNCONFIRMED users: verified flags after SignUp (tests/functional/test_user_restore.py)"
    ),
    ("task:RestoreUsers", "cognito-idp:ListUsers"): (
        "pools whose usernames are e-mails or phones: the user is found by a filtered ListUsers"
    ),
    (
        "task:FinalizeTargetPool",
        "iam:PassRole",
    ): "UpdateUserPool with the pool's SMS role; the test pool has none",
    ("task:RestorePoolConfig", "cognito-idp:CreateUserPoolDomain"): (
        "the domain name stays held by the source pool in the test account; another account or Region creates it"
    ),
    (
        OPERATOR,
        "states:StopExecution",
    ): "a person stops a runaway execution from the console; the CLI never does",
}
