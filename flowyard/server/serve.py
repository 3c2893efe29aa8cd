"""Run the server process: pre-flight checks, then uvicorn on our own socket.

Binding the socket ourselves (rather than letting uvicorn do it) turns
"address in use" into one clear line before anything else starts, and the
database and data-dir checks run before the first request can arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import tempfile
from pathlib import Path

from flowyard.errors import ConfigurationError
from flowyard.server.db import Database, check_connection, create_database
from flowyard.server.db.migrate import upgrade
from flowyard.settings import Settings

logger = logging.getLogger("flowyard.server")


def ensure_data_dir(home: Path) -> None:
    """Create the data dir and prove it is writable."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise ConfigurationError(
            f"data directory {home} is not writable ({exc.strerror or exc}); "
            "set FLOWYARD_HOME to a writable directory"
        ) from None


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it every answer on a kept-alive connection waits for a delayed ACK (40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"port {port} on {host} is already in use; stop the other process "
                f"or start with --port <another port>"
            ) from None
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def bind_unix_socket(path: Path) -> socket.socket:
    """The API on a unix socket too: sandboxed runs reach it with no network."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a stale socket from a killed server
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot create the API socket {path}: {exc.strerror}") from None
    # Runs connect as an unprivileged user; the API itself still demands a token.
    path.chmod(0o666)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


async def preflight(settings: Settings) -> Database:
    """Fail fast, with one line, on an unusable database; else return it, migrated.

    The server then runs on this same database (one engine, one connection
    check) rather than opening it a second time.
    """
    db = create_database(settings.effective_database_url)
    try:
        await check_connection(db)
        if await upgrade(db):
            logger.info("database migrated to the latest schema")
    except BaseException:
        await db.dispose()
        raise
    return db


def run_server(settings: Settings, *, tcp: bool = True) -> None:
    """Blocking: serve until SIGINT/SIGTERM, then shut down gracefully.

    ``tcp=False`` serves the API on the unix socket only: a dispatcher-only
    process (``flowyard dispatcher``) whose sandboxed runs report through it.
    """
    ensure_data_dir(settings.home)
    sockets = [bind_socket(settings.host, settings.port)] if tcp else []
    sockets.append(bind_unix_socket(settings.effective_api_socket))
    try:
        asyncio.run(_serve(settings, sockets, tcp=tcp))
    finally:
        with contextlib.suppress(OSError):
            settings.effective_api_socket.unlink()


async def _serve(settings: Settings, sockets: list[socket.socket], *, tcp: bool) -> None:
    import uvicorn

    from flowyard.server._uvicorn import GracefulServer
    from flowyard.server.app import create_app

    db = await preflight(settings)
    app = create_app(settings, database=db)
    config = uvicorn.Config(
        app,
        log_level=settings.log_level,
        lifespan="on",
        timeout_graceful_shutdown=10,
        access_log=settings.log_level == "debug",
    )
    server = GracefulServer(config)
    if tcp:
        url = f"http://{settings.host}:{settings.port}"
        logger.info("Flowyard server on %s (API %s/api, database %s)", url, url, db_label(settings))
    else:
        logger.info(
            "Flowyard dispatcher (API for its runs on %s, database %s)",
            settings.effective_api_socket,
            db_label(settings),
        )
    try:
        await server.serve(sockets=sockets)
    finally:
        await db.dispose()


def db_label(settings: Settings) -> str:
    from flowyard.server.db import redact_url

    return redact_url(settings.effective_database_url)
