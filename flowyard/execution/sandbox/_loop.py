"""Loop-mounting a disk image with ioctls and mount(2): no mount(8) process on a run's path."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import stat
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from flowyard.execution.sandbox._errors import SandboxError

logger = logging.getLogger(__name__)

# The kernel must not zero inode tables in the background (the image is sparse: they read
# as zeros), nor read every block group's bitmap ahead (a thread's CPU per mount, for a
# filesystem a run mostly leaves empty). The second needs Linux 5.9; before, the first only.
MOUNT_DATA = [b"noinit_itable,no_prefetch_block_bitmaps", b"noinit_itable"]
_MOUNT_DATA_LOCK = threading.Lock()
_LOOP_CTL_GET_FREE = 0x4C82
_LOOP_SET_FD = 0x4C00
_LOOP_SET_STATUS64 = 0x4C04
_LOOP_CONFIGURE = 0x4C0A
_LO_FLAGS_AUTOCLEAR = 4
_LO_FLAGS_DIRECT_IO = 16
_LOOP_MAJOR = 7
_MS_NOSUID = 2
_MS_NODEV = 4
_MNT_DETACH = 2
_FITRIM = 0xC0185879  # _IOWR('X', 121, struct fstrim_range)
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass
class MountedImage:
    """A run's filesystem: ``image`` mounted at ``mount_point`` on the host.

    ``baseline_bytes`` is what the empty filesystem already uses; usage is
    reported above it. ``peak_bytes`` and ``ever_full`` follow the samples.
    """

    image: Path
    mount_point: Path
    size_bytes: int = 0
    baseline_bytes: int = 0
    peak_bytes: int = 0
    ever_full: bool = False
    mounted: bool = True

    @property
    def work(self) -> Path:
        """The run's /work."""
        return self.mount_point / "work"

    @property
    def tmp(self) -> Path:
        """The run's /tmp."""
        return self.mount_point / "tmp"

    @property
    def output(self) -> Path:
        """The run's stdout and stderr (not visible inside the sandbox)."""
        return self.mount_point / "output.log"

    def used_bytes(self) -> int:
        """Bytes the run has stored; updates the peak and the full flag. 0 once unmounted."""
        if not self.mounted:  # the mount point is then a plain directory of the host's disk
            return 0
        st = os.statvfs(self.mount_point)
        used = max((st.f_blocks - st.f_bfree) * st.f_frsize - self.baseline_bytes, 0)
        capacity = st.f_blocks * st.f_frsize
        free = st.f_bavail * st.f_frsize
        self.peak_bytes = max(self.peak_bytes, used)
        if free < min(1024**2, capacity // 100):
            self.ever_full = True
        return used

    def unmount(self) -> None:
        """Unmount (lazily if something still holds it); the loop device frees itself."""
        self.mounted = False
        unmount(self.mount_point)


def mount_image(image: Path, mount_point: Path) -> MountedImage:
    """Attach ``image`` to a free loop device and mount it (nosuid, nodev) at ``mount_point``."""
    mount_point.mkdir(parents=True, exist_ok=True)
    device, device_fd = _attach_loop(image)
    try:
        flags = ctypes.c_ulong(_MS_NOSUID | _MS_NODEV)
        while True:
            data = MOUNT_DATA[0]
            if _libc.mount(os.fsencode(device), os.fsencode(mount_point), b"ext4", flags, data):
                err = ctypes.get_errno()
                with _MOUNT_DATA_LOCK:
                    older = err == errno.EINVAL and len(MOUNT_DATA) > 1
                    if older and MOUNT_DATA[0] is data:
                        del MOUNT_DATA[0]  # an older kernel: without what it lacks, for good
                if older:
                    continue
                raise SandboxError(f"cannot mount {image} at {mount_point}: {os.strerror(err)}")
            break
    finally:
        # With autoclear set, the device detaches itself on unmount (or now, if mount failed).
        os.close(device_fd)
    return MountedImage(image, mount_point, size_bytes=os.stat(image).st_size)


def unmount(mount_point: Path) -> None:
    """Unmount ``mount_point``; lazily if busy; nothing if it is not mounted."""
    if _libc.umount2(os.fsencode(mount_point), 0) == 0:
        return
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOENT):  # not mounted
        return
    logger.warning("unmount of %s failed (%s); detaching lazily", mount_point, os.strerror(err))
    if _libc.umount2(os.fsencode(mount_point), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"cannot unmount {mount_point}: {os.strerror(err)}")


def trim(mount_point: Path) -> None:
    """Give the free space back to the host: the loop device punches holes in the image."""
    fd = os.open(mount_point, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, _FITRIM, struct.pack("=QQQ", 0, 2**64 - 1, 0))
    finally:
        os.close(fd)


def _attach_loop(image: Path) -> tuple[str, int]:
    control = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    backing = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    try:
        for _ in range(64):
            number = fcntl.ioctl(control, _LOOP_CTL_GET_FREE)
            device = _loop_device(number)
            fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
            try:
                _configure(fd, backing)
            except OSError as exc:
                os.close(fd)
                if exc.errno == errno.EBUSY:  # another process took it first
                    continue
                raise SandboxError(f"cannot attach {image} to {device}: {exc}") from exc
            return device, fd
        raise SandboxError("no free loop device after 64 attempts")
    finally:
        os.close(backing)
        os.close(control)


def _loop_device(number: int) -> str:
    device = f"/dev/loop{number}"
    # Without udev (containers, minimal hosts) new loop devices get no node.
    if not os.path.exists(device):
        with contextlib.suppress(FileExistsError):
            os.mknod(device, 0o600 | stat.S_IFBLK, os.makedev(_LOOP_MAJOR, number))
    return device


def _loop_info(flags: int) -> bytes:
    # struct loop_info64: 5 x u64, 4 x u32, file name, crypt name, key, 2 x u64
    return struct.pack("=5Q4I64s64s32s2Q", 0, 0, 0, 0, 0, 0, 0, 0, flags, b"", b"", b"", 0, 0)


def _configure(fd: int, backing: int) -> None:
    # Direct I/O keeps the image's pages out of the host page cache (and out of
    # the run's memory cgroup, which loop I/O is charged to).
    for flags, block_size in (
        (_LO_FLAGS_AUTOCLEAR | _LO_FLAGS_DIRECT_IO, 4096),
        (_LO_FLAGS_AUTOCLEAR, 0),
    ):
        # struct loop_config { u32 fd; u32 block_size; struct loop_info64 info; u64 reserved[8]; }
        config = struct.pack("=II", backing, block_size) + _loop_info(flags) + bytes(64)
        try:
            fcntl.ioctl(fd, _LOOP_CONFIGURE, config)
            return
        except OSError as exc:
            if exc.errno == errno.EINVAL and flags & _LO_FLAGS_DIRECT_IO:
                continue  # the backing filesystem cannot do direct I/O
            if exc.errno not in (errno.ENOTTY, errno.EINVAL):
                raise
            break
    # Kernels before 5.8: two steps.
    fcntl.ioctl(fd, _LOOP_SET_FD, backing)
    fcntl.ioctl(fd, _LOOP_SET_STATUS64, _loop_info(_LO_FLAGS_AUTOCLEAR))
