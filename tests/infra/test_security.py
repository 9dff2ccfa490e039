"""The seed security guide, asserted on the synthesized template."""

from __future__ import annotations

import json
from typing import Any

from pipeline.core.task_names import function_name
from tests.helpers.synth import Synth, as_list, flatten, policy_documents, statements

BACKUP_TASKS = [
    "EnumeratePools",
    "CapturePoolConfig",
    "PlanShards",
    "ExportUsers",
    "ExportGroupMemberships",
    "WriteManifest",
    "VerifyBackup",
]


def _backup_bucket(synth: Synth) -> tuple[str, dict[str, Any]]:
    found = [
        (lid, r)
        for lid, r in synth.resources("AWS::S3::Bucket").items()
        if "KMSMasterKeyID" in json.dumps(r["Properties"].get("BucketEncryption", {}))
    ]
    assert len(found) == 1
    return found[0]


def _bucket_policy(synth: Synth, bucket_lid: str) -> list[dict[str, Any]]:
    for res in synth.resources("AWS::S3::BucketPolicy").values():
        if res["Properties"]["Bucket"] == {"Ref": bucket_lid}:
            return statements(res["Properties"]["PolicyDocument"])
    raise AssertionError(f"no policy for {bucket_lid}")


def _function(synth: Synth, task: str) -> dict[str, Any]:
    for res in synth.resources("AWS::Lambda::Function").values():
        if res["Properties"].get("FunctionName") == function_name(task):
            return res
    raise AssertionError(f"no function for {task}")


def _role_lid(synth: Synth, task: str) -> str:
    role = _function(synth, task)["Properties"]["Role"]
    return str(role["Fn::GetAtt"][0])


def _role_statements(synth: Synth, role_lid: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for res in synth.resources("AWS::IAM::Policy").values():
        if {"Ref": role_lid} in res["Properties"]["Roles"]:
            found.extend(statements(res["Properties"]["PolicyDocument"]))
    return found


def _actions(stmts: list[dict[str, Any]]) -> set[str]:
    return {a for s in stmts if s["Effect"] == "Allow" for a in as_list(s["Action"])}


def test_backup_key_rotates_and_trusts_no_one_with_data(default_synth: Synth) -> None:
    keys = default_synth.resources("AWS::KMS::Key")
    assert keys
    # HMAC keys cannot rotate automatically (KMS rotates symmetric encryption keys only): the manifest MAC key.
    mac_keys = [k for k in keys.values() if k["Properties"].get("KeySpec") == "HMAC_256"]
    assert [k["Properties"]["KeyUsage"] for k in mac_keys] == ["GENERATE_VERIFY_MAC"]
    assert all(k["Properties"]["EnableKeyRotation"] is True for k in keys.values() if k not in mac_keys)
    _bucket_lid, bucket = _backup_bucket(default_synth)
    key_ref = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ]["KMSMasterKeyID"]
    key = keys[key_ref["Fn::GetAtt"][0]]
    for stmt in statements(key["Properties"]["KeyPolicy"]):
        principal = json.dumps(stmt["Principal"])
        if ":root" in principal:
            # The account administers the key but cannot use it for data: no Decrypt through IAM delegation, and
            # no grant an administrator could give itself.
            assert not {"kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant", "kms:*"} & set(
                as_list(stmt["Action"])
            )
        else:
            assert "Fn::GetAtt" in principal  # a function role, by ARN
    aliases = [a["Properties"]["AliasName"] for a in default_synth.resources("AWS::KMS::Alias").values()]
    assert "alias/cognito-backuper" in aliases


