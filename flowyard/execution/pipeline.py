"""One managed run, from claim to teardown.

Stages, each logged on the run with its duration so PENDING never sits
silent: source (clone or download, commit recorded), pull steps, environment
(cached or built with uv), sandbox start. Then the runner inside the sandbox
reports RUNNING and the flow's own states and logs; the pipeline waits for
the process, watches for cancellation, and on exit records telemetry, marks
the run CRASHED with the reason if the runner did not finish it, and closes
the usage record (teardown).

Failures are classified: a bad source, entrypoint or requirement is the
user's input (FAILED with the message); the host failing to provide
isolation or the sandbox dying is infrastructure (CRASHED with the reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from flowyard.errors import FlowyardError
from flowyard.execution import sandbox as sb
from flowyard.execution import sources, steps
from flowyard.execution.environments import (
    EnvironmentBuilder,
    EnvironmentBuildError,
    RequirementError,
    RuntimeRegistry,
    UnknownRuntimeError,
    read_requirements_file,
)
from flowyard.execution.jobs import RunJob, RunRecorder
from flowyard.schemas.flow_runs import ExecutionReport
from flowyard.schemas.states import StateCreate, StateType

if TYPE_CHECKING:
    from flowyard.execution.egress import EgressProxy

logger = logging.getLogger("flowyard.execution")

GIB = 1024**3
CANCEL_GRACE_SECONDS = 10.0
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
# A run's own local services (a test server it starts, say) are not the proxy's business.
NO_PROXY = "localhost,127.0.0.1,::1"
# Past this, the runner reads its run from the API (a variable must fit an exec's limits).
RUN_CONTEXT_MAX_BYTES = 32 * 1024


class UserInputError(FlowyardError):
    """The deployment's source, steps or requirements are wrong: the run FAILS."""


class InfrastructureError(FlowyardError):
    """The platform could not provide what the run needs: the run CRASHES."""


@dataclass(frozen=True)
class ExecutionConfig:
    cache_dir: Path
    api_socket: Path
    allow_local_sources: bool = False
    cancel_poll_seconds: float = 0.5


@dataclass
class Prepared:
    workdir: Path
    working_directory: PurePosixPath
    commit: str | None
    environment: Any  # ReadyEnvironment, held leased while the run lives
    env_context: Any  # the acquire() context manager to release at teardown


def _fresh_since(job: RunJob, started: float) -> float:
    """The moment (monotonic) after which what the remote said is new enough for ``job``."""
    known = [t for t in (job.created_at, job.claimed_at) if t is not None]
    return min(known) if known else started


