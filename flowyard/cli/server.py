"""``flowyard server``: run the control plane (API, UI, services)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

import typer

app = typer.Typer(rich_markup_mode=None, help="Run the Flowyard server.", no_args_is_help=True)


@app.command("start")
def start(
    host: str | None = typer.Option(None, help="Address to listen on [default: 127.0.0.1]."),
    port: int | None = typer.Option(None, help="Port to listen on [default: 4280]."),
    database_url: str | None = typer.Option(
        None, "--database-url", help="SQLAlchemy URL, e.g. postgresql+asyncpg://host/db."
    ),
    no_dispatcher: bool = typer.Option(
        False, "--no-dispatcher", help="Do not run the managed dispatcher in this process."
    ),
    log_level: str | None = typer.Option(None, help="debug, info, warning or error."),
) -> None:
    """Start the API, the web UI and the managed dispatcher."""
    with _collection_paused():
        from flowyard.cli._logging import configure_logging
        from flowyard.server.serve import run_server
        from flowyard.settings import load_settings

        overrides: dict[str, object] = {}
        if host is not None:
            overrides["host"] = host
        if port is not None:
            overrides["port"] = port
        if database_url is not None:
            overrides["database_url"] = database_url
        if no_dispatcher:
            overrides["dispatcher"] = False
        if log_level is not None:
            overrides["log_level"] = log_level
        settings = load_settings(**overrides)
        configure_logging(settings.log_level)
        run_server(settings)


def dispatcher(
    database_url: str | None = typer.Option(
        None, "--database-url", help="The shared database, e.g. postgresql+asyncpg://host/db."
    ),
    log_level: str | None = typer.Option(None, help="debug, info, warning or error."),
) -> None:
    """Run only the managed dispatcher (scale-out): it claims runs from the shared database.

    Its runs reach the API through this process's unix socket; start the API
    and UI elsewhere with `flowyard server start --no-dispatcher`. Several
    dispatchers on one PostgreSQL never start a run twice.
    """
    with _collection_paused():
        from flowyard.cli._logging import configure_logging
        from flowyard.server.serve import run_server
        from flowyard.settings import load_settings

        overrides: dict[str, object] = {"dispatcher": True, "scheduler": False}
        if database_url is not None:
            overrides["database_url"] = database_url
        if log_level is not None:
            overrides["log_level"] = log_level
        settings = load_settings(**overrides)
        if not settings.api_socket:  # never take over a server's socket in the same data dir
            settings = load_settings(**overrides, api_socket=str(settings.home / "dispatcher.sock"))
        configure_logging(settings.log_level)
        run_server(settings, tcp=False)


@contextlib.contextmanager
def _collection_paused() -> Iterator[None]:
    """No cyclic garbage collection while the server loads.

    Start-up creates most of the objects the server will ever hold (modules,
    models, routes); collecting over them again and again as they pile up
    costs about a sixth of start-up. The server turns collection back on,
    with those objects frozen out of it, once it is serving
    (``flowyard.server._uvicorn.settle_memory``); on the way out it is on in
    any case.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
