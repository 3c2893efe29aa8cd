"""The SDK's deployments on a server: ``flow.deploy()``, ``run_deployment()``, ``flow.serve()``.

Loaded when the SDK first deploys, runs or serves a deployment (see
:func:`flowyard.client.sdk_integration.install`), not when a flow run starts:
a managed run never needs it.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowyard.client._errors import ClientError, NotFoundError
from flowyard.client._report_wire import jsonable
from flowyard.client._reporter import HEARTBEAT_SECONDS, TERMINAL
from flowyard.client.sdk_integration import ServerBacked
from flowyard.sdk._deployments import (
    DeploymentRef,
    DeploymentSpec,
    RunDeploymentRequest,
    ServedDeployment,
)
from flowyard.sdk._errors import SDKError
from flowyard.sdk._runs import FlowRun
from flowyard.sdk._secrets import Secret
from flowyard.sdk._states import State, StateType

if TYPE_CHECKING:
    from flowyard.client._sync import SyncClient
    from flowyard.schemas import deployments as dep
    from flowyard.schemas import flow_runs as fr

logger = logging.getLogger("flowyard.sdk.server")


def _source(
    spec: DeploymentSpec, client: SyncClient
) -> dep.GitSourceSpec | dep.StorageSourceSpec | dep.LocalSourceSpec:
    from flowyard.schemas import deployments as dep

    source = spec.source
    if source is None:  # apply_spec refuses these before they get here
        raise SDKError(f"deployment {spec.full_name!r} has no source")
    if source.kind == "git":
        return dep.GitSourceSpec(
            url=source.url,
            branch=source.branch,
            commit=source.commit,
            credentials_secret=_git_token_secret(spec, client),
        )
    if source.kind == "storage":
        return dep.StorageSourceSpec(
            url=source.url,
            credentials_secret=_storage_secret(spec, client),
            options=jsonable(source.options),
        )
    # A directory on this machine: the server runs it in place if its operator allows local
    # sources (a server on this same machine, in development), and refuses it otherwise.
    return dep.LocalSourceSpec(path=source.url)


def _reveal(value: object) -> str:
    return value.get() if isinstance(value, Secret) else str(value)


def _git_token_secret(spec: DeploymentSpec, client: SyncClient) -> str | None:
    """The name of the secret holding the repository's token, storing a plain one first."""
    credentials = spec.source.credentials if spec.source else None
    if not credentials:
        return None
    token = next(
        (credentials[k] for k in ("access_token", "token", "password") if k in credentials),
        next(iter(credentials.values())),
    )
    if isinstance(token, Secret) and token.name:
        return token.name  # already on the server: the run reads it there
    name = f"source-token-{spec.flow_name}-{spec.name}"[:255]
    client.set_secret(name, _reveal(token))
    return name


def _storage_secret(spec: DeploymentSpec, client: SyncClient) -> str | None:
    """Storage credentials, kept as one JSON secret of fsspec options."""
    import json

    credentials = spec.source.credentials if spec.source else None
    if not credentials:
        return None
    name = f"source-credentials-{spec.flow_name}-{spec.name}"[:255]
    client.set_secret(name, json.dumps({k: _reveal(v) for k, v in credentials.items()}))
    return name


def _with_source_description(spec: DeploymentSpec) -> DeploymentSpec:
    """Fill a remote flow's real name, description and parameter schema from its source.

    Like Prefect, the deployer fetches the code once (git or object storage,
    with the deployment's credentials) and reads the flow's signature, so that
    runs can be checked and forms drawn before any run. The module is parsed,
    not imported. If the code cannot be fetched from here, the deployment is
    sent without a schema and a warning says so.
    """
    import dataclasses

    from flowyard.sdk._schema import describe_flow_source

    source = spec.source
    if source is None or source.kind == "local" or spec.parameter_schema or not spec.entrypoint:
        return spec
    path, _, function = spec.entrypoint.rpartition(":")
    try:
        text = _fetch_source_file(source, path)
    except Exception as exc:
        logger.warning(
            "Could not read %s from %s here (%s); deploying %s without a parameter schema",
            path,
            source.url,
            exc,
            spec.full_name,
        )
        return spec
    described = describe_flow_source(text, function.rpartition(".")[2])
    if described is None:
        raise SDKError(
            f"entrypoint {spec.entrypoint!r}: {path} in {source.url} has no top-level "
            f"function {function!r}"
        )
    return dataclasses.replace(
        spec,
        flow_name=described.flow_name or spec.flow_name,
        parameter_schema=described.parameter_schema,
        description=spec.description or described.description,
    )


