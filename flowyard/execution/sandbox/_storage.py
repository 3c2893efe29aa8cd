"""Size-limited work dirs: a sparse ext4 image per run, loop-mounted, ready before the run asks.

A run's work dir, its /tmp and its output file live on a filesystem of
exactly the run's storage limit, so writing past it is ENOSPC inside the run
and nothing else on the host fills up. The image is sparse: it costs host
disk only for what the run writes.

Why this and not the alternatives:

- tmpfs with ``size=`` is instant, but its pages are memory charged to the
  run's memory cgroup, so a 128 GiB work dir could not coexist with a 16 GiB
  memory limit.
- project quotas (xfs, ext4 ``prjquota``) are the cheapest per run but need
  the state dir on a filesystem created with them; most hosts have none.
- an image per run costs ~7 ms to format, a few ms to mount (the first reads
  of a fresh image's metadata go to disk: direct I/O) and ~5 ms to delete
  when large. None of it is on a run's path: :class:`ImagePool` keeps
  ``keep`` images per size formatted, mounted and laid out (``work/`` owned
  by the sandbox user, ``tmp/``) on a background thread. A run pays for
  copying its checkout.
- a used filesystem is recycled rather than reformatted, on the same
  thread: everything the run left is deleted, the result is checked to be
  exactly the empty layout (or the image is thrown away), and the freed
  blocks are trimmed so the sparse image gives the disk space back (once
  there are :data:`TRIM_AFTER_BYTES` of them: a run that wrote little
  leaves them for a later one). Runs one
  after another then cost no formatting at all; new images are made only
  when the ready ones run out.
- the pool keeps as many ready as were recently in use at once (up to
  ``most``), not just ``keep``: a burst of runs formats its images once, and
  the next burst finds them ready. After :data:`IDLE_SECONDS` with nothing
  taken or released, the surplus is unmounted and deleted.

The filesystem has no journal (a run's disk is thrown away after the run,
so crash consistency buys nothing), no reserved blocks (the run's user would
otherwise hit ENOSPC 5% early), one inode per 32 KiB, and inode tables
assumed zeroed (a new sparse file reads as zeros); it is mounted without the
kernel's background work (zeroing inode tables, reading block bitmaps ahead).
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import subprocess
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from flowyard.execution.sandbox._errors import SandboxError
from flowyard.execution.sandbox._loop import MountedImage, mount_image, trim, unmount

logger = logging.getLogger(__name__)

MKFS_OPTIONS = (
    "-q", "-F", "-t", "ext4", "-b", "4096", "-m", "0", "-i", "32768",
    "-O", "^has_journal,^resize_inode",
)  # fmt: skip
# ``assume_storage_prezeroed`` needs e2fsprogs >= 1.47; older ones defer the zeroing.
MKFS_EXTENDED = ("nodiscard,assume_storage_prezeroed=1", "nodiscard,lazy_itable_init=1")
_MKFS_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
_EMPTY_LAYOUT = {"lost+found", "work", "tmp", "output.log"}
IDLE_SECONDS = 120.0
# Trimming walks the whole filesystem's free space (~6 ms of kernel time for a 128 GiB
# image): done only once the image holds this much host disk the filesystem does not use.
TRIM_AFTER_BYTES = 64 * 1024**2


class ImagePool:
    """Mounted, empty run filesystems, ``keep`` ready per size. Owns ``directory``."""

    def __init__(
        self,
        directory: Path,
        mkfs: Path,
        *,
        uid: int,
        gid: int,
        keep: int = 2,
        most: int = 16,
        in_use: Iterable[Path] = (),
    ) -> None:
        self._dir = directory
        self._mkfs = mkfs
        self._uid, self._gid = uid, gid
        self._keep = keep
        self._most = max(most, keep)
        self._out: dict[int, int] = defaultdict(int)  # taken and not yet released, per size
        self._demand: dict[int, int] = defaultdict(int)  # the most out at once lately
        self._extended = 0
        self._closed = False
        self._lock = threading.Lock()
        self._ready: dict[int, list[MountedImage]] = defaultdict(list)
        self._pending: dict[int, int] = defaultdict(int)
        self._jobs: queue.SimpleQueue[tuple[str, int, MountedImage | None]] = queue.SimpleQueue()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        clear_directory(directory, keep=in_use)
        self._worker = threading.Thread(target=self._work, name="flowyard-image-pool", daemon=True)
        self._worker.start()

    def take(self, size: int) -> MountedImage:
        """A mounted, empty filesystem of ``size`` bytes (made now if none is ready)."""
        with self._lock:
            ready = self._ready[size]
            fs = ready.pop() if ready else None
            running_low = not ready
            self._out[size] += 1
            self._demand[size] = max(self._demand[size], self._out[size])
        if fs is None:
            fs = self._prepare(size)
        if running_low:
            self.warm(size)
        return fs

    def warm(self, size: int) -> None:
        """Prepare filesystems in the background until ``keep`` of ``size`` are ready."""
        with self._lock:
            wanted = self._keep - len(self._ready[size]) - self._pending[size]
            self._pending[size] += max(wanted, 0)
        for _ in range(wanted):
            self._jobs.put(("prepare", size, None))

    def release(self, fs: MountedImage) -> None:
        """Take back a used filesystem (its run's processes all gone): recycled in the background."""
        with self._lock:
            self._out[fs.size_bytes] = max(self._out[fs.size_bytes] - 1, 0)
        if self._closed:  # no background thread any more
            fs.unmount()
            _delete(fs)
        else:
            self._jobs.put(("recycle", fs.size_bytes, fs))

    def close(self) -> None:
        """Stop the background thread and remove the ready filesystems."""
        self._closed = True
        self._jobs.put(("stop", 0, None))
        self._worker.join(timeout=30)
        with self._lock:
            ready = [fs for filesystems in self._ready.values() for fs in filesystems]
            self._ready.clear()
        for fs in ready:
            fs.unmount()
            _delete(fs)

    def _work(self) -> None:
        while True:
            try:
                job, size, fs = self._jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                self._shrink()
                continue
            if job == "stop":
                return
            try:
                if job == "recycle" and fs is not None:
                    self._recycle(fs)
                elif job == "prepare":
                    prepared = self._prepare(size)
                    with self._lock:
                        self._ready[size].append(prepared)
            except (OSError, SandboxError):
                logger.exception("image pool: %s failed", job)
            finally:
                if job == "prepare":
                    with self._lock:
                        self._pending[size] -= 1

    def _prepare(self, size: int) -> MountedImage:
        name = f"{size}-{uuid.uuid4().hex}"
        image, mount_point = self._dir / f"{name}.img", self._dir / f"{name}.mnt"
        try:
            self._format(image, size)
            fs = mount_image(image, mount_point)
        except (OSError, SandboxError):
            _delete(MountedImage(image, mount_point))
            raise
        try:
            self._lay_out(fs)
        except OSError:
            fs.unmount()
            _delete(fs)
            raise
        return fs

    def _lay_out(self, fs: MountedImage) -> None:
        fs.work.mkdir(mode=0o755)
        os.chown(fs.work, self._uid, self._gid)
        fs.tmp.mkdir()
        fs.tmp.chmod(0o1777)
        fs.output.touch(mode=0o600)
        st = os.statvfs(fs.mount_point)
        fs.baseline_bytes = (st.f_blocks - st.f_bfree) * st.f_frsize

    def _recycle(self, used: MountedImage) -> None:
        fresh = MountedImage(used.image, used.mount_point, size_bytes=used.size_bytes)
        try:
            with os.scandir(used.mount_point) as entries:
                for entry in entries:
                    if entry.name == "lost+found":
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
            self._lay_out(fresh)
            clean = set(os.listdir(fresh.mount_point)) == _EMPTY_LAYOUT and not (
                os.listdir(fresh.work) or os.listdir(fresh.tmp)
            )
        except OSError:
            logger.warning("could not empty %s; discarding it", used.image, exc_info=True)
            clean = False
        if clean and _reclaimable_bytes(fresh) >= TRIM_AFTER_BYTES:
            try:
                trim(fresh.mount_point)
            except OSError as exc:  # the image just keeps its blocks
                logger.debug("trim of %s failed: %s", fresh.mount_point, exc)
        with self._lock:
            wanted = min(max(self._keep, self._demand[used.size_bytes]), self._most)
            keep = clean and not self._closed and len(self._ready[used.size_bytes]) < wanted
            if keep:
                self._ready[used.size_bytes].append(fresh)
        if not keep:
            used.unmount()
            _delete(used)

    def _shrink(self) -> None:
        """Idle for a while: forget past demand and give back the images beyond ``keep``."""
        surplus: list[MountedImage] = []
        with self._lock:
            for size, ready in self._ready.items():
                self._demand[size] = self._out[size]
                while len(ready) > max(self._keep, self._demand[size]):
                    surplus.append(ready.pop())
        for fs in surplus:
            fs.unmount()
            _delete(fs)

    def _format(self, image: Path, size: int) -> None:
        with image.open("wb") as fh:
            fh.truncate(size)
        for extended in MKFS_EXTENDED[self._extended :]:
            done = subprocess.run(
                [str(self._mkfs), *MKFS_OPTIONS, "-E", extended, str(image)],
                capture_output=True, text=True, check=False, env=_MKFS_ENV,
            )  # fmt: skip
            if done.returncode == 0 or "extended" not in done.stderr.lower():
                break
            self._extended += 1  # an older mkfs.ext4: fall back for good
        if done.returncode != 0:
            raise SandboxError(f"mkfs.ext4 failed: {done.stderr.strip()}")


def clear_directory(directory: Path, keep: Iterable[Path] = ()) -> None:
    """Unmount and delete everything a previous owner of ``directory`` left but ``keep``.

    ``keep`` holds the images and mount points of runs a restarted server adopts.
    """
    kept = {Path(p).name for p in keep}
    for mount_point in directory.glob("*.mnt"):
        if mount_point.name not in kept:
            unmount(mount_point)
    for entry in directory.iterdir():
        if entry.name in kept:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _reclaimable_bytes(fs: MountedImage) -> int:
    """Host disk the image holds beyond what its filesystem uses: what a trim gives back."""
    held = os.stat(fs.image).st_blocks * 512
    st = os.statvfs(fs.mount_point)
    return held - (st.f_blocks - st.f_bfree) * st.f_frsize


def _delete(fs: MountedImage) -> None:
    fs.image.unlink(missing_ok=True)
    shutil.rmtree(fs.mount_point, ignore_errors=True)
