"""``flowyard deployment``: list, inspect, run, pause, resume and delete deployments."""

from __future__ import annotations

import json
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

app = typer.Typer(
    rich_markup_mode=None, help="List, inspect and run deployments.", no_args_is_help=True
)

_JSON_TYPES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "array": "a JSON list",
    "object": "a JSON object",
}


def read_deployment(name: str) -> Any:
    """A deployment by `flow/deployment` name or id, suggesting the closest name."""
    import uuid

    from flowyard.client import NotFoundError

    api = client()
    try:
        return api.read_deployment(uuid.UUID(name))
    except ValueError:
        pass
    except NotFoundError:
        raise UsageError(f"no deployment with id {name}") from None
    if "/" not in name:
        matches = [d for d in api.list_deployments() if d.name == name]
        if len(matches) == 1:
            return matches[0]
        raise UsageError(
            f"deployment {name!r}: give it as FLOW/DEPLOYMENT"
            + (f" (one of: {', '.join(d.full_name for d in matches)})" if matches else "")
        )
    try:
        return api.read_deployment_by_name(name)
    except NotFoundError:
        raise suggest(name, (d.full_name for d in api.list_deployments()), "deployment") from None


def _fits(value: object, kind: str) -> bool:
    return {
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "array": isinstance(value, list),
        "object": isinstance(value, dict),
        "null": value is None,
    }.get(kind, True)


def _kinds(spec: dict[str, Any]) -> list[str]:
    if isinstance(spec.get("type"), str):
        return [spec["type"]]
    return [s["type"] for s in spec.get("anyOf", []) if isinstance(s.get("type"), str)]