class RunPipeline:
    def __init__(
        self,
        config: ExecutionConfig,
        recorder: RunRecorder,
        sandbox_for: Callable[[str], sb.Sandbox],
        environments: EnvironmentBuilder,
        runtimes: RuntimeRegistry,
        *,
        egress: EgressProxy | None = None,
    ) -> None:
        self.config = config
        self.recorder = recorder
        self.sandbox_for = sandbox_for
        self.environments = environments
        self.runtimes = runtimes
        # The server's egress proxy, where runs with network "egress" go out; None: no egress.
        self.egress = egress
        # Runs being supervised: set when a cancel is requested (one watcher reads for all).
        self._cancel_events: dict[uuid.UUID, asyncio.Event] = {}
        self._cancel_watcher: asyncio.Task[None] | None = None

    async def execute(self, job: RunJob) -> None:
        """Run ``job`` to its end. Never raises: every failure ends up on the run."""
        started = time.monotonic()
        held = contextlib.ExitStack()  # the run's code: a scratch dir, or a leased cached tree
        env_ctx = None
        try:
            await self._log(job, f"preparing compute for {job.full_name}")
            prepared = await self._prepare(job, held, started)
            env_ctx = prepared.env_context
            await self._run(job, prepared, started)
        except UserInputError as exc:
            await self._finish(job, StateType.FAILED, str(exc), started)
        except InfrastructureError as exc:
            await self._finish(job, StateType.CRASHED, str(exc), started)
        except asyncio.CancelledError:
            # The dispatcher is shutting down: leave the run to be re-adopted or crashed
            # on the next start; never mark it here.
            raise
        except Exception as exc:
            logger.exception("run %s: unexpected error in the execution pipeline", job.run_id)
            await self._finish(job, StateType.CRASHED, f"execution pipeline error: {exc}", started)
        finally:
            if env_ctx is not None:
                await env_ctx.__aexit__(None, None, None)
            held.close()

    async def resume(self, job: RunJob, handle: sb.SandboxHandle) -> None:
        """Supervise to its end a run a previous server process started. Never raises."""
        try:
            running_for = handle.stats().wall_seconds
            started = time.monotonic() - running_for
            if handle.pid:
                await self._log(
                    job,
                    f"the server restarted; supervising the run again (its process {handle.pid} "
                    f"has run {running_for:.1f} s)",
                )
                await self.recorder.report(job.run_id, ExecutionReport(process_id=handle.pid))
            else:
                await self._log(
                    job, "the server restarted; the run's process ended while it was down"
                )
            egress = job.job_variables.get("network") == sb.NetworkMode.EGRESS.value
            with contextlib.ExitStack() as held:
                if handle.environment_dir is not None:  # eviction must not remove it meanwhile
                    lease = self.environments.lease(handle.environment_dir.name)
                    await asyncio.to_thread(held.enter_context, lease)
                await self._supervise(job, handle, started, egress=egress)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("run %s: unexpected error supervising an adopted run", job.run_id)
            await self._finish(
                job, StateType.CRASHED, f"execution pipeline error: {exc}", time.monotonic()
            )

    def _scratch(self, job: RunJob, held: contextlib.ExitStack) -> Path:
        """A new directory for ``job``'s code, removed when ``held`` closes."""
        runs = self.config.cache_dir / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"run-{job.run_id.hex[:8]}-", dir=runs))
        held.callback(shutil.rmtree, scratch, ignore_errors=True)
        return scratch / "code"

    async def _log(self, job: RunJob, message: str, level: int = logging.INFO) -> None:
        await self.recorder.log(job.run_id, message, level=level)

    # -- preparing ---------------------------------------------------------------------

    async def _prepare(self, job: RunJob, held: contextlib.ExitStack, started: float) -> Prepared:
        plan = self._pull_plan(job)
        code, fetched = await self._fetch(job, plan, held, started)
        commit = fetched.revision if fetched else None
        if fetched is not None:
            await self._log(job, fetched.summary())
            await self.recorder.report(job.run_id, ExecutionReport(resolved_commit=commit))
        workdir = plan.working_directory
        try:
            file, _function = sources.resolve_entrypoint(code / workdir, job.entrypoint)
        except sources.SourceError as exc:
            raise UserInputError(f"entrypoint {job.entrypoint!r}: {exc}") from None
        if not file.is_file():
            raise UserInputError(
                f"entrypoint {job.entrypoint!r}: no such file in the source"
                + (f" at {commit[:7]}" if commit else "")
            )
        requirements = list(job.job_variables.get("pip_packages") or [])
        req_files = [*plan.requirements_files]
        if job.job_variables.get("requirements_file"):
            req_files.append(PurePosixPath(str(job.job_variables["requirements_file"])))
        for req in req_files:
            try:
                path = sources.resolve_within(code / workdir, str(req))
                requirements += read_requirements_file(path)
            except (sources.SourceError, RequirementError, OSError) as exc:
                raise UserInputError(f"requirements file {str(req)!r}: {exc}") from None
        try:
            runtime = self.runtimes.resolve(job.job_variables.get("runtime"))
        except UnknownRuntimeError as exc:
            raise UserInputError(str(exc)) from None
        if requirements:
            await self._log(
                job, f"preparing environment on {runtime.name}: {', '.join(requirements)}"
            )
        env_ctx = self.environments.acquire(runtime, requirements)
        try:
            ready = await env_ctx.__aenter__()
        except (EnvironmentBuildError, RequirementError) as exc:
            raise UserInputError(f"environment build failed: {exc}") from None
        await self._log(job, ready.summary())
        return Prepared(code, workdir, commit, ready, env_ctx)

    def _pull_plan(self, job: RunJob) -> steps.PullPlan:
        try:
            return steps.parse_pull_steps(list(job.pull_steps))
        except steps.PullStepError as exc:
            raise UserInputError(str(exc)) from None

    async def _fetch(
        self, job: RunJob, plan: steps.PullPlan, held: contextlib.ExitStack, started: float
    ) -> tuple[Path, sources.FetchedSource | None]:
        """The run's code and what was fetched. A git commit is read where its cache
        holds it, leased until ``held`` closes; other sources are copied into a scratch
        dir ``held`` removes."""
        spec: Mapping[str, Any] = job.source
        clone = plan.clone
        cache = self.config.cache_dir / "sources"
        try:
            if clone is not None or spec.get("kind") == "git":
                url = clone.repository if clone is not None else str(spec["url"])
                ref = (
                    (clone.ref if clone is not None else None)
                    or spec.get("commit")
                    or spec.get("tag")
                    or spec.get("branch")
                )
                secret_name = spec.get("credentials_secret")
                token = clone.access_token if clone is not None else None
                if clone is not None and clone.credentials is not None:
                    secret_name = clone.credentials.name
                if secret_name and token is None:
                    token = await self._secret(job, str(secret_name))
                source: sources.Source = sources.GitSource(
                    url,
                    cache_dir=cache,
                    ref=ref,
                    token=token,
                    allow_local=self.config.allow_local_sources,
                    # Runs of one ref ask the remote once: a resolution begun after this
                    # run was created is as new as its own.
                    shared_after=_fresh_since(job, started),
                )
            elif spec.get("kind") == "storage":
                options = dict(spec.get("options") or {})
                if spec.get("credentials_secret"):
                    options.update(
                        await self._storage_credentials(job, str(spec["credentials_secret"]))
                    )
                source = sources.StorageSource(
                    str(spec["url"]),
                    cache_dir=cache,
                    storage_options=options,
                    allow_local=self.config.allow_local_sources,
                )
            elif spec.get("kind") == "local":
                if not self.config.allow_local_sources:
                    raise UserInputError(
                        "a local directory is refused: this server no longer allows local "
                        "sources (FLOWYARD_ALLOW_LOCAL_SOURCES)"
                    )
                dest = self._scratch(job, held)
                shutil.copytree(Path(str(spec["path"])), dest, symlinks=True)
                return dest, None
            else:
                raise UserInputError("the deployment has no source to run from")
            if isinstance(source, sources.GitSource):
                fetched = await source.lease()
                if fetched.release is not None:
                    held.callback(fetched.release)
                return fetched.path, fetched
            dest = self._scratch(job, held)
            return dest, await source.fetch(dest)
        except sources.SourceError as exc:
            raise UserInputError(f"source: {exc}") from None

    async def _secret(self, job: RunJob, name: str) -> str:
        try:
            return await self.recorder.secret(job.workspace_id, name)
        except LookupError:
            raise UserInputError(
                f"source: secret {name!r} does not exist in this workspace; "
                f"create it with `flowyard secret set {name}`"
            ) from None

    async def _storage_credentials(self, job: RunJob, name: str) -> dict[str, Any]:
        """A storage source's secret: a JSON object of fsspec options (key, secret, ...)."""
        import json

        value = await self._secret(job, name)
        try:
            options = json.loads(value)
        except ValueError:
            options = None
        if not isinstance(options, dict):
            raise UserInputError(
                f"source: secret {name!r} must hold a JSON object of storage options, "
                'e.g. {"key": "...", "secret": "..."} for S3'
            )
        return options

    # -- running -------------------------------------------------------------------------

    def _spec(self, job: RunJob, prepared: Prepared, token: str) -> sb.SandboxSpec:
        jv = job.job_variables
        ready = prepared.environment
        runtime_dir = Path(ready.python).resolve().parent.parent
        env = {str(k): str(v) for k, v in (jv.get("env") or {}).items()}
        env.update(
            {
                "FLOWYARD_API_URL": f"unix://{sb.Placeholder.API_SOCKET.value}",
                "FLOWYARD_API_KEY": token,
                "FLOWYARD_RUN_ID": str(job.run_id),
                "FLOWYARD_ENTRYPOINT": job.entrypoint,
                "FLOWYARD_WORKING_DIRECTORY": str(prepared.working_directory),
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        context = _run_context(job)
        if context is not None:
            env["FLOWYARD_RUN_CONTEXT"] = context
        try:
            network = sb.NetworkMode(str(jv.get("network", "none")))
        except ValueError:
            raise UserInputError(
                f"job variables: network must be 'none' or 'egress', not {jv.get('network')!r}"
            ) from None
        egress_socket = None
        if network is sb.NetworkMode.EGRESS:
            if self.egress is None:
                raise InfrastructureError(
                    "network 'egress' is unavailable: this server's egress proxy is not running "
                    "(its log says why)"
                )
            egress_socket = self.egress.socket_path
            for name in PROXY_VARIABLES:
                env.setdefault(name, sb.Placeholder.EGRESS_PROXY.value)
            env.setdefault("NO_PROXY", NO_PROXY)
            env.setdefault("no_proxy", NO_PROXY)
        limits = sb.Limits(
            cpus=float(jv.get("cpu", 4.0)),
            memory_bytes=int(float(jv.get("memory_gib", 16.0)) * GIB),
            storage_bytes=int(float(jv.get("storage_gib", 128.0)) * GIB),
            max_run_seconds=float(jv.get("max_run_seconds", 86400)),
        )
        return sb.SandboxSpec(
            run_id=job.run_id.hex,
            argv=[sb.Placeholder.PYTHON.value, "-m", "flowyard.execution.runner"],
            runtime_dir=runtime_dir,
            env=env,
            environment_dir=Path(ready.path),
            sdk_dir=Path(ready.sdk_path),
            workdir_source=prepared.workdir,
            api_socket=self.config.api_socket,
            network=network,
            egress_proxy_socket=egress_socket,
            limits=limits,
            standby=True,  # the runner can start ahead of its run (see runner._stand_by)
        )

    async def _run(self, job: RunJob, prepared: Prepared, started: float) -> None:
        token = await self.recorder.run_token(job.run_id)
        spec = self._spec(job, prepared, token)
        t0 = time.monotonic()
        try:
            sandbox = self.sandbox_for(job.isolation)
            handle = await sandbox.start(spec)
        except sb.InvalidSandboxSpec as exc:
            raise UserInputError(f"job variables: {exc}") from None
        except sb.SandboxError as exc:
            raise InfrastructureError(f"sandbox could not start: {exc}") from None
        await self._log(job, f"sandbox started in {time.monotonic() - t0:.2f} s")
        if spec.egress_proxy_socket is not None and self.egress is not None:
            await self._log(
                job, f"network: egress through the server's proxy; {self.egress.describe()}"
            )
        await self.recorder.report(
            job.run_id,
            ExecutionReport(
                backend=f"local ({sandbox.isolation} isolation)",
                sandbox_id=spec.run_id,
                process_id=handle.pid,
            ),
        )
        await self._supervise(job, handle, started, egress=spec.egress_proxy_socket is not None)

    async def _supervise(
        self, job: RunJob, handle: sb.SandboxHandle, started: float, *, egress: bool
    ) -> None:
        """From a started (or adopted) sandbox to the run's recorded end."""
        watcher = asyncio.create_task(self._watch_cancellation(job, handle))
        try:
            result = await handle.wait()
        finally:
            watcher.cancel()
        if egress and self.egress is not None:
            usage = self.egress.take_usage(job.run_id.hex)
            await self._log(
                job, usage.summary(), logging.WARNING if usage.refused else logging.INFO
            )
        await self._after_exit(job, handle, result, started)

    async def _watch_cancellation(self, job: RunJob, handle: sb.SandboxHandle) -> None:
        requested = self._cancel_events[job.run_id] = asyncio.Event()
        if self._cancel_watcher is None or self._cancel_watcher.done():
            self._cancel_watcher = asyncio.create_task(self._watch_cancel_requests())
        try:
            await requested.wait()
        finally:
            self._cancel_events.pop(job.run_id, None)
        await self._log(job, "cancel requested: stopping the run's processes")
        handle.terminate(CANCEL_GRACE_SECONDS)

    async def _watch_cancel_requests(self) -> None:
        """One read per interval for every supervised run, not one per run."""
        while self._cancel_events:
            await asyncio.sleep(self.config.cancel_poll_seconds)
            watched = list(self._cancel_events)
            try:
                requested = await self.recorder.cancel_requested(watched)
            except Exception:  # the database is away for a moment: read again next time
                logger.warning("could not read cancel requests", exc_info=True)
                continue
            for run_id in requested:
                event = self._cancel_events.get(run_id)
                if event is not None:
                    event.set()

    async def _after_exit(
        self, job: RunJob, handle: sb.SandboxHandle, result: sb.SandboxResult, started: float
    ) -> None:
        state = await self.recorder.current_state(job.run_id)
        report = ExecutionReport(
            exit_code=result.exit_code,
            peak_memory_bytes=result.peak_memory_bytes,
            peak_storage_bytes=result.peak_storage_bytes,
            cpu_seconds=result.cpu_seconds,
            crash_reason=result.crash_reason if not state.is_terminal else None,
        )
        if state is StateType.CANCELLING:
            await self.recorder.set_state(
                job.run_id, StateCreate(type=StateType.CANCELLED, message="cancelled on request")
            )
        elif not state.is_terminal:
            reason = result.crash_reason or (
                f"the run's process exited with code {result.exit_code} "
                "without reporting a final state"
            )
            await self._tail_output(job, handle)
            await self.recorder.set_state(
                job.run_id, StateCreate(type=StateType.CRASHED, message=reason)
            )
            report = report.model_copy(update={"crash_reason": reason})
        # Logged first, so the line is written with the teardown, in its transaction.
        await self._log(job, f"compute released after {time.monotonic() - started:.2f} s")
        await self.recorder.report(job.run_id, report, teardown=True)

    async def _tail_output(self, job: RunJob, handle: sb.SandboxHandle) -> None:
        """A crashed run's last output is often the only clue: keep it as logs."""
        try:
            data = handle.read_output(0, 1 << 20)
        except Exception:
            logger.exception("run %s: could not read the sandbox output", job.run_id)
            return
        lines = data.decode(errors="replace").splitlines()[-200:]
        if lines:
            await self._log(job, "process output (last lines):\n" + "\n".join(lines), logging.ERROR)

    async def _finish(self, job: RunJob, state: StateType, message: str, started: float) -> None:
        try:
            level = logging.ERROR
            await self._log(job, message, level)
            await self.recorder.set_state(job.run_id, StateCreate(type=state, message=message))
            await self.recorder.report(
                job.run_id,
                ExecutionReport(crash_reason=message if state is StateType.CRASHED else None),
                teardown=True,
            )
        except Exception:
            logger.exception("run %s: could not record its end (%s)", job.run_id, message)


def _run_context(job: RunJob) -> str | None:
    """What the runner would otherwise read from the API first: its run's name and parameters.

    ``None`` when unknown or too large for an environment variable; the runner
    then asks the API.
    """
    if job.run_name is None:
        return None
    import json

    text = json.dumps(
        {
            "name": job.run_name,
            "parameters": dict(job.parameters),
            "deployment_id": str(job.deployment_id) if job.deployment_id else None,
            "deployment_name": job.deployment_name,
        },
        separators=(",", ":"),
        default=str,
    )
    return text if len(text.encode()) <= RUN_CONTEXT_MAX_BYTES else None
