"""``flowyard doctor``: what this host gives Flowyard, one line per check."""

from __future__ import annotations

import asyncio
import shutil
import sys
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from flowyard.execution.host import Check
    from flowyard.settings import Settings

MIN_FREE_BYTES = 5 * 1024**3


def doctor(
    database_url: str | None = typer.Option(None, "--database-url", help="Database to check."),
) -> None:
    """Check Python, the database, git, uv, the sandbox (bwrap, namespaces, cgroups) and disk."""
    from flowyard.execution.host import host_checks
    from flowyard.settings import load_settings

    settings = load_settings(**({"database_url": database_url} if database_url else {}))
    checks: list[Check] = [_python_check(), _database_check(settings)]
    checks += [_tool_check("git", "apt-get install git")]
    checks += [_uv_check()]
    checks += host_checks()
    checks += [_runs_memory_check(settings), _disk_check(settings)]
    failed = 0
    for check in checks:
        mark = typer.style("ok  ", fg="green") if check.ok else typer.style("FAIL", fg="red")
        line = f"{mark} {check.name:24} {check.detail}"
        if not check.ok and check.fix:
            line += typer.style(f"  -> {check.fix}", fg="yellow")
        typer.echo(line)
        failed += not check.ok
    if failed:
        typer.echo(f"{failed} check(s) failed.")
        raise typer.Exit(1)


def _runs_memory_check(settings: Settings) -> Check:
    """The memory all runs together may use, and how much of it they use now."""
    from flowyard.execution.host import Check
    from flowyard.execution.sandbox import format_bytes, memory_pressure
    from flowyard.execution.sandbox._budget import default_budget, host_memory_bytes

    total = host_memory_bytes()
    budget = settings.host_memory_bytes or default_budget(total, None)
    source = "setting host_memory_bytes" if settings.host_memory_bytes else "host less reserve"
    held = memory_pressure(None)
    detail = f"{format_bytes(budget)} for all runs together ({source}; host {format_bytes(total)})"
    return Check(
        "memory for runs",
        held is None,
        detail + (f"; new runs wait: {held}" if held else ""),
        "free memory on the host" if held else "",
        required=False,
    )


def _python_check() -> Check:
    from flowyard.execution.host import Check

    ver = ".".join(map(str, sys.version_info[:3]))
    ok = sys.version_info >= (3, 11)
    return Check("python", ok, f"{ver} at {sys.executable}", "install Python 3.11 or newer")


def _database_check(settings: Settings) -> Check:
    from flowyard.execution.host import Check
    from flowyard.server.db import StorageError, check_connection, create_database, redact_url
    from flowyard.server.db.migrate import HEAD_REVISION, current_revision

    url = settings.effective_database_url

    async def probe() -> tuple[bool, str, str]:
        db = create_database(url)
        try:
            await check_connection(db)
            rev = await current_revision(db)
        except StorageError as exc:
            return False, str(exc), "start the database or fix --database-url"
        finally:
            await db.dispose()
        if rev == HEAD_REVISION:
            return True, f"{redact_url(url)} (schema {rev})", ""
        if rev is None:
            return True, f"{redact_url(url)} (empty; migrated on server start)", ""
        return (
            False,
            f"{redact_url(url)} at schema {rev}, expected {HEAD_REVISION}",
            ("run `flowyard server start` to migrate"),
        )

    if url.startswith("sqlite") and not settings.home.exists():
        return Check("database", True, f"{redact_url(url)} (created on first start)", "")
    ok, detail, fix = asyncio.run(probe())
    return Check("database", ok, detail, fix)


def _tool_check(name: str, fix: str) -> Check:
    from flowyard.execution.host import Check

    path = shutil.which(name)
    return Check(name, path is not None, path or "not found", fix)


def _uv_check() -> Check:
    from flowyard.execution.host import Check

    try:
        from uv import find_uv_bin

        return Check("uv", True, find_uv_bin(), "")
    except (ImportError, FileNotFoundError):
        return Check("uv", False, "not found", "reinstall flowyard (uv is a dependency)")


def _disk_check(settings: Settings) -> Check:
    from flowyard.execution.host import Check

    probe = settings.home
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    return Check(
        "disk",
        free >= MIN_FREE_BYTES,
        f"{free / 1024**3:.1f} GiB free in {settings.home}",
        "free space or move FLOWYARD_HOME",
    )
