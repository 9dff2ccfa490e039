"""The command line: results on stdout (``--json``: one JSON object, success or failure), progress and errors on
stderr, fixed exit codes.

Exit codes: 0 done and verified; 1 the operation failed (execution failed, restore not verified, pools differ);
2 bad input (unknown pool, missing bucket, malformed URI); 3 the AWS environment (credentials, profile, Region,
access, key, endpoint); 4 integrity (a backup that is not what was written); 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import boto3
import botocore.exceptions

from pipeline import __version__
from pipeline.core import errors
from pipeline.core.aws import make_clients, sdk_errors
from pipeline.operator.cli_common import (
    add_bucket_flags,
    add_engine_flag,
    add_mac_key_flag,
    add_output_flags,
    add_rate_flags,
    apply_mac_key_flag,
    apply_rate_flags,
    backup_location,
    camel_keys,
    emit,
    engine_for,
    err,
    fail,
    preflight,
)
from pipeline.operator.runs import (
    EXIT_BAD_INPUT,
    EXIT_ENVIRONMENT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    Engine,
    Outcome,
    exit_code_for,
)

Command = Callable[[argparse.Namespace], int]


def _progress(args: argparse.Namespace) -> Any:
    from pipeline.operator.progress import BackupProgress, ProgressPrinter

    return ProgressPrinter(BackupProgress(), quiet=args.quiet)


def _lasting_arn(engine: Engine, outcome: Outcome) -> str | None:
    """Only Step Functions keeps an execution after the command: the local engine's is gone when it exits."""
    from pipeline.operator.aws_engine import AwsEngine

    return outcome.execution_arn if isinstance(engine, AwsEngine) else None


def _report_failure(args: argparse.Namespace, engine: Engine, outcome: Outcome) -> int:
    arn = _lasting_arn(engine, outcome)
    pools: dict[str, Any] = {}
    if outcome.failures or outcome.backups:
        # Every pool was tried: say what happened to each before the one-line error.
        if not args.quiet and not getattr(args, "json", False):
            for b in outcome.backups:
                err(f"backed up: {b['poolId']}  {b['uri']}  users={b['users']} verified")
            for f in outcome.failures:
                err(f"FAILED:    {f['poolId']}  {f['error']}: {f['message']}")
        pools = {"backups": outcome.backups, "failures": outcome.failures}
    code = fail(
        args,
        exit_code_for(outcome.error),
        outcome.error or "Failed",
        f"backup failed ({outcome.error}): {outcome.message}",
        executionArn=arn,
        durationSeconds=round(outcome.duration_s, 3),
        **pools,
    )
    if arn:
        err(f"execution: {arn}")
    return code


def _backup_text(outcome: Outcome) -> str:
    lines = []
    for b in outcome.backups:
        lines.append(
            f"{b['uri']}  users={b['users']} groups={b['groups']} memberships={b['memberships']} verified"
        )
    lines.append(f"{len(outcome.backups)} pool(s) backed up and verified in {outcome.duration_s:.1f}s")
    return "\n".join(lines)


def _backup_json(engine: Engine, outcome: Outcome) -> dict[str, Any]:
    return {
        "status": outcome.status,
        "executionArn": _lasting_arn(engine, outcome),
        "durationSeconds": round(outcome.duration_s, 3),
        "backups": outcome.backups,
    }


