"""Restore-side commands: restore (with --dry-run), approve, reject, approvals, diff."""

from __future__ import annotations

import argparse
import uuid
from dataclasses import asdict
from typing import Any

import boto3
import botocore.exceptions

from pipeline.core import errors, identity_proof
from pipeline.core.aws import Clients, caller_arn, error_code, sdk_errors, standard_session
from pipeline.core.contracts import Storage
from pipeline.core.layout import check_backup_area, check_pool_id, is_pool_name
from pipeline.operator.cli_common import (
    add_bucket_flags,
    add_engine_flag,
    add_mac_key_flag,
    add_output_flags,
    add_rate_flags,
    backup_location,
    camel_keys,
    emit,
    engine_for,
    err,
    fail,
    preflight,
)
from pipeline.operator.runs import EXIT_FAILED, exit_code_for
from pipeline.restore import approval
from pipeline.restore import steps as restore
from pipeline.restore.report import read_report, summary_lines
from pipeline.sealing import audit
from pipeline.sealing.backup_reader import BackupReader
from pipeline.sealing.envelope import BACKUP_KEY_ALIAS as DEPLOYED_KEY_ALIAS

DEFAULT_APPROVAL_TIMEOUT_S = 24 * 3600
DEFAULT_RESTORE_TIMEOUT_S = 6 * 3600


def check_pool_name(name: str) -> str:
    """A name CreateUserPool accepts, checked before anything runs, dry run included."""
    if not is_pool_name(name):
        raise errors.InvalidRequest(
            f"not a user pool name: {name!r} (1 to 128 letters, digits, spaces or + = , . @ - _)"
        )
    return name


def _settings_of(clients: Clients, uri: str) -> tuple[Storage, BackupReader]:
    """A restore runs with the bucket, prefix and key of the backup it restores: the key as its manifest names
    it, which the deployment's MAC key vouches for (only WriteManifest, with the deployment's key, tags one)."""
    loc = check_backup_area(backup_location(uri))
    reader = BackupReader.open(clients, loc)
    return {"bucket": loc.bucket, "kmsKeyArn": reader.doc["kmsKeyArn"], "prefix": loc.prefix}, reader


def _sink(clients: Clients, bucket: str, prefix: str, key: str | None) -> audit.AuditSink:
    """The approval store of a bucket, opened with the deployment's backup key (``--kms-key``, else the alias the
    CDK app gives it): never a key read from an object in the bucket, which whoever may write there would choose."""
    settings: Storage = {"bucket": bucket, "kmsKeyArn": key or DEPLOYED_KEY_ALIAS, "prefix": prefix}
    sink = restore.audit_sink(clients, settings)
    with sdk_errors():
        try:
            clients.s3.list_objects_v2(Bucket=bucket, Prefix=sink.approvals_root, MaxKeys=1)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "NoSuchBucket":
                raise errors.BucketNotFound(f"bucket {bucket} does not exist") from exc
            raise
    return sink