def _fetch_source_file(source: Any, path: str) -> str:
    """One file of a git or storage source, fetched into a temporary directory."""
    import asyncio
    import concurrent.futures
    import tempfile

    from flowyard.execution import sources

    with tempfile.TemporaryDirectory(prefix="flowyard-deploy-") as tmp:
        root = Path(tmp)
        credentials = {k: _reveal(v) for k, v in (source.credentials or {}).items()}
        fetcher: sources.Source
        if source.kind == "git":
            token = next(
                (credentials[k] for k in ("access_token", "token", "password") if k in credentials),
                next(iter(credentials.values()), None),
            )
            fetcher = sources.GitSource(
                source.url,
                cache_dir=root / "cache",
                ref=source.commit or source.branch,
                token=token,
                allow_local=True,
                timeout_seconds=120,
            )
        else:
            fetcher = sources.StorageSource(
                source.url,
                cache_dir=root / "cache",
                storage_options={**dict(source.options), **credentials},
                allow_local=True,
            )
        # A thread of its own: deploy() may be called from code with a running loop.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            fetched = pool.submit(asyncio.run, fetcher.fetch(root / "checkout")).result()
        return (fetched.path / path).read_text(encoding="utf-8")


def _schedules(spec: DeploymentSpec) -> list[dep.DeploymentScheduleCreate]:
    from flowyard.schemas import deployments as dep

    out: list[dep.DeploymentScheduleCreate] = []
    for s in spec.schedules:
        tz = s.timezone or "UTC"
        schedule: dep.ScheduleSpec
        if s.cron is not None:
            schedule = dep.CronSchedule(cron=s.cron, timezone=tz)
        elif s.interval is not None:
            schedule = dep.IntervalSchedule(interval=s.interval, timezone=tz)
        else:
            schedule = dep.RRuleSchedule(rrule=str(s.rrule), timezone=tz)
        out.append(dep.DeploymentScheduleCreate(schedule=schedule, active=s.active))
    return out


class ApiDeployments(ServerBacked):
    """Deployments applied to and run on the server."""

    def apply(self, spec: DeploymentSpec) -> DeploymentRef:
        from flowyard.schemas import deployments as dep

        spec = _with_source_description(spec)
        if not spec.entrypoint:
            raise SDKError(f"deployment {spec.full_name!r} has no entrypoint")
        try:
            existing = self._client.read_deployment_by_name(spec.full_name)
        except NotFoundError:
            existing = None
        saved = self._client.upsert_deployment(
            dep.DeploymentCreate(
                flow_name=spec.flow_name,
                name=spec.name,
                work_pool_name=spec.work_pool_name,
                source=_source(spec, self._client),
                entrypoint=spec.entrypoint,
                parameters=jsonable(spec.parameters),
                parameter_schema=jsonable(spec.parameter_schema or {}),
                job_variables=jsonable(spec.job_variables),
                tags=list(spec.tags),
                version=spec.version,
                description=spec.description or "",
                paused=spec.paused,
                concurrency_limit=spec.concurrency_limit,
                schedules=_schedules(spec),
            )
        )
        for warning in saved.warnings:  # once, where the deployer looks (not also logged)
            print(f"Warning: deployment {saved.full_name!r}: {warning}")
        return DeploymentRef(saved.id, saved.flow_name, saved.name, existing is None)

    def run(self, request: RunDeploymentRequest) -> FlowRun:
        from flowyard.schemas import flow_runs as fr

        name = request.name
        deployment = (
            self._client.read_deployment(name)
            if isinstance(name, uuid.UUID)
            else self._client.read_deployment_by_name(name)
        )
        run = self._client.create_flow_run(
            deployment.id,
            fr.FlowRunCreate(
                parameters=jsonable(request.parameters),
                idempotency_key=request.idempotency_key,
                tags=list(request.tags),
                scheduled_time=request.scheduled_time,
                job_variables=jsonable(request.job_variables or {}),
                name=request.flow_run_name,
                parent_task_run_id=request.parent_task_run_id,
            ),
        )
        if request.timeout is None or request.timeout > 0:
            deadline = None if request.timeout is None else time.monotonic() + request.timeout
            while StateType(run.state_type.value) not in TERMINAL:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                wait = request.poll_interval
                if deadline is not None:
                    wait = min(wait, max(0.0, deadline - time.monotonic()))
                time.sleep(wait)
                run = self._client.read_flow_run(run.id)
        return _sdk_flow_run(run, deployment.name)

    def serve(self, deployments: Sequence[ServedDeployment], limit: int) -> None:
        """Register the deployments, then run their due runs here until interrupted."""
        Server(self._clients, deployments, limit).run()


# -- serve ------------------------------------------------------------------------------

SERVE_POLL_SECONDS = 1.0


def _entrypoint_of(served: ServedDeployment) -> str:
    """``path.py:function`` of a flow loaded in this process, relative to the current dir."""
    from pathlib import Path

    if served.spec.entrypoint:
        return served.spec.entrypoint
    fn = served.flow.fn
    try:
        path = Path(inspect.getfile(fn)).resolve()
        relative = path.relative_to(Path.cwd().resolve())
    except (TypeError, ValueError):
        relative = Path(Path(inspect.getfile(fn)).name)
    return f"{relative.as_posix()}:{fn.__name__}"


