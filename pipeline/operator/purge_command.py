"""`cognito-backuper purge-incomplete`: remove one backup folder that an interrupted or failed backup left.

The command only checks and asks: the backup state machine's PurgeIncompleteBackup task, with the pipeline's own
role, re-checks the folder and deletes it, so operators need no s3:DeleteObject (pipeline/backup/purge.py).
"""

from __future__ import annotations

import argparse
from typing import Any

from pipeline.backup import purge
from pipeline.core import errors
from pipeline.core.aws import Clients, caller_arn, sdk_errors
from pipeline.core.contracts import Storage
from pipeline.core.layout import BackupLocation
from pipeline.operator.cli_common import (
    add_engine_flag,
    add_output_flags,
    backup_location,
    emit,
    engine_for,
    fail,
    preflight,
)
from pipeline.operator.runs import exit_code_for, run_purge_incomplete


def _key_of(clients: Clients, folder: purge.Folder) -> str:
    """The folder's KMS key, from the SSE-KMS header the pipeline put on every part (no manifest names it)."""
    with sdk_errors():
        head = clients.s3.head_object(Bucket=folder.loc.bucket, Key=folder.keys[0])
    key = head.get("SSEKMSKeyId")
    if not key:
        raise errors.InvalidRequest(
            f"cannot tell the KMS key of {folder.loc.uri} from its objects: pass --kms-key"
        )
    return key


def cmd_purge_incomplete(args: argparse.Namespace) -> int:
    loc: BackupLocation = backup_location(args.uri)
    if args.idle_minutes < 0:
        raise errors.InvalidRequest("--idle-minutes must not be negative")
    min_idle_s = int(args.idle_minutes * 60)
    clients = preflight()
    folder = purge.inspect(clients, loc)
    # A quick, clear refusal here; the task checks again with its own listing before it deletes anything.
    purge.check_purgeable(folder, min_idle_s)
    storage: Storage = {
        "bucket": loc.bucket,
        "kmsKeyArn": args.kms_key or _key_of(clients, folder),
        "prefix": loc.prefix,
    }
    request: dict[str, Any] = {
        "poolId": loc.pool_id,
        "backupId": loc.backup_id,
        "minIdleSeconds": min_idle_s,
        "requestedBy": caller_arn(clients),
    }
    with engine_for(args) as engine:
        outcome = run_purge_incomplete(engine, storage=storage, request=request)
    if not outcome.succeeded:
        return fail(
            args,
            exit_code_for(outcome.error),
            outcome.error or "Failed",
            f"purge refused ({outcome.error}): {outcome.message}",
        )
    out = outcome.output or {}
    payload = {"status": outcome.status, "purged": out}
    emit(
        args,
        payload,
        f"purged {out.get('uri')}: {out.get('objects')} objects, {out.get('bytes')} bytes "
        f"(audit record {out.get('auditKey')})",
    )
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "purge-incomplete",
        help="remove a backup folder that has parts but no manifest (list --incomplete shows them)",
        description="Removes exactly one backup folder left by an interrupted or failed backup, and records it "
        "(backup.purged) in the audit trail. The backup state machine's own task re-checks the folder and deletes "
        "it: a folder with a manifest (a completed backup) is always refused, and so is one written less than "
        "--idle-minutes ago, which may be a backup still running. No confirmation prompt: the URI is the target.",
    )
    p.add_argument(
        "uri",
        metavar="BACKUP_URI",
        help="the folder, as list --incomplete prints it: s3://BUCKET/[PREFIX/]POOL_ID/BACKUP_ID/",
    )
    p.add_argument(
        "--idle-minutes",
        type=float,
        default=purge.DEFAULT_MIN_IDLE_S / 60,
        metavar="N",
        help="refuse a folder with an object written in the last N minutes (default 60: a running backup writes "
        "at least every 15 minutes); 0 when you know its backup stopped, e.g. after Ctrl-C on the local engine",
    )
    p.add_argument(
        "--kms-key",
        metavar="KEY",
        help="the backup key for the audit record (default: the key of the folder's parts)",
    )
    add_engine_flag(p)
    add_output_flags(p)
    p.set_defaults(func=cmd_purge_incomplete)
