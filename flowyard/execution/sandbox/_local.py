"""The local backend's sandbox: bubblewrap namespaces, a cgroup and a loop-mounted disk per run.

Start-up of one strict run, all before the run's first instruction:

1. a run directory under ``<state>/runs/<run id>`` (bubblewrap's options and
   status file, and a link to the run's disk for a restarted server's
   reclaim);
2. a slot (``_slots``): a waiting shell already inside a fresh cgroup, which
   is renamed after the run and given its limits (memory without swap, CPU
   quota, pids);
3. a disk (``_storage``): an ext4 image of the storage limit, already
   formatted and mounted, into whose ``work/`` the checkout is copied;
4. the slot execs bubblewrap; inside, ``setpriv`` drops to the sandbox user
   and a shell loads the run's environment from stdin and execs the command.
   See ``_bwrap`` for why it is built this way.

Teardown (``_local_handle``) kills whatever is left in the cgroup, removes
it, unmounts the disk (deleted in the background) and the run directory.
The state dir belongs to one sandbox at a time (a lock file), so whatever a
new sandbox finds in it was left by a server that died, and is reclaimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from flowyard.execution.host import SANDBOX_UID, HostCapabilities, probe_host
from flowyard.execution.sandbox import _bwrap, _unconfined
from flowyard.execution.sandbox._adopt import RunRecord, adoptable_runs, link_socket, record_run
from flowyard.execution.sandbox._budget import PARENT as RUNS_PARENT
from flowyard.execution.sandbox._budget import RunsBudget, memory_pressure
from flowyard.execution.sandbox._cgroups import RunCgroup
from flowyard.execution.sandbox._egress import bridge_command
from flowyard.execution.sandbox._errors import IsolationUnavailable, SandboxError
from flowyard.execution.sandbox._etc import EtcView
from flowyard.execution.sandbox._layout import (
    TMP_PATH,
    expand,
)
from flowyard.execution.sandbox._local_forked import (
    SANDBOX_PROCESSES,
    ZYGOTE_PROCESSES,
    ForkedStarts,
)
from flowyard.execution.sandbox._local_handle import LocalHandle, RunResources
from flowyard.execution.sandbox._local_support import (
    Tools,
    check_sources,
    copy_checkout,
    inside_env,
    last_words,
    lock_state_dir,
    placeholders,
)
from flowyard.execution.sandbox._loop import MountedImage, unmount
from flowyard.execution.sandbox._protocol import Isolation, SandboxHandle
from flowyard.execution.sandbox._runtime import (
    EnvironmentView,
    RuntimeView,
    prepare_environment,
    prepare_runtime,
)
from flowyard.execution.sandbox._slots import (
    ARGS_FD,
    STATUS_FD,
    LaunchFiles,
    Slot,
    SlotPool,
    remove_idle_slots,
)
from flowyard.execution.sandbox._spec import NetworkMode, SandboxSpec
from flowyard.execution.sandbox._standby import (
    FIFO_NAME,
    MAX_STANDBYS,
    STANDBY_VARIABLE,
    Standby,
    Standbys,
    assign,
)
from flowyard.execution.sandbox._storage import ImagePool
from flowyard.execution.sandbox._zygotes import (
    EXIT_FIFO,
    HOLDER,
    MAX_ZYGOTES,
    READY_FIFO,
    HeldFifos,
    Zygote,
    Zygotes,
)

logger = logging.getLogger(__name__)

CGROUP_PREFIX = "flowyard-run-"


class LocalSandbox(ForkedStarts):
    """Runs each spec in its own sandbox on this host.

    ``isolation="strict"`` (the default) raises :class:`IsolationUnavailable`
    at construction if the host lacks anything it needs, naming each missing
    feature. ``isolation="none"`` runs plain processes (own process group,
    rlimits, deadline) and logs that nothing is isolated. ``state_dir`` holds
    disk images and per-run directories, and belongs to this sandbox alone
    while it is open; ``cgroup_parent`` is where run cgroups go in each
    hierarchy (default: this process's own cgroup), inside the ``runs_cgroup``
    that caps all runs together at ``runs_memory_bytes`` (default: derived from
    the host, see :mod:`._budget`). Call :meth:`close` at
    shutdown; runs still going are left running (see :meth:`reclaim_leftovers`).
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        isolation: Isolation = "strict",
        uid: int = SANDBOX_UID,
        gid: int = SANDBOX_UID,
        cgroup_parent: str | None = None,
        images_per_size: int = 8,  # disks and slots kept ready: a burst waits for none early on
        capabilities: HostCapabilities | None = None,
        runs_memory_bytes: int | None = None,
        runs_cgroup: str = RUNS_PARENT,
        standbys: int = MAX_STANDBYS,
        zygotes: int = MAX_ZYGOTES,
    ) -> None:
        if isolation not in ("strict", "none"):
            raise SandboxError(f"isolation must be 'strict' or 'none', not {isolation!r}")
        self._isolation: Isolation = isolation
        self._state = state_dir
        self._uid, self._gid = uid, gid
        self._runtimes: dict[tuple[Path, int], RuntimeView] = {}
        self._environments: dict[tuple[Path, Path | None, int], EnvironmentView] = {}
        self._views_lock = threading.Lock()  # runs and zygotes prepare views on threads
        self.reclaimed: tuple[str, ...] = ()
        self._caps = capabilities or probe_host(cgroup_parent, sandbox_uid=uid)
        self._lock = lock_state_dir(state_dir)
        (state_dir / "runs").mkdir(exist_ok=True, mode=0o700)
        self._pool: ImagePool | None = None
        self._tools: Tools | None = None
        self._slots: SlotPool | None = None
        self._budget: RunsBudget | None = None
        self._adoptable: dict[str, RunRecord] = {}
        self._standbys: Standbys | None = None
        self._zygotes: Zygotes | None = None
        if isolation == "none":
            logger.warning("sandbox isolation is 'none': %s", self.describe())
            self.reclaimed = tuple(self.reclaim_leftovers())
            return
        missing = self._caps.missing()
        if missing:
            os.close(self._lock)
            raise IsolationUnavailable(missing)
        tools = Tools.of(self._caps)
        try:
            self._budget = RunsBudget.create(tools.cgroups, runs_memory_bytes, name=runs_cgroup)
        except SandboxError:
            os.close(self._lock)
            raise
        self._tools = tools = dataclasses.replace(tools, cgroups=self._budget.layout)
        self._etc = EtcView(state_dir / "etc-views", _bwrap.account_files(uid, gid))
        # Runs whose process still lives wait for adopt(); the other leftovers go first:
        # their processes must be gone before their disks are unmounted.
        self._adoptable = adoptable_runs(state_dir / "runs")
        self.reclaimed = tuple(self.reclaim_leftovers())
        remove_idle_slots(tools.cgroups)
        in_use = [Path(p) for r in self._adoptable.values() for p in (r.image, r.mount_point)]
        self._pool = ImagePool(
            state_dir / "images",
            self._tools.mkfs,
            uid=uid,
            gid=gid,
            keep=images_per_size,
            in_use=in_use,
        )
        tail = _bwrap.command_tail(setpriv=tools.setpriv, uid=uid, gid=gid)
        command = [str(tools.bwrap), "--args", str(ARGS_FD), *tail]
        self._slots = SlotPool(tools.cgroups, command, keep=images_per_size)
        self._standbys = Standbys(
            self._spawn_standby,
            self._discard,
            fifo_inside=f"{TMP_PATH}/{FIFO_NAME}",
            limit=standbys,
        )
        self._zygotes = Zygotes(self._start_zygote, limit=zygotes)

    @property
    def isolation(self) -> Isolation:
        """``strict`` or ``none``."""
        return self._isolation

    @property
    def state_dir(self) -> Path:
        """Where disk images and run directories live."""
        return self._state

    @property
    def capabilities(self) -> HostCapabilities:
        """What the host probe found."""
        return self._caps

    def describe(self) -> str:
        """One line for logs and the UI saying how runs are isolated."""
        if self._isolation == "none":
            return (
                f"runs are plain processes of uid {os.geteuid()} with rlimits and a deadline; "
                "nothing is isolated (no namespaces, cgroups or storage limit)"
            )
        layout = self._caps.cgroups
        version = layout.version if layout else "?"
        return (
            f"bubblewrap {self._caps.bwrap_version} namespaces, uid {self._uid}, cgroup v{version} "
            "limits, loop-mounted ext4 work dir"
        )

    @property
    def budget(self) -> RunsBudget | None:
        """The parent cgroup all strict runs share (``None`` without strict isolation)."""
        return self._budget

    def pressure(self) -> str | None:
        """Why a new run should wait for memory now, or ``None`` (see :mod:`._budget`)."""
        return memory_pressure(self._budget)

    def warm(self, storage_bytes: int) -> None:
        """Format disk images of ``storage_bytes`` ahead of the first run that needs them."""
        if self._pool is not None:
            self._pool.warm(storage_bytes)

    def close(self) -> None:
        """Stop the zygotes, standbys and the pools' background threads (runs go on)."""
        if self._zygotes is not None:
            self._zygotes.close()
        if self._standbys is not None:
            self._standbys.close()
        if self._slots is not None:
            self._slots.close()
        if self._pool is not None:
            self._pool.close()
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1

    async def start(self, spec: SandboxSpec) -> SandboxHandle:
        """Prepare the run's sandbox and start its process; raises :class:`SandboxError` on failure."""
        if self._pool is None or self._tools is None or self._slots is None:
            process, resources = await asyncio.to_thread(_unconfined.spawn, spec, self._state)
            return _unconfined.UnconfinedHandle(spec, process, resources)
        budget = self._budget.memory_bytes if self._budget is not None else None
        if self._zygotes is not None and self._zygotes.enabled_for(spec):
            return await self._start_forked(spec, self._zygotes, budget)
        standby = self._standbys.take(spec) if self._standbys is not None else None
        if standby is not None:
            warm = await self._start_in(standby, spec, budget, self._assign, standby, spec)
            if warm is not None:
                return warm
        try:
            started = await asyncio.to_thread(
                self._spawn, spec, self._pool, self._slots, self._tools
            )
        except OSError as exc:
            raise SandboxError(f"cannot prepare the sandbox of run {spec.run_id}: {exc}") from exc
        self._offer_standby(spec)
        return LocalHandle(spec, started, self._pool, budget)

    async def _start_in(
        self,
        standby: Standby,
        spec: SandboxSpec,
        budget: int | None,
        assign: Callable[..., RunResources],
        *args: object,
    ) -> SandboxHandle | None:
        """``assign(*args)`` on a thread: ``spec``'s run started in ``standby`` (and another
        standby offered), or ``None`` if it was unusable (then discarded)."""
        assert self._pool is not None
        try:
            resources = await asyncio.to_thread(assign, *args)
        except (OSError, SandboxError) as exc:
            logger.warning(
                "run %s: standby unusable (%s%s); starting in a new sandbox",
                spec.run_id,
                exc,
                last_words(standby.resources),
            )
            await asyncio.to_thread(self._discard, standby.resources)
            return None
        self._offer_standby(spec)
        return LocalHandle(spec, resources, self._pool, budget)

    def _offer_standby(self, spec: SandboxSpec) -> None:
        if self._standbys is not None:
            self._standbys.offer(spec)

    def _spawn_standby(self, spec: SandboxSpec) -> RunResources:
        """A standby sandbox: a loaded runner waiting on its FIFO, or, where a zygote serves
        runs like it, a holder (with nothing of a run's: no variables, no fallback)."""
        if self._pool is None or self._slots is None or self._tools is None:
            raise SandboxError("standbys need strict isolation")
        if self._zygotes is not None and self._zygotes.enabled_for(spec):
            env = {k: v for k, v in spec.env.items() if k != STANDBY_VARIABLE}
            spec = dataclasses.replace(spec, env=env)
            zygote = self._zygotes.get(spec)
            return self._spawn(spec, self._pool, self._slots, self._tools, zygote, hold=True)
        return self._spawn(spec, self._pool, self._slots, self._tools)

    def _assign(self, standby: Standby, spec: SandboxSpec) -> RunResources:
        """Make a waiting standby ``spec``'s sandbox and hand its process the run (a thread)."""
        env = self._take_standby(standby, spec, extra_pids=SANDBOX_PROCESSES)
        res = standby.resources
        assign(standby, env)
        assert res.process is not None  # a standby is always our own child
        record_run(spec, res.process.pid, res.cgroup, res.fs, res.run_dir)
        return res

    def _take_standby(
        self, standby: Standby, spec: SandboxSpec, *, extra_pids: int
    ) -> dict[str, str]:
        """Make ``standby``'s sandbox ``spec``'s: its run dir, cgroup, limits, checkout and
        sockets; returns the run's variables as seen inside."""
        res = standby.resources
        run_dir = self._state / "runs" / spec.run_id
        try:
            res.run_dir.rename(run_dir)
        except OSError as exc:
            raise SandboxError(f"run {spec.run_id} cannot take a standby: {exc}") from exc
        res = standby.resources = dataclasses.replace(res, run_dir=run_dir)
        check_sources(spec)
        res.cgroup.rename(f"{CGROUP_PREFIX}{spec.run_id}")
        res.cgroup.apply(spec.limits, extra_pids=extra_pids)
        copy_checkout(spec.workdir_source, res.fs.work, self._uid, self._gid)
        if spec.api_socket is not None:
            link_socket(self._state / "sockets" / "api", "api.sock", spec.api_socket)
        runtime = self._runtime_view(spec.runtime_dir)
        environment = self._environment_view(spec, runtime)
        return inside_env(spec.env, environment.python if environment else runtime.python)

    def _discard(self, res: RunResources) -> None:
        """Stop a sandbox that never became a run's, and free what it holds."""
        if res.held is not None:
            res.held.close()
        res.cgroup.remove()
        if res.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                res.process.wait(timeout=5)
        if self._pool is not None:
            self._pool.release(res.fs)
        shutil.rmtree(res.run_dir, ignore_errors=True)

    @staticmethod
    def run_of_process(pid: int) -> str | None:
        """The run id of the strict sandbox ``pid`` runs in, from its cgroup; ``None`` if none.

        The egress proxy tells runs apart by the pid of the process connecting to it.
        """
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            name = line.rpartition("/")[2]
            if name.startswith(CGROUP_PREFIX):
                return name[len(CGROUP_PREFIX) :]
        return None

    @property
    def standbys_ready(self) -> int:
        """How many warm standby sandboxes wait for a run (see :mod:`._standby`)."""
        return len(self._standbys.keys) if self._standbys is not None else 0

    @property
    def adoptable(self) -> tuple[str, ...]:
        """Run ids left running by a previous server that :meth:`adopt` can take back."""
        return tuple(self._adoptable)

    async def adopt(self, run_id: str) -> SandboxHandle | None:
        """Supervise a run a previous server started; ``None`` if there is no such run.

        Its deadline still counts from its first start, and its sockets are relinked
        to the current server's. A run whose process ended meanwhile resolves at once,
        to what bubblewrap's status file and the cgroup's counters say.
        """
        record = self._adoptable.pop(run_id, None)
        if record is None or self._pool is None:
            return None
        sockets = self._state / "sockets"
        if record.api_socket is not None:
            link_socket(sockets / "api", "api.sock", Path(record.api_socket))
        if record.egress_socket is not None:
            link_socket(sockets / "egress", "egress.sock", Path(record.egress_socket))
        cgroup = RunCgroup(
            record.cgroup_version, {c: Path(d) for c, d in record.cgroup_dirs.items()}
        )
        fs = MountedImage(
            Path(record.image),
            Path(record.mount_point),
            size_bytes=record.size_bytes,
            baseline_bytes=record.baseline_bytes,
        )
        resources = RunResources(None, cgroup, fs, self._state / "runs" / run_id)
        budget = self._budget.memory_bytes if self._budget is not None else None
        alive = record.alive()
        logger.info(
            "run %s: adopted from a previous server (%s)",
            run_id,
            f"pid {record.pid} running" if alive else "its process has ended",
        )
        return LocalHandle.adopt(record, resources, self._pool, budget, alive=alive)

    def release_unadopted(self) -> list[str]:
        """Stop and remove the adoptable runs nobody claimed (their runs ended meanwhile)."""
        released = sorted(self._adoptable)
        self._adoptable.clear()
        for run_id in released:
            self._reclaim(self._state / "runs" / run_id)
        if released:
            logger.warning("stopped runs no longer active on the server: %s", ", ".join(released))
        return released

    def reclaim_leftovers(self) -> list[str]:
        """Kill and remove runs left by a previous server process (but adoptable ones)."""
        reclaimed: list[str] = []
        for run_dir in sorted((self._state / "runs").iterdir()):
            if run_dir.name in self._adoptable:
                continue
            self._reclaim(run_dir)
            reclaimed.append(run_dir.name)
        if reclaimed:
            logger.warning("reclaimed runs left by a previous server: %s", ", ".join(reclaimed))
        return reclaimed

    def _reclaim(self, run_dir: Path) -> None:
        # Under the runs' parent, or directly under ours (servers before the parent existed).
        layouts = [self._caps.cgroups, self._tools.cgroups if self._tools else None]
        for layout in filter(None, layouts):
            dirs = {c: d / f"{CGROUP_PREFIX}{run_dir.name}" for c, d in layout.dirs.items()}
            existing = {c: d for c, d in dirs.items() if d.exists()}
            if existing:
                RunCgroup(layout.version, existing).remove()
        fs = run_dir / "fs"
        if fs.is_symlink():
            mount_point = fs.resolve()
            unmount(mount_point)
            if mount_point.suffix == ".mnt":
                shutil.rmtree(mount_point, ignore_errors=True)
                mount_point.with_suffix(".img").unlink(missing_ok=True)
        shutil.rmtree(run_dir, ignore_errors=True)

    def _spawn(
        self,
        spec: SandboxSpec,
        pool: ImagePool,
        slots: SlotPool,
        tools: Tools,
        zygote: Zygote | None = None,
        *,
        hold: bool = False,
    ) -> RunResources:
        """Start ``spec`` in a new sandbox; with ``zygote``, have it fork the run there; with
        ``hold``, a holder waits in it for a zygote's run later (see :meth:`_assign_held`)."""
        run_dir = self._state / "runs" / spec.run_id
        undo = contextlib.ExitStack()
        with undo:
            try:
                run_dir.mkdir(mode=0o700)
            except FileExistsError:
                raise SandboxError(f"run {spec.run_id} already has a sandbox") from None
            undo.callback(shutil.rmtree, run_dir, ignore_errors=True)
            check_sources(spec)
            runtime = self._runtime_view(spec.runtime_dir)
            environment = self._environment_view(spec, runtime)
            slot = slots.take()
            undo.callback(slot.discard)
            cgroup = slot.cgroup
            cgroup.rename(f"{CGROUP_PREFIX}{spec.run_id}")
            forked = zygote is not None or hold
            ours = SANDBOX_PROCESSES + (ZYGOTE_PROCESSES if forked else 0)
            cgroup.apply(spec.limits, extra_pids=ours)
            fs = pool.take(spec.limits.storage_bytes)
            undo.callback(pool.release, fs)
            (run_dir / "fs").symlink_to(fs.mount_point)  # for a restarted server's reclaim
            copy_checkout(spec.workdir_source, fs.work, self._uid, self._gid)
            sockets = self._state / "sockets"
            mounts = _bwrap.Mounts(
                runtime,
                environment,
                fs.work,
                fs.tmp,
                self._etc.path(),
                api_socket_dir=spec.api_socket
                and link_socket(sockets / "api", "api.sock", spec.api_socket),
                egress_socket_dir=spec.egress_proxy_socket
                and link_socket(sockets / "egress", "egress.sock", spec.egress_proxy_socket),
            )
            held = None
            if forked:
                held = HeldFifos.make(fs.tmp, self._uid, self._gid, fallback=not hold)
                undo.callback(held.close)
            env = inside_env(spec.env, mounts.python)
            process = self._exec(spec, mounts, env, slot, fs, run_dir, held=forked)
            undo.callback(cgroup.kill_all)
            resources = RunResources(process, cgroup, fs, run_dir, held=held if hold else None)
            if zygote is not None and held is not None:
                if hold:  # its run's process forked now, to wait for the run's variables
                    held.wait_ready(lambda: process.poll() is None)
                    self._prefork(spec, resources, held, zygote)
                else:
                    self._fork(spec, resources, held, zygote, env)
            undo.pop_all()
            if held is not None and not hold:  # the zygote's child has its own copies
                held.close()
            if STANDBY_VARIABLE not in spec.env and not hold:  # standbys: when a run's
                record_run(spec, process.pid, cgroup, fs, run_dir)
        return resources

    def _exec(
        self,
        spec: SandboxSpec,
        mounts: _bwrap.Mounts,
        env: dict[str, str],
        slot: Slot,
        fs: MountedImage,
        run_dir: Path,
        *,
        held: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Launch the slot into bubblewrap: ``spec``'s command (or a holder), ``env`` given."""
        paths = placeholders(mounts.python)
        argv = [expand(arg, paths) for arg in spec.argv]
        if held:  # a zygote forks the run; the holder stands in for it (see _zygote)
            fifos = [f"{TMP_PATH}/{READY_FIFO}", f"{TMP_PATH}/{EXIT_FIFO}"]
            argv = ["/bin/sh", "-c", HOLDER, "flowyard-hold", *fifos, *argv]
        egress = spec.network is NetworkMode.EGRESS
        prelude = bridge_command(mounts.runtime.python) if egress else None
        files = LaunchFiles(
            run_dir / "bwrap.args", run_dir / "status.json", fs.mount_point / "output.log"
        )
        options = _bwrap.bwrap_options(spec, mounts, status_fd=STATUS_FD)
        files.args.write_bytes(b"".join(os.fsencode(arg) + b"\0" for arg in options))
        slot.launch(files, _bwrap.run_script(env, argv, prelude=prelude))
        return slot.process

    def _runtime_view(self, runtime_dir: Path) -> RuntimeView:
        try:
            key = (runtime_dir, (runtime_dir / "bin" / "python3").stat().st_mtime_ns)
        except OSError:
            raise SandboxError(f"runtime {runtime_dir} has no bin/python3") from None
        with self._views_lock:
            view = self._runtimes.get(key)
            if view is None:
                view = self._runtimes[key] = prepare_runtime(runtime_dir, self._state / "cache")
        return view

    def _environment_view(self, spec: SandboxSpec, runtime: RuntimeView) -> EnvironmentView | None:
        if spec.environment_dir is None:
            return None
        site = spec.environment_dir / "lib" / f"python{runtime.version}" / "site-packages"
        stamp = site.stat().st_mtime_ns if site.exists() else 0
        key = (spec.environment_dir, spec.sdk_dir, stamp)
        with self._views_lock:
            view = self._environments.get(key)
            if view is None:
                view = prepare_environment(
                    spec.environment_dir, runtime, spec.sdk_dir, self._state / "cache"
                )
                self._environments[key] = view
        return view
