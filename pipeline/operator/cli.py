"""The command line: results on stdout (``--json`` for scripts), progress and errors on stderr, fixed exit codes.

Exit codes: 0 done and verified; 1 the operation failed (execution failed, integrity or verification error);
2 bad input (unknown pool, missing bucket, malformed URI); 3 the AWS environment (credentials, Region, access,
key, endpoint); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
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
from pipeline.core.aws import Clients, make_clients, sdk_errors
from pipeline.operator.runs import EXIT_BAD_INPUT, EXIT_FAILED, Outcome, exit_code_for

Command = Callable[[argparse.Namespace], int]


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def _out(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    print(json.dumps(payload, indent=2, sort_keys=True) if args.json else text)


def _preflight() -> Clients:
    """Fail early, in one line, when the standard chain gives no Region or no credentials."""
    session = boto3.Session()
    if not session.region_name:
        raise errors.RegionMissing("no AWS Region configured: set AWS_REGION or AWS_DEFAULT_REGION")
    if session.get_credentials() is None:
        raise errors.CredentialsMissing(
            "no AWS credentials found: configure the AWS CLI, a profile, or environment variables"
        )
    return make_clients(session)


def _local_engine(embedded: bool) -> Any:
    try:
        from pipeline.operator.local_engine import LocalEngine
    except ImportError as exc:
        raise errors.EngineError(
            "the local engine needs moto: pip install 'cognito-backuper[local]'"
        ) from exc
    return LocalEngine(embedded=embedded)


def _engine(args: argparse.Namespace) -> Any:
    """``--engine``; by default Step Functions itself when the stack is deployed, else the local engine."""
    from pipeline.operator import aws_engine

    clients = _preflight()
    choice = args.engine or ("aws" if aws_engine.stack_found(clients) else "local")
    if choice == "local":
        return _local_engine(embedded=False)

    def announce(execution_arn: str) -> None:
        _err(f"execution {execution_arn}\n  console: {aws_engine.console_url(execution_arn)}")

    return aws_engine.AwsEngine(clients, on_start=announce)


def _add_engine_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=("local", "aws"),
        help="aws: the state machines of the deployed CognitoBackuperStack; local: run the ASL in-process "
        "(default: aws when that stack is found with the current credentials, else local)",
    )


def _progress(args: argparse.Namespace) -> Any:
    from pipeline.operator.progress import BackupProgress, ProgressPrinter

    return ProgressPrinter(BackupProgress(), quiet=args.quiet)


def _report_failure(outcome: Outcome) -> int:
    _err(f"error: backup failed ({outcome.error}): {outcome.message}")
    _err(f"execution: {outcome.execution_arn}")
    return exit_code_for(outcome.error)


def _backup_text(outcome: Outcome) -> str:
    lines = []
    for b in outcome.backups:
        lines.append(
            f"{b['uri']}  users={b['users']} groups={b['groups']} memberships={b['memberships']} verified"
        )
    lines.append(f"{len(outcome.backups)} pool(s) backed up and verified in {outcome.duration_s:.1f}s")
    return "\n".join(lines)


def _backup_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "status": outcome.status,
        "executionArn": outcome.execution_arn,
        "durationSeconds": round(outcome.duration_s, 3),
        "backups": outcome.backups,
    }


def cmd_backup(args: argparse.Namespace) -> int:
    from pipeline.core.layout import check_pool_id
    from pipeline.operator.runs import run_backup

    pool_ids = [check_pool_id(p) for p in args.pool_id or []]
    progress = _progress(args)
    with _engine(args) as engine:
        outcome = run_backup(
            engine,
            storage={"bucket": args.bucket, "kmsKeyArn": args.kms_key, "prefix": args.prefix},
            pool_ids=pool_ids,
            all_pools=args.all_pools,
            on_event=progress,
            timeout_s=args.timeout,
        )
    progress.close()
    if not outcome.succeeded:
        return _report_failure(outcome)
    _out(args, _backup_json(outcome), _backup_text(outcome))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from pipeline.backup.verify import verify_backup
    from pipeline.core.layout import parse_backup_uri

    loc = parse_backup_uri(args.uri)
    clients = _preflight()
    started = time.monotonic()

    def on_object(name: str, done: int, total: int) -> None:
        if not args.quiet:
            _err(f"verified {done}/{total}: {name}")

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
    _out(
        args,
        payload,
        f"OK {report.uri}: {report.objects} objects, users={report.users} groups={report.groups} "
        f"memberships={report.memberships}",
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from pipeline.sealing.manifest import list_backups

    clients = _preflight()
    backups = list_backups(clients, args.bucket, args.prefix, args.pool_id)
    rows = [
        f"{b['uri']}  {b.get('completedAt', '-')}  users={b.get('users', '-')} memberships={b.get('memberships', '-')}"
        + (f"  ERROR: {b['error']}" if b.get("error") else "")
        for b in backups
    ]
    _out(args, {"backups": backups}, "\n".join(rows) if rows else "no backups found")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.cognito import throttle
    from pipeline.operator import demo, seed
    from pipeline.operator.local_engine.moto_seed import DirectCognito
    from pipeline.operator.runs import run_backup

    if not 1 <= args.users <= 200_000:
        raise errors.InvalidRequest("--users must be between 1 and 200000")
    started = time.monotonic()
    with _local_engine(embedded=True) as engine:
        clients = make_clients()
        account = demo.prepare_account(clients)

        def seeded_progress(done: int, total: int) -> None:
            if not args.quiet and (done == total or done % 500 == 0):
                _err(f"seeding the demo pool: {done:,}/{total:,} users")

        # The seeder writes through its own client, its users straight into the embedded Cognito: setup, not the
        # pipeline's calls (which all go through the API).
        seeded = seed.seed_pool(
            boto3.client("cognito-idp"),
            users=args.users,
            on_progress=seeded_progress,
            user_writes=DirectCognito(engine.account, engine.region),
        )
        _err(
            f"seeded pool {seeded.pool_id}: {seeded.users:,} users, {len(seeded.groups)} groups, "
            f"{seeded.memberships:,} memberships; starting the backup state machine"
        )
        calls_before = sum(throttle.default_budget().calls.values())
        progress = _progress(args)
        outcome = run_backup(
            engine,
            storage=account.storage,
            pool_ids=[seeded.pool_id],
            all_pools=False,
            on_event=progress,
            timeout_s=1800,
        )
        progress.close()
        cognito_calls = sum(throttle.default_budget().calls.values()) - calls_before
        if not outcome.succeeded:
            return _report_failure(outcome)
        backup = outcome.backups[0]
        accounting = demo.account_for(clients, seeded.pool_id, backup["uri"])
    payload = {
        "backup": backup,
        "seeded": {
            "users": seeded.users,
            "disabled": seeded.disabled,
            "unconfirmed": seeded.unconfirmed,
            "groups": len(seeded.groups),
            "memberships": seeded.memberships,
        },
        "accounting": {**accounting.__dict__, "complete": accounting.complete},
        "backupSeconds": round(outcome.duration_s, 3),
        "totalSeconds": round(time.monotonic() - started, 3),
        "cognitoCalls": cognito_calls,
        "executionArn": outcome.execution_arn,
    }
    mark = "OK" if accounting.complete else "MISMATCH"
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
        ]
    )
    _out(args, payload, text)
    return 0 if accounting.complete else EXIT_FAILED


def _add_rate_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quota-percent",
        type=float,
        metavar="P",
        help="use at most P%% of each Cognito request quota (default 50: production traffic shares the quotas)",
    )
    p.add_argument(
        "--max-rps", type=float, metavar="N", help="and at most N requests per second in any category"
    )


def apply_rate_flags(args: argparse.Namespace) -> None:
    """The rate budget is read from the environment by every task of this process (pipeline.cognito.throttle)."""
    from pipeline.cognito import throttle

    percent = getattr(args, "quota_percent", None)
    if percent is not None:
        if not 0 < percent <= 100:
            raise errors.InvalidRequest("--quota-percent must be in (0, 100]")
        os.environ[throttle.FRACTION_ENV] = str(percent / 100)
    max_rps = getattr(args, "max_rps", None)
    if max_rps is not None:
        if max_rps <= 0:
            raise errors.InvalidRequest("--max-rps must be positive")
        os.environ[throttle.MAX_RPS_ENV] = str(max_rps)
    throttle.default_budget.cache_clear()


def _add_output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout, for scripts")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cognito-backuper",
        description="Encrypted, verifiable backups of Amazon Cognito user pools, run by a Step Functions "
        "state machine. "
        "AWS credentials and Region come from the standard AWS configuration (profile, environment, role); "
        "AWS_ENDPOINT_URL points the tasks at another endpoint, such as a moto server.",
        epilog="Exit codes: 0 done; 1 failed; 2 bad input; 3 credentials, Region or permissions; 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the pipeline's own steps on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "demo",
        help="back up a seeded pool on an embedded AWS (no account needed)",
        description="Creates, on an embedded AWS, a KMS key, a bucket with the seed's EnforceEncryption policy and a "
        "realistic user pool, then runs the backup state machine on the local engine and verifies the backup.",
    )
    p.add_argument("--users", type=int, default=1000, help="users to seed (default 1000)")
    _add_rate_flags(p)
    _add_output_flags(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "backup",
        help="back up user pools through the backup state machine",
        description="Runs the backup state machine: the deployed one (--engine aws), or statemachines/backup.asl.json "
        "on the local engine, whose tasks call the AWS endpoint of the standard configuration. Prints the backup URI "
        "of each pool.",
    )
    _add_engine_flag(p)
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
    _add_rate_flags(p)
    _add_output_flags(p)
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser(
        "verify",
        help="re-read, hash, decrypt and count a backup against its manifest",
        description="Exit 0 only when every object matches the authenticated manifest.",
    )
    p.add_argument("uri", metavar="S3_URI", help="s3://BUCKET/[PREFIX/]POOL_ID/BACKUP_ID/")
    _add_output_flags(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("list", help="list the backups in a bucket", description="Lists completed backups.")
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", default="backups", help="key prefix (default: backups)")
    p.add_argument("--pool-id", metavar="ID", help="only this pool")
    _add_output_flags(p)
    p.set_defaults(func=cmd_list)

    from pipeline.operator import restore_commands as cli_restore

    cli_restore.register(sub, _add_output_flags, _preflight, _engine, _add_engine_flag, _add_rate_flags)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    func: Command = args.func
    try:
        with sdk_errors():
            apply_rate_flags(args)
            return func(args)
    except errors.PipelineError as exc:
        _err(f"error: {exc}")
        return exit_code_for(type(exc).__name__)
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        _err(f"error: AWS refused {exc.operation_name} ({code})")
        return EXIT_FAILED
    except botocore.exceptions.ParamValidationError as exc:
        _err(f"error: invalid parameter: {exc}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
