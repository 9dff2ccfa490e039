"""Recorded AWS calls as IAM sees them, decided against the synthesized template by a real IAM evaluator.

Three parts:
- ``ResolvedTemplate``: the CloudFormation template with its intrinsics (Ref, Fn::GetAtt, Fn::Join, Fn::Sub,
  Fn::Select) resolved to concrete names and ARNs, the test account's physical ids standing in for the deployed ones.
- ``authorizations``: the IAM requests one API call makes, with the action AWS documents for the operation (HeadBucket
  is s3:ListBucket, HeadObject is s3:GetObject, ...) and the condition keys the real request carries (s3:prefix only
  when the request has a Prefix, SSE headers, kms:EncryptionContext:*, aws:SecureTransport, ...). SSE-KMS reads and
  writes also make S3 call KMS for the caller (kms:ViaService), which is evaluated too.
- ``evaluate``: one node process (tests/iam/evaluate.mjs, @cloud-copilot/iam-simulate, test-time only) for a batch.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.sealing.manifest_mac import DEFAULT_MAC_KEY
from tests.iam.iam_recorder import Call

HERE = Path(__file__).resolve().parent
PARTITION = "aws"
STACK_UUID = "00000000-0000-4000-8000-000000000000"
URL_SUFFIX = "amazonaws.com"

# Calls IAM does not authorise: Cognito's public (client-side) APIs and GetCallerIdentity.
UNAUTHORISED = frozenset(
    {
        ("sts", "GetCallerIdentity"),
        ("cognito-idp", "SignUp"),
        ("cognito-idp", "ConfirmSignUp"),
        ("cognito-idp", "InitiateAuth"),
        ("cognito-idp", "RespondToAuthChallenge"),
    }
)
# S3 operations whose IAM action is not ``s3:<Operation>`` (the S3 API reference, "Permissions" of each operation).
S3_ACTIONS = {
    "HeadBucket": "ListBucket",
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "HeadObject": "GetObject",
    "GetObject": "GetObject",
    "PutObject": "PutObject",
    "DeleteObject": "DeleteObject",
    "DeleteObjects": "DeleteObject",
    "GetObjectTagging": "GetObjectTagging",
    "PutObjectRetention": "PutObjectRetention",
    "GetObjectRetention": "GetObjectRetention",
}
_BUCKET_LEVEL = frozenset({"HeadBucket", "ListObjects", "ListObjectsV2", "ListObjectVersions"})
_VERSIONED = {"GetObject": "GetObjectVersion", "DeleteObject": "DeleteObjectVersion"}
# Step Functions: which parameter names the resource.
_STATES_RESOURCE = {
    "StartExecution": "stateMachineArn",
    "StartSyncExecution": "stateMachineArn",
    "DescribeStateMachine": "stateMachineArn",
    "ListExecutions": "stateMachineArn",
    "DescribeExecution": "executionArn",
    "GetExecutionHistory": "executionArn",
    "StopExecution": "executionArn",
    "DescribeStateMachineForExecution": "executionArn",
    "DescribeMapRun": "mapRunArn",
    "SendTaskSuccess": None,
    "SendTaskFailure": None,
    "SendTaskHeartbeat": None,
}
# Cognito actions that take no user pool resource (the service authorization reference lists no resource type).
_COGNITO_NO_POOL = frozenset({"ListUserPools", "CreateUserPool", "DescribeUserPoolDomain"})


class UnmappedCall(Exception):
    """A recorded call this module cannot translate into IAM requests: extend the mapping, never skip it."""


@dataclass(frozen=True)
class World:
    region: str
    account: str
    bucket: str
    key_arn: str
    prefix: str
    mac_key_arn: str = ""  # the manifest MAC key (infra.signing), reached by its alias
    # The tags of the user pools the calls act on (aws:ResourceTag/*): IAM reads them from the pool itself.
    pool_tags: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def table_arn(self, name: str) -> str:
        return f"arn:{PARTITION}:dynamodb:{self.region}:{self.account}:table/{name}"

    def stack_arn(self, name: str) -> str:
        return f"arn:{PARTITION}:cloudformation:{self.region}:{self.account}:stack/{name}/{STACK_UUID}"


@dataclass
class Authorization:
    """One IAM request: what is asked, of which resource, with which condition keys; and who answers it."""

    action: str
    resource: str
    context: dict[str, str | list[str]] = field(default_factory=dict)
    resource_policy: str | None = None  # a key of ResolvedTemplate.resource_policies

    def describe(self) -> str:
        return f"{self.action} on {self.resource}"


# -- the template ---------------------------------------------------------------------------------------------


class ResolvedTemplate:
    def __init__(self, template: Mapping[str, Any], world: World, physical: Mapping[str, Mapping[str, str]]):
        """``physical``: logical id -> {"Ref": ..., "Arn": ...} for the resources the test account really has."""
        self.world = world
        self.resources: dict[str, dict[str, Any]] = dict(template["Resources"])
        self._physical = {k: dict(v) for k, v in physical.items()}
        self.outputs = {k: self.resolve(v["Value"]) for k, v in template.get("Outputs", {}).items()}

    # names and ARNs of resources the test account does not hold: stable, readable, unique per logical id
    def _ref(self, logical: str) -> str:
        if logical in self._physical and "Ref" in self._physical[logical]:
            return self._physical[logical]["Ref"]
        pseudo = {
            "AWS::Region": self.world.region,
            "AWS::AccountId": self.world.account,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": URL_SUFFIX,
            "AWS::StackName": "CognitoBackuperStack",
            "AWS::StackId": self.world.stack_arn("CognitoBackuperStack"),
            "AWS::NoValue": "",
        }
        if logical in pseudo:
            return pseudo[logical]
        res = self.resources[logical]
        props = res.get("Properties", {})
        kind = res["Type"]
        w = self.world
        if kind == "AWS::SNS::Topic":
            return f"arn:{PARTITION}:sns:{w.region}:{w.account}:{logical}"
        if kind == "AWS::StepFunctions::StateMachine":
            name = self.resolve(props.get("StateMachineName", logical))
            return f"arn:{PARTITION}:states:{w.region}:{w.account}:stateMachine:{name}"
        if kind == "AWS::IAM::Role":
            return str(self.resolve(props.get("RoleName", logical)))
        if kind == "AWS::Lambda::Function":
            return str(self.resolve(props.get("FunctionName", logical)))
        if kind == "AWS::S3::Bucket":
            return str(self.resolve(props.get("BucketName", logical.lower())))
        return logical

    def _get_att(self, logical: str, attribute: str) -> str:
        if logical in self._physical and attribute in self._physical[logical]:
            return self._physical[logical][attribute]
        kind = self.resources[logical]["Type"]
        w = self.world
        ref = self._ref(logical)
        arns = {
            "AWS::IAM::Role": f"arn:{PARTITION}:iam::{w.account}:role/{ref}",
            "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{ref}",
            "AWS::KMS::Key": f"arn:{PARTITION}:kms:{w.region}:{w.account}:key/{ref}",
            "AWS::Lambda::Function": f"arn:{PARTITION}:lambda:{w.region}:{w.account}:function:{ref}",
            "AWS::Logs::LogGroup": f"arn:{PARTITION}:logs:{w.region}:{w.account}:log-group:{ref}:*",
        }
        if attribute == "Arn" and kind in arns:
            return arns[kind]
        if attribute == "Name" and kind == "AWS::StepFunctions::StateMachine":
            return ref.rsplit(":", 1)[-1]
        if attribute == "TopicArn":
            return ref
        return f"arn:{PARTITION}:unresolved:{w.region}:{w.account}:{logical}/{attribute}"

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((name, arg),) = value.items()
            if name == "Ref":
                return self._ref(arg)
            if name == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._get_att(logical, attribute)
            if name == "Fn::Join":
                sep, parts = arg
                return sep.join(str(p) for p in self.resolve(parts))
            if name == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if name == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if name == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                values = {k: str(self.resolve(v)) for k, v in variables.items()}

                def sub(match: re.Match[str]) -> str:
                    token = match.group(1)
                    if token in values:
                        return values[token]
                    if "." in token and token.split(".", 1)[0] in self.resources:
                        logical, attribute = token.split(".", 1)
                        return self._get_att(logical, attribute)
                    return str(self._ref(token))

                return re.sub(r"\$\{([^}!]+)\}", sub, text)
        return {k: self.resolve(v) for k, v in value.items()}

    # -- who holds which policy
    def role_of_function(self, function_name: str) -> str:
        for res in self.resources.values():
            if res["Type"] == "AWS::Lambda::Function":
                props = res["Properties"]
                if self.resolve(props.get("FunctionName")) == function_name:
                    role = props["Role"]["Fn::GetAtt"][0]
                    return str(role)
        raise KeyError(f"no function {function_name} in the template")

    def role_arn(self, role: str) -> str:
        return self._get_att(role, "Arn")

    def identity_policies(self, role: str) -> dict[str, dict[str, Any]]:
        """Inline and attached customer policies of a role, resolved, by a readable name."""
        found: dict[str, dict[str, Any]] = {}
        props = self.resources[role]["Properties"]
        for inline in props.get("Policies", []):
            found[f"{role}/{inline['PolicyName']}"] = self.resolve(inline["PolicyDocument"])
        for logical, res in self.resources.items():
            if res["Type"] == "AWS::IAM::Policy":
                roles = res["Properties"].get("Roles", [])
                if {"Ref": role} in roles:
                    found[logical] = self.resolve(res["Properties"]["PolicyDocument"])
        return found

    def resource_policies(self) -> dict[str, dict[str, Any]]:
        """Bucket, key and topic policies, keyed ``s3:<bucket>``, ``kms:<key arn>``, ``sns:<topic arn>``."""
        found: dict[str, dict[str, Any]] = {}
        for logical, res in self.resources.items():
            props = res.get("Properties", {})
            if res["Type"] == "AWS::S3::BucketPolicy":
                found[f"s3:{self.resolve(props['Bucket'])}"] = self.resolve(props["PolicyDocument"])
            elif res["Type"] == "AWS::KMS::Key":
                found[f"kms:{self._get_att(logical, 'Arn')}"] = self.resolve(props["KeyPolicy"])
            elif res["Type"] == "AWS::SNS::TopicPolicy":
                doc = self.resolve(props["PolicyDocument"])
                for topic in props.get("Topics", []):
                    found[f"sns:{self.resolve(topic)}"] = doc
        return found


# -- calls as IAM requests ----------------------------------------------------------------------------------


def _key_arn(world: World, key_id: str | None) -> str:
    # The manifest MAC key by its alias, ARN or id; every other alias and key: the backup key.
    if (
        world.mac_key_arn
        and key_id
        and (
            key_id == DEFAULT_MAC_KEY
            or key_id == world.mac_key_arn
            or world.mac_key_arn.endswith(f"/{key_id}")
        )
    ):
        return world.mac_key_arn
    if (
        not key_id
        or key_id.startswith("alias/")
        or key_id == world.key_arn
        or world.key_arn.endswith(f"/{key_id}")
    ):
        return world.key_arn
    if key_id.startswith("arn:"):
        return key_id
    return f"arn:{PARTITION}:kms:{world.region}:{world.account}:key/{key_id}"


def _kms(
    world: World, action: str, key_arn: str, context: Mapping[str, str], via: str | None
) -> Authorization:
    keys: dict[str, str | list[str]] = {"kms:CallerAccount": world.account}
    for name, value in context.items():
        keys[f"kms:EncryptionContext:{name}"] = value
    if context:
        keys["kms:EncryptionContextKeys"] = sorted(context)
    if via:
        keys["kms:ViaService"] = via
    return Authorization(f"kms:{action}", key_arn, keys, f"kms:{key_arn}")


def _s3(call: Call, world: World) -> list[Authorization]:
    op, p = call.operation, call.parameters
    if op not in S3_ACTIONS:
        raise UnmappedCall(f"S3 operation {op}")
    bucket = p["Bucket"]
    policy = f"s3:{bucket}"
    action = S3_ACTIONS[op]
    context: dict[str, str | list[str]] = {}
    if op in _BUCKET_LEVEL:
        if "Prefix" in p:
            context["s3:prefix"] = p["Prefix"]
        if "Delimiter" in p:
            context["s3:delimiter"] = p["Delimiter"]
        return [Authorization(f"s3:{action}", f"arn:{PARTITION}:s3:::{bucket}", context, policy)]
    keys = [o["Key"] for o in p["Delete"]["Objects"]] if op == "DeleteObjects" else [p["Key"]]
    if p.get("VersionId") and op in _VERSIONED:
        action = _VERSIONED[op]
    result: list[Authorization] = []
    via = f"s3.{world.region}.{URL_SUFFIX}"
    # With an S3 Bucket Key, S3 asks KMS under the bucket's ARN as encryption context.
    s3_context = {"aws:s3:arn": f"arn:{PARTITION}:s3:::{bucket}"}
    for key in keys:
        if op == "PutObject":
            if "ServerSideEncryption" in p:
                context["s3:x-amz-server-side-encryption"] = p["ServerSideEncryption"]
            if "SSEKMSKeyId" in p:
                context["s3:x-amz-server-side-encryption-aws-kms-key-id"] = p["SSEKMSKeyId"]
            if "IfNoneMatch" in p:
                context["s3:if-none-match"] = p["IfNoneMatch"]
            if "IfMatch" in p:
                context["s3:if-match"] = p["IfMatch"]
            if "ObjectLockMode" in p:
                context["s3:object-lock-mode"] = p["ObjectLockMode"]
        result.append(Authorization(f"s3:{action}", f"arn:{PARTITION}:s3:::{bucket}/{key}", context, policy))
        if call.missing and op in ("HeadObject", "GetObject"):
            # S3 answers 404 for a missing key only to a caller that may s3:ListBucket, evaluated with the key
            # as s3:prefix (403 otherwise, which the pipeline reports as access denied).
            listing = {"s3:prefix": key}
            result.append(Authorization("s3:ListBucket", f"arn:{PARTITION}:s3:::{bucket}", listing, policy))
            continue
        # Every object of the backup bucket is SSE-KMS: reading it makes S3 decrypt its data key, writing it makes
        # S3 generate one, both with the caller's permissions on the key.
        if (op == "PutObject" and p.get("ServerSideEncryption") == "aws:kms") or op == "GetObject":
            kms_action = "GenerateDataKey" if op == "PutObject" else "Decrypt"
            key_arn = _key_arn(world, p.get("SSEKMSKeyId"))
            if bucket == world.bucket:
                result.append(_kms(world, kms_action, key_arn, s3_context, via))
    return result


def _cognito(call: Call, world: World) -> list[Authorization]:
    p = call.parameters
    op = call.operation
    if op in _COGNITO_NO_POOL or "UserPoolId" not in p:
        resource = "*"
    else:
        resource = f"arn:{PARTITION}:cognito-idp:{call.region}:{world.account}:userpool/{p['UserPoolId']}"
    context: dict[str, str | list[str]] = {}
    if resource != "*":
        tags = world.pool_tags.get(str(p["UserPoolId"]), {})
        context.update({f"aws:ResourceTag/{k}": v for k, v in tags.items()})
    if op == "CreateUserPool":
        # The service authorization reference: CreateUserPool's condition keys are aws:RequestTag and aws:TagKeys.
        requested = p.get("UserPoolTags") or {}
        context.update({f"aws:RequestTag/{k}": str(v) for k, v in requested.items()})
        if requested:
            context["aws:TagKeys"] = sorted(requested)
    result = [Authorization(f"cognito-idp:{op}", resource, context)]
    passed = [p.get("RoleArn"), (p.get("SmsConfiguration") or {}).get("SnsCallerArn")]
    for role in filter(None, passed):
        result.append(
            Authorization("iam:PassRole", role, {"iam:PassedToService": "cognito-idp.amazonaws.com"})
        )
    return result


def authorizations(call: Call, world: World) -> list[Authorization]:
    """The IAM requests one recorded call makes; empty for calls IAM does not authorise."""
    if (call.service, call.operation) in UNAUTHORISED:
        return []
    p = call.parameters
    if call.service == "s3":
        found = _s3(call, world)
    elif call.service == "cognito-idp":
        found = _cognito(call, world)
    elif call.service == "kms":
        context = p.get("EncryptionContext") or {}
        found = [_kms(world, call.operation, _key_arn(world, p.get("KeyId")), context, None)]
    elif call.service == "stepfunctions":
        if call.operation not in _STATES_RESOURCE:
            raise UnmappedCall(f"Step Functions operation {call.operation}")
        param = _STATES_RESOURCE[call.operation]
        if call.operation == "ListExecutions" and "mapRunArn" in p:
            param = "mapRunArn"  # a Map Run's children: authorised on the mapRun resource
        found = [Authorization(f"states:{call.operation}", p[param] if param else "*")]
    elif call.service == "sns" and call.operation == "Publish":
        found = [Authorization("sns:Publish", p["TopicArn"], {}, f"sns:{p['TopicArn']}")]
    elif call.service == "dynamodb" and call.operation == "UpdateItem":
        # Item-level actions on the table named in the request (the shared rate budget).
        found = [Authorization(f"dynamodb:{call.operation}", world.table_arn(p["TableName"]))]
    elif call.service == "cloudformation" and call.operation == "DescribeStacks":
        found = [Authorization("cloudformation:DescribeStacks", world.stack_arn(p["StackName"]))]
    else:
        raise UnmappedCall(f"{call.service}:{call.operation}")
    for auth in found:
        auth.context.setdefault("aws:SecureTransport", "true")
        auth.context.setdefault("aws:RequestedRegion", call.region)
    return found


# -- the evaluator ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    result: str  # Allowed, ImplicitlyDenied, ExplicitlyDenied, Error
    deciding: list[dict[str, Any]]
    errors: Any

    @property
    def allowed(self) -> bool:
        return self.result == "Allowed"

    def explain(self, resource_policy: str | None = None) -> str:
        """The deciding statements: policy and Sid (or index); ``resource_policy`` names the resource policy."""
        if self.errors:
            return f"evaluator error: {json.dumps(self.errors)[:800]}"
        parts = []
        for d in self.deciding:
            where = (
                d.get("policyIdentifier")
                or d.get("identifier")
                or (resource_policy if d["policyType"] == "resource" else None)
                or d["policyType"]
            )
            if d.get("denialType") == "Implicit":
                named = f" ({where})" if where != d["policyType"] else ""
                parts.append(f"no statement of the {d['policyType']} policies{named} allows it")
                continue
            statement = d.get("statementId") or d.get("statementIndex")
            verb = "denies" if d.get("denialType") == "Explicit" else "allows"
            parts.append(f"{d['policyType']} policy {where} statement {statement} {verb} it")
        return "; ".join(parts) or "no statement applies"


def node_harness() -> tuple[str, Path]:
    """node and the installed evaluator; a clear failure (never a skip) when either is missing."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("the IAM contract needs Node.js >= 20 on PATH (node not found)")
    if not (HERE / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir():
        raise RuntimeError(
            "the IAM evaluator is not installed: run `npm ci --prefix tests/iam` (make test does)"
        )
    return node, HERE / "evaluate.mjs"


def evaluate(
    requests: list[tuple[str, str, Authorization, list[str]]], policies: Mapping[str, Any]
) -> list[Decision]:
    """Decides (principal, account, authorization, identity policy names) requests in one node process."""
    node, script = node_harness()
    batch = {
        "policies": policies,
        "requests": [
            {
                "id": str(i),
                "principal": principal,
                "accountId": account,
                "action": auth.action,
                "resource": auth.resource,
                "context": auth.context,
                "identityPolicies": identity,
                "resourcePolicy": auth.resource_policy if auth.resource_policy in policies else None,
            }
            for i, (principal, account, auth, identity) in enumerate(requests)
        ],
    }
    done = subprocess.run(
        [node, str(script)],
        input=json.dumps(batch),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=HERE,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the IAM evaluator failed: {done.stderr[-2000:]}")
    answers = json.loads(done.stdout)
    return [Decision(a["result"], a["deciding"], a["errors"]) for a in answers]
