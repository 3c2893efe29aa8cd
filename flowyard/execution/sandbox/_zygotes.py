"""The server's side of zygotes: one loaded interpreter per environment, asked to fork runs.

See :mod:`flowyard.execution._zygote` for what a zygote is and what its
children do. Here: when a spec may be served by one (:func:`key_of`: the
runner's own command), which one, starting it, and the request that hands it
a run whose sandbox is being prepared.

A zygote is started the first time a run of its key starts; that run, and
others of its key that arrive meanwhile, wait for it (at most
:data:`WAIT_SECONDS`). It is kept while it lives and is used (at most
:data:`MAX_ZYGOTES`, none idle over :data:`IDLE_SECONDS`); a zygote that
died is replaced by the next run's request failing and starting a new one.
The request waits only for the zygote's acknowledgement (a fork, ~1 ms); the
rest happens in the zygote's child while the server goes on. If no acknowledgement comes, the
request raises: the caller tears that sandbox down and starts the run cold
in a new one, so a late child finds no cgroup to join and gives up.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import math
import os
import select
import socket
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from flowyard.execution.sandbox._errors import SandboxError
from flowyard.execution.sandbox._layout import SDK_PATH, TMP_PATH, WORK_PATH, Placeholder
from flowyard.execution.sandbox._spec import SandboxSpec
from flowyard.execution.sandbox._standby import startup_env

logger = logging.getLogger(__name__)

READY_FIFO = ".flowyard-zygote-ready"
EXIT_FIFO = ".flowyard-zygote-exit"
# Arguments: the ready FIFO, the exit FIFO, then the runner's argv (run if told "cold").
# The exit FIFO is opened first: whoever writes the ending holds it open from before.
HOLDER = (
    "trap '' TERM INT HUP QUIT; "  # stopping a run signals its processes: not ours
    'exec 5<"$2" 4<>"$1" || exit 125; shift 2; echo ready >&4; exec 4>&-; '
    'IFS=" " read -r kind code reason <&5; exec 5<&-; '
    'case "$code" in ""|*[!0-9]*) code=0;; esac; '
    'case "$kind" in exit) exit "$code";; signal) exit $((128 + code));; '
    'cold) trap - TERM INT HUP QUIT; exec "$@";; '
    'lost) echo "flowyard: the run could not be started: $reason" >&2; exit 125;; esac; '
    "echo 'flowyard: the run ended without a status from its zygote' >&2; exit 125"
)
MAX_ZYGOTES = 8
# A zygote no run has used for this long is stopped.
IDLE_SECONDS = 30 * 60.0
# How long runs of a key wait for its zygote being started before starting cold.
WAIT_SECONDS = 3.0
# After a zygote failed to start, its key's runs start cold this long before another try.
RETRY_SECONDS = 60.0
_START_SECONDS = 60.0
_ACK_SECONDS = 10.0
# The zygote's own command after bubblewrap's options: the SDK is appended to the
# path (the environment's .pth files, which would name it, are not run).
BOOT = (
    f"import sys; sys.path.append({SDK_PATH!r}); "
    "from flowyard.execution._zygote import main; main(int(sys.argv[1]))"
)
Key = tuple[object, ...]
# Start-up variables that change how the interpreter behaves, never what code it loads.
SAFE_STARTUP = frozenset({
    "LANG", "LANGUAGE", "TZ", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING",
    "PYTHONUTF8", "PYTHONHASHSEED", "PYTHONFAULTHANDLER", "PYTHONNOUSERSITE", "PYTHONOPTIMIZE",
})  # fmt: skip


def key_of(spec: SandboxSpec) -> Key | None:
    """What a zygote shares with the runs it serves; ``None`` if it cannot serve the spec.

    A zygote serves specs that opt in (``standby``, as the runner's do) and run
    ``{python} -m <module>`` with the SDK mounted: it forks and runs the module.
    The zygote starts with the run's start-up variables, as root: a run setting
    any beyond :data:`SAFE_STARTUP` (``PYTHONPATH``, ``LD_PRELOAD``, ...: what
    would make the interpreter load code of the run's choosing) starts cold.
    """
    argv = [str(arg) for arg in spec.argv]
    if not spec.standby or spec.sdk_dir is None or len(argv) != 3:
        return None
    if argv[0] != Placeholder.PYTHON.value or argv[1] != "-m":
        return None
    startup = startup_env(spec.env)
    if any(not _safe_at_startup(name, value) for name, value in startup.items()):
        return None
    return (
        argv[2],
        spec.runtime_dir,
        spec.environment_dir,
        spec.sdk_dir,
        spec.ro_binds,
        tuple(sorted(startup.items())),
    )


def _safe_at_startup(name: str, value: str) -> bool:
    if name not in SAFE_STARTUP and not name.startswith("LC_"):
        return False
    # A locale or zone given as a path makes the C library read that file.
    return not value.startswith("/") and ".." not in value and ("/" not in value or name == "TZ")


@dataclass
class HeldFifos:
    """The server's ends of a holder's FIFOs, open from before the holder starts.

    ``ready`` (read, non-blocking) keeps the holder's "ready" until a zygote's
    child reads it; ``exit`` (read-write) lets the holder open its end at once.
    ``fallback``: the holder has the run's variables and may start it itself.
    """

    ready: int
    exit: int
    fallback: bool
    # A held sandbox whose run's process is forked already: it waits for its variables here.
    env_write: int = -1

    @classmethod
    def make(cls, tmp: Path, uid: int, gid: int, *, fallback: bool) -> HeldFifos:
        """Create both FIFOs in a run's /tmp (host side), owned by the sandbox user."""
        paths = (tmp / READY_FIFO, tmp / EXIT_FIFO)
        for path in paths:
            path.unlink(missing_ok=True)
            os.mkfifo(path, 0o600)
            os.chown(path, uid, gid)
        ready = os.open(paths[0], os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            exit_fd = os.open(paths[1], os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            os.close(ready)
            raise
        return cls(ready, exit_fd, fallback)

    def wait_ready(self, alive: Callable[[], bool], seconds: float = _START_SECONDS) -> None:
        """Until the holder has said it is ready (left unread, for the zygote's child)."""
        deadline = time.monotonic() + seconds
        pause = 0.002
        while _pending_bytes(self.ready) == 0:
            if not alive() or time.monotonic() > deadline:
                raise SandboxError("the held sandbox never became ready")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.05)

    @property
    def forked(self) -> bool:
        """Whether the run's process already waits in the sandbox for its variables."""
        return self.env_write >= 0

    def hand_env(self, env: dict[str, str]) -> None:
        """Give the waiting process its run's variables (it goes on at once)."""
        try:
            _write_all(self.env_write, json.dumps(env).encode())
        except OSError as exc:  # EPIPE: it is gone
            raise SandboxError(f"the held sandbox's process is gone: {exc}") from exc
        finally:
            os.close(self.env_write)
            self.env_write = -1

    def close(self) -> None:
        for fd in (self.ready, self.exit, self.env_write):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.ready = self.exit = self.env_write = -1


@dataclass(frozen=True)
class RunRequest:
    """What a zygote's child needs for one run; ``procs`` are ``cgroup.procs`` files."""

    bwrap_pid: int
    uid: int
    gid: int
    module: str
    ready_fd: int
    exit_fd: int
    env_fd: int  # the run's variables as JSON, read to its end by the run's process
    output: Path
    procs: Sequence[Path]
    fallback: bool = True


class Zygote:
    """One live zygote process and the socket its requests go down."""

    def __init__(self, key: Key, process: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.key = key
        self.process = process
        self._sock = sock
        self._lock = threading.Lock()

    @classmethod
    def start(
        cls, key: Key, command: Sequence[str], *, log: Path, pass_fds: Sequence[int] = ()
    ) -> Zygote:
        """Start ``command`` (bubblewrap, then the zygote's python) and wait until it has loaded.

        ``{socket}`` in ``command`` stands for the zygote's socket number; its
        output goes to ``log``.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [arg.replace("{socket}", str(theirs.fileno())) for arg in command]
        try:
            with log.open("ab") as output:
                process = subprocess.Popen(
                    argv,
                    pass_fds=(theirs.fileno(), *pass_fds),
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=output,
                    start_new_session=True,
                )
        except OSError as exc:
            ours.close()
            raise SandboxError(f"cannot start a zygote: {exc}") from exc
        finally:
            theirs.close()
        ready, _, _ = select.select([ours], [], [], _START_SECONDS)
        said = ours.recv(64) if ready else b""
        if said != b"ready":
            ours.close()
            if process.poll() is None:
                process.kill()
            process.wait()
            lines = log.read_bytes()[-2000:].decode(errors="replace").strip().splitlines()
            raise SandboxError(f"the zygote did not start: {(lines or ['no output'])[-1]}")
        return cls(key, process, ours)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def request(self, run: RunRequest) -> None:
        """Hand the zygote a run; raises :class:`SandboxError` unless it took it."""
        files: list[int] = []
        ack_read, ack_write = os.pipe2(os.O_CLOEXEC)
        try:
            files.append(ack_write)
            files.append(os.dup(run.ready_fd))
            files.append(os.dup(run.exit_fd))
            files.append(os.dup(run.env_fd))
            files.append(os.open(run.output, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC))
            files += [os.open(path, os.O_WRONLY | os.O_CLOEXEC) for path in run.procs]
            header: dict[str, object] = {"bwrap_pid": run.bwrap_pid, "uid": run.uid}
            header |= {"gid": run.gid, "module": run.module, "workdir": WORK_PATH}
            header["fallback"] = run.fallback
            header["sdk_path"] = SDK_PATH
            header["exit_fifo"] = f"{TMP_PATH}/{EXIT_FIFO}"
            with self._lock:
                socket.send_fds(self._sock, [json.dumps(header).encode()], files)
            for fd in files:
                os.close(fd)
            files.clear()
            readable, _, _ = select.select([ack_read], [], [], _ACK_SECONDS)
            if not readable or os.read(ack_read, 8) != b"ok":
                raise SandboxError("the zygote did not take the run")
        except OSError as exc:
            raise SandboxError(f"cannot hand the run to its zygote: {exc}") from exc
        finally:
            os.close(ack_read)
            for fd in files:
                os.close(fd)

    def stop(self) -> None:
        """Close its socket (it exits) and wait for it; runs it started go on."""
        with contextlib.suppress(OSError):
            self._sock.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Zygotes:
    """At most ``limit`` zygotes, one per key; the least recently used goes first, and one
    unused for ``idle_seconds`` is stopped (its memory back to the host)."""

    def __init__(
        self,
        start: Callable[[Key, SandboxSpec], Zygote],
        *,
        limit: int = MAX_ZYGOTES,
        idle_seconds: float = IDLE_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self._start = start
        self._limit = limit
        self._idle_seconds = idle_seconds
        self._retry_seconds = retry_seconds
        self._failed: dict[Key, float] = {}  # when a key's last start failed
        self._live: dict[Key, Zygote] = {}
        self._used: dict[Key, float] = {}
        self._starting: dict[Key, Future[Zygote | None]] = {}
        self._overdue: set[Key] = set()  # starting longer than a run waits: none waits more
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._sweeper: threading.Thread | None = None

    def enabled_for(self, spec: SandboxSpec) -> bool:
        """Whether runs like ``spec`` go through a zygote (once one is up)."""
        return self._limit > 0 and key_of(spec) is not None

    def get(self, spec: SandboxSpec) -> Zygote | None:
        """The live zygote for ``spec``; ``None`` if there is none (one is started meanwhile)."""
        return self._lookup(spec)[0]

    async def acquire(self, spec: SandboxSpec, seconds: float) -> Zygote | None:
        """The live zygote for ``spec``; else the one being started for it, once up, if that
        takes at most ``seconds``; else ``None``.

        Starting one costs what a cold run's start does, once: runs that arrive
        meanwhile (a burst) wait for it rather than each pay it again. Once a
        run has waited ``seconds`` in vain, the key's runs start cold without
        waiting until that start ends.
        """
        zygote, coming = self._lookup(spec)
        if zygote is not None or coming is None:
            return zygote
        await asyncio.wait({asyncio.wrap_future(coming)}, timeout=seconds)
        if not coming.done():
            key = key_of(spec)
            with self._lock:
                if key is not None and self._starting.get(key) is coming:
                    self._overdue.add(key)
            return None
        zygote = coming.result()
        if zygote is None:
            return None
        with self._lock:
            if self._live.get(zygote.key) is zygote:
                self._used[zygote.key] = time.monotonic()
        return zygote if zygote.alive else None

    def _lookup(self, spec: SandboxSpec) -> tuple[Zygote | None, Future[Zygote | None] | None]:
        """The live zygote for ``spec``, or the start of one (begun now if none was)."""
        key = key_of(spec)
        if key is None or self._limit <= 0:
            return None, None
        with self._lock:
            zygote = self._live.get(key)
            if zygote is not None and zygote.alive:
                self._live[key] = self._live.pop(key)  # most recently used last
                self._used[key] = time.monotonic()
                return zygote, None
            if self._closed.is_set():
                return None, None
            if key in self._starting:
                return None, None if key in self._overdue else self._starting[key]
            if time.monotonic() - self._failed.get(key, -math.inf) < self._retry_seconds:
                return None, None
            coming = self._starting[key] = Future()
            dead = self._live.pop(key, None)
        if dead is not None:
            logger.warning("a zygote exited (%s); starting another", dead.process.returncode)
            dead.stop()
        threading.Thread(
            target=self._make, args=(key, spec), name="flowyard-zygote", daemon=True
        ).start()
        return None, coming

    def discard(self, zygote: Zygote) -> None:
        """Stop ``zygote`` (it failed a request); the next run of its key starts another."""
        with self._lock:
            if self._live.get(zygote.key) is zygote:
                del self._live[zygote.key]
                self._used.pop(zygote.key, None)
        zygote.stop()

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            live, self._live = list(self._live.values()), {}
        for zygote in live:
            zygote.stop()

    @property
    def pids(self) -> list[int]:
        """Process ids of the live zygotes (bubblewrap's, whose child is the interpreter)."""
        with self._lock:
            return [z.process.pid for z in self._live.values() if z.alive]

    def _make(self, key: Key, spec: SandboxSpec) -> None:
        evicted: list[Zygote] = []
        zygote: Zygote | None = None
        try:
            zygote = self._start(key, spec)
        except Exception:  # whatever it was, runs of its key must not wait on it again
            logger.warning(
                "could not start a zygote; its runs start cold for %.0f s",
                self._retry_seconds,
                exc_info=True,
            )
        with self._lock:
            coming = self._starting.pop(key)
            self._overdue.discard(key)
            if zygote is None:
                now = time.monotonic()
                self._failed = {
                    k: at for k, at in self._failed.items() if now - at < self._retry_seconds
                }
                self._failed[key] = now
            elif self._closed.is_set():
                evicted.append(zygote)
                zygote = None
            else:
                self._failed.pop(key, None)
                self._live[key] = zygote
                self._used[key] = time.monotonic()
                while len(self._live) > self._limit:
                    oldest = next(iter(self._live))
                    evicted.append(self._live.pop(oldest))
                    self._used.pop(oldest, None)
                if self._sweeper is None:
                    self._sweeper = threading.Thread(
                        target=self._sweep, name="flowyard-zygote-sweep", daemon=True
                    )
                    self._sweeper.start()
        coming.set_result(zygote)
        for old in evicted:
            old.stop()

    def _sweep(self) -> None:
        """Stop the zygotes unused for ``idle_seconds`` until closed."""
        while not self._closed.wait(min(self._idle_seconds / 4, 60.0)):
            idle_before = time.monotonic() - self._idle_seconds
            with self._lock:
                idle = [k for k in self._live if self._used.get(k, 0.0) < idle_before]
                stopped = [self._live.pop(k) for k in idle]
                for key in idle:
                    self._used.pop(key, None)
            for zygote in stopped:
                logger.info("stopping a zygote unused for %.0f s", self._idle_seconds)
                zygote.stop()


def _pending_bytes(fd: int) -> int:
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def env_file(env: dict[str, str]) -> int:
    """A sealed in-memory file holding the run's variables as JSON, at offset 0."""
    fd = os.memfd_create("flowyard-run-env", os.MFD_CLOEXEC)
    data = json.dumps(env).encode()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
