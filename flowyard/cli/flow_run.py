"""``flowyard flow-run``: list, inspect, follow, cancel, retry and delete runs."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import typer

from flowyard.cli._common import (
    check_output,
    client,
    confirm_or_exit,
    details,
    duration,
    local_time,
    output_option,
    print_json,
    table,
)
from flowyard.cli._errors import UsageError

app = typer.Typer(
    rich_markup_mode=None, help="List, inspect, follow and control flow runs.", no_args_is_help=True
)

STATES = (
    "SCHEDULED",
    "PENDING",
    "RUNNING",
    "COMPLETED",
    "FAILED",
    "CRASHED",
    "CANCELLING",
    "CANCELLED",
    "PAUSED",
)


def _run_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise UsageError(
            f"flow run id {value!r} is not a UUID; see `flowyard flow-run ls`"
        ) from None


def _read(value: str) -> Any:
    from flowyard.client import NotFoundError

    run_id = _run_id(value)
    try:
        return client().read_flow_run(run_id)
    except NotFoundError:
        raise UsageError(f"no flow run {run_id} in this workspace") from None


def _level(value: str | None) -> int | None:
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    level = logging.getLevelName(value.upper())
    if not isinstance(level, int):
        raise UsageError(f"--level {value!r}: expected DEBUG, INFO, WARNING, ERROR or a number")
    return level


@app.command("ls")
def ls(
    state: list[str] = typer.Option(
        [], "--state", "-s", help="Only runs in this state; repeatable."
    ),
    deployment: str | None = typer.Option(None, "--deployment", "-d", help="FLOW/DEPLOYMENT."),
    flow_name: str | None = typer.Option(None, "--flow", help="Only this flow's runs."),
    tag: list[str] = typer.Option([], "--tag", help="Only runs with this tag; repeatable."),
    limit: int = typer.Option(20, "--limit", min=1, max=500, help="How many runs."),
    output: str = output_option(),
) -> None:
    """List flow runs, newest first."""
    from flowyard.cli.deployment import read_deployment
    from flowyard.client import FlowRunFilter
    from flowyard.schemas.states import StateType

    states = []
    for value in state:
        if value.upper() not in STATES:
            raise UsageError(f"--state {value!r}: expected one of {', '.join(STATES)}")
        states.append(StateType(value.upper()))
    deployment_id = read_deployment(deployment).id if deployment else None
    page = client().list_flow_runs(
        FlowRunFilter(states=states, deployment_id=deployment_id, flow_name=flow_name, tags=tag),
        limit=limit,
    )
    if check_output(output) == "json":
        print_json(page.items)
        return
    table(
        page.items,
        [
            ("id", lambda r: r.id),
            ("name", lambda r: r.name),
            (
                "deployment",
                lambda r: r.deployment_name or r.flow_name,
            ),
            (
                "state",
                lambda r: (
                    r.state_type.value
                    if r.state_name.upper() == r.state_type.value
                    else f"{r.state_type.value} ({r.state_name})"
                ),
            ),
            ("started", lambda r: r.start_time),
            (
                "duration",
                lambda r: (
                    duration((r.end_time - r.start_time).total_seconds())
                    if r.start_time and r.end_time
                    else ""
                ),
            ),
            ("created", lambda r: r.created),
        ],
        empty="No flow runs match.",
    )


@app.command("inspect")
def inspect(
    run_id: str = typer.Argument(..., help="Flow run id."), output: str = output_option()
) -> None:
    """Show a flow run: state, parameters, commit, telemetry and crash reason."""
    run = _read(run_id)
    if check_output(output) == "json":
        print_json(run)
        return
    mib = 1024 * 1024
    pairs: list[tuple[str, object]] = [
        ("id", str(run.id)),
        ("name", run.name),
        ("flow", run.flow_name),
        ("deployment", run.deployment_name or ""),
        ("work pool", run.work_pool_name or ""),
        ("state", f"{run.state_type.value} ({run.state_name})"),
        ("message", run.state_message or ""),
        ("parameters", run.parameters),
        ("created", local_time(run.created)),
        ("started", local_time(run.start_time)),
        ("ended", local_time(run.end_time)),
        ("commit", run.resolved_commit or ""),
        ("backend", run.backend or ""),
        ("exit code", "" if run.exit_code is None else str(run.exit_code)),
        ("peak memory", f"{run.peak_memory_bytes / mib:.1f} MiB" if run.peak_memory_bytes else ""),
        ("cpu seconds", f"{run.cpu_seconds:.2f}" if run.cpu_seconds is not None else ""),
        (
            "peak storage",
            f"{run.peak_storage_bytes / mib:.1f} MiB" if run.peak_storage_bytes else "",
        ),
        ("compute", duration(run.compute_seconds)),
    ]
    if run.crash_reason:
        pairs.append(("crash reason", run.crash_reason))
    details(pairs)


@app.command("logs")
def logs(
    run_id: str = typer.Argument(..., help="Flow run id."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep streaming until the run ends."),
    level: str | None = typer.Option(None, "--level", help="Lowest level shown: DEBUG, INFO, ..."),
    output: str = output_option(),
) -> None:
    """Print a run's logs (and, with --follow, stream them live)."""
    from flowyard.cli._watch import line_source, watch_run

    run = _read(run_id)
    minimum = _level(level)
    if follow:
        code = watch_run(run.id, timeout=None, level=minimum, run_name=run.name)
        raise typer.Exit(code)
    lines = list(client().iter_logs(run.id, level=minimum))
    if check_output(output) == "json":
        print_json(lines)
        return
    for line in lines:
        typer.echo(
            f"{local_time(line.timestamp)} | {logging.getLevelName(line.level):7} | "
            f"{line_source(line, run.name)} - {line.message}"
        )


@app.command("cancel")
def cancel(run_id: str = typer.Argument(..., help="Flow run id.")) -> None:
    """Cancel a run: its processes get SIGTERM, then SIGKILL after a grace period."""
    run = _read(run_id)
    result = client().cancel_flow_run(run.id)
    if result.status.value != "ACCEPT":
        raise UsageError(f"cannot cancel flow run {run.id}: {result.reason}")
    typer.echo(f"Cancelling flow run {run.name!r} ({run.id}).")


@app.command("retry")
def retry(run_id: str = typer.Argument(..., help="Flow run id.")) -> None:
    """Run a finished (failed, crashed or cancelled) run again."""
    run = _read(run_id)
    result = client().retry_flow_run(run.id)
    if result.status.value != "ACCEPT":
        raise UsageError(f"cannot retry flow run {run.id}: {result.reason}")
    typer.echo(f"Scheduled flow run {run.name!r} ({run.id}) to run again.")


@app.command("delete")
def delete(
    run_id: str = typer.Argument(..., help="Flow run id."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a finished run with its logs and task runs."""
    run = _read(run_id)
    confirm_or_exit(f"Delete flow run {run.name!r}?", yes)
    client().delete_flow_run(run.id)
    typer.echo(f"Deleted flow run {run.name!r}.")
