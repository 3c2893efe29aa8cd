"""``get_client`` and ``get_sync_client``: a client for whatever server is configured."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, overload

from flowyard.client._client import FlowyardClient
from flowyard.client._config import ClientConfig, resolve_config
from flowyard.client._errors import NotConfigured
from flowyard.client._http import DEFAULT_TIMEOUT, RetryPolicy
from flowyard.client._sync import SyncClient

NOT_CONFIGURED = (
    "no Flowyard server is configured: start one with `flowyard server start`, "
    "or point at one with `flowyard login --url URL --key KEY` or FLOWYARD_API_URL"
)


def _config(
    api_url: str | None, api_key: str | None, uds: str | None, home: Path | None, required: bool
) -> ClientConfig | None:
    config = resolve_config(api_url, api_key, uds=uds, home=home)
    if config is None and required:
        raise NotConfigured(NOT_CONFIGURED)
    return config


@overload
def get_client(
    api_url: str | None = ...,
    api_key: str | None = ...,
    *,
    uds: str | None = ...,
    home: Path | None = ...,
    required: Literal[True],
    timeout: float = ...,
    retry: RetryPolicy | None = ...,
) -> FlowyardClient: ...


@overload
def get_client(
    api_url: str | None = ...,
    api_key: str | None = ...,
    *,
    uds: str | None = ...,
    home: Path | None = ...,
    required: bool = ...,
    timeout: float = ...,
    retry: RetryPolicy | None = ...,
) -> FlowyardClient | None: ...


def get_client(
    api_url: str | None = None,
    api_key: str | None = None,
    *,
    uds: str | None = None,
    home: Path | None = None,
    required: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    retry: RetryPolicy | None = None,
) -> FlowyardClient | None:
    """An async client for the configured server (see :func:`resolve_config`).

    ``None`` when nothing is configured, or :class:`NotConfigured` with
    ``required=True`` (the message says how to configure a server).
    """
    config = _config(api_url, api_key, uds, home, required)
    return (
        None if config is None else FlowyardClient.from_config(config, timeout=timeout, retry=retry)
    )


@overload
def get_sync_client(
    api_url: str | None = ...,
    api_key: str | None = ...,
    *,
    uds: str | None = ...,
    home: Path | None = ...,
    required: Literal[True],
    timeout: float = ...,
    retry: RetryPolicy | None = ...,
) -> SyncClient: ...


@overload
def get_sync_client(
    api_url: str | None = ...,
    api_key: str | None = ...,
    *,
    uds: str | None = ...,
    home: Path | None = ...,
    required: bool = ...,
    timeout: float = ...,
    retry: RetryPolicy | None = ...,
) -> SyncClient | None: ...


def get_sync_client(
    api_url: str | None = None,
    api_key: str | None = None,
    *,
    uds: str | None = None,
    home: Path | None = None,
    required: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    retry: RetryPolicy | None = None,
) -> SyncClient | None:
    """A :class:`SyncClient` for the configured server; ``None`` as for :func:`get_client`."""
    config = _config(api_url, api_key, uds, home, required)
    return None if config is None else SyncClient.from_config(config, timeout=timeout, retry=retry)
