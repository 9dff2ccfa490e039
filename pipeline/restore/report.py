"""Reading a restore's sealed report back: where it is and what it says, without the id maps' contents."""

from __future__ import annotations

from typing import Any

from pipeline.core.aws import Clients
from pipeline.core.errors import BackupNotFound, InvalidRequest
from pipeline.core.layout import BackupLocation, check_pool_id
from pipeline.restore.approval import check_request_id
from pipeline.sealing import store

REPORT_NAME = "report.bin"


def _restores_root(prefix: str) -> str:
    return "/".join(p for p in (prefix.strip("/"), "restores") if p)


def find_report(clients: Clients, bucket: str, prefix: str, request_id: str) -> tuple[BackupLocation, str]:
    """The workspace and key of a request's report: ``<prefix>/restores/<source pool>/<request id>/report.bin``."""
    check_request_id(request_id)
    root = _restores_root(prefix) + "/"
    with store.bucket_errors(bucket):
        pages = clients.s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=root, Delimiter="/"
        )
        pools = [
            c["Prefix"][len(root) :].rstrip("/") for page in pages for c in page.get("CommonPrefixes", [])
        ]
        for pool in pools:
            try:
                check_pool_id(pool)
            except InvalidRequest:  # selections/ and anything else that is not a pool folder
                continue
            key = f"{root}{pool}/{request_id}/{REPORT_NAME}"
            listed = clients.s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
            if listed.get("KeyCount", 0):
                return BackupLocation(bucket, _restores_root(prefix), pool, request_id), key
    raise BackupNotFound(f"no restore report for {request_id} under s3://{bucket}/{root}")


def read_report(clients: Clients, bucket: str, prefix: str, request_id: str) -> tuple[str, dict[str, Any]]:
    """The report's S3 URI and its document (counts, verification, object keys; no user data)."""
    loc, key = find_report(clients, bucket, prefix, request_id)
    [document] = store.get_sealed(clients, loc, key)
    return f"s3://{bucket}/{key}", document


def summary_lines(document: dict[str, Any]) -> list[str]:
    verification = document.get("verification") or {}
    users = document.get("users") or {}
    memberships = document.get("memberships") or {}
    target = document.get("target") or {}
    lines = [
        f"restore {document.get('requestId')} of {document.get('backupUri')} into {target.get('poolId')}",
        f"  verification: {'passed' if verification.get('passed') else 'FAILED'}"
        f" ({verification.get('usersCompared', 0)} users compared)",
        "  users: " + ", ".join(f"{k} {v}" for k, v in users.items()),
        "  memberships: " + ", ".join(f"{k} {v}" for k, v in memberships.items()),
    ]
    differences = {k: v for k, v in (verification.get("differences") or {}).items() if v}
    if differences:
        lines.append("  differences: " + ", ".join(f"{k} {v}" for k, v in differences.items()))
    return lines
