"""The SDK's server support: flow runs, task runs and logs recorded through the API.

The SDK imports this module once per process, when a server is configured,
and calls :func:`install`. It plugs into the SDK's seams:

- a :class:`ServerReporter` (in ``_reporter``) that sends the engine's events
  from one background thread, in batches;
- variable, secret and deployment backends over the same client;
- inside a managed run (``FLOWYARD_RUN_ID`` is set), a result store on the
  server, so that caching works across runs whose sandboxes are gone.

A reporter failure never fails a flow: the first error of each kind is logged
with its reason, and the engine's ``flush`` returns once everything emitted is
sent or given up on.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowyard.client._errors import NotFoundError
from flowyard.client._reporter import ServerReporter
from flowyard.client._wire import WireClient
from flowyard.sdk import _reporting as rep
from flowyard.sdk._backends import install_on_first_use
from flowyard.sdk._errors import ObjectNotFound
from flowyard.sdk._results import ResultRecord, decode_record, encode_record, set_result_store

if TYPE_CHECKING:
    from flowyard.client._sdk_deployments import ApiDeployments, Server
    from flowyard.client._sync import SyncClient
    from flowyard.sdk._artifacts import ArtifactDraft
    from flowyard.sdk._concurrency import Grant, Mode
    from flowyard.sdk._variables import JSONValue

__all__ = [
    "ApiArtifacts",
    "ApiConcurrency",
    "ApiDeployments",
    "ApiResultStore",
    "ApiSecrets",
    "ApiVariables",
    "Server",
    "ServerReporter",
    "install",
    "uninstall",
]

logger = logging.getLogger("flowyard.sdk.server")

_installed: ServerReporter | None = None
_install_lock = threading.Lock()
# The SDK modules whose backends install() plugs in only when one of them is first used.
_BACKEND_MODULES = (
    "flowyard.sdk._variables",
    "flowyard.sdk._secrets",
    "flowyard.sdk._deployments",
    "flowyard.sdk._artifacts",
    "flowyard.sdk._concurrency",
)


def install(api_url: str) -> None:
    """Plug the server into the SDK's seams (idempotent).

    Recording uses the standard library's HTTP client (cheap to import: it is
    on every managed run's start-up path). The backends for variables,
    secrets and deployments are plugged in when the SDK first uses one (their
    modules and the deployment support are not loaded before), and build the
    full client on first use.
    """
    global _installed
    with _install_lock:
        if _installed is not None:
            return
        # Inside a managed run nothing may be dropped: hold events through a
        # server restart. A script run by hand stops recording instead of
        # making the user wait on a server that is down.
        run_id = os.environ.get("FLOWYARD_RUN_ID")
        managed = bool(run_id)
        reporter = ServerReporter(
            WireClient.from_config(), durable=managed, existing=_uuid_or_none(run_id)
        )
        clients = _LazyClient()
        rep.set_reporter(reporter)
        if managed:
            set_result_store(ApiResultStore(clients))
        _installed = reporter
        _clients.append(clients)
        install_on_first_use(lambda: _install_backends(reporter, clients))
        logger.debug("recording flow runs at %s", api_url)


def _uuid_or_none(text: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None


def _install_backends(reporter: ServerReporter, clients: _LazyClient) -> None:
    from flowyard.client._sdk_deployments import ApiDeployments
    from flowyard.sdk._artifacts import set_artifact_backend
    from flowyard.sdk._concurrency import set_concurrency_backend
    from flowyard.sdk._deployments import set_deployment_backend
    from flowyard.sdk._secrets import set_secret_backend
    from flowyard.sdk._variables import set_variable_backend

    with _install_lock:
        if _installed is not reporter:  # uninstalled meanwhile
            return
        set_variable_backend(ApiVariables(clients))
        set_secret_backend(ApiSecrets(clients))
        set_deployment_backend(ApiDeployments(clients))
        set_artifact_backend(ApiArtifacts(clients, reporter))
        set_concurrency_backend(ApiConcurrency(reporter.client))


def __getattr__(name: str) -> Any:
    if name in ("ApiDeployments", "Server"):
        from flowyard.client import _sdk_deployments

        return getattr(_sdk_deployments, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _LazyClient:
    """The full client, built when a backend first needs it."""

    def __init__(self) -> None:
        self._client: SyncClient | None = None
        self._lock = threading.Lock()

    def __call__(self) -> SyncClient:
        with self._lock:
            if self._client is None:
                from flowyard.client._connect import get_sync_client
                from flowyard.client._http import RetryPolicy

                self._client = get_sync_client(
                    required=True, retry=RetryPolicy(attempts=5, backoff=0.2)
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


_clients: list[_LazyClient] = []


def uninstall() -> None:
    """Send what is queued, then take the server out of the SDK's seams."""
    global _installed
    with _install_lock:
        reporter, _installed = _installed, None
        if reporter is None:
            return
        reporter.close()
        if rep.current_reporter() is reporter:
            rep.set_reporter(None)
        for name, setter in zip(
            _BACKEND_MODULES,
            (
                "set_variable_backend",
                "set_secret_backend",
                "set_deployment_backend",
                "set_artifact_backend",
                "set_concurrency_backend",
            ),
            strict=True,
        ):
            module = sys.modules.get(name)
            if module is not None:  # never loaded: its backend was never plugged in
                getattr(module, setter)(None)
        set_result_store(None)
        reporter.client.close()
        while _clients:
            _clients.pop().close()


# -- reporting --------------------------------------------------------------------------


class ServerBacked:
    """A backend that reaches the server through the full client, built on first use."""

    def __init__(self, clients: Callable[[], SyncClient]) -> None:
        self._clients = clients

    @property
    def _client(self) -> SyncClient:
        return self._clients()


