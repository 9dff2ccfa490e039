"""Deployment settings from CDK context (cdk.json or ``-c key=value``), validated before anything is built.

``-c`` values arrive as strings, cdk.json values as JSON: every reader accepts both. A bad value stops the
synth with a message naming the context key, never a half-built stack.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.core.errors import InvalidRequest
from pipeline.core.layout import check_pool_id


class InfraConfigError(ValueError):
    """The CDK context or the state machine files cannot make a valid deployment."""


# The cross-account restore role is gone (it let the trusted account restore without approval): a deployment
# that still asks for it stops at synth instead of silently losing it.
REMOVED_CONTEXT = ("crossAccountTrustedAccountId", "crossAccountExternalId")
_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$")
_OBJECT_LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")


@dataclass(frozen=True)
class Settings:
    backup_prefix: str = "backups"
    # Empty: back up every pool in the account and Region.
    backup_pool_ids: tuple[str, ...] = ()
    schedule_expression: str = "cron(0 3 * * ? *)"
    schedule_timezone: str = "UTC"
    # Lifecycle of backup objects; 0 disables the rule.
    retention_days: int = 365
    glacier_transition_days: int = 30
    noncurrent_expiration_days: int = 30
    access_log_retention_days: int = 365
    log_retention_days: int = 90
    # Object Lock, on by default in governance mode: every object version is kept for this many days (a
    # principal with s3:BypassGovernanceRetention can still shorten it; COMPLIANCE: nobody can). 0 turns it off.
    object_lock_days: int = 30
    object_lock_mode: str = "GOVERNANCE"
    # The audit trail's own lifecycle: records expire after this many days (0: never), not with the backups.
    audit_retention_days: int = 2557
    # With Object Lock on, each audit record is locked (governance) this long: its own retention, not the bucket's.
    audit_lock_days: int = 365
    enable_trail: bool = False
    # The operator and approver roles (infra.access); off for accounts that manage people's access elsewhere.
    access_roles: bool = True
    notification_email: str | None = None
    # The weekly restore drill (infra.drill): each pool's latest backup restored, in a sample, into a scratch pool.
    drill_schedule_expression: str = "cron(0 5 ? * SUN *)"
    drill_sample_size: int = 1000
    drill_enabled: bool = True
    # The pending-approval alarm (infra.approval_watch): a restore waiting for a decision longer than this pages;
    # CheckPendingApprovals measures every this many minutes.
    pending_approval_alarm_hours: int = 4
    pending_approval_check_minutes: int = 15

    @property
    def all_pools(self) -> bool:
        return not self.backup_pool_ids


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise InfraConfigError(f"context {key} must be true or false")


def _as_int(key: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise InfraConfigError(f"context {key} must be a whole number of days") from exc
    if isinstance(value, bool) or number < 0:
        raise InfraConfigError(f"context {key} must be a whole number of days >= 0")
    return number


def _as_count(key: str, value: Any) -> int:
    """Hours or minutes: a whole number, whose range validate() checks."""
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise InfraConfigError(f"context {key} must be a whole number") from exc
    if isinstance(value, bool):
        raise InfraConfigError(f"context {key} must be a whole number")
    return number


def _as_str(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InfraConfigError(f"context {key} must be a non-empty string")
    return value.strip()


def _as_pool_ids(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else [p for p in text.split(",") if p.strip()]
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise InfraConfigError(f"context {key} must be a list of user pool ids")
    try:
        return tuple(check_pool_id(p.strip()) for p in dict.fromkeys(value))
    except InvalidRequest as exc:
        raise InfraConfigError(f"context {key}: {exc}") from exc


def settings_from_context(get: Callable[[str], Any]) -> Settings:
    """``get`` is ``node.try_get_context``: None for a missing key."""
    defaults = Settings()
    values: dict[str, Any] = {}
    readers: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
        "backupPrefix": ("backup_prefix", _as_str),
        "backupPoolIds": ("backup_pool_ids", _as_pool_ids),
        "scheduleExpression": ("schedule_expression", _as_str),
        "scheduleTimezone": ("schedule_timezone", _as_str),
        "retentionDays": ("retention_days", _as_int),
        "glacierTransitionDays": ("glacier_transition_days", _as_int),
        "noncurrentVersionExpirationDays": ("noncurrent_expiration_days", _as_int),
        "accessLogRetentionDays": ("access_log_retention_days", _as_int),
        "logRetentionDays": ("log_retention_days", _as_int),
        "objectLockDays": ("object_lock_days", _as_int),
        "objectLockMode": ("object_lock_mode", _as_str),
        "auditRetentionDays": ("audit_retention_days", _as_int),
        "auditLockDays": ("audit_lock_days", _as_int),
        "enableTrail": ("enable_trail", _as_bool),
        "accessRoles": ("access_roles", _as_bool),
        "notificationEmail": ("notification_email", _as_str),
        "drillScheduleExpression": ("drill_schedule_expression", _as_str),
        "drillSampleSize": ("drill_sample_size", _as_int),
        "drillEnabled": ("drill_enabled", _as_bool),
        "pendingApprovalAlarmHours": ("pending_approval_alarm_hours", _as_count),
        "pendingApprovalCheckMinutes": ("pending_approval_check_minutes", _as_count),
    }
    for removed in REMOVED_CONTEXT:
        if get(removed) not in (None, ""):
            raise InfraConfigError(
                f"context {removed} is no longer supported: the cross-account restore role was removed "
                "(it bypassed approval; SECURITY.md section 1.2)"
            )
    for key, (field, read) in readers.items():
        raw = get(key)
        if raw is not None and raw != "":
            values[field] = read(key, raw)
    settings = Settings(**{**defaults.__dict__, **values})
    validate(settings)
    return settings


def validate(s: Settings) -> None:
    if not _PREFIX.match(s.backup_prefix):
        raise InfraConfigError(
            "context backupPrefix must be a plain S3 key prefix without leading or trailing '/'"
        )
    if s.retention_days and s.glacier_transition_days and s.glacier_transition_days >= s.retention_days:
        raise InfraConfigError("context glacierTransitionDays must be smaller than retentionDays")
    if s.object_lock_mode not in _OBJECT_LOCK_MODES:
        raise InfraConfigError(f"context objectLockMode must be one of {', '.join(_OBJECT_LOCK_MODES)}")
    if s.object_lock_days and s.retention_days and s.retention_days < s.object_lock_days:
        raise InfraConfigError("context retentionDays must not be shorter than objectLockDays")
    if not 1 <= s.drill_sample_size <= 100_000:
        raise InfraConfigError("context drillSampleSize must be 1 to 100000 users")
    if s.object_lock_days and s.audit_retention_days and s.audit_retention_days < s.object_lock_days:
        raise InfraConfigError("context auditRetentionDays must not be shorter than objectLockDays")
    if s.audit_retention_days and s.audit_lock_days > s.audit_retention_days:
        raise InfraConfigError("context auditLockDays must not be longer than auditRetentionDays")
    # The longest approval timeout is a week (pipeline.restore.steps): a longer alarm age could never fire.
    if not 1 <= s.pending_approval_alarm_hours <= 168:
        raise InfraConfigError("context pendingApprovalAlarmHours must be 1 to 168 hours")
    if not 1 <= s.pending_approval_check_minutes <= 60:
        raise InfraConfigError("context pendingApprovalCheckMinutes must be 1 to 60 minutes")