def cmd_backup(args: argparse.Namespace) -> int:
    from pipeline.core.layout import check_pool_id
    from pipeline.operator.runs import run_backup

    pool_ids = [check_pool_id(p) for p in args.pool_id or []]
    progress = _progress(args)
    with engine_for(args) as engine:
        try:
            outcome = run_backup(
                engine,
                storage={"bucket": args.bucket, "kmsKeyArn": args.kms_key, "prefix": args.prefix},
                pool_ids=pool_ids,
                all_pools=args.all_pools,
                on_event=progress,
                on_poll=progress.tick,
                timeout_s=args.timeout,
            )
        except KeyboardInterrupt:
            # Said before the engine shuts down, which waits for the tasks still running.
            err(
                "interrupted: stopping the backup (tasks still running finish their current call first). "
                "Parts already written have no manifest, so no restore will use them; see them with "
                f"`cognito-backuper list --incomplete --bucket {args.bucket} --prefix {args.prefix}`."
            )
            raise
    progress.close()
    if not outcome.succeeded:
        return _report_failure(args, engine, outcome)
    emit(args, _backup_json(engine, outcome), _backup_text(outcome))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from pipeline.backup.verify import verify_backup
    from pipeline.core.layout import check_backup_area

    loc = check_backup_area(backup_location(args.uri))
    clients = preflight()
    started = time.monotonic()

    def on_object(name: str, done: int, total: int) -> None:
        if not args.quiet:
            err(f"verified {done}/{total}: {name}")

    report = verify_backup(clients, loc, on_object=on_object)
    payload = {
        "uri": report.uri,
        "verified": True,
        "users": report.users,
        "groups": report.groups,
        "memberships": report.memberships,
        "objects": report.objects,
        "durationSeconds": round(time.monotonic() - started, 3),
    }
    emit(
        args,
        payload,
        f"OK {report.uri}: {report.objects} objects, users={report.users} groups={report.groups} "
        f"memberships={report.memberships}",
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from pipeline.sealing.manifest import list_backups, list_incomplete

    clients = preflight()
    if args.incomplete:
        leftovers = list_incomplete(clients, args.bucket, args.prefix, args.pool_id)
        lines = [f"{e['uri']}  objects={e['objects']} bytes={e['bytes']}  (no manifest)" for e in leftovers]
        if lines:
            lines.append("remove one with: cognito-backuper purge-incomplete BACKUP_URI")
        emit(args, {"incomplete": leftovers}, "\n".join(lines) if lines else "no incomplete backups found")
        return 0
    backups = list_backups(clients, args.bucket, args.prefix, args.pool_id)
    rows = [
        f"{b['uri']}  {b.get('completedAt', '-')}  users={b.get('users', '-')} memberships={b.get('memberships', '-')}"
        + (f"  ERROR: {b['error']}" if b.get("error") else "")
        for b in backups
    ]
    emit(args, {"backups": backups}, "\n".join(rows) if rows else "no backups found")
    return 0


def cmd_demo_restore(args: argparse.Namespace) -> int:
    from pipeline.operator import demo_restore

    users = 200 if args.users is None else args.users
    if not 1 <= users <= 5_000:
        raise errors.InvalidRequest("--users must be between 1 and 5000 with --restore")
    result = demo_restore.play_restore(users, say=(lambda _: None) if args.quiet else err)
    emit(args, result, demo_restore.text_of(result))
    return 0 if result["status"] == "SUCCEEDED" else EXIT_FAILED


DEMO_DRILL_SAMPLE = 100


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.cognito import throttle
    from pipeline.drill.steps import check_sample
    from pipeline.operator import demo, seed
    from pipeline.operator.drill_command import drill_text
    from pipeline.operator.local_engine.moto_seed import DirectCognito
    from pipeline.operator.runs import run_backup

    if args.restore:
        return cmd_demo_restore(args)
    args.users = 1000 if args.users is None else args.users
    if not 1 <= args.users <= 200_000:
        raise errors.InvalidRequest("--users must be between 1 and 200000")
    check_sample(args.drill_sample)
    started = time.monotonic()
    from pipeline.operator.local_engine import LocalEngine

    with LocalEngine(embedded=True) as engine:
        clients = make_clients()
        account = demo.prepare_account(clients)

        def seeded_progress(done: int, total: int) -> None:
            if not args.quiet and (done == total or done % 500 == 0):
                err(f"seeding the demo pool: {done:,}/{total:,} users")

        # The seeder writes through its own client, its users straight into the embedded Cognito: setup, not the
        # pipeline's calls (which all go through the API).
        seeded = seed.seed_pool(
            boto3.client("cognito-idp"),
            users=args.users,
            on_progress=seeded_progress,
            user_writes=DirectCognito(engine.account, engine.region),
        )
        if not args.quiet:
            err(
                f"seeded pool {seeded.pool_id}: {seeded.users:,} users, {len(seeded.groups)} groups, "
                f"{seeded.memberships:,} memberships; starting the backup state machine"
            )
        calls_before = sum(throttle.task_budget().calls.values())
        progress = _progress(args)
        outcome = run_backup(
            engine,
            storage=account.storage,
            pool_ids=[seeded.pool_id],
            all_pools=False,
            on_event=progress,
            on_poll=progress.tick,
            timeout_s=1800,
        )
        progress.close()
        cognito_calls = sum(throttle.task_budget().calls.values()) - calls_before
        if not outcome.succeeded:
            return _report_failure(args, engine, outcome)
        backup = outcome.backups[0]
        accounting = demo.account_for(clients, seeded.pool_id, backup["uri"])
        # The third step: what a scheduled drill does, on this backup (pipeline.drill).
        from pipeline.operator.drill_command import execute_drill

        if not args.quiet:
            err(f"restore drill: {args.drill_sample:,} random users of the backup into a scratch pool")
        drilled = execute_drill(
            engine,
            account.storage,
            seeded.pool_id,
            args.drill_sample,
            backup["uri"],
            timeout_s=1800,
            quiet=args.quiet,
        )
        drill_output = drilled.output if isinstance(drilled.output, dict) else {}
        drills = list(drill_output.get("drills") or [])
        drill_passed = drilled.succeeded and bool(drills) and all(d.get("passed") for d in drills)
        scratch_left = [
            p["Id"]
            for p in clients.cognito.list_user_pools(MaxResults=60)["UserPools"]
            if str(p.get("Name", "")).startswith("cognito-backuper-drill-")
        ]
    payload = {
        "backup": backup,
        "seeded": {
            "users": seeded.users,
            "disabled": seeded.disabled,
            "unconfirmed": seeded.unconfirmed,
            "groups": len(seeded.groups),
            "memberships": seeded.memberships,
        },
        "accounting": camel_keys({**accounting.__dict__, "complete": accounting.complete}),
        "backupSeconds": round(outcome.duration_s, 3),
        "totalSeconds": round(time.monotonic() - started, 3),
        "cognitoCalls": cognito_calls,
        "drill": {
            "status": drilled.status,
            "passed": drill_passed,
            "durationSeconds": round(drilled.duration_s, 3),
            "drills": drills,
            "scratchPoolsLeft": len(scratch_left),
        },
    }
    mark = "OK" if accounting.complete else "MISMATCH"
    drill_mark = "PASSED" if drill_passed else f"FAILED ({drilled.error}: {drilled.message})"
    text = "\n".join(
        [
            f"backup      {backup['uri']}",
            f"verified    {'yes' if backup['verified'] else 'NO'} (every object re-read, hashed, decrypted, counted)",
            f"users       {accounting.users_backed_up:,} of {accounting.users_live:,} in the pool "
            f"({seeded.disabled} disabled, {seeded.unconfirmed} unconfirmed), missing {accounting.users_missing}, "
            f"duplicated {accounting.users_duplicated}",
            f"groups      {accounting.groups_backed_up} of {accounting.groups_live}",
            f"memberships {accounting.memberships_backed_up:,} of {accounting.memberships_live:,}, "
            f"missing {accounting.memberships_missing}",
            f"cognito     {cognito_calls:,} API calls by the pipeline",
            f"duration    {outcome.duration_s:.1f}s backup, {time.monotonic() - started:.1f}s in all",
            f"accounting  {mark}",
            "drill       "
            + (drill_text(drills, indent=" " * 12) or f"no result ({drilled.error}: {drilled.message})"),
            f"scratch     {len(scratch_left)} drill pools left in the account; drill {drill_mark}",
        ]
    )
    emit(args, payload, text)
    return 0 if accounting.complete and drill_passed and not scratch_left else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cognito-backuper",
        description="Encrypted, verifiable backups of Amazon Cognito user pools, run by a Step Functions "
        "state machine. "
        "AWS credentials and Region come from the standard AWS configuration (profile, environment, role); "
        "AWS_ENDPOINT_URL points the tasks at another endpoint, such as a moto server.",
        epilog="Exit codes: 0 done; 1 failed; 2 bad input; 3 credentials, Region or permissions; "
        "4 integrity (a backup that is not what was written); 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the pipeline's own steps on stderr")
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="the AWS profile to act as (sets AWS_PROFILE): one profile per person",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "demo",
        help="back up a seeded pool on an embedded AWS and drill a restore of it (no account needed)",
        description="Creates, on an embedded AWS, a KMS key, a bucket (default SSE-KMS with that key, public access "
        "blocked; the EnforceEncryption bucket policy is not attached there: moto would refuse every write) and a "
        "realistic user pool, then runs the backup state machine on the local engine and verifies the backup; "
        "then the drill state machine restores a random sample of it into a scratch pool, verifies and deletes it.",
    )
    p.add_argument("--users", type=int, help="users to seed (default 1000; 200 with --restore)")
    p.add_argument(
        "--restore",
        action="store_true",
        help="play the two-person restore instead: two IAM users on a moto server the demo starts, a backup, a "
        "restore request into a new pool, the requester's own approval refused, the second person's approval, "
        "the verified restore; each step is the CLI command shown",
    )
    p.add_argument(
        "--drill-sample",
        type=int,
        default=DEMO_DRILL_SAMPLE,
        metavar="N",
        help=f"users the restore drill after the backup restores and verifies (default {DEMO_DRILL_SAMPLE})",
    )
    add_rate_flags(p)
    add_output_flags(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "backup",
        help="back up user pools through the backup state machine",
        description="Runs the backup state machine: the deployed one (--engine aws), or statemachines/backup.asl.json "
        "on the local engine, whose tasks call the AWS endpoint of the standard configuration. Prints the backup URI "
        "of each pool.",
    )
    add_engine_flag(p)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--pool-id", action="append", metavar="ID", help="a user pool id (repeatable)")
    target.add_argument("--all-pools", action="store_true", help="every user pool in the account and Region")
    p.add_argument("--bucket", required=True, help="the backup bucket")
    p.add_argument(
        "--kms-key", required=True, metavar="KEY", help="KMS key id, ARN or alias for envelope encryption"
    )
    p.add_argument("--prefix", default="backups", help="key prefix inside the bucket (default: backups)")
    p.add_argument(
        "--timeout", type=float, default=6 * 3600, help="seconds to wait for the execution (default 6 h)"
    )
    add_mac_key_flag(p)
    add_rate_flags(p)
    add_output_flags(p)
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser(
        "verify",
        help="re-read, hash, decrypt and count a backup against its manifest",
        description="Exit 0 only when every object matches the authenticated manifest.",
    )
    p.add_argument("uri", metavar="S3_URI", help="s3://BUCKET/[PREFIX/]POOL_ID/BACKUP_ID/")
    add_mac_key_flag(p)
    add_output_flags(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "list",
        help="list the backups in a bucket",
        description="Lists completed backups (those with a manifest) directly under the prefix; one whose manifest "
        "the deployment's MAC key does not verify is listed with its error.",
    )
    add_bucket_flags(p)
    p.add_argument("--pool-id", metavar="ID", help="only the backups of this user pool id")
    p.add_argument(
        "--incomplete",
        action="store_true",
        help="list instead the backup folders that hold parts but no manifest (an interrupted or failed backup)",
    )
    add_mac_key_flag(p)
    add_output_flags(p)
    p.set_defaults(func=cmd_list)

    from pipeline.operator import drill_command, purge_command, restore_commands, seed_command

    restore_commands.register(sub)
    purge_command.register(sub)
    drill_command.register(sub)
    seed_command.register(sub)
    return parser