def cmd_restore(args: argparse.Namespace) -> int:
    from pipeline.operator.progress import ProgressPrinter, RestoreProgress
    from pipeline.operator.runs import run_restore
    from pipeline.restore.plan import plan_restore

    if args.target_pool:
        check_pool_id(args.target_pool)
    if args.new_pool is not None:
        check_pool_name(args.new_pool)
    clients = preflight()
    settings, reader = _settings_of(clients, args.backup)
    users, groups = list(args.user or []), list(args.group or [])
    if args.dry_run:
        plan = plan_restore(
            clients,
            reader.loc,
            target_pool_id=args.target_pool,
            new_pool_name=args.new_pool,
            users=users,
            groups=groups,
        )
        plan["users"] = camel_keys(plan["users"])
        _emit_plan(args, plan)
        return 0
    # Who asks is proven to the pipeline by a signed STS request bound to this execution's name.
    execution_name = str(uuid.uuid4())
    proof = identity_proof.make_proof(
        standard_session(), clients, identity_proof.purpose("restore", execution_name)
    )
    selection_key = None
    if users or groups:
        selection_key = restore.selection_key(settings, uuid.uuid4().hex)
        audit.put_document(
            restore.audit_sink(clients, settings),
            selection_key,
            {"users": users, "groups": groups},
            restore.selection_context(selection_key),
            create_only=True,
        )
    payload = {
        "backupUri": reader.loc.uri,
        "targetPoolId": args.target_pool,
        "newPoolName": args.new_pool,
        "selectionKey": selection_key,
        "requesterProof": proof,
        "approvalTimeoutSeconds": args.approval_timeout,
    }

    def announce(request_id: str) -> None:
        err(
            f"approval request {request_id}: waiting for another person to run\n"
            f"  cognito-backuper approve {request_id} --bucket {settings['bucket']} --prefix {settings['prefix']}"
            " --profile <approver>"
        )

    tracker = RestoreProgress(on_request=announce)
    printer = ProgressPrinter(tracker, quiet=args.quiet)
    from pipeline.operator.aws_engine import AwsEngine

    engine: Any = None
    try:
        with engine_for(args) as engine:
            engine.serve_api()
            outcome = run_restore(
                engine,
                storage=settings,
                payload=payload,
                on_event=printer,
                on_poll=printer.tick,
                timeout_s=args.approval_timeout + args.timeout,
                execution_name=execution_name,
            )
    except KeyboardInterrupt:
        _record_interrupted(clients, settings, tracker.request_id, on_aws=isinstance(engine, AwsEngine))
        raise
    printer.close()
    result: dict[str, Any] = {
        "status": outcome.status,
        "requestId": tracker.request_id,
        # The local engine's execution is gone once the command ends: only a deployed one can be looked up.
        "executionArn": outcome.execution_arn if isinstance(engine, AwsEngine) else None,
        "durationSeconds": round(outcome.duration_s, 3),
    }
    if not outcome.succeeded:
        message = f"restore did not complete ({outcome.error}): {outcome.message}"
        if outcome.error == "RestoreNotVerified" and tracker.request_id:
            uri, document = read_report(clients, settings["bucket"], settings["prefix"], tracker.request_id)
            result["report"] = {"uri": uri, **_report_summary(document)}
            message += "\n" + "\n".join([f"report {uri}", *summary_lines(document)])
        return fail(args, exit_code_for(outcome.error), outcome.error or "Failed", message, **result)
    out = outcome.output or {}
    result.update(
        targetPoolId=out.get("targetPoolId"),
        report=out.get("report"),
        verification=out.get("verification"),
        snapshot=out.get("snapshot"),
    )
    report = out.get("report") or {}
    text = (
        f"restored into {result['targetPoolId']}: users created {report.get('created', 0)}, existing "
        f"{report.get('existing', 0)}, failed {report.get('failed', 0)}; memberships added "
        f"{report.get('membershipsAdded', 0)}; verified against the backup\n"
        f"report s3://{settings['bucket']}/{report.get('reportKey', '')} (sealed; holds the old-to-new id map)"
    )
    emit(args, result, text)
    return 0


