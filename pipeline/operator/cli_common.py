"""What every command shares: its common flags, its output (stdout for results, stderr for the rest), the
preflight of the AWS configuration, and the engine it runs on.

With ``--json`` a command prints exactly one JSON object on stdout, success or failure, with camelCase keys.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping
from typing import Any

from pipeline.core import errors
from pipeline.core.aws import NO_REGION, Clients, make_clients, standard_session
from pipeline.core.layout import BackupLocation, check_pool_id, parse_backup_uri
from pipeline.operator.runs import Engine

_SNAKE = re.compile(r"_([a-z0-9])")


def err(message: str) -> None:
    print(message, file=sys.stderr)


def camel(name: str) -> str:
    return _SNAKE.sub(lambda m: m.group(1).upper(), name)


def camel_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of one level in camelCase; values are left alone (they may be keyed by user names)."""
    return {camel(key): value for key, value in mapping.items()}


def emit(args: argparse.Namespace, payload: Mapping[str, Any], text: str) -> None:
    """The command's result: ``payload`` as one JSON object with ``--json``, else ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, sort_keys=True, default=str))
    elif text:
        print(text)


def fail(args: argparse.Namespace, code: int, error: str, message: str, **extra: Any) -> int:
    """One line on stderr and, with ``--json``, the one JSON object on stdout; returns the exit code."""
    err(f"error: {message}")
    if getattr(args, "json", False):
        emit(args, {**extra, "status": "FAILED", "error": error, "message": message, "exitCode": code}, "")
    return code


def backup_location(uri: str) -> BackupLocation:
    """A backup URI; one that stops at the pool id is named as such, with where to find its backup ids."""
    try:
        return parse_backup_uri(uri)
    except errors.InvalidRequest:
        bucket, _, path = uri.removeprefix("s3://").partition("/")
        parts = [p for p in path.split("/") if p]
        if uri.startswith("s3://") and parts and _is_pool_id(parts[-1]):
            prefix = "/".join(parts[:-1]) or '""'
            raise errors.InvalidRequest(
                f"{uri} names user pool {parts[-1]} but no backup id: expected "
                f"s3://BUCKET/[PREFIX/]POOL_ID/BACKUP_ID/ (cognito-backuper list --bucket {bucket} --prefix "
                f"{prefix} --pool-id {parts[-1]} shows its backups)"
            ) from None
        raise


def _is_pool_id(text: str) -> bool:
    try:
        check_pool_id(text)
    except errors.InvalidRequest:
        return False
    return True


def add_bucket_flags(p: argparse.ArgumentParser, bucket_help: str = "the backup bucket") -> None:
    """Where the backups (and the approvals, audit records and restore reports beside them) are."""
    p.add_argument("--bucket", required=True, help=bucket_help)
    p.add_argument("--prefix", default="backups", help="key prefix inside the bucket (default: backups)")


def add_output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout, for scripts")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    # SUPPRESS: a -v given before the command is not reset by the subcommand's default.
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log the pipeline's own steps on stderr",
    )
    p.add_argument(
        "--profile",
        default=argparse.SUPPRESS,
        metavar="NAME",
        help="the AWS profile to act as (sets AWS_PROFILE): one profile per person, e.g. the operator's and the "
        "approver's",
    )


def add_engine_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=("local", "aws"),
        help="aws: the state machines of the deployed CognitoBackuperStack; local: run the ASL in-process "
        "(default: aws when that stack is found with the current credentials, else local)",
    )


def add_mac_key_flag(p: argparse.ArgumentParser) -> None:
    from pipeline.sealing.manifest_mac import DEFAULT_MAC_KEY, MAC_KEY_ENV

    p.add_argument(
        "--mac-key",
        metavar="KEY",
        help="the deployment's manifest MAC key (id, ARN or alias): a manifest counts only if this key verifies "
        f"it (default: ${MAC_KEY_ENV}, else {DEFAULT_MAC_KEY}, which the CDK app creates)",
    )


def apply_mac_key_flag(args: argparse.Namespace) -> None:
    """Read by every manifest check of this process, the local engine's tasks included."""
    from pipeline.sealing.manifest_mac import MAC_KEY_ENV

    if getattr(args, "mac_key", None):
        os.environ[MAC_KEY_ENV] = args.mac_key


def add_rate_flags(p: argparse.ArgumentParser) -> None:
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


def preflight() -> Clients:
    """Fail early, in one line, when the standard chain gives no Region or no credentials."""
    chain = standard_session()
    if not chain.region_name:
        raise errors.RegionMissing(NO_REGION)
    if chain.get_credentials() is None:
        raise errors.CredentialsMissing(
            "no AWS credentials found: configure the AWS CLI, a profile, or environment variables"
        )
    return make_clients(chain)


def local_engine(embedded: bool) -> Engine:
    try:
        from pipeline.operator.local_engine import LocalEngine
    except ImportError as exc:
        raise errors.EngineError(
            "the local engine needs moto: pip install 'cognito-backuper[local]'"
        ) from exc
    return LocalEngine(embedded=embedded, region=None if embedded else standard_session().region_name)


def engine_for(args: argparse.Namespace) -> Engine:
    """``--engine``; by default Step Functions itself when the stack is deployed, else the local engine."""
    from pipeline.operator import aws_engine

    clients = preflight()
    choice = args.engine or ("aws" if aws_engine.stack_found(clients) else "local")
    if choice == "local":
        return local_engine(embedded=False)

    def announce(execution_arn: str) -> None:  # not progress: where to look, so printed even with --quiet
        err(f"execution {execution_arn}\n  console: {aws_engine.console_url(execution_arn)}")

    return aws_engine.AwsEngine(clients, on_start=announce)
