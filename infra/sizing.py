"""Memory of each task's function, read by the stack and by the benchmark's cost model (no CDK import).

arm64 Lambda bills GB-seconds and gives CPU in proportion to memory (1,769 MB is one vCPU). A long-running task
that mostly waits on Cognito's quota pays for its memory while it waits, so it gets only what its CPU work needs.
"""

from __future__ import annotations

LONG_RUNNING_MB = 1024
SHORT_MB = 512
# The export loops page Cognito at the shared budget's pace; per part they encode (JSON Lines + gzip) and seal
# (AES-256-GCM) 5,000 users or 20,000 memberships: about 0.3 s of one vCPU measured (bench/cost.py), about 1 s at
# 512 MB, beside the 8 s or more a part's 84 pages take. The part itself is about 10 MB in memory.
EXPORT_MB = 512
TASK_MEMORY_MB = {"ExportUsers": EXPORT_MB, "ExportGroupMemberships": EXPORT_MB}


def memory_mb(task: str, *, long_running: bool) -> int:
    """The memory the stack gives ``task``'s function."""
    if task in TASK_MEMORY_MB:
        return TASK_MEMORY_MB[task]
    return LONG_RUNNING_MB if long_running else SHORT_MB
