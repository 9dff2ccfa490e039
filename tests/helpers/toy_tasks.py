"""Toy Lambda handlers for the local engine's tests, served through an explicit registry."""

from __future__ import annotations

import queue
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.core import task_names
from pipeline.core.aws import default_clients

TOY_ASL = Path(__file__).with_name("toy.asl.json")


class ToyError(Exception):
    """Caught by the Map's Catch."""


class ToyFlaky(Exception):
    """Retried by the Work task's Retry."""


class Recorder:
    """What the handlers saw, shared with the test thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.flaky_seen: set[str] = set()
        self.tokens: queue.Queue[str] = queue.Queue()

    def hit(self, name: str) -> None:
        with self.lock:
            self.calls[name] += 1


RECORDER = Recorder()


def reset() -> None:
    global RECORDER
    RECORDER = Recorder()


def count(event: dict[str, Any], context: Any) -> dict[str, Any]:
    RECORDER.hit("count")
    return {**event, "n": int(event.get("n", 0)) + 1}


def work(event: dict[str, Any], context: Any) -> dict[str, Any]:
    item = str(event["item"])
    RECORDER.hit(f"work:{item}")
    if item == "bad":
        raise ToyError("item rejected")
    if item.startswith("flaky"):
        with RECORDER.lock:
            first = item not in RECORDER.flaky_seen
            RECORDER.flaky_seen.add(item)
        if first:
            raise ToyFlaky("try again")
    return {"item": item, "length": len(item), "label": event["label"], "function": context.function_name}


def approve(event: dict[str, Any], context: Any) -> dict[str, Any]:
    RECORDER.hit("approve")
    RECORDER.tokens.put(str(event["token"]))
    return {"requested": True}


def make_bucket(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Writes through the pipeline's default client chain, as the real tasks do."""
    default_clients().s3.create_bucket(Bucket=str(event["bucket"]))
    return {"bucket": event["bucket"]}


def _fn(task: str) -> str:
    return task_names.function_name(task)


REGISTRY = {
    _fn("ToyCount"): count,
    _fn("ToyWork"): work,
    _fn("ToyApprove"): approve,
    _fn("ToyMakeBucket"): make_bucket,
}
