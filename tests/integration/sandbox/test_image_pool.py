"""The pool of run filesystems: real sparse images, loop-mounted, recycled, kept for bursts."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowyard.execution.host import HostCapabilities
from flowyard.execution.sandbox import MiB
from flowyard.execution.sandbox._storage import ImagePool

SIZE = 64 * MiB


@pytest.fixture
def pool(capabilities: HostCapabilities, tmp_path: Path) -> Iterator[ImagePool]:
    assert capabilities.mkfs_ext4_path is not None
    made = ImagePool(
        tmp_path / "images", capabilities.mkfs_ext4_path, uid=65534, gid=65534, keep=1, most=3
    )
    yield made
    made.close()


def _ready(pool: ImagePool, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(pool._ready[SIZE]) != count:
        assert time.monotonic() < deadline, f"{len(pool._ready[SIZE])} ready, expected {count}"
        time.sleep(0.01)


def _settled(pool: ImagePool, directory: Path, count: int) -> None:
    deadline = time.monotonic() + 30
    while _mounted(directory) != count or not pool._jobs.empty():
        assert time.monotonic() < deadline, f"{_mounted(directory)} mounted, expected {count}"
        time.sleep(0.01)


def _mounted(directory: Path) -> int:
    with open("/proc/self/mountinfo") as fh:
        return sum(1 for line in fh if str(directory) in line)


def test_a_burst_keeps_as_many_filesystems_as_it_used_and_idleness_gives_them_back(
    pool: ImagePool, tmp_path: Path
) -> None:
    taken = [pool.take(SIZE) for _ in range(4)]
    for fs in taken:
        (fs.work / "left-behind").write_text("by the run")
        pool.release(fs)

    # Four were in use at once: the next burst finds three (``most``) ready, each empty.
    _ready(pool, 3)
    ready = pool._ready[SIZE]
    assert all(os.listdir(fs.work) == [] for fs in ready)
    _settled(pool, tmp_path / "images", 3)  # the fourth is unmounted after the third is ready

    pool._shrink()  # what the pool does after IDLE_SECONDS with nothing taken or released

    assert len(pool._ready[SIZE]) == 1  # back to ``keep``
    assert _mounted(tmp_path / "images") == 1
    assert len(list((tmp_path / "images").glob("*.img"))) == 1


def test_one_run_at_a_time_keeps_only_keep(pool: ImagePool) -> None:
    for _ in range(3):
        fs = pool.take(SIZE)
        pool.release(fs)
        _ready(pool, 1)
    assert len(pool._ready[SIZE]) == 1


def test_a_run_filesystem_is_mounted_without_background_work_for_the_kernel(
    pool: ImagePool,
) -> None:
    fs = pool.take(SIZE)
    try:
        with open("/proc/self/mountinfo") as fh:
            (line,) = (x for x in fh if f" {fs.mount_point} " in x)
        options = set(line.split(" - ", 1)[1].split()[2].split(","))
        assert {"nosuid", "nodev"} <= set(line.split()[5].split(","))
        # No inode-table zeroing (the image reads as zeros); no bitmap prefetch where the
        # kernel knows the option (5.9 and later).
        assert "noinit_itable" in options, options
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
        if (major, minor) >= (5, 9):
            assert "no_prefetch_block_bitmaps" in options, options
    finally:
        pool.release(fs)
