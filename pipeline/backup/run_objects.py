"""The objects one backup run keeps beside its backups: the pools to back up and the run's summary.

A run over every pool of an account can list a thousand pools; their descriptors would not fit in a state's
256 KiB payload, so EnumeratePools writes them to ``<prefix>/runs/<run>/pools.json`` (``<run>`` is made like a
backup id), BackupEachPool (a distributed Map) reads them with its ItemReader, and CollectBackups writes
``backups.json`` with every pool's outcome (its backup, or its error). Both hold ids, S3 URIs, counts and error
messages only (no user data): plain JSON under SSE-KMS, so the Map's reader needs no decryption of its own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.core.aws import Clients
from pipeline.core.contracts import BackupSummary, PoolJob, Storage
from pipeline.core.errors import IntegrityError, InvalidRequest
from pipeline.sealing.store import bucket_errors

# A run's name is a safe key segment: 1 to 80 letters, digits, '-' or '_'.
_RUN = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
POOLS_NAME = "pools.json"
SUMMARY_NAME = "backups.json"


def run_key(storage: Storage, run: str, name: str) -> str:
    if not _RUN.match(run):
        raise InvalidRequest("a backup run's name has letters, digits, '-' and '_' only")
    prefix = storage["prefix"].strip("/")
    return f"{prefix}/runs/{run}/{name}" if prefix else f"runs/{run}/{name}"


def _put_json(clients: Clients, storage: Storage, key: str, value: Any) -> None:
    body = json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")
    with bucket_errors(storage["bucket"]):
        clients.s3.put_object(
            Bucket=storage["bucket"],
            Key=key,
            Body=body,
            ContentType="application/json",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=storage["kmsKeyArn"],
            ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode("ascii"),
        )


def _get_json(clients: Clients, storage: Storage, key: str) -> Any:
    with bucket_errors(storage["bucket"], missing=f"the run's {key} is missing"):
        body = clients.s3.get_object(Bucket=storage["bucket"], Key=key)["Body"].read()
    try:
        return json.loads(body)
    except ValueError as exc:
        raise IntegrityError(f"{key} is not JSON") from exc


def write_pools(clients: Clients, storage: Storage, run: str, jobs: list[PoolJob]) -> str:
    key = run_key(storage, run, POOLS_NAME)
    _put_json(clients, storage, key, jobs)
    return key


def read_pools(clients: Clients, storage: Storage, key: str) -> list[PoolJob]:
    jobs = _get_json(clients, storage, key)
    if not isinstance(jobs, list) or not all(isinstance(j, dict) and "poolId" in j for j in jobs):
        raise IntegrityError(f"{key} does not hold a list of pool jobs")
    return jobs


def write_summary(clients: Clients, storage: Storage, run: str, outcomes: Sequence[Mapping[str, Any]]) -> str:
    """Every pool's outcome: its backup summary (``verified`` true), or its error (``verified`` false)."""
    key = run_key(storage, run, SUMMARY_NAME)
    _put_json(clients, storage, key, list(outcomes))
    return key


def read_summary(clients: Clients, bucket: str, key: str) -> list[BackupSummary]:
    """The full list of a run's pool outcomes, for callers that got only the first ones inline."""
    with bucket_errors(bucket, missing=f"the run's summary {key} is missing"):
        body = clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    backups = json.loads(body)
    if not isinstance(backups, list):
        raise IntegrityError(f"{key} does not hold a list of backups")
    return backups