def configure_logging(verbose: bool) -> None:
    """The pipeline's own steps with -v; never the request lines of the local engine's loopback API (werkzeug
    sets its logger to INFO when it is unset, and the root handler would print every request)."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(getattr(args, "verbose", False))
    if getattr(args, "profile", None):
        # Who acts is the profile's identity: explicit environment keys would silently win over it.
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            os.environ.pop(name, None)
        os.environ["AWS_PROFILE"] = args.profile
    func: Command = args.func
    try:
        with sdk_errors():
            apply_rate_flags(args)
            apply_mac_key_flag(args)
            return func(args)
    except errors.PipelineError as exc:
        name = type(exc).__name__
        return fail(args, exit_code_for(name), name, str(exc))
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        return fail(args, EXIT_FAILED, str(code), f"AWS refused {exc.operation_name} ({code})")
    except botocore.exceptions.ParamValidationError as exc:
        return fail(args, EXIT_BAD_INPUT, "InvalidParameter", f"invalid parameter: {exc}")
    except botocore.exceptions.BotoCoreError as exc:
        return fail(args, EXIT_ENVIRONMENT, type(exc).__name__, f"AWS SDK: {exc}")
    except KeyboardInterrupt:
        return fail(args, EXIT_INTERRUPTED, "Interrupted", "interrupted")


if __name__ == "__main__":
    sys.exit(main())
