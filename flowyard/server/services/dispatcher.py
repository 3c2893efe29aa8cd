"""The managed dispatcher: the platform serves managed pools itself.

It wakes when runs change (an in-process signal at commit, ``LISTEN`` on
PostgreSQL) and otherwise polls slowly as a fallback; claims due runs of
managed pools through ``ops.claims`` (so several dispatchers on one
PostgreSQL never double-start a run); and hands each claimed run to the
execution pipeline as its own task. Host capacity is admission control: past
it (a count of runs, derived from the cores) or while runs use up the host's
memory for runs (see ``flowyard.execution.sandbox._budget``), runs stay
SCHEDULED as ``AwaitingCapacity`` saying why, so a burst cannot take the host
down.

On start it takes back the runs a previous server process left active: strict
runs whose sandbox outlived it are adopted and supervised to their end; the
others are marked CRASHED with the reason (and their compute closed), so
nothing sits in RUNNING forever.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard.execution.jobs import RunJob
from flowyard.execution.pipeline import RunPipeline
from flowyard.schemas.states import StateCreate, StateType
from flowyard.server import signals
from flowyard.server.context import ServerContext
from flowyard.server.db import models as m
from flowyard.server.ops import claims, flow_runs, liveness, usage
from flowyard.server.ops.auth import Principal
from flowyard.server.services.lost_runs import HEARTBEAT_SECONDS

if TYPE_CHECKING:
    from flowyard.execution import sandbox as sb
    from flowyard.execution.egress import EgressProxy

logger = logging.getLogger("flowyard.dispatcher")

POLL_SECONDS = 5.0
AWAITING_CAPACITY = "AwaitingCapacity"


def dispatcher_id(ctx: ServerContext) -> str:
    """Stable per host and data dir, so a restarted server recognises its own runs."""
    return f"{socket.gethostname()}:{ctx.settings.home}"


@dataclass
class Capacity:
    """How many runs this host takes at once (ceilings are not reservations)."""

    max_runs: int
    active: set[uuid.UUID] = field(default_factory=set)

    @property
    def free(self) -> int:
        return max(0, self.max_runs - len(self.active))


def host_capacity(ctx: ServerContext) -> int:
    cpus = ctx.settings.host_cpus or float(os.cpu_count() or 1)
    # Runs are mostly I/O-bound orchestration code: overcommit CPU 8x by default.
    return max(1, int(cpus * 8))


async def _job_for(
    ctx: ServerContext, run_id: uuid.UUID, claimed_at: float | None = None
) -> RunJob | None:
    async with ctx.db.lookup_session() as session:
        run = await session.get(m.FlowRun, run_id)
        if run is None:
            return None
        return _job_of(*await _run_with_sources(session, run), claimed_at)


async def _run_with_sources(
    session: AsyncSession, run: m.FlowRun
) -> tuple[m.FlowRun, m.Deployment | None, m.WorkPool | None]:
    """The run, its deployment and its pool (from the session's own, when it read them)."""
    dep = await session.get(m.Deployment, run.deployment_id) if run.deployment_id else None
    pool = await session.get(m.WorkPool, run.work_pool_id) if run.work_pool_id else None
    return run, dep, pool


def _job_of(
    run: m.FlowRun, dep: m.Deployment | None, pool: m.WorkPool | None, claimed_at: float | None
) -> RunJob | None:
    if run.deployment_id is None or dep is None:
        return None
    return RunJob(
        run_id=run.id,
        workspace_id=run.workspace_id,
        flow_name=dep.flow_name,
        deployment_name=dep.name,
        entrypoint=dep.entrypoint,
        source=dict(dep.source),
        job_variables=dict(run.job_variables),
        isolation=pool.isolation if pool else "strict",
        pull_steps=tuple(dep.pull_steps),
        parameters=dict(run.parameters),
        claimed_at=claimed_at,
        created_at=_monotonic_of(run.created),
        run_name=run.name,
        deployment_id=run.deployment_id,
    )


def _monotonic_of(moment: datetime) -> float:
    """``moment`` (UTC) on the ``time.monotonic()`` scale."""
    return time.monotonic() - (datetime.now(UTC) - moment).total_seconds()


def no_pressure() -> str | None:
    return None


class Dispatcher:
    """Claims due runs of managed pools and executes each; ``pressure`` says why to hold back."""

    def __init__(
        self,
        ctx: ServerContext,
        pipeline: RunPipeline,
        *,
        max_runs: int,
        pressure: Callable[[], str | None] = no_pressure,
    ) -> None:
        self.ctx = ctx
        self.pipeline = pipeline
        self.id = dispatcher_id(ctx)
        self.capacity = Capacity(max_runs=max_runs)
        self.pressure = pressure
        self.tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    async def serve(self) -> None:
        waiter = signals.subscribe()
        listener = await self._listen()
        beating = asyncio.create_task(self._heartbeats(), name="dispatcher-heartbeats")
        try:
            await self.recover()
            while True:
                waiter.clear()
                self._wake.clear()
                await self.dispatch_once()
                sleepers = [
                    asyncio.ensure_future(waiter.wait()),
                    asyncio.ensure_future(self._wake.wait()),
                ]
                await asyncio.wait(
                    sleepers, timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                for s in sleepers:
                    s.cancel()
        finally:
            beating.cancel()
            signals.unsubscribe(waiter)
            if listener is not None:
                await listener.close()
            for task in self.tasks:
                task.cancel()

    async def _heartbeats(self) -> None:
        """Keep the runs this dispatcher supervises alive in the database (see liveness)."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            active = list(self.capacity.active)
            if not active:
                continue
            try:
                async with self.ctx.db.session() as session:
                    await liveness.beat(session, active, datetime.now(UTC), dispatcher_id=self.id)
            except Exception:
                logger.exception("heartbeat for %d runs failed; retrying", len(active))

    async def _listen(self) -> Any:
        """LISTEN on PostgreSQL so claims by other replicas' writes wake us too."""
        if self.ctx.db.dialect != "postgresql":
            return None
        import asyncpg

        url = self.ctx.db.url.replace("postgresql+asyncpg://", "postgresql://")
        try:
            conn = await asyncpg.connect(url)
        except (OSError, asyncpg.PostgresError):
            logger.warning("LISTEN unavailable; falling back to polling every %s s", POLL_SECONDS)
            return None
        await conn.add_listener(signals.CHANNEL, lambda *_: self._wake.set())
        return conn

    async def dispatch_once(self) -> int:
        """Claim what capacity allows and start each run. Returns how many started."""
        started = 0
        async with self.ctx.db.lookup_session() as session:
            pool_ids = await claims.pools_with_due_runs(session)
        for pool_id in pool_ids:
            free = self.capacity.free
            held = (
                None if free else f"host capacity reached ({len(self.capacity.active)} runs active)"
            )
            held = held or self.pressure()
            if held is not None:
                for waiting in pool_ids[pool_ids.index(pool_id) :]:
                    await self._mark_over_capacity(waiting, held)
                break
            claimed_at = time.monotonic()
            async with self.ctx.db.session() as session:
                result = await claims.claim_runs(session, pool_id, self.id, limit=free)
                # The claim read each run's deployment and pool: its job needs no read of its own.
                claimed = [await _run_with_sources(session, run) for run in result.claimed]
            for run, dep, pool in claimed:
                self._start(run.id, claimed_at=claimed_at, job=_job_of(run, dep, pool, claimed_at))
                started += 1
        return started

    async def _mark_over_capacity(self, pool_id: uuid.UUID, why: str) -> None:
        reason = f"{why}; queued until it frees"
        now = datetime.now(UTC)
        query = (
            claims.due_runs(pool_id, now)
            .where(
                or_(
                    m.FlowRun.state_name.is_distinct_from(AWAITING_CAPACITY),
                    m.FlowRun.state_message.is_distinct_from(reason),
                ),
            )
            .limit(100)
        )
        # Woken by every change while the host is full: most times every waiting run
        # already says why, and a read (which blocks no writer) finds that out.
        async with self.ctx.db.lookup_session() as session:
            if (await session.execute(query.with_only_columns(m.FlowRun.id))).first() is None:
                return
        async with self.ctx.db.session() as session:
            for run in (await session.execute(query)).scalars():
                await flow_runs.mark_waiting(session, run, AWAITING_CAPACITY, reason, now)

    def _start(
        self,
        run_id: uuid.UUID,
        adopted: sb.SandboxHandle | None = None,
        *,
        claimed_at: float | None = None,
        job: RunJob | None = None,
    ) -> None:
        self.capacity.active.add(run_id)
        task = asyncio.create_task(
            self._execute(run_id, adopted, claimed_at, job), name=f"run-{run_id}"
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _execute(
        self,
        run_id: uuid.UUID,
        adopted: sb.SandboxHandle | None = None,
        claimed_at: float | None = None,
        job: RunJob | None = None,
    ) -> None:
        try:
            job = job or await _job_for(self.ctx, run_id, claimed_at)
            if job is not None:
                self.pipeline.recorder.knows(job.run_id, job.workspace_id)
            if job is not None and adopted is not None:
                await self.pipeline.resume(job, adopted)
            elif job is not None:
                await self.pipeline.execute(job)
            elif adopted is not None:  # the run was deleted meanwhile: stop what is left
                adopted.kill()
                await adopted.wait()
        except Exception:
            logger.exception("run %s: dispatcher task failed", run_id)
        finally:
            self.capacity.active.discard(run_id)
            self._wake.set()  # capacity freed: look for more work

    async def recover(self) -> None:
        """Take back the runs a previous server process of this host left active.

        A strict run whose sandbox outlived that process is adopted: supervised
        again to its end, its deadline counted from its first start (a run that
        ended meanwhile is recorded as it ended). The others (still being
        prepared, or isolated with ``none``) are CRASHED with the reason, so
        nothing stays RUNNING; leftover sandboxes of runs no longer active stop.
        """
        strict: sb.Sandbox | None
        try:
            # Probing the host and preparing disk images takes a while: not on the loop.
            strict = await asyncio.to_thread(self.pipeline.sandbox_for, "strict")
        except Exception as exc:
            strict = None
            logger.warning(
                "strict isolation unavailable; managed runs in strict pools will crash "
                "with the reason: %s",
                exc,
            )
        active = [t.value for t in (StateType.PENDING, StateType.RUNNING, StateType.CANCELLING)]
        async with self.ctx.db.session() as session:
            query = select(m.FlowRun.id).where(
                m.FlowRun.dispatcher_id == self.id, m.FlowRun.state_type.in_(active)
            )
            run_ids = list((await session.execute(query)).scalars())
        lost: list[uuid.UUID] = []
        for run_id in run_ids:
            handle = await strict.adopt(run_id.hex) if strict is not None else None
            if handle is None:
                lost.append(run_id)
            else:
                self._start(run_id, handle)
        if strict is not None:
            await asyncio.to_thread(strict.release_unadopted)
        if lost:
            await self._crash_lost(lost)

    async def _crash_lost(self, run_ids: list[uuid.UUID]) -> None:
        async with self.ctx.db.session() as session:
            for run_id in run_ids:
                run = await session.get(m.FlowRun, run_id)
                if run is None:
                    continue
                if run.state_type == StateType.PENDING.value:
                    reason = "the server restarted while the run was being prepared"
                else:
                    reason = "the server restarted and the run's sandbox did not survive it"
                principal = Principal(workspace_id=run.workspace_id, kind="api_key", is_admin=True)
                await flow_runs.set_state(
                    session, principal, run.id, StateCreate(type=StateType.CRASHED, message=reason)
                )
                run.crash_reason = reason
                now = datetime.now(UTC)
                await usage.close_record(session, run, now)
                await liveness.end_orphans(session, run, now)
                logger.warning("run %s: %s", run.id, reason)


def build_pipeline(
    ctx: ServerContext,
    sandboxes: dict[str, sb.Sandbox] | None = None,
    egress: EgressProxy | None = None,
) -> RunPipeline:
    """The execution plane with this server's settings: local sandboxes, uv, git.

    ``sandboxes`` receives the sandboxes as they are built, so that the caller
    can close them (unmounting their spare disk images) when it stops.
    ``egress`` is the running egress proxy for runs with network ``egress``.
    """
    from flowyard.execution import sandbox as sb
    from flowyard.execution.environments import EnvironmentBuilder, IndexSettings, RuntimeRegistry
    from flowyard.execution.pipeline import ExecutionConfig
    from flowyard.server.services._recorder import DbRecorder

    settings = ctx.settings
    cache = settings.home / "cache"
    if sandboxes is None:
        sandboxes = {}

    def sandbox_for(isolation: str) -> sb.Sandbox:
        # Built on first use: strict isolation raises IsolationUnavailable here, with
        # what the host lacks, and the run is CRASHED with that message.
        if isolation not in sandboxes:
            mode: sb.Isolation = "none" if isolation == "none" else "strict"
            state = cache / f"sandbox-{mode}"
            state.mkdir(parents=True, exist_ok=True)
            sandboxes[isolation] = sb.LocalSandbox(
                state, isolation=mode, runs_memory_bytes=settings.host_memory_bytes or None
            )
        return sandboxes[isolation]

    index = IndexSettings(
        index_url=settings.pip_index_url or None,
        extra_index_urls=tuple(settings.pip_extra_index_urls),
    )
    return RunPipeline(
        ExecutionConfig(
            cache_dir=cache,
            api_socket=settings.effective_api_socket,
            allow_local_sources=settings.allow_local_sources,
        ),
        DbRecorder(ctx),
        sandbox_for,
        EnvironmentBuilder(cache / "environments", index=index),
        RuntimeRegistry.from_settings(settings.runtimes),
        egress=egress,
    )


def _pressure_of(sandboxes: dict[str, sb.Sandbox]) -> Callable[[], str | None]:
    """Memory admission over this server's sandboxes (the host's alone before the first)."""
    from flowyard.execution.sandbox import memory_pressure

    def pressure() -> str | None:
        for sandbox in list(sandboxes.values()):
            reason = sandbox.pressure()
            if reason is not None:
                return reason
        return memory_pressure(None) if not sandboxes else None

    return pressure


async def start_egress_proxy(ctx: ServerContext) -> EgressProxy | None:
    """The egress proxy of this server's settings, listening; ``None`` (and why, logged) if not.

    A bad egress setting costs only the runs that ask for egress (they crash
    saying the proxy is not running), not every managed run.
    """
    from flowyard.errors import ConfigurationError
    from flowyard.execution import sandbox as sb
    from flowyard.execution.egress import EgressProxy

    try:
        proxy = EgressProxy.from_settings(ctx.settings, identify=sb.LocalSandbox.run_of_process)
        await proxy.start()
    except (ConfigurationError, OSError) as exc:
        logger.error("egress proxy not started, runs with network 'egress' will crash: %s", exc)
        return None
    return proxy


async def dispatcher_service(ctx: ServerContext) -> None:
    """The service ``flowyard server start`` runs (unless --no-dispatcher)."""
    sandboxes: dict[str, sb.Sandbox] = {}
    egress = await start_egress_proxy(ctx)
    try:
        # Off the event loop: the API answers while the execution plane loads.
        pipeline = await asyncio.to_thread(build_pipeline, ctx, sandboxes, egress)
        dispatcher = Dispatcher(
            ctx, pipeline, max_runs=host_capacity(ctx), pressure=_pressure_of(sandboxes)
        )
        logger.info(
            "managed dispatcher %s on (capacity %d runs)",
            dispatcher.id,
            dispatcher.capacity.max_runs,
        )
        try:
            await dispatcher.serve()
        finally:
            await pipeline.recorder.flush()  # stage lines of runs still going
    finally:
        try:
            for sandbox in sandboxes.values():
                close = getattr(sandbox, "close", None)
                if close is not None:
                    await asyncio.to_thread(close)
        finally:  # cancelled meanwhile (a stop with a deadline): still stop listening
            if egress is not None:
                await egress.close()
