"""What every resource command shares: the client, `--output`, tables, times, names.

Everything heavy (httpx, pydantic schemas, rich tables) is imported inside
the functions, so `flowyard --help` stays fast.
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

from flowyard.cli._errors import UsageError

if TYPE_CHECKING:
    from flowyard.client import SyncClient

OUTPUT_HELP = "table (for people) or json (for scripts)."


def _output_value(value: str) -> str:
    if value.lower() not in ("table", "json"):
        raise typer.BadParameter(f"expected 'table' or 'json', not {value!r}")
    return value.lower()


def output_option() -> Any:
    return typer.Option("table", "--output", "-o", help=OUTPUT_HELP, callback=_output_value)


def check_output(output: str) -> str:
    value = output.lower()
    if value not in ("table", "json"):
        raise UsageError(f"--output must be 'table' or 'json', not {output!r}")
    return value


_clients: dict[tuple[str, str, str], SyncClient] = {}


def client() -> SyncClient:
    """The configured server's client (a clear error when none is configured).

    One per configuration for the life of the process: iterators it returns
    (logs, pages) stay valid while the command uses them.
    """
    import os

    from flowyard.client import get_sync_client

    key = tuple(
        os.environ.get(k, "") for k in ("FLOWYARD_HOME", "FLOWYARD_API_URL", "FLOWYARD_API_KEY")
    )
    found = _clients.get(key)  # type: ignore[arg-type]
    if found is None:
        found = _clients[key] = get_sync_client(required=True)  # type: ignore[index]
    return found


def jsonable(value: Any) -> Any:
    """Models, lists and dicts of them, as plain JSON values."""
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        return dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    typer.echo(json.dumps(jsonable(value), indent=2, default=str))


def local_time(value: datetime | None) -> str:
    """A timestamp in the user's local zone, to the second."""
    if value is None:
        return ""
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def table(
    rows: Iterable[Any],
    columns: Sequence[tuple[str, Callable[[Any], object]]],
    *,
    title: str | None = None,
    empty: str = "Nothing here yet.",
) -> None:
    """Rows as a table on a terminal; tab-separated lines when piped."""
    items = list(rows)
    if not items:
        typer.echo(empty)
        return
    cells = [[_cell(get(item)) for _, get in columns] for item in items]
    if not sys.stdout.isatty():
        typer.echo("\t".join(name for name, _ in columns))
        for line in cells:
            typer.echo("\t".join(line))
        return
    from rich.console import Console
    from rich.table import Table

    shown = Table(title=title, header_style="bold", show_edge=False, pad_edge=False)
    for name, _ in columns:
        shown.add_column(name, overflow="fold")
    for line in cells:
        shown.add_row(*(_escape(c) for c in line))
    Console().print(shown)


def details(pairs: Sequence[tuple[str, object]]) -> None:
    """One `key: value` line per field (inspect views)."""
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        text = value if isinstance(value, str) else json.dumps(jsonable(value), default=str)
        typer.echo(f"{key + ':':{width + 1}} {text}")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return local_time(value)
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def suggest(name: str, known: Iterable[str], what: str) -> UsageError:
    """An unknown name, with the closest known one when there is one."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return UsageError(f"no {what} named {name!r}{hint}")


def state_style(state: str) -> str:
    return {
        "COMPLETED": "green",
        "FAILED": "red",
        "CRASHED": "red",
        "CANCELLED": "yellow",
        "CANCELLING": "yellow",
        "RUNNING": "cyan",
        "PENDING": "blue",
        "SCHEDULED": "white",
        "PAUSED": "magenta",
    }.get(state, "white")


def confirm_or_exit(question: str, yes: bool) -> None:
    """Ask before a destructive command unless --yes; a "no" exits 1."""
    if not yes and not typer.confirm(question):
        raise typer.Exit(1)
