"""Processes waiting in fresh cgroups, so a run does not pay for joining one.

Moving a process into a cgroup v1 takes a lock whose write side waits for an
RCU grace period: ~12 ms of latency, on the run's path, for every run. A slot
pays it ahead of time: a waiting ``sh`` (root, empty environment) that has
already written itself into its own cgroup and blocks reading its stdin, a
pipe from the server. Taking a slot renames its cgroup after the run and
writes the run's limits; launching it writes three paths (bubblewrap's
options, its status file, the output file) and then the run's environment
script down the pipe. The waiter reads exactly the three lines, opens the
files and execs bubblewrap with the pipe still on stdin, so the sandbox's
loader (running as the sandbox user) reads the rest — the environment never
touches a disk or a command line. A background thread keeps ``keep`` slots
ready; a slot costs a shell (~1 ms of CPU), not an interpreter.

If the server dies, each waiter reads end-of-file and exits; the empty
``flowyard-slot-*`` cgroups are removed by the next server's reclaim.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flowyard.execution.host import CgroupLayout
from flowyard.execution.sandbox._cgroups import RunCgroup
from flowyard.execution.sandbox._errors import SandboxError

logger = logging.getLogger(__name__)

SLOT_PREFIX = "flowyard-slot-"
ARGS_FD = 3
STATUS_FD = 4
_READY_TIMEOUT = 30.0
_F_SETPIPE_SZ = 1031
_MAX_PIPE = 1024 * 1024
# Root, empty environment: join the cgroups, be the OOM killer's first choice, say so,
# wait for the run's three paths.
_WAITER = (
    'for f do if [ "$f" = -- ]; then break; fi; echo $$ > "$f" || exit 125; shift; done; shift; '
    "echo 1000 > /proc/self/oom_score_adj; "  # a host-wide shortage takes a run, not the server
    "echo ready || exit 125; "
    "IFS= read -r args || exit 0; IFS= read -r status || exit 0; IFS= read -r output || exit 0; "
    f'exec "$@" {ARGS_FD}<"$args" {STATUS_FD}>"$status" >"$output" 2>&1'
)


@dataclass(frozen=True)
class LaunchFiles:
    """Host paths the waiter opens for bubblewrap."""

    args: Path
    status: Path
    output: Path


@dataclass
class Slot:
    """A waiting process, already in its own cgroup; ``stdin`` is the pipe to it."""

    process: subprocess.Popen[bytes]
    cgroup: RunCgroup
    stdin: int

    def launch(self, files: LaunchFiles, payload: bytes) -> None:
        """Start the run: the waiter execs its command, ``payload`` following on its stdin."""
        for path in (files.args, files.status, files.output):
            if "\n" in str(path):
                raise SandboxError(f"unusable path for a sandbox file: {path!r}")
        data = f"{files.args}\n{files.status}\n{files.output}\n".encode() + payload
        try:
            if len(data) <= _MAX_PIPE:
                with contextlib.suppress(
                    OSError
                ):  # pipe-max-size may be lower: then a writer thread
                    fcntl.fcntl(self.stdin, _F_SETPIPE_SZ, max(len(data), 4096))
            _write_all(self.stdin, data)
        except BrokenPipeError:
            # bubblewrap failed before its loader read the rest; the run's
            # result reports bubblewrap's own message.
            logger.warning("sandbox exited before reading its environment")
        finally:
            os.close(self.stdin)

    def discard(self) -> None:
        """Let the waiter exit (end of file) and remove its cgroup."""
        with contextlib.suppress(OSError):
            os.close(self.stdin)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.cgroup.remove()


class SlotPool:
    """``keep`` slots ready at all times, made on a background thread."""

    def __init__(self, layout: CgroupLayout, command: Sequence[str], *, keep: int = 2) -> None:
        self._layout = layout
        self._command = list(command)
        self._keep = keep
        self._ready: deque[Slot] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(
            target=self._work, name="flowyard-sandbox-slots", daemon=True
        )
        self._thread.start()

    def take(self) -> Slot:
        """A ready slot (made now, paying for the cgroup move, if none is ready)."""
        with self._cond:
            slot = self._ready.popleft() if self._ready else None
            self._cond.notify()
        return slot if slot is not None else make_slot(self._layout, self._command)

    def close(self) -> None:
        """Stop refilling and discard the ready slots."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=30)
        with self._cond:
            ready, self._ready = list(self._ready), deque()
        for slot in ready:
            slot.discard()

    def _work(self) -> None:
        failures = 0
        while True:
            with self._cond:
                while not self._closed and len(self._ready) >= self._keep:
                    self._cond.wait()
                if self._closed:
                    return
            try:
                slot = make_slot(self._layout, self._command)
                failures = 0
            except SandboxError:
                failures += 1
                logger.exception("could not prepare a sandbox slot")
                time.sleep(min(0.1 * 2**failures, 30.0))
                continue
            with self._cond:
                self._ready.append(slot)


def make_slot(layout: CgroupLayout, command: Sequence[str]) -> Slot:
    """Start a waiter in a new cgroup and wait until it is in it."""
    cgroup = RunCgroup.create(layout, f"{SLOT_PREFIX}{uuid.uuid4().hex[:16]}")
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        process = subprocess.Popen(
            ["/bin/sh", "-c", _WAITER, "flowyard-slot", *map(str, cgroup.procs_files), "--", *command],
            stdin=read_end, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={},
            start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        os.close(write_end)
        cgroup.remove()
        raise SandboxError(f"cannot start a sandbox's waiting process: {exc}") from exc
    finally:
        os.close(read_end)
    assert process.stdout is not None  # stdout=PIPE
    with process.stdout:
        ready, _, _ = select.select([process.stdout], [], [], _READY_TIMEOUT)
        reply = process.stdout.readline() if ready else b""
    if reply != b"ready\n":
        os.close(write_end)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        if process.poll() is None:
            process.kill()
            process.wait()
        cgroup.remove()
        raise SandboxError("a sandbox's waiting process could not join its cgroup")
    return Slot(process, cgroup, write_end)


def remove_idle_slots(layout: CgroupLayout) -> int:
    """Remove empty slot cgroups left by a server that died; returns how many."""
    removed = 0
    for directory in set(layout.dirs.values()):
        with contextlib.suppress(OSError):
            for child in directory.iterdir():
                if child.name.startswith(SLOT_PREFIX) and child.is_dir():
                    with contextlib.suppress(OSError):  # busy: a live slot of another server
                        child.rmdir()
                        removed += 1
    return removed


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
