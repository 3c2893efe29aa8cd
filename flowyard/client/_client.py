"""``FlowyardClient``: one async method per API endpoint, typed with the wire schemas.

The methods live in one module per resource (``_deployments.py``, ...), each
a small class over the shared request machinery; this class only assembles
them and owns the connection. Method names follow the verbs of the API and
the SDK: ``read_*`` for one object, ``list_*`` for a page or list,
``iter_*`` for every page lazily, ``create_*``/``set_*``/``update_*``/
``delete_*`` for writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

import httpx

from flowyard.client._artifacts import ArtifactMethods
from flowyard.client._concurrency import ConcurrencyMethods
from flowyard.client._config import ClientConfig
from flowyard.client._deployments import DeploymentMethods
from flowyard.client._flow_runs import FlowRunMethods
from flowyard.client._http import DEFAULT_TIMEOUT, HttpCore, RetryPolicy
from flowyard.client._logs import LogMethods
from flowyard.client._task_runs import TaskRunMethods
from flowyard.client._variables import VariableMethods
from flowyard.client._work_pools import WorkPoolMethods
from flowyard.client._workspaces import WorkspaceMethods


class FlowyardClient(
    WorkspaceMethods,
    WorkPoolMethods,
    DeploymentMethods,
    FlowRunMethods,
    TaskRunMethods,
    LogMethods,
    VariableMethods,
    ArtifactMethods,
    ConcurrencyMethods,
):
    """The async client of the Flowyard API.

    ``api_url`` is ``http(s)://host:port/api`` (``/api`` is added when the URL
    has no path) or ``unix:///path/to.sock``; ``uds`` sends an HTTP URL's
    requests through a unix socket instead. ``transport`` replaces the network
    (tests pass an ASGI transport). Use it as ``async with``, or call
    :meth:`aclose`.
    """

    def __init__(
        self,
        api_url: str,
        api_key: str | None = None,
        *,
        uds: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._http = HttpCore(
            api_url,
            api_key,
            uds=uds,
            transport=transport,
            timeout=timeout,
            retry=retry,
            headers=headers,
        )

    @classmethod
    def from_config(
        cls,
        config: ClientConfig,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> FlowyardClient:
        """A client for a resolved :class:`ClientConfig`."""
        return cls(config.api_url, config.api_key, uds=config.uds, timeout=timeout, retry=retry)

    @property
    def api_url(self) -> str:
        """The API this client talks to, as shown in messages."""
        return self._http.url

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> FlowyardClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"FlowyardClient({self._http.url!r})"