def parse_parameters(
    pairs: list[str], params_json: str | None, schema: dict[str, Any]
) -> dict[str, Any]:
    """`--params JSON` then each `--param k=v`, checked against the parameter schema."""
    values: dict[str, Any] = {}
    if params_json:
        try:
            loaded = json.loads(params_json)
        except ValueError as exc:
            raise UsageError(f"--params is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise UsageError("--params must be a JSON object of parameter names to values")
        values.update(loaded)
    properties: dict[str, Any] = schema.get("properties") or {}
    raw: dict[str, str] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {pair!r}: expected NAME=VALUE")
        raw[key] = text
        try:
            values[key] = json.loads(text)
        except ValueError:
            values[key] = text
    if properties and schema.get("additionalProperties") is not True:
        for key in values:
            if key not in properties:
                raise suggest(key, properties, "parameter")
    for key, value in values.items():
        kinds = _kinds(properties.get(key) or {})
        if not kinds or any(_fits(value, k) for k in kinds):
            continue
        if "string" in kinds and key in raw:
            values[key] = raw[key]  # `--param name=123` means the text "123"
            continue
        expected = " or ".join(_JSON_TYPES.get(k, k) for k in kinds if k != "null")
        raise UsageError(f"parameter {key!r}: expected {expected}, got {json.dumps(value)}")
    return values


@app.command("ls")
def ls(
    work_pool: str | None = typer.Option(None, "--work-pool", "-p", help="Only this pool's."),
    flow_name: str | None = typer.Option(None, "--flow", help="Only this flow's."),
    output: str = output_option(),
) -> None:
    """List deployments."""
    deployments = client().list_deployments(work_pool=work_pool, flow_name=flow_name)
    if check_output(output) == "json":
        print_json(deployments)
        return
    table(
        deployments,
        [
            ("name", lambda d: d.full_name),
            ("work pool", lambda d: d.work_pool_name or ""),
            ("source", lambda d: d.source.get("url") or d.source.get("path") or ""),
            ("entrypoint", lambda d: d.entrypoint),
            ("schedules", lambda d: len(d.schedules)),
            ("status", lambda d: "paused" if d.paused else "ready"),
            ("updated", lambda d: d.updated),
        ],
        empty="No deployments yet: Flow.from_source(...).deploy(...) or `flowyard deploy`.",
    )


@app.command("inspect")
def inspect(
    name: str = typer.Argument(..., help="FLOW/DEPLOYMENT or id."), output: str = output_option()
) -> None:
    """Show a deployment: source, entrypoint, parameters, job variables, schedules."""
    deployment = read_deployment(name)
    if check_output(output) == "json":
        print_json(deployment)
        return
    details(
        [
            ("name", deployment.full_name),
            ("id", str(deployment.id)),
            ("work pool", deployment.work_pool_name or ""),
            ("source", deployment.source),
            ("entrypoint", deployment.entrypoint),
            ("pull steps", deployment.pull_steps),
            ("parameters", deployment.parameters),
            ("parameter schema", deployment.parameter_schema.get("properties", {})),
            ("job variables", deployment.job_variables),
            ("schedules", [s.schedule for s in deployment.schedules]),
            ("tags", deployment.tags),
            ("status", "paused" if deployment.paused else "ready"),
            ("concurrency limit", str(deployment.concurrency_limit or "none")),
            ("updated", local_time(deployment.updated)),
        ]
    )


@app.command("run")
def run(
    name: str = typer.Argument(..., help="FLOW/DEPLOYMENT or id."),
    param: list[str] = typer.Option(
        [], "--param", help="A parameter as NAME=VALUE (VALUE is JSON or text); repeatable."
    ),
    params: str | None = typer.Option(None, "--params", help="All parameters as a JSON object."),
    job_variables: str | None = typer.Option(
        None, "--job-variables", help="Job variables for this run, as a JSON object."
    ),
    tag: list[str] = typer.Option([], "--tag", help="A tag for this run; repeatable."),
    watch: bool = typer.Option(False, "--watch", help="Stream logs and states until it ends."),
    timeout: float | None = typer.Option(
        None, "--timeout", min=0, help="With --watch: stop watching after this many seconds."
    ),
    output: str = output_option(),
) -> None:
    """Start a run of a deployment (exit 0 on COMPLETED with --watch, 1 otherwise)."""
    from flowyard.cli._watch import watch_run
    from flowyard.schemas import flow_runs as fr

    deployment = read_deployment(name)
    values = parse_parameters(param, params, deployment.parameter_schema)
    variables: dict[str, Any] = {}
    if job_variables:
        try:
            variables = json.loads(job_variables)
        except ValueError as exc:
            raise UsageError(f"--job-variables is not JSON: {exc}") from None
        if not isinstance(variables, dict):
            raise UsageError("--job-variables must be a JSON object")
    run_ = client().create_flow_run(
        deployment.id, fr.FlowRunCreate(parameters=values, job_variables=variables, tags=tag)
    )
    if check_output(output) == "json" and not watch:
        print_json(run_)
        return
    typer.echo(
        f"Created flow run {run_.name!r} ({run_.id}) of {deployment.full_name}: "
        f"{run_.state_type.value}" + (f" ({run_.state_name})" if run_.state_name else "")
    )
    if run_.state_message:
        typer.echo(f"  {run_.state_message}")
    if not watch:
        typer.echo(f"Watch it with: flowyard flow-run logs {run_.id} --follow")
        return
    code = watch_run(run_.id, timeout=timeout, run_name=run_.name)
    if code:
        raise typer.Exit(code)


def _set_paused(name: str, paused: bool) -> None:
    from flowyard.schemas import deployments as dep

    deployment = read_deployment(name)
    client().update_deployment(deployment.id, dep.DeploymentUpdate(paused=paused))
    typer.echo(f"{'Paused' if paused else 'Resumed'} deployment {deployment.full_name!r}.")


@app.command("pause")
def pause(name: str = typer.Argument(...)) -> None:
    """Pause a deployment: its schedules stop and new runs wait."""
    _set_paused(name, True)


@app.command("resume")
def resume(name: str = typer.Argument(...)) -> None:
    """Resume a paused deployment."""
    _set_paused(name, False)


@app.command("delete")
def delete(
    name: str = typer.Argument(...),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a deployment."""
    deployment = read_deployment(name)
    confirm_or_exit(f"Delete deployment {deployment.full_name!r}?", yes)
    client().delete_deployment(deployment.id)
    typer.echo(f"Deleted deployment {deployment.full_name!r}.")
