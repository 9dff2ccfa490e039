"""Dollars per million users backed up, from the counts a benchmark run measured.

Prices are public list prices (us-east-1) as read on PRICES_AS_OF; they are assumptions of the model.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.approaches import Run
from infra.permissions import needs_for
from infra.sizing import memory_mb

PRICES_AS_OF = "2025-06 (us-east-1 list prices)"
SFN_PER_TRANSITION = 0.025 / 1000
LAMBDA_PER_GB_S_ARM = 0.0000133334
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
S3_PER_PUT = 0.005 / 1000
S3_PER_GET = 0.0004 / 1000
KMS_PER_REQUEST = 0.03 / 10_000
DYNAMODB_PER_WRITE = (
    0.625 / 1_000_000
)  # on-demand write request unit; a failed conditional write is billed too
# The benchmark's table model is atomic: one request per lease. On DynamoDB a lease that loses a race costs a
# second request; tests/functional/test_shared_budget.py measured 2.3 requests per lease with 16 processes leasing
# at the same instant (the worst case), which is what is charged here.
DYNAMODB_CONTENTION = 2.3

# Memory of each task's function, as the stack sets it (infra/sizing.py).
TASK_GB = {
    task: memory_mb(task, long_running=needs_for(task).long_running) / 1024
    for task in ("ExportUsers", "ExportGroupMemberships", "CapturePoolConfig", "PlanShards")
}
# States entered once per backup of one pool: EnumeratePools, BackupEachPool, CapturePoolConfig, PlanShards,
# ExportShards, WriteManifest, VerifyBackup, PoolBackedUp, BackupsDone.
FIXED_TRANSITIONS = 9
# WriteManifest and VerifyBackup were not run by the benchmark (S3 and KMS only): modelled as one HEAD + one
# GET + one KMS Decrypt per object, taking VERIFY_S_PER_OBJECT seconds each at 1 GB.
VERIFY_S_PER_OBJECT = 0.15


@dataclass(frozen=True)
class Cost:
    transitions: int
    lambda_requests: int
    gb_seconds: float
    s3_puts: int
    s3_gets: int
    kms_requests: int
    dynamodb_requests: int = 0

    @property
    def items(self) -> dict[str, float]:
        return {
            "Step Functions transitions": self.transitions * SFN_PER_TRANSITION,
            "Lambda GB-seconds": self.gb_seconds * LAMBDA_PER_GB_S_ARM,
            "Lambda requests": self.lambda_requests * LAMBDA_PER_REQUEST,
            "S3 PUT": self.s3_puts * S3_PER_PUT,
            "S3 GET/HEAD": self.s3_gets * S3_PER_GET,
            "KMS requests": self.kms_requests * KMS_PER_REQUEST,
            "DynamoDB requests (shared rate budget)": self.dynamodb_requests * DYNAMODB_PER_WRITE,
        }

    @property
    def total(self) -> float:
        return sum(self.items.values())


# The stack before the shared budget gave the export loops 1024 MB.
PREVIOUS_TASK_GB = {**TASK_GB, "ExportUsers": 1.0, "ExportGroupMemberships": 1.0}


def backup_cost(run: Run, task_gb: dict[str, float] = TASK_GB) -> Cost:
    """The cost of the measured backup (approach a), not yet normalised per million users."""
    loops = run.invocations["ExportUsers"] + run.invocations["ExportGroupMemberships"]
    transitions = (
        FIXED_TRANSITIONS + 2 * loops + run.shards
    )  # Task + Choice per loop, ShardExported per shard
    objects = run.s3_puts + 1  # parts, config, and the manifest
    invocations = sum(run.invocations.values()) + 3  # + EnumeratePools, WriteManifest, VerifyBackup
    gb_s = sum(task_gb.get(kind, 0.5) * s for kind, s in run.invocation_s.items())
    gb_s += 2 * objects * VERIFY_S_PER_OBJECT
    return Cost(
        transitions=transitions,
        lambda_requests=invocations,
        gb_seconds=gb_s,
        s3_puts=objects,
        s3_gets=2 * objects,
        kms_requests=run.kms_calls + 1 + objects,  # data keys, the manifest's MAC key, verify's Decrypts
        dynamodb_requests=round(run.store_requests * DYNAMODB_CONTENTION),
    )


def requests_per_million(run: Run) -> float:
    """DynamoDB requests of the shared budget per million users, contention included."""
    return run.store_requests * DYNAMODB_CONTENTION * 1_000_000 / max(1, run.users)


def per_million(cost: Cost, users: int) -> dict[str, float]:
    scale = 1_000_000 / users
    return {k: v * scale for k, v in cost.items.items()}