def test_backup_bucket_encryption_versioning_public_access_logging(default_synth: Synth) -> None:
    _lid, bucket = _backup_bucket(default_synth)
    props = bucket["Properties"]
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["BucketKeyEnabled"] is True
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    log_target = props["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    log_bucket = default_synth.template["Resources"][log_target]["Properties"]
    assert log_bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}
    assert log_bucket["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] > 0
    # Object Lock on by default, in governance mode (security guide 5.1; SECURITY.md section 4.2).
    assert props["ObjectLockEnabled"] is True
    assert props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"] == {"Days": 30, "Mode": "GOVERNANCE"}


def test_lifecycle_from_context(default_synth: Synth) -> None:
    _lid, bucket = _backup_bucket(default_synth)
    rules = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    rule = rules["BackupRetention"]
    assert rule["ExpirationInDays"] == 365
    assert rule["Transitions"] == [{"StorageClass": "GLACIER_IR", "TransitionInDays": 30}]
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert rule["Prefix"] == {"Fn::Join": ["", ["backups/", {"Ref": "AWS::Region"}, "_"]]}
    for name in ("Runs", "Restores", "Approvals"):
        assert rules[f"{name}Retention"]["ExpirationInDays"] == 365
    # The audit trail does not expire with the backups: its own rule, its own (longer) retention.
    audit_rule = rules["AuditRetention"]
    assert audit_rule["Prefix"] == "backups/audit/"
    assert audit_rule["ExpirationInDays"] == 2557
    assert all(
        not str(r.get("Prefix", "")).startswith("backups/audit")
        for i, r in rules.items()
        if i != "AuditRetention"
    )


def test_object_lock_when_asked(options_synth: Synth) -> None:
    _lid, bucket = _backup_bucket(options_synth)
    props = bucket["Properties"]
    assert props["ObjectLockEnabled"] is True
    assert props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"] == {"Days": 30, "Mode": "GOVERNANCE"}


def test_bucket_policy_has_the_seed_statement_exactly_and_tls_deny(any_synth: Synth) -> None:
    lid, _bucket = _backup_bucket(any_synth)
    stmts = _bucket_policy(any_synth, lid)
    enforce = [s for s in stmts if s.get("Sid") == "EnforceEncryption"]
    assert enforce == [
        {
            "Sid": "EnforceEncryption",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", {"Ref": lid}, "/*"]]},
            "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}},
        }
    ]
    tls = [s for s in stmts if s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}]
    assert len(tls) == 1
    assert tls[0]["Effect"] == "Deny"
    assert tls[0]["Action"] == "s3:*"
    assert {"Fn::GetAtt": [lid, "Arn"]} in tls[0]["Resource"]


def test_every_bucket_and_topic_is_tls_only(any_synth: Synth) -> None:
    policies = [
        r["Properties"]["PolicyDocument"]
        for kind in ("AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy")
        for r in any_synth.resources(kind).values()
    ]
    assert len(policies) == len(any_synth.resources("AWS::S3::Bucket")) + len(
        any_synth.resources("AWS::SNS::Topic")
    )
    for doc in policies:
        assert any(
            s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements(doc)
        )


def test_no_allow_statement_has_a_wildcard_action(any_synth: Synth) -> None:
    """Deny statements may say s3:* (the TLS deny must cover every action); no Allow may."""
    checked = 0
    for lid, _kind, doc in policy_documents(any_synth.template):
        for stmt in statements(doc):
            for action in as_list(stmt.get("Action", [])):
                checked += 1
                if stmt["Effect"] == "Allow":
                    assert "*" not in action, f"{lid} allows {action}"
    assert checked > 50


def test_one_distinct_role_per_function_arm64_and_logging(default_synth: Synth) -> None:
    functions = default_synth.resources("AWS::Lambda::Function")
    roles = [json.dumps(f["Properties"]["Role"]) for f in functions.values()]
    assert len(set(roles)) == len(roles) == len(functions)
    for task in BACKUP_TASKS:
        props = _function(default_synth, task)["Properties"]
        assert props["Architectures"] == ["arm64"]
        assert props["Runtime"].startswith("python3.")
        assert (
            props["Handler"]
            == f"tasks.{function_name(task)[len('cognito-backuper-') :].replace('-', '_')}.handler"
        )
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert props["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "cognito-backuper"
        assert "LOG_LEVEL" in props["Environment"]["Variables"]
        assert 512 <= props["MemorySize"] <= 1024
        assert "ReservedConcurrentExecutions" not in props
    assert _function(default_synth, "ExportUsers")["Properties"]["Timeout"] == 900
    assert _function(default_synth, "PlanShards")["Properties"]["Timeout"] < 900
    groups = default_synth.resources("AWS::Logs::LogGroup").values()
    assert all(g["Properties"]["RetentionInDays"] > 0 for g in groups)


def test_per_function_least_privilege(default_synth: Synth) -> None:
    def actions(task: str) -> set[str]:
        return _actions(_role_statements(default_synth, _role_lid(default_synth, task)))

    assert "s3:PutObject" not in actions("VerifyBackup")
    assert "kms:Decrypt" in actions("VerifyBackup")
    for task in ("ExportUsers", "ExportGroupMemberships", "CapturePoolConfig"):
        assert {"s3:PutObject", "kms:GenerateDataKey"} <= actions(task)
    assert "kms:Decrypt" not in actions("ExportUsers")
    assert "s3:GetObject" not in actions("ExportUsers")
    # The group slices read the captured group names back from config.bin; the last configuration slice reads
    # the earlier slices' work parts to seal config.bin.
    for task in ("ExportGroupMemberships", "CapturePoolConfig"):
        assert {"s3:GetObject", "kms:Decrypt"} <= actions(task)
    for task in BACKUP_TASKS:
        assert not {a for a in actions(task) if a.startswith(("cognito-idp:Admin", "cognito-idp:Create"))}
    assert actions("ExportUsers") & {a for a in actions("ExportUsers") if a.startswith("cognito-idp:")} == {
        "cognito-idp:ListUsers"
    }
    assert actions("PlanShards") == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert "cognito-idp:ListUserPools" in actions("EnumeratePools")


def test_export_loops_get_the_memory_their_cpu_needs(default_synth: Synth) -> None:
    # Lambda bills the loops' waiting on the rate budget by memory (infra/sizing.py); other long tasks keep 1024.
    for task in ("ExportUsers", "ExportGroupMemberships"):
        assert _function(default_synth, task)["Properties"]["MemorySize"] == 512
    assert _function(default_synth, "VerifyBackup")["Properties"]["MemorySize"] == 1024


def test_capture_lists_earlier_backups_under_the_prefix_only(default_synth: Synth) -> None:
    # CapturePoolConfig reads the previous manifest's memberships per slice (pipeline.backup.chain_hints).
    listing = [
        stmt
        for stmt in _role_statements(default_synth, _role_lid(default_synth, "CapturePoolConfig"))
        if stmt["Action"] == "s3:ListBucket"
    ]
    assert [s["Condition"]["StringLike"]["s3:prefix"] for s in listing] == [["", "backups", "backups/*"]]


def test_cognito_scoping(default_synth: Synth) -> None:
    for task in ("EnumeratePools", "CapturePoolConfig"):
        for stmt in _role_statements(default_synth, _role_lid(default_synth, task)):
            cognito = [a for a in as_list(stmt["Action"]) if a.startswith("cognito-idp:")]
            if not cognito:
                continue
            if stmt["Resource"] == "*":
                assert set(cognito) <= {"cognito-idp:ListUserPools", "cognito-idp:DescribeUserPoolDomain"}
            else:
                assert ":userpool/*" in json.dumps(stmt["Resource"])


def test_s3_access_limited_to_the_backup_prefix(default_synth: Synth) -> None:
    bucket_lid, _ = _backup_bucket(default_synth)
    for stmt in _role_statements(default_synth, _role_lid(default_synth, "WriteManifest")):
        if any(a.startswith("s3:") for a in as_list(stmt["Action"])):
            resource = json.dumps(stmt["Resource"])
            assert bucket_lid in resource
            if stmt["Action"] == "s3:ListBucket":
                assert stmt["Condition"]["StringLike"]["s3:prefix"] == ["", "backups", "backups/*"]
            else:
                # Reads under the prefix; writes and deletes only of the manifest and the backup's parts.
                assert '"/backups/' in resource
                if "s3:PutObject" in as_list(stmt["Action"]):
                    assert resource.endswith('"/backups/*/manifest.json"]]}')
                if "s3:DeleteObject" in as_list(stmt["Action"]):
                    assert "manifest" not in resource and "/backups/*/work/*" in resource


def test_state_machines_log_without_execution_data_and_trace(default_synth: Synth) -> None:
    machines = default_synth.resources("AWS::StepFunctions::StateMachine")
    assert len(machines) >= 1
    for machine in machines.values():
        props = machine["Properties"]
        assert props["TracingConfiguration"] == {"Enabled": True}
        assert props["LoggingConfiguration"]["IncludeExecutionData"] is False
        assert props["LoggingConfiguration"]["Level"] in {"ALL", "ERROR"}
        role_lid = props["RoleArn"]["Fn::GetAtt"][0]
        invoke = [
            s
            for s in _role_statements(default_synth, role_lid)
            if "lambda:InvokeFunction" in as_list(s["Action"])
        ]
        assert len(invoke) == 1
        resources = as_list(invoke[0]["Resource"])
        assert all(list(r) == ["Fn::GetAtt"] and r["Fn::GetAtt"][1] == "Arn" for r in resources)


def _daily(synth: Synth) -> list[dict[str, Any]]:
    """The backup's schedule (the drill has its own, tests/infra/test_drill_infra.py)."""
    schedules = synth.resources("AWS::Scheduler::Schedule").values()
    return [
        s
        for s in schedules
        if flatten(s["Properties"]["Name"]) == "{AWS::StackName}-{AWS::Region}-daily-backup"
    ]


def test_daily_schedule_starts_only_the_backup_machine(default_synth: Synth, options_synth: Synth) -> None:
    (schedule,) = _daily(default_synth)
    target = schedule["Properties"]["Target"]
    assert json.loads(target["Input"]) == {"poolIds": [], "allPools": True}
    role_lid = target["RoleArn"]["Fn::GetAtt"][0]
    assert _role_statements(default_synth, role_lid) == [
        {
            "Sid": "StartMachine",
            "Effect": "Allow",
            "Action": "states:StartExecution",
            "Resource": target["Arn"],
        }
    ]
    (schedule,) = _daily(options_synth)
    assert json.loads(schedule["Properties"]["Target"]["Input"]) == {
        "poolIds": ["us-east-1_AbC123", "us-east-1_XyZ789"],
        "allPools": False,
    }


def test_alarms_failure_rule_topic_and_dashboard(default_synth: Synth) -> None:
    (topic_lid, topic), *_ = default_synth.resources("AWS::SNS::Topic").items()
    assert "KmsMasterKeyId" in topic["Properties"]
    machines = default_synth.resources("AWS::StepFunctions::StateMachine")
    alarms = default_synth.resources("AWS::CloudWatch::Alarm").values()
    failed = [a for a in alarms if a["Properties"].get("MetricName") == "ExecutionsFailed"]
    assert len(failed) == len(
        machines
    )  # one per machine; the tasks' metrics have their own (test_monitoring)
    assert all(a["Properties"]["AlarmActions"] == [{"Ref": topic_lid}] for a in alarms)
    (rule,) = default_synth.resources("AWS::Events::Rule").values()
    pattern = rule["Properties"]["EventPattern"]
    assert set(pattern["detail"]["status"]) == {"FAILED", "TIMED_OUT", "ABORTED"}
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Ref": topic_lid}
    assert "InputTransformer" in rule["Properties"]["Targets"][0]  # never the raw event with its input/output
    (board,) = default_synth.resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(board["Properties"]["DashboardBody"])
    for metric in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "Throttles"):
        assert metric in body
    assert "CognitoBackuper" in body
    assert "UsersExported" in body
    assert "CognitoThrottles" in body


def test_trail_only_when_enabled(default_synth: Synth, options_synth: Synth) -> None:
    assert default_synth.resources("AWS::CloudTrail::Trail") == {}
    (trail,) = options_synth.resources("AWS::CloudTrail::Trail").values()
    assert trail["Properties"]["EnableLogFileValidation"] is True
    assert "KMSKeyId" in trail["Properties"]
    assert trail["Properties"]["IsMultiRegionTrail"] is True


def test_outputs(default_synth: Synth) -> None:
    outputs = default_synth.template["Outputs"]
    for name in ("BackupBucketName", "KmsKeyArn", "NotificationTopicArn", "BackupStateMachineArn"):
        assert name in outputs