class Server:
    """``flow.serve()``: this process runs the served deployments' runs, at most ``limit`` at once.

    Each pass claims due runs of these deployments from the API (they belong
    to no pool, so no dispatcher takes them), runs each in a thread of its own
    with the SDK recording it, and keeps their heartbeats fresh. Ctrl-C stops
    claiming and waits for the runs in flight; a second Ctrl-C leaves at once
    (the server then marks those runs CRASHED when their heartbeats stop).
    """

    def __init__(
        self, clients: Callable[[], SyncClient], deployments: Sequence[ServedDeployment], limit: int
    ) -> None:
        import socket

        self._clients = clients
        self._deployments = list(deployments)
        self._limit = max(1, limit)
        self._worker = f"serve:{socket.gethostname()}:{os.getpid()}"[:100]
        self._flows: dict[uuid.UUID, ServedDeployment] = {}
        self._active: dict[uuid.UUID, threading.Thread] = {}
        self.stop = threading.Event()

    def register(self) -> None:
        from flowyard.schemas import deployments as dep

        api = self._clients()
        for served in self._deployments:
            spec = served.spec
            saved = api.upsert_deployment(
                dep.DeploymentCreate(
                    flow_name=spec.flow_name,
                    name=spec.name,
                    entrypoint=_entrypoint_of(served),
                    parameters=jsonable(spec.parameters),
                    parameter_schema=jsonable(spec.parameter_schema or {}),
                    tags=list(spec.tags),
                    version=spec.version,
                    description=spec.description or "",
                    paused=spec.paused,
                    schedules=_schedules(spec),
                )
            )
            self._flows[saved.id] = served
            print(
                f"Serving '{saved.full_name}'. Start a run with: "
                f"flowyard deployment run '{saved.full_name}'",
                flush=True,
            )

    def run(self) -> None:
        self.register()
        try:
            self.loop()
        except KeyboardInterrupt:
            self.stop.set()
            busy = [t for t in self._active.values() if t.is_alive()]
            if busy:
                print(f"Stopping: waiting for {len(busy)} flow run(s) in flight...", flush=True)
                for thread in busy:
                    thread.join()

    def loop(self) -> None:
        next_beat = time.monotonic() + HEARTBEAT_SECONDS
        while not self.stop.is_set():
            self._active = {k: t for k, t in self._active.items() if t.is_alive()}
            free = self._limit - len(self._active)
            if free > 0:
                for run in self._claim(free):
                    self._start(run)
            if self._active and time.monotonic() >= next_beat:
                next_beat = time.monotonic() + HEARTBEAT_SECONDS
                self._beat()
            self.stop.wait(SERVE_POLL_SECONDS)

    def _claim(self, free: int) -> list[Any]:
        from flowyard.schemas import deployments as dep

        try:
            return list(
                self._clients().claim_served_runs(
                    dep.ServedClaim(
                        deployment_ids=list(self._flows), worker=self._worker, limit=free
                    )
                )
            )
        except ClientError as exc:
            logger.warning("serve: could not ask the server for runs: %s", exc)
            return []

    def _beat(self) -> None:
        from flowyard.schemas.flow_runs import ExecutionReport

        for run_id in list(self._active):
            try:
                self._clients().record_execution(run_id, ExecutionReport(heartbeat=True))
            except ClientError as exc:
                logger.warning("serve: heartbeat for %s failed: %s", run_id, exc)

    def _start(self, run: Any) -> None:
        served = self._flows[run.deployment_id]
        thread = threading.Thread(
            target=self._execute, args=(served, run), name=f"run-{run.name}", daemon=True
        )
        self._active[run.id] = thread
        thread.start()

    def _execute(self, served: ServedDeployment, run: Any) -> None:
        from flowyard.sdk._flow_engine import run_flow

        try:
            run_flow(
                served.flow,
                run.parameters,
                flow_run_id=run.id,
                flow_run_name=run.name,
                deployment_id=run.deployment_id,
                deployment_name=served.spec.name,
            )
        except Exception as exc:  # the parameters do not fit the flow: fail the run, say why
            from flowyard.schemas.states import StateCreate, StateType

            self._clients().set_flow_run_state(
                run.id, StateCreate(type=StateType.FAILED, message=f"could not start: {exc}")
            )


def _sdk_flow_run(run: fr.FlowRun, deployment_name: str | None) -> FlowRun:
    state: State[object] = State(
        StateType(run.state_type.value), name=run.state_name, message=run.state_message or None
    )
    out = FlowRun(
        id=run.id,
        name=run.name,
        flow_name=run.flow_name,
        parameters=run.parameters,
        state=state,
        tags=frozenset(run.tags),
        parent_task_run_id=run.parent_task_run_id,
        deployment_id=run.deployment_id,
        deployment_name=deployment_name,
        scheduled_start_time=run.expected_start_time,
    )
    out.run_count = run.run_count
    out.start_time = run.start_time
    out.end_time = run.end_time
    return out
