"""``flowyard deploy`` and ``flowyard init``: deployments from a project's ``flowyard.yaml``.

The file follows the ``prefect.yaml`` schema (an existing ``prefect.yaml`` is
read as is): a ``pull`` list of steps the server runs before each run
(``git_clone``, ``pip_install_requirements``, ``set_working_directory``), and a
``deployments`` list of name, entrypoint, parameters, work pool with job
variables, schedules, tags, description, version. ``build`` and ``push``
sections are ignored with a note: managed runs take code from git or storage.
Without a ``git_clone`` step the code's source is the current git repository's
``origin`` remote and branch, as ``prefect deploy`` does.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import typer

from flowyard.cli._common import client
from flowyard.cli._errors import UsageError

PROJECT_FILES = ("flowyard.yaml", "prefect.yaml")
_ENV_TEMPLATE = re.compile(r"\{\{\s*\$([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def _project_file(path: Path | None) -> Path:
    if path is not None:
        if not path.is_file():
            raise UsageError(f"--file {path}: no such file")
        return path
    for name in PROJECT_FILES:
        if Path(name).is_file():
            return Path(name)
    raise UsageError(
        "no flowyard.yaml or prefect.yaml in this directory; write one with `flowyard init`"
    )


def _load(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UsageError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} must be a mapping with a `deployments` list")
    return data


def _expand_env(value: Any, where: str) -> Any:
    """``{{ $NAME }}`` from this shell's environment, resolved now (at deploy time)."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise UsageError(f"{where}: environment variable ${name} is not set")
            return os.environ[name]

        return _ENV_TEMPLATE.sub(replace, value)
    if isinstance(value, list):
        return [_expand_env(v, where) for v in value]
    if isinstance(value, dict):
        return {k: _expand_env(v, where) for k, v in value.items()}
    return value


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def _git_clone_step() -> dict[str, Any] | None:
    """A git_clone step for the repository this directory is in, if it has a remote."""
    url = _git("remote", "get-url", "origin")
    if url is None:
        return None
    step: dict[str, Any] = {"repository": url}
    branch = _git("rev-parse", "--abbrev-ref", "HEAD")
    if branch and branch != "HEAD":
        step["branch"] = branch
    return {"flowyard.deployments.steps.git_clone": step}


def _schedules(entry: dict[str, Any], where: str) -> list[dict[str, Any]]:
    raw = entry.get("schedules")
    if raw is None and entry.get("schedule"):
        raw = [entry["schedule"]]
    out = []
    for item in raw or []:
        if not isinstance(item, dict):
            raise UsageError(f"{where}: each schedule must be a mapping (cron, interval or rrule)")
        schedule = {
            k: item[k]
            for k in ("cron", "interval", "rrule", "timezone", "anchor_date")
            if k in item
        }
        out.append(
            {
                "schedule": schedule,
                "active": bool(item.get("active", True)),
                "catchup": bool(item.get("catchup", False)),
            }
        )
    return out


def _describe(entrypoint: str, root: Path) -> tuple[str, dict[str, Any], str | None]:
    """The flow's name, parameter schema and description, read from the local file."""
    from flowyard.sdk._schema import describe_flow_source

    path, sep, function = entrypoint.rpartition(":")
    if not sep:
        raise UsageError(f"entrypoint {entrypoint!r}: expected path/to/file.py:function")
    try:
        text = (root / path).read_text()
    except OSError:
        raise UsageError(f"entrypoint {entrypoint!r}: no file {path} under {root}") from None
    described = describe_flow_source(text, function)
    if described is None:
        raise UsageError(
            f"entrypoint {entrypoint!r}: {path} has no top-level function {function!r}"
        )
    name = described.flow_name or function.replace("_", "-")
    return name, described.parameter_schema, described.description


