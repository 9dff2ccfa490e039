"""`cognito-backuper seed`: a bucket, a key with an alias, a realistic pool and a second principal on an emulator.

What the README's moto-server recipe needs before `backup` has anything to back up. It refuses to run without
AWS_ENDPOINT_URL, so it never writes demo users into a real account.
"""

from __future__ import annotations

import argparse
import os
import shlex
from typing import Any

from pipeline.core.aws import standard_session
from pipeline.core.errors import InvalidRequest
from pipeline.operator.cli_common import add_output_flags, emit, preflight
from pipeline.operator.demo import prepare_account
from pipeline.operator.seed import seed_pool

KEY_ALIAS = "alias/cognito-backuper-demo"
APPROVER_USER = "cognito-backuper-approver"


def cmd_seed(args: argparse.Namespace) -> int:
    if not os.environ.get("AWS_ENDPOINT_URL"):
        raise InvalidRequest(
            "seed writes a demo bucket, key and pool: it only runs against an emulator (set AWS_ENDPOINT_URL)"
        )
    if args.users < 0:
        raise InvalidRequest("--users must not be negative")
    clients = preflight()
    account = prepare_account(clients)
    clients.kms.create_alias(AliasName=KEY_ALIAS, TargetKeyId=account.storage["kmsKeyArn"])
    pool = seed_pool(clients.cognito, users=args.users, name=args.pool_name)
    # On an emulator any access key is the same principal; a second IAM user with its own key is another one.
    iam = standard_session().client("iam")
    iam.create_user(UserName=APPROVER_USER)
    key = iam.create_access_key(UserName=APPROVER_USER)["AccessKey"]
    values: dict[str, Any] = {
        "poolId": pool.pool_id,
        "users": pool.users,
        "bucket": account.storage["bucket"],
        "prefix": account.storage["prefix"],
        "kmsKey": KEY_ALIAS,
        "approverAccessKeyId": key["AccessKeyId"],
        "approverSecretAccessKey": key["SecretAccessKey"],
    }
    if args.shell:
        names = {
            "POOL_ID": "poolId",
            "BUCKET": "bucket",
            "KMS_KEY": "kmsKey",
            "APPROVER_AWS_ACCESS_KEY_ID": "approverAccessKeyId",
            "APPROVER_AWS_SECRET_ACCESS_KEY": "approverSecretAccessKey",
        }
        print("export " + " ".join(f"{n}={shlex.quote(str(values[k]))}" for n, k in names.items()))
        return 0
    text = (
        f"pool {pool.pool_id} ({pool.users} users), bucket {values['bucket']}, key {KEY_ALIAS}\n"
        f"second principal: AWS_ACCESS_KEY_ID={key['AccessKeyId']} "
        f"AWS_SECRET_ACCESS_KEY={key['SecretAccessKey']} (an emulator's IAM user, for approve/reject)"
    )
    emit(args, values, text)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "seed",
        help="on an emulator (AWS_ENDPOINT_URL): create a bucket, a key, a seeded pool and a second principal",
        description="For trying the CLI against a separately started moto server: creates the demo bucket "
        f"(default SSE-KMS), a KMS key with the alias {KEY_ALIAS}, a realistic user pool, and an IAM user with its "
        "own access key to act as a second person (on an emulator every access key is otherwise the same "
        "principal). Refuses to run without AWS_ENDPOINT_URL.",
    )
    p.add_argument("--users", type=int, default=200, help="users to seed (default 200)")
    p.add_argument("--pool-name", default="demo-pool", help="the new pool's name (default demo-pool)")
    p.add_argument(
        "--shell",
        action="store_true",
        help="print one `export` line (POOL_ID, BUCKET, KMS_KEY, APPROVER_AWS_*) for `eval`",
    )
    add_output_flags(p)
    p.set_defaults(func=cmd_seed)
