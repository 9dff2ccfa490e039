"""`cognito-backuper demo --restore`: the two-person restore, played with the CLI's own commands.

A moto server (its own process, on loopback) stands in for an AWS account. Two IAM users of it, each with its own
access key, are the two people: on an emulator every other access key is the same principal. Each step is the
command an operator would type (``python -m pipeline.operator.cli ...``, in its own process with that person's
credentials), so the demo goes through exactly the paths the CLI does: the requester backs up and asks for a
restore into a new pool, the requester's own approval is refused, the second person approves, and the restore is
verified against the backup. Nothing here reaches AWS.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pipeline.core import errors

REGION = "us-east-1"
REQUESTER_USER = "cognito-backuper-requester"
NEW_POOL = "demo-restored"
_STEP_TIMEOUT_S = 600.0
_REQUEST_DEADLINE_S = 300.0
# The emulator shares no quota with production traffic: the pipeline may use all of it.
_RATE = ("--quota-percent", "100")


@dataclass(frozen=True)
class Person:
    role: str  # "requester" or "approver"
    access_key_id: str
    secret_access_key: str


@dataclass
class Step:
    name: str
    person: str
    command: list[str]
    exit_code: int
    summary: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "as": self.person,
            "command": "cognito-backuper " + shlex.join(self.command),
            "exitCode": self.exit_code,
            "summary": self.summary,
            "seconds": round(self.seconds, 1),
        }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server in its own process, stopped (by its own pid) when the demo ends, however it ends."""
    port = _free_port()
    proc = subprocess.Popen(  # noqa: S603 - this interpreter and fixed arguments
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/moto-api/", timeout=2):  # noqa: S310 - http on loopback
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise errors.EngineError("the demo's moto server did not start within 30 s") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


class Play:
    """Runs each step as a CLI command in its own process, as one of the two people."""

    def __init__(self, endpoint: str, say: Callable[[str], None]) -> None:
        self.endpoint = endpoint
        self.say = say
        self.steps: list[Step] = []
        self._since = time.monotonic()

    def env(self, person: Person | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            # The emulator's administrator (seed, and creating the requester) uses any key: moto's root.
            AWS_ACCESS_KEY_ID=person.access_key_id if person else "demo",
            AWS_SECRET_ACCESS_KEY=person.secret_access_key if person else "demo",
        )
        return env

    def argv(self, command: list[str]) -> list[str]:
        return [sys.executable, "-m", "pipeline.operator.cli", *command, "--json", "--quiet"]

    def start(self, person: Person | None, command: list[str]) -> subprocess.Popen[str]:
        self.say(
            "$ " + ("" if person is None else f"[{person.role}] ") + "cognito-backuper " + shlex.join(command)
        )
        return subprocess.Popen(  # noqa: S603 - this interpreter, the project's CLI, the demo's own arguments
            self.argv(command),
            env=self.env(person),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(
        self,
        name: str,
        person: Person | None,
        command: list[str],
        proc: subprocess.Popen[str],
        timeout_s: float,
    ) -> tuple[int, dict[str, Any], str]:
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise errors.EngineError(f"demo step {name!r} did not finish within {timeout_s:.0f} s") from None
        try:
            result = json.loads(out) if out.strip() else {}
        except ValueError:
            result = {}
        message = next((line for line in err.splitlines() if line.startswith("error: ")), "")
        return proc.returncode, result if isinstance(result, dict) else {}, message.removeprefix("error: ")

    def run(
        self, name: str, person: Person | None, command: list[str], *, expect: int = 0
    ) -> tuple[dict[str, Any], str]:
        proc = self.start(person, command)
        code, result, message = self.finish(name, person, command, proc, _STEP_TIMEOUT_S)
        if code != expect:
            raise errors.EngineError(f"demo step {name!r} exited {code}, expected {expect}: {message}")
        return result, message

    def record(self, name: str, person: Person | None, command: list[str], code: int, summary: str) -> None:
        # Each step's time runs from the end of the one before (the restore's includes its wait for approval).
        now = time.monotonic()
        step = Step(
            name, person.role if person else "administrator", command, code, summary, now - self._since
        )
        self._since = now
        self.steps.append(step)
        self.say(f"   {summary}")


def _requester(play: Play) -> Person:
    """A first IAM user with its own key (setup on the emulator, like seed's approver)."""
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=play.endpoint,
        region_name=REGION,
        aws_access_key_id="demo",
        aws_secret_access_key="demo",  # noqa: S106 - the emulator's administrator, any key
    )
    iam.create_user(UserName=REQUESTER_USER)
    key = iam.create_access_key(UserName=REQUESTER_USER)["AccessKey"]
    return Person("requester", key["AccessKeyId"], key["SecretAccessKey"])


def play_restore(users: int, say: Callable[[str], None]) -> dict[str, Any]:
    """The whole two-person restore; returns the demo's result (one JSON object for --json)."""
    started = time.monotonic()
    with moto_server() as endpoint:
        play = Play(endpoint, say)
        say(f"moto server at {endpoint} stands in for an AWS account; every step below is a CLI command")

        seed_cmd = ["seed", "--users", str(users)]
        seeded, _ = play.run("seed", None, seed_cmd)
        approver = Person("approver", seeded["approverAccessKeyId"], seeded["approverSecretAccessKey"])
        requester = _requester(play)
        where = ["--bucket", seeded["bucket"], "--prefix", seeded["prefix"]]
        play.record(
            "seed",
            None,
            seed_cmd,
            0,
            f"pool {seeded['poolId']} ({seeded['users']} users), bucket {seeded['bucket']}, key {seeded['kmsKey']}; "
            f"two IAM users with their own keys: {REQUESTER_USER} and the approver",
        )

        backup_cmd = ["backup", "--pool-id", seeded["poolId"], *where, "--kms-key", seeded["kmsKey"]]
        backup_cmd += ["--engine", "local", *_RATE]
        backed_up, _ = play.run("backup", requester, backup_cmd)
        (backup,) = backed_up["backups"]
        play.record(
            "backup",
            requester,
            backup_cmd,
            0,
            f"{backup['uri']} users={backup['users']} memberships={backup['memberships']}, verified",
        )

        restore_cmd = ["restore", "--backup", backup["uri"], "--new-pool", NEW_POOL, "--engine", "local"]
        restore_cmd += ["--approval-timeout", "600", *_RATE]
        restoring = play.start(requester, restore_cmd)
        try:
            request = _wait_for_request(play, approver, where, restoring)
            play.record(
                "restore",
                requester,
                restore_cmd,
                -1,
                f"request {request['requestId']} by {request['requestedBy']}: waiting for another principal",
            )

            own_cmd = ["approve", request["requestId"], *where]
            own = play.start(requester, own_cmd)
            code, _, refusal = play.finish("self-approval", requester, own_cmd, own, _STEP_TIMEOUT_S)
            if code == 0:
                raise errors.EngineError("the requester's own approval was accepted: the demo stops here")
            play.record("self-approval", requester, own_cmd, code, f"refused (exit {code}): {refusal}")

            approve_cmd = ["approve", request["requestId"], *where, "--reason", "demo: restore checked"]
            decision, _ = play.run("approve", approver, approve_cmd)
            play.record("approve", approver, approve_cmd, 0, f"approved by {decision.get('approvedBy')}")

            code, restored, message = play.finish(
                "restore", requester, restore_cmd, restoring, _STEP_TIMEOUT_S
            )
        finally:
            if restoring.poll() is None:
                restoring.kill()
                restoring.communicate()
        if code != 0:
            raise errors.EngineError(f"the restore exited {code}: {message}")
        report = restored.get("report") or {}
        verification = restored.get("verification") or {}
        play.record(
            "restored",
            requester,
            restore_cmd,
            code,
            f"into {restored.get('targetPoolId')}: users created {report.get('created', 0)}, memberships added "
            f"{report.get('membershipsAdded', 0)}; verification {'passed' if verification.get('passed') else 'FAILED'}",
        )

        report_cmd = ["report", request["requestId"], *where]
        sealed, _ = play.run("report", approver, report_cmd)
        play.record("report", approver, report_cmd, 0, f"sealed report {sealed.get('uri')}")

    return {
        "status": "SUCCEEDED" if verification.get("passed") else "FAILED",
        "requestId": request["requestId"],
        "requestedBy": request["requestedBy"],
        "approvedBy": decision.get("approvedBy"),
        "selfApprovalRefused": True,
        "backup": backup,
        "targetPoolId": restored.get("targetPoolId"),
        "verification": verification,
        "report": report,
        "steps": [s.to_dict() for s in play.steps],
        "totalSeconds": round(time.monotonic() - started, 3),
    }


def _wait_for_request(
    play: Play, approver: Person, where: list[str], restoring: subprocess.Popen[str]
) -> dict[str, Any]:
    """The approver lists pending requests until the restore's appears (it waits before anything is written)."""
    deadline = time.monotonic() + _REQUEST_DEADLINE_S
    command = ["approvals", *where]
    while True:
        if restoring.poll() is not None:
            _, _, message = play.finish("restore", None, [], restoring, 10)
            raise errors.EngineError(f"the restore ended before asking for approval: {message}")
        proc = subprocess.run(  # noqa: S603 - as in Play.start
            play.argv(command),
            env=play.env(approver),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        pending = json.loads(proc.stdout).get("pending", []) if proc.returncode == 0 else []
        if pending:
            play.say(f"$ [approver] cognito-backuper {shlex.join(command)}")
            request: dict[str, Any] = pending[0]
            return request
        if time.monotonic() > deadline:
            raise errors.EngineError(f"no approval request within {_REQUEST_DEADLINE_S:.0f} s")
        time.sleep(0.5)


def text_of(result: dict[str, Any]) -> str:
    lines = [
        f"{i}. {s['step']:<13} {s['seconds']:>5.1f}s [{s['as']}] {s['summary']}"
        for i, s in enumerate(result["steps"], 1)
    ]
    lines.append(
        f"two-person restore {'verified' if result['status'] == 'SUCCEEDED' else 'NOT verified'} in "
        f"{result['totalSeconds']:.1f}s"
    )
    return "\n".join(lines)
