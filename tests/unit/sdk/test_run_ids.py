"""Run ids: time-ordered version 7 UUIDs, distinct across threads and forked children."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from flowyard.sdk._ids import new_id, short_key


def test_run_ids_are_version_7_uuids_in_creation_order() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(2_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert all(before <= i.int >> 80 <= after for i in ids)
    assert ids == sorted(ids)


def test_a_runs_short_key_is_drawn_from_its_random_part() -> None:
    ids = [new_id() for _ in range(500)]
    assert all(short_key(i) == i.hex[-3:] for i in ids)
    # Ids made in the same millisecond share their first digits, not their keys.
    assert len({short_key(i) for i in ids}) > 100


def test_threads_draw_distinct_ids() -> None:
    made: list[list[uuid.UUID]] = [[] for _ in range(8)]

    def make(into: list[uuid.UUID]) -> None:
        into.extend(new_id() for _ in range(1_000))

    threads = [threading.Thread(target=make, args=(ids,)) for ids in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for ids in made for i in ids]
    assert len(set(every)) == len(every)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # a multi-threaded parent
def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    new_id()  # the parent's buffer of random bytes is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next ids and leave at once
        os.close(read)
        os.write(write, b"".join(new_id().bytes for _ in range(50)))
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    child = {uuid.UUID(bytes=data[i : i + 16]).int & (2**62 - 1) for i in range(0, len(data), 16)}
    parent = {new_id().int & (2**62 - 1) for _ in range(50)}
    assert len(child) == 50
    assert not child & parent