class ApiVariables(ServerBacked):
    """Variables stored on the server."""

    def get(self, name: str) -> JSONValue:
        try:
            value: JSONValue = self._client.read_variable(name).value
        except NotFoundError:
            raise ObjectNotFound(f"variable {name!r} does not exist") from None
        return value

    def set(self, name: str, value: JSONValue, tags: tuple[str, ...], overwrite: bool) -> None:
        if not overwrite:
            try:
                self._client.read_variable(name)
            except NotFoundError:
                pass
            else:
                raise ValueError(f"variable {name!r} already exists; pass overwrite=True")
        from flowyard.schemas.variables import VariableSet

        self._client.set_variable(name, VariableSet(value=value, tags=list(tags)))

    def unset(self, name: str) -> bool:
        try:
            self._client.delete_variable(name)
        except NotFoundError:
            return False
        return True


class ApiSecrets(ServerBacked):
    """Secrets stored (encrypted) on the server."""

    def read(self, name: str) -> str:
        try:
            return self._client.read_secret_value(name).value
        except NotFoundError:
            raise ObjectNotFound(f"secret {name!r} does not exist") from None

    def write(self, name: str, value: str, overwrite: bool) -> None:
        if not overwrite:
            try:
                self._client.read_secret(name)
            except NotFoundError:
                pass
            else:
                raise ValueError(f"secret {name!r} already exists; pass overwrite=True")
        self._client.set_secret(name, value)


class ApiArtifacts(ServerBacked):
    """Artifacts published on the server, after what the run reported before them: the
    server refuses an artifact of a flow run it has not recorded yet."""

    def __init__(self, clients: Callable[[], SyncClient], reporter: ServerReporter) -> None:
        super().__init__(clients)
        self._reporter = reporter

    def create(self, draft: ArtifactDraft) -> uuid.UUID:
        from flowyard.client._errors import ValidationError
        from flowyard.schemas.artifacts import ArtifactCreate

        if draft.flow_run_id is not None:
            self._reporter.flush()
        body = ArtifactCreate(
            type=draft.type,  # type: ignore[arg-type]
            data=draft.data,
            key=draft.key,
            description=draft.description,
            flow_run_id=draft.flow_run_id,
            task_run_id=draft.task_run_id,
        )
        try:
            return self._client.create_artifact(body).id
        except ValidationError as exc:
            if exc.field != "flow_run_id":
                raise ValueError(f"{draft.type} artifact: {exc.detail}") from None
        # The server has no record of the run (its recording stopped): keep the artifact
        # without it rather than fail the flow over a report.
        logger.warning(
            "The server has no record of flow run %s; its %s artifact is kept without it",
            draft.flow_run_id,
            draft.type,
        )
        return self._client.create_artifact(
            body.model_copy(update={"flow_run_id": None, "task_run_id": None})
        ).id

    def update(self, artifact_id: uuid.UUID, data: object, description: str | None) -> None:
        from flowyard.client._errors import ValidationError
        from flowyard.schemas.artifacts import ArtifactUpdate

        try:
            self._client.update_artifact(
                artifact_id, ArtifactUpdate(data=data, description=description)
            )
        except NotFoundError:
            raise ObjectNotFound(f"artifact {artifact_id} does not exist") from None
        except ValidationError as exc:
            raise ValueError(f"artifact {artifact_id}: {exc.detail}") from None


class ApiConcurrency:
    """Global concurrency limits on the server, over the recorder's standard-library client
    (a connection per thread): a task throttled by a tag's limit does not load httpx into a
    managed run. A managed run's leases name the run as their holder (its token says which
    run it is)."""

    def __init__(self, wire: WireClient) -> None:
        self._wire = wire

    def _call(self, method: str, path: str, body: object = None) -> Any:
        return self._wire.request(method, path, body)

    def acquire(self, names: list[str], slots: int, mode: Mode, lease_seconds: float) -> Grant:
        from flowyard.client._errors import ValidationError
        from flowyard.sdk._concurrency import Grant

        body = {
            "names": names,
            "slots": slots,
            "mode": mode,
            "lease_seconds": lease_seconds,
            # Sent again after a lost answer, the request finds its lease, not a second one.
            "lease_id": str(uuid.uuid4()),
        }
        try:
            answer = self._call("POST", "/concurrency-limits/acquire", body)
        except ValidationError as exc:
            raise ValueError(f"concurrency limits {names}: {exc.detail}") from None
        lease_id = answer.get("lease_id")
        return Grant(
            acquired=bool(answer["acquired"]),
            lease_id=uuid.UUID(lease_id) if lease_id else None,
            retry_after=float(answer.get("retry_after_seconds") or 1.0),
            missing=tuple(answer.get("missing") or ()),
            blocked_by=answer.get("blocked_by"),
        )

    def renew(self, lease_id: uuid.UUID, lease_seconds: float) -> bool:
        try:
            path = f"/concurrency-limits/leases/{lease_id}/renew"
            self._call("POST", path, {"lease_seconds": lease_seconds})
        except NotFoundError:
            return False
        return True

    def release(self, lease_id: uuid.UUID) -> None:
        self._call("DELETE", f"/concurrency-limits/leases/{lease_id}")

    def limit_names(self) -> frozenset[str]:
        return frozenset(
            limit["name"] for limit in self._call("GET", "/concurrency-limits") if limit["active"]
        )


class ApiResultStore(ServerBacked):
    """Task and flow results on the server: what caching across managed runs reads."""

    def read(self, key: str) -> ResultRecord | None:
        try:
            blob = self._client.read_result(key)
        except NotFoundError:
            return None
        record = decode_record(key, blob)
        return None if record.is_expired() else record

    def write(self, record: ResultRecord) -> None:
        self._client.write_result(record.key, encode_record(record, "pickle"))