def _record_interrupted(clients: Clients, settings: Storage, request_id: str | None, *, on_aws: bool) -> None:
    """Ctrl-C: the local engine's execution is stopped with the command, so its request is cancelled, and the
    audit trail says so (no decision can reach it any more). On AWS the execution goes on and can be decided."""
    if on_aws:
        err(
            "interrupted: the execution keeps running on AWS"
            + (f"; {request_id} can still be decided" if request_id else "")
        )
        return
    if request_id is None:
        return  # stopped before the request was made: nothing to cancel
    sink = restore.audit_sink(clients, settings)
    try:
        decided = audit.exists(sink, approval.decision_key(sink, request_id))
        # Before a decision the request is cancelled; after an approval the restore stopped part way, and running
        # the same restore again completes it.
        details = (
            {"reason": "the restore command was interrupted after the decision; its execution stopped"}
            if decided
            else {
                "decision": "cancelled",
                "reason": "the restore command was interrupted; its execution stopped",
            }
        )
        approval.record_outcome(sink, request_id, "restore.failed", details)
    except (errors.PipelineError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        err(f"interrupted: the audit record of {request_id} could not be written ({exc})")
        return
    if decided:
        err(
            f"interrupted: restore {request_id} stopped part way (recorded); run the same restore again to finish it"
        )
    else:
        err(
            f"interrupted: restore request {request_id} is cancelled (recorded in the audit trail); nothing restored"
        )


def _emit_plan(args: argparse.Namespace, plan: dict[str, Any]) -> None:
    emit(args, plan, _plan_text(plan))


def _plan_text(plan: dict[str, Any]) -> str:
    target = plan["target"]
    where = f"new pool {target['poolName']!r}" if target["mode"] == "new" else f"pool {target['poolId']}"
    lines = [f"dry run: restore {plan['backup']} into {where}; nothing is written"]
    if plan["pool"].get("create"):
        pool = plan["pool"]
        lines.append(
            f"  pool: create with {pool['customAttributes']} custom attributes, {pool['appClients']} app clients, "
            f"{pool['identityProviders']} identity providers, {pool['resourceServers']} resource servers"
        )
    lines.append(
        f"  groups: create {len(plan['groups']['create'])}, in conflict {len(plan['groups']['conflicts'])}"
    )
    users = plan["users"]
    lines.append(
        f"  users: create {users['create']}, skip (already there) {users['skipExisting']}, "
        f"existing that differ (left as they are) {users['existingThatDiffer']}"
    )
    lines.append(
        f"  memberships: add {plan['memberships']['add']}, already there {plan['memberships']['already']}"
    )
    return "\n".join(lines)


def _decide(args: argparse.Namespace, approve: bool) -> int:
    approval.check_request_id(args.request_id)
    clients = preflight()
    sink = _sink(clients, args.bucket, args.prefix, args.kms_key)
    request, _ = approval.load(sink, args.request_id)
    decider = caller_arn(clients)
    # The pipeline checks this proof itself (RecordDecision); the CLI writes nothing.
    proof = identity_proof.make_proof(
        standard_session(),
        clients,
        identity_proof.purpose("approve" if approve else "reject", args.request_id),
    )
    sfn = _engine_of(request, clients.region)
    decision = approval.decide(
        sink, sfn, args.request_id, approve=approve, reason=args.reason, decider_arn=decider, proof=proof
    )
    verb = "approved" if approve else "withdrawn by its requester" if decision["withdrawn"] else "rejected"
    decision["decidedBy"] = decider
    decision["approvedBy" if approve else "rejectedBy"] = decider
    emit(args, decision, f"{args.request_id} {verb} ({decider}); the pipeline records the decision")
    return 0


def _engine_of(request: approval.ApprovalRequest, region: str) -> Any:
    """The Step Functions endpoint that runs the waiting execution: the local engine's loopback API, or AWS."""
    if request.engine_endpoint:
        return boto3.client("stepfunctions", endpoint_url=request.engine_endpoint, region_name=region)
    return boto3.client("stepfunctions", region_name=region)


def _still_waiting(request: approval.ApprovalRequest, region: str) -> str:
    try:
        return approval.execution_status(_engine_of(request, region), request)
    except errors.EndpointUnreachable:  # a local engine whose restore command was stopped
        return "UNREACHABLE"


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, approve=True)


def cmd_reject(args: argparse.Namespace) -> int:
    return _decide(args, approve=False)


