"""A discrete-event virtual clock shared by threads, so hours of quota-bound Cognito traffic run in seconds.

Virtual time advances only when every participating thread is asleep on the clock, to the earliest wake-up.
Time therefore measures waiting (rate limits, modelled latency) and never this machine's CPU, which a fixed
N-times time scale would multiply by N and charge to Cognito. The achieved scale (virtual / wall seconds)
is reported by the benchmark. A caller outside :meth:`VirtualClock.run` is alone: its sleeps just advance time.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualClock:
    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._heap: list[tuple[float, int, threading.Event]] = []
        self._seq = itertools.count()
        self._active = 0
        self._sleeping = 0

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            if self._active == 0:
                self._now += seconds
                return
            event = threading.Event()
            heapq.heappush(self._heap, (self._now + seconds, next(self._seq), event))
            self._sleeping += 1
            self._advance()
        event.wait()

    def _advance(self) -> None:
        # Under the lock: when nobody is running, jump to the earliest wake-up and wake everyone due then.
        if self._sleeping < self._active or not self._heap:
            return
        self._now = max(self._now, self._heap[0][0])
        while self._heap and self._heap[0][0] <= self._now:
            _, _, event = heapq.heappop(self._heap)
            self._sleeping -= 1
            event.set()

    def run(self, tasks: Sequence[Callable[[], T]], concurrency: int | None = None) -> list[T]:
        """Run ``tasks`` on ``concurrency`` worker threads (all at once by default); results in task order."""
        return self.run_pools([(tasks, concurrency)])[0]

    def run_pools(self, pools: Sequence[tuple[Sequence[Callable[[], Any]], int | None]]) -> list[list[Any]]:
        """Several worker pools side by side, like a Parallel state's Maps: each pool has its own tasks and
        concurrency, all share the clock. Results per pool, in task order."""
        queues: list[queue.SimpleQueue[int]] = []
        results: list[dict[int, Any]] = []
        counts: list[int] = []
        for tasks, concurrency in pools:
            pending: queue.SimpleQueue[int] = queue.SimpleQueue()
            for i in range(len(tasks)):
                pending.put(i)
            queues.append(pending)
            results.append({})
            counts.append(min(len(tasks), concurrency or len(tasks)))
        errors: list[BaseException] = []

        def worker(pool: int) -> None:
            tasks = pools[pool][0]
            try:
                while not errors:
                    try:
                        i = queues[pool].get_nowait()
                    except queue.Empty:
                        return
                    results[pool][i] = tasks[i]()
            except BaseException as exc:  # noqa: BLE001 (re-raised by the caller below)
                errors.append(exc)
            finally:
                with self._lock:
                    self._active -= 1
                    self._advance()

        with self._lock:
            self._active += sum(counts)  # before any thread starts, so no one advances time too early
        threads = [
            threading.Thread(target=worker, args=(pool,), daemon=True)
            for pool, count in enumerate(counts)
            for _ in range(count)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return [[done[i] for i in range(len(tasks))] for done, (tasks, _) in zip(results, pools, strict=True)]
