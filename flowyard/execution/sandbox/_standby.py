"""Warm standby sandboxes: a run of a cached environment starts in a process already loaded.

Most of a cached run's start is its interpreter starting inside the sandbox
and importing Flowyard, the same work for every run of that environment. A
spec that opts in (``standby=True``; the runner does) marks its command as
able to wait for its assignment: started with ``FLOWYARD_STANDBY`` naming a
FIFO in its ``/tmp``, it loads what it needs, then blocks opening the FIFO.

After a run of such a spec starts, the sandbox prepares one standby like it
in the background: same runtime, environment, storage size, sockets and
command, a fresh cgroup, disk and work dir, and only the variables the
interpreter reads at start-up (``PYTHON*``, ``LD_*``, locale, ``TZ``). The
next run that matches takes it: the cgroup is renamed after the run and
given the run's limits, the checkout copied into the work dir, the run
recorded for adoption, and then the run's whole environment is written to
the FIFO as JSON; the process applies it and goes on as a fresh one would.
Its deadline and wall time count from that moment.

A run matches only if its start-up variables equal the standby's (a run
setting ``PYTHONPATH`` or ``LD_PRELOAD`` must start cold) and its network is
``none`` (egress needs a bridge started with the run). Standbys are few
(:data:`MAX_STANDBYS`, one per environment): each holds an idle interpreter.
A standby that died while waiting is found out when its FIFO has no reader
and discarded; the run starts cold.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from flowyard.execution.sandbox._errors import SandboxError
from flowyard.execution.sandbox._local_handle import RunResources
from flowyard.execution.sandbox._spec import NetworkMode, SandboxSpec

logger = logging.getLogger(__name__)

STANDBY_VARIABLE = "FLOWYARD_STANDBY"
FIFO_NAME = ".flowyard-standby"
MAX_STANDBYS = 2
# A loaded host can take seconds to finish loading one; starting cold instead would
# load the same again, next to it. Only a standby that stopped is given up at once.
WARMING_SECONDS = 30.0
_STARTUP_PREFIXES = ("PYTHON", "LD_", "LC_")
_STARTUP_NAMES = frozenset({"LANG", "LANGUAGE", "TZ", "MALLOC_ARENA_MAX"})
Key = tuple[object, ...]


def startup_env(env: Mapping[str, str]) -> dict[str, str]:
    """The variables an interpreter reads as it starts: they must be set before it does."""
    return {
        name: value
        for name, value in env.items()
        if name.startswith(_STARTUP_PREFIXES) or name in _STARTUP_NAMES
    }


def key_of(spec: SandboxSpec) -> Key | None:
    """What a standby must share with a run to serve it; ``None`` if the spec cannot use one."""
    if not spec.standby or spec.network is not NetworkMode.NONE:
        return None
    return (
        spec.runtime_dir,
        spec.environment_dir,
        spec.sdk_dir,
        tuple(spec.argv),
        spec.ro_binds,
        spec.api_socket,
        spec.limits.storage_bytes,
        tuple(sorted(startup_env(spec.env).items())),
    )


def standby_spec(spec: SandboxSpec, fifo_inside: str) -> SandboxSpec:
    """A spec like ``spec`` with nothing of its run: no checkout, only start-up variables."""
    env = {**startup_env(spec.env), STANDBY_VARIABLE: fifo_inside}
    return replace(spec, run_id=f"standby-{uuid.uuid4().hex[:16]}", env=env, workdir_source=None)


@dataclass
class Standby:
    """A waiting sandbox; ``resources.run_dir`` is named after its standby id."""

    key: Key
    resources: RunResources

    @property
    def fifo(self) -> Path:
        return self.resources.fs.tmp / FIFO_NAME


def assign(standby: Standby, env: Mapping[str, str]) -> None:
    """Hand the waiting process its run's environment; raises if nobody is waiting.

    A standby still loading (no FIFO yet, or not open yet) is waited for up to
    :data:`WARMING_SECONDS`: it is further along than a cold start would be.
    """
    deadline = time.monotonic() + WARMING_SECONDS
    pause = 0.005
    while True:
        try:
            fd = os.open(standby.fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            break
        except OSError as exc:  # ENXIO: no reader yet (or it died); ENOENT: not made yet
            alive = (
                standby.resources.process is not None and standby.resources.process.poll() is None
            )
            if not alive or time.monotonic() > deadline:
                raise SandboxError(f"the standby sandbox is not waiting: {exc.strerror}") from None
            time.sleep(pause)
            pause = min(pause * 1.5, 0.05)  # a long wait (a busy host) polls less often
    try:
        os.set_blocking(fd, True)
        data = json.dumps({"env": dict(env)}).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


class Standbys:
    """At most ``limit`` standby sandboxes, one per key, made on a thread.

    ``spawn`` starts a standby spec and returns its resources (the sandbox's
    own start; the process makes its FIFO itself); ``discard`` stops one and
    frees what it holds.
    """

    def __init__(
        self,
        spawn: Callable[[SandboxSpec], RunResources],
        discard: Callable[[RunResources], None],
        *,
        fifo_inside: str,
        limit: int = MAX_STANDBYS,
    ) -> None:
        self._spawn = spawn
        self._discard = discard
        self._fifo_inside = fifo_inside
        self._limit = limit
        self._ready: OrderedDict[Key, Standby] = OrderedDict()
        self._making: set[Key] = set()
        self._lock = threading.Lock()
        self._closed = False

    def take(self, spec: SandboxSpec) -> Standby | None:
        """The standby for ``spec``'s key, now owned by the caller; ``None`` if there is none."""
        key = key_of(spec)
        if key is None:
            return None
        with self._lock:
            return self._ready.pop(key, None)

    def offer(self, spec: SandboxSpec) -> None:
        """Make a standby like ``spec`` in the background, unless one exists or is coming."""
        key = key_of(spec)
        if key is None or self._limit <= 0:
            return
        with self._lock:
            if self._closed or key in self._ready or key in self._making:
                return
            self._making.add(key)
        thread = threading.Thread(
            target=self._make, args=(key, spec), name="flowyard-standby", daemon=True
        )
        thread.start()

    def close(self) -> None:
        """Stop every standby (their processes, cgroups and disks)."""
        with self._lock:
            self._closed = True
            ready, self._ready = list(self._ready.values()), OrderedDict()
        for standby in ready:
            self._safely_discard(standby)

    @property
    def keys(self) -> list[Key]:
        with self._lock:
            return list(self._ready)

    def _make(self, key: Key, spec: SandboxSpec) -> None:
        evicted: list[Standby] = []
        try:
            resources = self._spawn(standby_spec(spec, self._fifo_inside))
        except (OSError, SandboxError):
            logger.warning("could not prepare a standby sandbox", exc_info=True)
            with self._lock:
                self._making.discard(key)
            return
        standby = Standby(key, resources)
        with self._lock:
            self._making.discard(key)
            if self._closed:
                evicted.append(standby)
            else:
                self._ready[key] = standby
                while len(self._ready) > self._limit:
                    evicted.append(self._ready.popitem(last=False)[1])
        for old in evicted:
            self._safely_discard(old)

    def _safely_discard(self, standby: Standby) -> None:
        with contextlib.suppress(Exception):
            self._discard(standby.resources)
