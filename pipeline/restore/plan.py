"""What a restore would do, computed without writing anything (``restore --dry-run``)."""

from __future__ import annotations

from typing import Any

from pipeline.cognito import reading as cognito_read
from pipeline.core.aws import Clients
from pipeline.core.layout import BackupLocation, check_pool_id
from pipeline.restore import diff
from pipeline.restore.steps import resolve_selection
from pipeline.sealing.backup_reader import BackupReader


def plan_restore(
    clients: Clients,
    loc: BackupLocation,
    *,
    target_pool_id: str | None,
    new_pool_name: str | None,
    users: list[str],
    groups: list[str],
) -> dict[str, Any]:
    """Counts of what would be created, skipped or left in conflict; names only of groups, never of users."""
    reader = BackupReader.open(clients, loc)
    config = reader.config()
    selected_users: frozenset[str] | None = None
    selected_groups: frozenset[str] | None = None
    if users or groups:
        selected_users, selected_groups = resolve_selection(reader, set(users), set(groups))
    backup_groups = [g for g in config["groups"] if selected_groups is None or g["name"] in selected_groups]
    backup_users = sum(1 for u in reader.users() if selected_users is None or u["username"] in selected_users)
    backup_memberships = sum(
        1
        for m in reader.memberships()
        if (selected_users is None or m["username"] in selected_users)
        and (selected_groups is None or m["group"] in selected_groups)
    )
    plan: dict[str, Any] = {
        "backup": loc.uri,
        "writes": "none (dry run)",
        "selective": selected_users is not None,
    }
    if new_pool_name is not None:
        plan["target"] = {"mode": "new", "poolName": new_pool_name}
        plan["pool"] = {
            "create": True,
            "customAttributes": sum(
                1
                for a in config["pool"].get("SchemaAttributes", [])
                if str(a.get("Name", "")).startswith("custom:")
            ),
            "appClients": len(config.get("appClients") or []),
            "identityProviders": len(config.get("identityProviders") or []),
            "resourceServers": len(config.get("resourceServers") or []),
            "domain": (config.get("domain") or {}).get("Domain"),
        }
        plan["groups"] = {"create": [g["name"] for g in backup_groups], "conflicts": []}
        plan["users"] = {"create": backup_users, "skip_existing": 0, "existing_that_differ": 0}
        plan["memberships"] = {"add": backup_memberships, "already": 0}
        return plan
    assert target_pool_id is not None
    cognito_read.describe_pool(clients.cognito, check_pool_id(target_pool_id))
    report = diff.diff_pool(
        clients.cognito,
        reader,
        target_pool_id,
        users=selected_users,
        groups=selected_groups,
        extra_allowed=True,
    )
    differing = (
        set(report.attribute_differences) | set(report.enabled_differences) | set(report.status_differences)
    )
    plan["target"] = {"mode": "existing", "poolId": target_pool_id}
    plan["pool"] = {"create": False}
    plan["groups"] = {"create": report.groups_missing, "conflicts": report.group_setting_differences}
    plan["users"] = {
        "create": len(report.users_missing),
        "skip_existing": backup_users - len(report.users_missing),
        "existing_that_differ": len(differing),  # a merge never overwrites them; the report lists them
    }
    plan["memberships"] = {
        "add": len(report.memberships_missing),
        "already": backup_memberships - len(report.memberships_missing),
    }
    return plan