def cmd_approvals(args: argparse.Namespace) -> int:
    clients = preflight()
    sink = _sink(clients, args.bucket, args.prefix, args.kms_key)
    requests = approval.pending(sink)
    # A request whose restore was interrupted, stopped or failed can no longer be decided: it is not listed.
    status = {r.request_id: _still_waiting(r, clients.region) for r in requests}
    waiting = [r for r in requests if status[r.request_id] == "RUNNING"]
    gone = len(requests) - len(waiting)
    rows = [
        f"{r.request_id}  requested by {r.requested_by} at {r.requested_at}, expires {r.expires_at}\n"
        f"    restore {r.backup_uri} into {r.target.get('poolId') or 'new pool ' + str(r.target.get('poolName'))}"
        + _backup_line(r.backup)
        for r in waiting
    ]
    if gone:
        rows.append(f"({gone} request(s) whose restore no longer waits are not listed)")
    emit(
        args,
        {"pending": [r.to_dict() for r in waiting], "notWaiting": gone},
        "\n".join(rows) or "no pending approval requests",
    )
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from pipeline.operator.runs import EXIT_INTEGRITY
    from pipeline.sealing.audit_verify import verify_chain

    if not args.verify:
        raise errors.InvalidRequest("audit needs --verify (the only action: check the audit chain)")
    clients = preflight()
    settings: Storage = {"bucket": args.bucket, "kmsKeyArn": "", "prefix": args.prefix}
    sink = restore.audit_sink(clients, settings)
    report = verify_chain(sink)
    payload = {
        "intact": report.intact,
        "records": report.records,
        "findings": [f.to_dict() for f in report.findings],
    }
    lines = [f"{f.kind}: {f.message}" for f in report.findings]
    head = f"audit chain s3://{args.bucket}/{audit.chain_root(sink)}: {report.records} records, "
    lines.insert(0, head + ("intact" if report.intact else f"{len(report.findings)} problem(s)"))
    emit(args, payload, "\n".join(lines))
    return 0 if report.intact else EXIT_INTEGRITY


def _report_summary(document: dict[str, Any]) -> dict[str, Any]:
    keep = ("requestId", "backupUri", "target", "users", "memberships", "verification", "finishedAt")
    return {k: document.get(k) for k in keep}


def cmd_report(args: argparse.Namespace) -> int:
    approval.check_request_id(args.request_id)
    clients = preflight()
    uri, document = read_report(clients, args.bucket, args.prefix, args.request_id)
    payload = {"uri": uri, **_report_summary(document)}
    emit(args, payload, "\n".join([f"report {uri}", *summary_lines(document)]))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from pipeline.restore.diff import diff_pool

    check_pool_id(args.pool_id)
    clients = preflight()
    _, reader = _settings_of(clients, args.uri)
    report = diff_pool(clients.cognito, reader, args.pool_id, extra_allowed=not args.strict)
    counts = report.counts()
    lines = [f"{'identical' if report.identical else 'DIFFERENT'}: {reader.loc.uri} vs pool {args.pool_id}"]
    lines += [f"  {name}: {value}" for name, value in counts.items() if value]
    lines += [f"  note: {n}" for n in report.notes]
    payload = {
        "identical": report.identical,
        "counts": camel_keys(counts),
        "details": camel_keys(asdict(report)),
    }
    emit(args, payload, "\n".join(lines))
    return 0 if report.identical else EXIT_FAILED


