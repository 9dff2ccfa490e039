"""Attacks on who asked: an operator naming someone else as the requester, or replaying someone's proof.

Played on moto (STS answers an executed proof for the access key that signed it) against ValidateRequest's own
check (pipeline.restore.steps.validate_request) and the proof verifier. On the parent commit (24dbc05)
ValidateRequest took ``requestedBy`` from the execution input: ``test_an_operator_cannot_name_someone_else``
fails there (the request is accepted under bob's name) and the other tests fail to import the verifier.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator
from typing import Any, cast

import boto3
import pytest
from moto import mock_aws

from pipeline.core import identity_proof
from pipeline.core.aws import Clients, caller_arn
from pipeline.core.errors import IdentityNotProven
from pipeline.restore import steps as restore
from tests.helpers.restore_flow import proof, remember

REGION = "us-east-1"
BUCKET = "cb-security"
EXECUTION = "3f1d2c9e-restore"


def _person(name: str) -> Clients:
    iam = boto3.client("iam")
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return remember(
        boto3.Session(
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            region_name=REGION,
        )
    )


@pytest.fixture
def people() -> Iterator[tuple[Clients, Clients]]:
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield _person("alice"), _person("bob")


def _event(requester_proof: Any, *, requested_by: str | None = None) -> Any:
    event: dict[str, Any] = {
        "backupUri": f"s3://{BUCKET}/backups/us-east-1_AbC123/20261127T202200Z-a1b2c3/",
        "targetPoolId": "us-east-1_Target1",
        "newPoolName": None,
        "selectionKey": None,
        "requesterProof": requester_proof,
        "approvalTimeoutSeconds": 600,
        "executionArn": f"arn:aws:states:{REGION}:123456789012:execution:restore:{EXECUTION}",
        "executionName": EXECUTION,
        "settings": {"bucket": BUCKET, "kmsKeyArn": "", "prefix": "backups"},
    }
    if requested_by is not None:
        event["requestedBy"] = requested_by  # what the old input carried: free text
    return event


def _requester(clients: Clients, event: Any) -> str:
    """Runs ValidateRequest until it has decided who asked (the target check after it then fails on moto)."""
    seen: dict[str, str] = {}
    real = identity_proof.verify_proof

    def spy(*args: Any, **kwargs: Any) -> str:
        seen["arn"] = real(*args, **kwargs)
        raise _Stop

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(identity_proof, "verify_proof", spy)
        with pytest.raises(_Stop):
            restore.validate_request(clients, cast(Any, event))
    return seen["arn"]


class _Stop(Exception):
    pass


def test_an_operator_cannot_name_someone_else(people: tuple[Clients, Clients]) -> None:
    alice, bob = people
    # Alice starts the machine and writes bob into the input: the pipeline records her, from her own proof.
    event = _event(proof(alice, "restore", EXECUTION), requested_by=caller_arn(bob))
    assert _requester(alice, event) == caller_arn(alice)
    # Without a proof there is no request at all.
    with pytest.raises(IdentityNotProven, match="no identity proof"):
        restore.validate_request(alice, cast(Any, _event(None, requested_by=caller_arn(bob))))


def test_a_proof_is_bound_to_its_execution_and_purpose(people: tuple[Clients, Clients]) -> None:
    alice, _ = people
    # A proof captured from another execution's input (operators can read execution history) does not start
    # this one; an approval proof is not a request proof.
    for stolen in (proof(alice, "restore", "another-execution"), proof(alice, "approve", EXECUTION)):
        with pytest.raises(IdentityNotProven, match="another purpose"):
            restore.validate_request(alice, cast(Any, _event(stolen)))


def test_a_stale_proof_is_refused(people: tuple[Clients, Clients]) -> None:
    alice, _ = people
    fresh = proof(alice, "restore", EXECUTION)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=identity_proof.MAX_AGE_S + 60)
    with pytest.raises(IdentityNotProven, match="not fresh"):
        identity_proof.verify_proof(fresh, f"restore:{EXECUTION}", region=REGION, now=later)
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=identity_proof.MAX_SKEW_S + 60)
    with pytest.raises(IdentityNotProven, match="not fresh"):  # signed "in the future": a back-dated check
        identity_proof.verify_proof(fresh, f"restore:{EXECUTION}", region=REGION, now=earlier)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.update(url="https://sts.attacker.example/"), "another endpoint"),
        (
            lambda p: p.update(url="https://sts.us-east-1.amazonaws.com/?Action=AssumeRole"),
            "another endpoint",
        ),
        (lambda p: p.update(body="Action=AssumeRole&Version=2011-06-15"), "not a GetCallerIdentity"),
        (lambda p: p["headers"].update({"X-Forwarded-Host": "evil"}), "unexpected headers"),
        (lambda p: p["headers"].update(Authorization="AWS4-HMAC-SHA256 nonsense"), "not signed with SigV4"),
        (
            lambda p: p["headers"].update(
                Authorization=p["headers"]["Authorization"].replace(";x-cognito-backuper-purpose", "")
            ),
            "does not sign",
        ),
        (
            lambda p: p["headers"].update(
                Authorization=p["headers"]["Authorization"].replace(f"/{REGION}/sts/", "/eu-west-1/sts/")
            ),
            "signed for sts in eu-west-1",
        ),
    ],
)
def test_a_tampered_proof_is_refused_before_anything_is_sent(
    people: tuple[Clients, Clients], change: Any, message: str
) -> None:
    alice, _ = people
    tampered = copy.deepcopy(proof(alice, "approve", "rr-20261127T202200Z-0123456789ab"))
    change(tampered)
    sent: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        real = boto3.client

        def watched(*args: Any, **kwargs: Any) -> Any:
            client = real(*args, **kwargs)
            client.meta.events.register("before-send", lambda request, **_: sent.append(request.url))
            return client

        patch.setattr(boto3, "client", watched)
        with pytest.raises(IdentityNotProven, match=message):
            identity_proof.verify_proof(tampered, "approve:rr-20261127T202200Z-0123456789ab", region=REGION)
    assert sent == []  # refused by the checks: no request went anywhere, least of all to another host


def test_the_verifier_calls_only_its_own_sts_endpoint(people: tuple[Clients, Clients]) -> None:
    alice, _ = people
    good = proof(alice, "approve", "rr-20261127T202200Z-0123456789ab")
    assert good["url"] == f"https://sts.{REGION}.amazonaws.com/"
    sent: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        real = boto3.client

        def watched(*args: Any, **kwargs: Any) -> Any:
            client = real(*args, **kwargs)
            client.meta.events.register("before-send", lambda request, **_: sent.append(request.url))
            return client

        patch.setattr(boto3, "client", watched)
        arn = identity_proof.verify_proof(good, "approve:rr-20261127T202200Z-0123456789ab", region=REGION)
    assert arn == caller_arn(alice)
    assert sent == [f"https://sts.{REGION}.amazonaws.com/"]
