"""``flowyard work-pool``: where deployments run; `managed` pools need no worker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from flowyard.cli._common import (
    check_output,
    client,
    confirm_or_exit,
    details,
    local_time,
    output_option,
    print_json,
    suggest,
    table,
)
from flowyard.cli._errors import UsageError

app = typer.Typer(rich_markup_mode=None, help="Create and manage work pools.", no_args_is_help=True)


def _template(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        value = json.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"--base-job-template: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"--base-job-template: {path} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"--base-job-template: {path} must hold a JSON object")
    return value


def _pool_type(value: str) -> str:
    kind = value.lower().removeprefix("prefect:")
    if kind not in ("managed", "process"):
        raise UsageError(f"--type must be 'managed' or 'process', not {value!r}")
    return kind


def _read(name: str) -> Any:
    from flowyard.client import NotFoundError

    api = client()
    try:
        return api.read_work_pool(name)
    except NotFoundError:
        raise suggest(name, (p.name for p in api.list_work_pools()), "work pool") from None


def _show(pool: Any, output: str) -> None:
    if check_output(output) == "json":
        print_json(pool)
        return
    details(
        [
            ("name", pool.name),
            ("type", pool.type.value),
            ("status", "paused" if pool.paused else "ready"),
            ("concurrency limit", str(pool.concurrency_limit or "none")),
            ("isolation", str(getattr(pool, "isolation", ""))),
            ("description", pool.description or ""),
            ("created", local_time(pool.created)),
            ("base job template", pool.base_job_template),
        ]
    )


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Pool name."),
    type_: str = typer.Option(
        "managed", "--type", "-t", help="managed (served by the server) or process."
    ),
    concurrency_limit: int | None = typer.Option(
        None, "--concurrency-limit", min=0, help="Most runs of the pool at once."
    ),
    base_job_template: Path | None = typer.Option(
        None, "--base-job-template", help="JSON file: the pool's job variables schema."
    ),
    description: str = typer.Option("", "--description", help="What the pool is for."),
    paused: bool = typer.Option(False, "--paused", help="Create it paused."),
    output: str = output_option(),
) -> None:
    """Create a work pool (`--type managed` needs no worker: the server runs its flows)."""
    from flowyard.schemas import work_pools as wp

    pool = client().create_work_pool(
        wp.WorkPoolCreate(
            name=name,
            type=wp.WorkPoolType(_pool_type(type_)),
            concurrency_limit=concurrency_limit,
            base_job_template=_template(base_job_template),
            description=description,
            paused=paused,
        )
    )
    if check_output(output) == "json":
        print_json(pool)
        return
    typer.echo(f"Created work pool {pool.name!r} ({pool.type.value}).")
    if pool.type.value == "managed":
        typer.echo("No worker to start: the server runs this pool's flow runs.")
    else:
        typer.secho(
            "Note: a process pool's runs wait for a worker, and this release has no "
            "`flowyard worker`; use --type managed to have the server run them.",
            fg="yellow",
        )


@app.command("ls")
def ls(output: str = output_option()) -> None:
    """List work pools."""
    pools = client().list_work_pools()
    if check_output(output) == "json":
        print_json(pools)
        return
    table(
        pools,
        [
            ("name", lambda p: p.name),
            ("type", lambda p: p.type.value),
            ("status", lambda p: "paused" if p.paused else "ready"),
            ("concurrency", lambda p: p.concurrency_limit or "none"),
            ("created", lambda p: p.created),
        ],
        empty="No work pools yet: flowyard work-pool create my-pool --type managed",
    )


@app.command("inspect")
def inspect(name: str = typer.Argument(...), output: str = output_option()) -> None:
    """Show a work pool with its base job template."""
    _show(_read(name), output)


@app.command("update")
def update(
    name: str = typer.Argument(...),
    concurrency_limit: int | None = typer.Option(None, "--concurrency-limit", min=0),
    base_job_template: Path | None = typer.Option(None, "--base-job-template"),
    description: str | None = typer.Option(None, "--description"),
    output: str = output_option(),
) -> None:
    """Change a work pool's limit, template or description."""
    from flowyard.schemas import work_pools as wp

    _read(name)
    pool = client().update_work_pool(
        name,
        wp.WorkPoolUpdate(
            concurrency_limit=concurrency_limit,
            base_job_template=_template(base_job_template),
            description=description,
        ),
    )
    if check_output(output) == "json":
        print_json(pool)
    else:
        typer.echo(f"Updated work pool {name!r}.")


def _set_paused(name: str, paused: bool) -> None:
    from flowyard.schemas import work_pools as wp

    _read(name)
    client().update_work_pool(name, wp.WorkPoolUpdate(paused=paused))
    if paused:
        typer.echo(f"Paused work pool {name!r}: its runs wait (AwaitingResume) until resumed.")
    else:
        typer.echo(f"Resumed work pool {name!r}.")


@app.command("pause")
def pause(name: str = typer.Argument(...)) -> None:
    """Pause a pool: no new run of it starts."""
    _set_paused(name, True)


@app.command("resume")
def resume(name: str = typer.Argument(...)) -> None:
    """Resume a paused pool."""
    _set_paused(name, False)


@app.command("delete")
def delete(
    name: str = typer.Argument(...),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a work pool."""
    _read(name)
    confirm_or_exit(f"Delete work pool {name!r}?", yes)
    client().delete_work_pool(name)
    typer.echo(f"Deleted work pool {name!r}.")


@app.command("get-default-base-job-template")
def default_template(
    type_: str = typer.Option("managed", "--type", "-t", help="managed or process."),
) -> None:
    """Print the default base job template of a pool type (JSON)."""
    print_json(client().read_default_base_job_template(_pool_type(type_)))