def register(sub: Any) -> None:
    p = sub.add_parser(
        "restore",
        help="restore a backup, after a snapshot of the target and an approval",
        description="Verifies the backup, backs up an existing target first, then waits for another authenticated "
        "principal to approve (cognito-backuper approve). Restores users (messages suppressed, random temporary "
        "passwords never stored), groups and memberships, idempotently, then verifies the target against the backup. "
        "Exit 0 only if that verification passes.",
    )
    p.add_argument(
        "--backup",
        required=True,
        metavar="S3_URI",
        help="the backup to restore: s3://BUCKET/[PREFIX/]POOL_ID/BACKUP_ID/",
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-pool", metavar="ID", help="merge into this existing pool (never deletes)")
    target.add_argument(
        "--new-pool", metavar="NAME", help="create a new pool with this name from the backed-up configuration"
    )
    p.add_argument("--user", action="append", metavar="USERNAME", help="restore only this user (repeatable)")
    p.add_argument("--group", action="append", metavar="NAME", help="restore only this group and its members")
    p.add_argument(
        "--dry-run", action="store_true", help="print what would be created, skipped or in conflict"
    )
    p.add_argument(
        "--approval-timeout",
        type=int,
        default=DEFAULT_APPROVAL_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long the request waits for a decision (default {DEFAULT_APPROVAL_TIMEOUT_S})",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_RESTORE_TIMEOUT_S,
        metavar="SECONDS",
        help=f"seconds for the restore after approval (default {DEFAULT_RESTORE_TIMEOUT_S}: 6 h)",
    )
    add_engine_flag(p)
    add_mac_key_flag(p)
    add_rate_flags(p)
    add_output_flags(p)
    p.set_defaults(func=cmd_restore)

    for name, func, summary, extra in (
        (
            "approve",
            cmd_approve,
            "approve a pending restore request (as a person other than the requester)",
            " You cannot approve your own request, under any role or session name.",
        ),
        (
            "reject",
            cmd_reject,
            "reject a pending restore request, or withdraw your own",
            " Any principal may reject; the requester may withdraw its own request. The target is left untouched.",
        ),
    ):
        p = sub.add_parser(
            name,
            help=summary,
            description="Your identity is proven to the pipeline by a signed STS GetCallerIdentity request made "
            "with your own credentials (use --profile or AWS_PROFILE per person), never taken from an argument; the "
            "pipeline checks it, then records the decision and the audit record." + extra,
        )
        p.add_argument("request_id", metavar="REQUEST_ID", help="the request id printed by restore (rr-...)")
        add_bucket_flags(p, "the backup bucket holding the request")
        p.add_argument("--reason", help="why (recorded in the audit trail)")
        _add_key_flag(p)
        add_output_flags(p)
        p.set_defaults(func=func)

    p = sub.add_parser(
        "report",
        help="show a restore's report: where it is, its counts and its verification",
        description="Decrypts the sealed report a restore wrote under <prefix>/restores/ and prints its summary "
        "(counts and verification; the old-to-new id maps stay sealed).",
    )
    p.add_argument("request_id", metavar="REQUEST_ID", help="the restore's request id (rr-...)")
    add_bucket_flags(p)
    add_output_flags(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "approvals", help="list pending restore requests", description="Requests awaiting a decision."
    )
    add_bucket_flags(p, "the backup bucket holding the requests")
    _add_key_flag(p)
    add_output_flags(p)
    p.set_defaults(func=cmd_approvals)

    p = sub.add_parser(
        "audit",
        help="check the audit trail's hash chain",
        description="Reads every version of every audit record and reports, one line each, a gap (deleted "
        "record), a reorder or replaced record (broken chain), an overwrite (more than one version), a forged or "
        "back-dated record. Exit 0 when the chain is intact, 4 when it is not.",
    )
    p.add_argument("--verify", action="store_true", help="check the chain (required)")
    add_bucket_flags(p, "the backup bucket holding the audit trail")
    add_output_flags(p)
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser(
        "diff",
        help="compare a backup with a live pool",
        description="Missing and extra users, attribute, Enabled and status differences, group and membership "
        "differences. Exit 0 when identical (extra users and groups in the pool allowed unless --strict), 1 when "
        "they differ, 4 when the backup fails its integrity checks.",
    )
    p.add_argument("uri", metavar="BACKUP_URI", help="the backup: s3://BUCKET/[PREFIX/]POOL_ID/BACKUP_ID/")
    p.add_argument("--pool-id", required=True, metavar="ID", help="the live user pool to compare it with")
    p.add_argument(
        "--strict", action="store_true", help="extra users, groups or memberships count as differences"
    )
    add_mac_key_flag(p)
    add_output_flags(p)
    p.set_defaults(func=cmd_diff)


def _backup_line(backup: dict[str, Any]) -> str:
    """The approved backup as the restore pins it: pool, time, counts, manifest digest and S3 version."""
    if not backup:
        return ""
    return (
        f"\n    backup of pool {backup.get('poolId')} completed {backup.get('completedAt')}: "
        f"users={backup.get('users')} groups={backup.get('groups')} memberships={backup.get('memberships')}"
        f"\n    manifest sha256={backup.get('manifestSha256')} version={backup.get('manifestVersionId')}"
    )


def _add_key_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kms-key",
        metavar="KEY",
        help=f"the deployment's backup key, which seals the approval requests (default {DEPLOYED_KEY_ALIAS})",
    )
