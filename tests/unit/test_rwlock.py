"""The embedded Cognito's readers-writer lock: readers overlap, a writer is alone, a waiting writer goes first."""

from __future__ import annotations

import threading
import time

from pipeline.operator.local_engine.rwlock import ReadWriteLock

WAIT_S = 10.0


def test_two_readers_hold_the_lock_at_once() -> None:
    lock = ReadWriteLock()
    both_inside = threading.Barrier(2, timeout=WAIT_S)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            with lock.reading():
                both_inside.wait()  # breaks (raises) unless the other reader is inside too
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S)
    assert errors == []


def test_a_writer_waits_for_readers_and_blocks_new_ones() -> None:
    lock = ReadWriteLock()
    order: list[str] = []
    reader_inside = threading.Event()
    release_reader = threading.Event()

    def first_reader() -> None:
        with lock.reading():
            reader_inside.set()
            release_reader.wait(WAIT_S)
            order.append("reader 1 out")

    def writer() -> None:
        with lock.writing():
            order.append("writer")

    def late_reader() -> None:
        with lock.reading():
            order.append("reader 2")

    r1 = threading.Thread(target=first_reader)
    r1.start()
    assert reader_inside.wait(WAIT_S)
    w = threading.Thread(target=writer)
    w.start()
    deadline = time.monotonic() + WAIT_S
    while not lock._writers_waiting:  # until the writer is queued
        assert time.monotonic() < deadline, "the writer never queued"
        time.sleep(0.01)
    r2 = threading.Thread(target=late_reader)
    r2.start()
    release_reader.set()
    for t in (r1, w, r2):
        t.join(WAIT_S)
    assert order == ["reader 1 out", "writer", "reader 2"]


def test_a_writer_may_reenter_on_its_own_thread() -> None:
    lock = ReadWriteLock()
    with lock.writing(), lock.writing(), lock.reading():
        pass
    with lock.reading():  # released completely
        pass
