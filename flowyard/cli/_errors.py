"""One clear line per error, a traceback only with --debug, and exit codes:
0 success, 1 a run or operation failed, 2 bad usage."""

from __future__ import annotations

import os
import sys

import typer

# Typer carries its own copy of click: its usage errors are not click's classes.
try:
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - a typer that uses plain click
    from click import ClickException  # type: ignore[assignment]

from flowyard.errors import FlowyardError

EXIT_FAILED = 1
EXIT_USAGE = 2


class UsageError(FlowyardError):
    """The command line itself is wrong (exit 2)."""


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print ``message`` as the error line and return the exit to raise."""
    typer.secho(f"Error: {message}", err=True, fg="red")
    return typer.Exit(code)


def run_app(app: typer.Typer) -> int:
    debug = "--debug" in sys.argv or os.environ.get("FLOWYARD_DEBUG") == "1"
    try:
        # Without standalone mode, click returns a command's typer.Exit code.
        result = app(standalone_mode=False, prog_name="flowyard")
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        return 130
    except ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except UsageError as exc:
        if debug:
            raise
        typer.secho(f"Error: {exc}", err=True, fg="red")
        return EXIT_USAGE
    except FlowyardError as exc:
        if debug:
            raise
        typer.secho(f"Error: {exc}", err=True, fg="red")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    return result if isinstance(result, int) else 0