def build_deployments(data: dict[str, Any], root: Path) -> list[Any]:
    """The DeploymentCreate bodies a project file describes, checked."""
    from pydantic import ValidationError

    from flowyard.execution.steps import PullStepError, parse_pull_steps
    from flowyard.schemas import deployments as dep

    entries = data.get("deployments")
    if not isinstance(entries, list) or not entries:
        raise UsageError("the project file has no `deployments` list")
    default_pull = data.get("pull")
    bodies = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("name") or not entry.get("entrypoint"):
            raise UsageError(f"deployments[{index}]: needs at least `name` and `entrypoint`")
        where = f"deployment {entry['name']!r}"
        entry = _expand_env(entry, where)
        pull = _expand_env(entry.get("pull", default_pull), f"{where} pull steps") or []
        if not any(
            "git_clone" in str(next(iter(step), "")) for step in pull if isinstance(step, dict)
        ):
            here = _git_clone_step()
            if here is None:
                raise UsageError(
                    f"{where}: no git_clone pull step and this directory is not a git repository "
                    "with an `origin` remote; the server needs a place to fetch the code from"
                )
            pull = [here, *pull]
        try:
            plan = parse_pull_steps(pull)
        except PullStepError as exc:
            raise UsageError(f"{where}: {exc}") from None
        flow_name, schema, description = _describe(str(entry["entrypoint"]), root)
        pool = entry.get("work_pool") or {}
        clone = plan.clone
        source: dict[str, str | None] | None = None
        if clone is not None:
            source = {"kind": "git", "url": clone.repository, "branch": clone.branch}
            if clone.commit_sha:
                source["commit"] = clone.commit_sha
        try:
            bodies.append(
                dep.DeploymentCreate.model_validate(
                    {
                        "flow_name": flow_name,
                        "name": entry["name"],
                        "entrypoint": entry["entrypoint"],
                        "work_pool_name": pool.get("name"),
                        "job_variables": pool.get("job_variables") or {},
                        "source": source,
                        "pull_steps": pull,
                        "parameters": entry.get("parameters") or {},
                        "parameter_schema": schema,
                        "tags": entry.get("tags") or [],
                        "version": entry.get("version"),
                        "description": entry.get("description") or description or "",
                        "paused": bool(entry.get("paused", False)),
                        "concurrency_limit": entry.get("concurrency_limit"),
                        "schedules": _schedules(entry, where),
                    }
                )
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise UsageError(f"{where}: {field}: {first['msg']}") from None
    return bodies


def deploy(
    names: list[str] = typer.Argument(None, help="Deployments to apply (default: all with --all)."),
    all_: bool = typer.Option(False, "--all", help="Apply every deployment in the file."),
    file: Path | None = typer.Option(None, "--file", "-f", help="Project file to read."),
) -> None:
    """Create or update deployments from flowyard.yaml (or prefect.yaml)."""
    path = _project_file(file)
    data = _load(path)
    for section in ("build", "push"):
        if data.get(section):
            typer.echo(
                f"Note: `{section}` steps are skipped: managed runs fetch code from git or storage."
            )
    bodies = build_deployments(data, path.resolve().parent)
    if names:
        known = {b.name for b in bodies}
        missing = [n for n in names if n not in known]
        if missing:
            from flowyard.cli._common import suggest

            raise suggest(missing[0], known, f"deployment in {path}")
        bodies = [b for b in bodies if b.name in names]
    elif not all_ and len(bodies) > 1:
        raise UsageError(
            f"{path} has {len(bodies)} deployments: name the ones to apply, or pass --all "
            f"({', '.join(b.name for b in bodies)})"
        )
    api = client()
    for body in bodies:
        saved = api.upsert_deployment(body)
        typer.echo(f"Deployment '{saved.full_name}' applied (work pool {saved.work_pool_name}).")
        for warning in saved.warnings:
            typer.secho(f"  Warning: {warning}", fg="yellow")
        typer.echo(f"  Run it with: flowyard deployment run '{saved.full_name}'")


STARTER = """\
# Flowyard project file (the prefect.yaml schema). Apply with `flowyard deploy --all`.
name: {name}

# Steps the server runs before each run: fetch the code, install requirements.
pull:
{pull}
deployments:
  - name: {deployment}
    entrypoint: {entrypoint}
    parameters: {{}}
    work_pool:
      name: my-managed-pool
      job_variables:
        pip_packages: []
    # schedules:
    #   - cron: "0 3 * * *"
    #     timezone: UTC
"""


def _find_flow(root: Path) -> str:
    import ast

    for path in sorted(root.rglob("*.py")):
        if any(part.startswith(".") or part in ("venv", "node_modules") for part in path.parts):
            continue
        try:
            tree = ast.parse(path.read_text())
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for decorator in node.decorator_list:
                    target = decorator.func if isinstance(decorator, ast.Call) else decorator
                    if getattr(target, "id", getattr(target, "attr", None)) == "flow":
                        return f"{path.relative_to(root).as_posix()}:{node.name}"
    return "flows/flow.py:my_flow"


def init(
    force: bool = typer.Option(False, "--force", help="Overwrite an existing flowyard.yaml."),
) -> None:
    """Write a starter flowyard.yaml for the project in this directory."""
    target = Path("flowyard.yaml")
    if target.exists() and not force:
        raise UsageError("flowyard.yaml already exists; pass --force to overwrite it")
    root = Path.cwd()
    clone = _git_clone_step()
    if clone is not None:
        step = next(iter(clone.values()))
        lines = [
            "  - flowyard.deployments.steps.git_clone:",
            f"      repository: {step['repository']}",
        ]
        if step.get("branch"):
            lines.append(f"      branch: {step['branch']}")
    else:
        lines = [
            "  - flowyard.deployments.steps.git_clone:",
            "      repository: https://github.com/org/repo.git  # where the server fetches the code",
            "      branch: main",
        ]
    if (root / "requirements.txt").exists():
        lines += [
            "  - flowyard.deployments.steps.pip_install_requirements:",
            "      requirements_file: requirements.txt",
        ]
    entrypoint = _find_flow(root)
    target.write_text(
        STARTER.format(
            name=root.name,
            pull="\n".join(lines),
            deployment=entrypoint.rpartition(":")[2].replace("_", "-"),
            entrypoint=entrypoint,
        )
    )
    typer.echo(f"Wrote {target}: edit it, then `flowyard deploy --all`.")
