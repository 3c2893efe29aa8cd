"""Is a server configured, and the one hook through which server support is installed.

The SDK never imports the HTTP client on its own initiative at import time.
When a flow run starts (or a variable, secret or deployment is used) and a
server is configured — by the same sources as ``flowyard.client``:
``FLOWYARD_API_URL``, ``settings.toml``, a profile, or the credentials file a
local server writes on first start — the SDK imports
``flowyard.client.sdk_integration`` once and calls its ``install(api_url)``,
which plugs a reporter and the variable, secret, deployment and result
backends into the seams (``set_reporter``, ``set_variable_backend``, ...).
With no server configured nothing is imported and runs stay in-process.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from flowyard.sdk._errors import NoServerConfigured, SDKError
from flowyard.sdk._results import flowyard_home

__all__ = [
    "SERVER_INTEGRATION_MODULE",
    "configured_api_url",
    "ensure_server_integration",
    "install_deferred",
    "install_on_first_use",
    "missing_backend",
]

SERVER_INTEGRATION_MODULE = "flowyard.client.sdk_integration"

_lock = threading.Lock()
_checked = False
# Installers of the variable, secret and deployment backends, run when one is first used
# (so a flow run that uses none loads none of their modules).
_deferred: list[Callable[[], None]] = []
_deferred_lock = threading.Lock()
# Held while installers run: a thread that finds none pending while another thread is
# still installing waits for it, instead of finding no backend and going on without one.
_installing = threading.RLock()
_logger = logging.getLogger("flowyard.sdk")


def configured_api_url() -> str | None:
    """The configured API URL, or None when no server is configured.

    The same sources, in the same order, as ``flowyard.client``'s
    configuration (environment, ``settings.toml``, the active profile in
    ``profiles.toml``, the server's ``credentials`` file), read here without
    importing the client: a process with no server must not pay for httpx.
    """
    from_env = os.environ.get("FLOWYARD_API_URL", "").strip()
    if from_env:
        return from_env
    home = flowyard_home()
    settings = _read_toml(home / "settings.toml")
    url: str | None = _string({str(k).lower(): v for k, v in settings.items()}.get("api_url"))
    if url:
        return url
    profiles = _read_toml(home / "profiles.toml")
    active = os.environ.get("FLOWYARD_PROFILE") or profiles.get("active")
    table = profiles.get("profiles")
    if isinstance(active, str) and isinstance(table, dict) and isinstance(table.get(active), dict):
        url = _string(table[active].get("api_url"))
        if url:
            return url
    import json

    try:
        credentials = json.loads((home / "credentials").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        _logger.warning("Ignoring unreadable credentials file in %s: %s", home, exc)
        return None
    return _string(credentials.get("api_url")) if isinstance(credentials, dict) else None


def _read_toml(path: Path) -> dict[str, object]:
    import tomllib

    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        _logger.warning("Ignoring unreadable settings file %s: %s", path, exc)
        return {}


def _string(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def ensure_server_integration() -> None:
    """Install server support once per process if a server is configured."""
    global _checked
    if _checked:
        return
    with _lock:
        if _checked:
            return
        try:
            _install()
        finally:
            # Only now: a thread that finds it set must find the seams filled too.
            _checked = True


def _install() -> None:
    url = configured_api_url()
    if not url:
        return
    try:
        module = importlib.import_module(SERVER_INTEGRATION_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name is None or not SERVER_INTEGRATION_MODULE.startswith(exc.name):
            raise
        _logger.warning(
            "A Flowyard server is configured (%s) but this installation has no %s; "
            "flow runs will not be recorded.",
            url,
            SERVER_INTEGRATION_MODULE,
        )
        return
    module.install(url)


def install_on_first_use(installer: Callable[[], None]) -> None:
    """Have ``installer`` run when a variable, secret or deployment backend is first needed."""
    with _deferred_lock:
        _deferred.append(installer)


def install_deferred() -> None:
    """Run the installers :func:`install_on_first_use` holds (each once); returns once
    they have run, also in a thread that finds another one running them."""
    with _installing:
        with _deferred_lock:
            pending = list(_deferred)
            _deferred.clear()
        for done, installer in enumerate(pending):
            try:
                installer()
            except BaseException:
                with _deferred_lock:  # the next use tries the rest again
                    _deferred[:0] = pending[done:]
                raise


def reset_server_integration() -> None:
    """Forget that server support was checked (for tests that change the configuration)."""
    global _checked
    with _lock:
        _checked = False


def missing_backend(action: str) -> SDKError:
    """The error for an operation that needs a server when none is reachable."""
    url = configured_api_url()
    if url:
        return SDKError(
            f"a Flowyard server is configured ({url}) but no client integration is installed "
            f"to reach it, so Flowyard cannot {action}"
        )
    return NoServerConfigured(
        "no Flowyard server configured: set FLOWYARD_API_URL (and FLOWYARD_API_KEY) to the "
        f"server's API, or start one with `flowyard server start`, to {action}"
    )


def in_async_context() -> bool:
    """Whether the caller runs inside an event loop (Prefect's sync/async dispatch rule)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False  # no event loop can run before asyncio is imported
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
