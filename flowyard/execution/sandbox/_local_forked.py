"""Runs forked by their environment's zygote, into a new sandbox or a held one.

The part of :class:`~flowyard.execution.sandbox._local.LocalSandbox` that uses
zygotes (see ``_zygotes`` and ``flowyard.execution._zygote``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from flowyard.execution.sandbox import _bwrap
from flowyard.execution.sandbox._adopt import record_run
from flowyard.execution.sandbox._errors import SandboxError
from flowyard.execution.sandbox._local_handle import LocalHandle, RunResources
from flowyard.execution.sandbox._local_support import inside_env
from flowyard.execution.sandbox._protocol import SandboxHandle
from flowyard.execution.sandbox._spec import SandboxSpec
from flowyard.execution.sandbox._standby import Standby, startup_env
from flowyard.execution.sandbox._zygotes import (
    BOOT,
    WAIT_SECONDS,
    HeldFifos,
    Key,
    RunRequest,
    Zygote,
    Zygotes,
    env_file,
)

if TYPE_CHECKING:
    from pathlib import Path

    from flowyard.execution.sandbox._etc import EtcView
    from flowyard.execution.sandbox._local_support import Tools
    from flowyard.execution.sandbox._runtime import EnvironmentView, RuntimeView
    from flowyard.execution.sandbox._slots import SlotPool
    from flowyard.execution.sandbox._standby import Standbys
    from flowyard.execution.sandbox._storage import ImagePool

logger = logging.getLogger("flowyard.execution.sandbox._local")

# bubblewrap's outer process and its pid-1 reaper count against pids.max too.
SANDBOX_PROCESSES = 2
# A run a zygote forks has two more of ours: the holder and the zygote's child.
ZYGOTE_PROCESSES = 2


class ForkedStarts:
    """Starting runs through zygotes; mixed into ``LocalSandbox``, whose state it uses."""

    _state: Path
    _uid: int
    _gid: int
    _pool: ImagePool | None
    _slots: SlotPool | None
    _tools: Tools | None
    _standbys: Standbys | None
    _zygotes: Zygotes | None
    _etc: EtcView

    if TYPE_CHECKING:

        def _spawn(
            self,
            spec: SandboxSpec,
            pool: ImagePool,
            slots: SlotPool,
            tools: Tools,
            zygote: Zygote | None = None,
            *,
            hold: bool = False,
        ) -> RunResources: ...

        async def _start_in(
            self,
            standby: Standby,
            spec: SandboxSpec,
            budget: int | None,
            assign: Callable[..., RunResources],
            *args: object,
        ) -> SandboxHandle | None: ...

        def _offer_standby(self, spec: SandboxSpec) -> None: ...

        def _take_standby(
            self, standby: Standby, spec: SandboxSpec, *, extra_pids: int
        ) -> dict[str, str]: ...

        def _runtime_view(self, runtime_dir: Path) -> RuntimeView: ...

        def _environment_view(
            self, spec: SandboxSpec, runtime: RuntimeView
        ) -> EnvironmentView | None: ...

    @property
    def zygotes_ready(self) -> int:
        """How many zygotes are up (see :mod:`._zygotes`)."""
        return len(self.zygote_pids)

    @property
    def zygote_pids(self) -> list[int]:
        """Process ids of the live zygotes."""
        return self._zygotes.pids if self._zygotes is not None else []

    async def _start_forked(
        self, spec: SandboxSpec, zygotes: Zygotes, budget: int | None
    ) -> SandboxHandle:
        """A run its environment's zygote forks: into a held standby if one waits, else a new
        sandbox. Without a live zygote, one is started and the run waits for it (a bounded
        while); cold if it does not come."""
        assert self._pool is not None
        assert self._slots is not None
        assert self._tools is not None
        zygote = await zygotes.acquire(spec, WAIT_SECONDS)
        standby = self._standbys.take(spec) if zygote and self._standbys else None
        if zygote is not None and standby is not None:
            held = await self._start_in(
                standby, spec, budget, self._assign_held, standby, spec, zygote
            )
            if held is not None:
                return held
        try:
            started = await asyncio.to_thread(
                self._spawn, spec, self._pool, self._slots, self._tools, zygote
            )
        except OSError as exc:
            raise SandboxError(f"cannot prepare the sandbox of run {spec.run_id}: {exc}") from exc
        except SandboxError as exc:
            if zygote is None:
                raise
            logger.warning("run %s: zygote unusable (%s); starting cold", spec.run_id, exc)
            zygotes.discard(zygote)
            zygote = None
            started = await asyncio.to_thread(
                self._spawn, spec, self._pool, self._slots, self._tools
            )
        if zygote is not None:
            self._offer_standby(spec)
        return LocalHandle(spec, started, self._pool, budget)

    def _assign_held(self, standby: Standby, spec: SandboxSpec, zygote: Zygote) -> RunResources:
        """Make a held standby ``spec``'s sandbox and start the run in it: hand the process
        forked there already its variables, or have the zygote fork it now."""
        res = standby.resources
        held, process = res.held, res.process
        if held is None or process is None or process.poll() is not None:
            raise SandboxError("the held sandbox has ended")
        if not held.forked:  # just made, its waiter may not have opened its run dir's files
            held.wait_ready(lambda: process.poll() is None)
        env = self._take_standby(standby, spec, extra_pids=SANDBOX_PROCESSES + ZYGOTE_PROCESSES)
        res = standby.resources = dataclasses.replace(standby.resources, held=None)
        try:
            if held.forked:
                held.hand_env(env)
            else:
                self._fork(spec, res, held, zygote, env)
        finally:
            held.close()
        record_run(spec, process.pid, res.cgroup, res.fs, res.run_dir)
        return res

    def _fork(
        self,
        spec: SandboxSpec,
        res: RunResources,
        held: HeldFifos,
        zygote: Zygote,
        env: dict[str, str],
    ) -> None:
        """Have ``zygote`` fork the run into its sandbox now, its variables given."""
        env_fd = env_file(env)
        try:
            zygote.request(self._run_request(spec, res, held, env_fd))
        finally:
            os.close(env_fd)

    def _prefork(
        self, spec: SandboxSpec, res: RunResources, held: HeldFifos, zygote: Zygote
    ) -> None:
        """Have ``zygote`` fork a held sandbox's process now; it waits for its run's variables,
        which :meth:`HeldFifos.hand_env` writes when a run takes the sandbox."""
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            zygote.request(self._run_request(spec, res, held, read_end))
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        held.env_write = write_end

    def _run_request(
        self, spec: SandboxSpec, res: RunResources, held: HeldFifos, env_fd: int
    ) -> RunRequest:
        assert res.process is not None
        return RunRequest(
            bwrap_pid=res.process.pid,
            module=str(spec.argv[2]),
            uid=self._uid,
            gid=self._gid,
            ready_fd=held.ready,
            exit_fd=held.exit,
            env_fd=env_fd,
            output=res.fs.output,
            procs=res.cgroup.procs_files,
            fallback=held.fallback,
        )

    def _start_zygote(self, key: Key, spec: SandboxSpec) -> Zygote:
        """A zygote for runs like ``spec``, in a bubblewrap of their Python layout."""
        if self._tools is None:
            raise SandboxError("zygotes need strict isolation")
        runtime = self._runtime_view(spec.runtime_dir)
        environment = self._environment_view(spec, runtime)
        empty = self._state / "zygote-empty"
        empty.mkdir(exist_ok=True)
        mounts = _bwrap.Mounts(runtime, environment, empty, empty, self._etc.path())
        python = mounts.python
        env = inside_env(startup_env(spec.env), python)
        options = _bwrap.zygote_options(spec, mounts, env)
        args = os.memfd_create("flowyard-zygote-args", os.MFD_CLOEXEC)
        try:
            os.write(args, b"".join(os.fsencode(arg) + b"\0" for arg in options))
            os.lseek(args, 0, os.SEEK_SET)
            command = [str(self._tools.bwrap), "--args", str(args), "--", python, "-S", "-c"]
            command += [BOOT, "{socket}"]
            return Zygote.start(key, command, log=self._state / "zygote.log", pass_fds=(args,))
        finally:
            os.close(args)
