"""``flowyard artifact``: list, inspect and delete what runs published."""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any

import typer

from flowyard.cli._common import (
    check_output,
    client,
    confirm_or_exit,
    details,
    local_time,
    output_option,
    print_json,
    table,
)
from flowyard.cli._errors import UsageError

if TYPE_CHECKING:
    from flowyard.schemas.artifacts import Artifact

app = typer.Typer(
    rich_markup_mode=None,
    help="Artifacts: reports, tables, links, images and progress that runs publish.",
    no_args_is_help=True,
)

# As flowyard.schemas.artifacts has them, without importing pydantic for `--help`.
TYPES = ("markdown", "table", "link", "image", "progress")
KEY = re.compile(r"[a-z0-9-]{1,200}")
# A key's versions are counted from one page of them: each carries its data.
HISTORY = 100
MAX_ROWS = 500


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _check_key(value: str) -> str:
    if not KEY.fullmatch(value):
        raise UsageError(f"artifact key {value!r}: expected lowercase letters, digits and dashes")
    return value


def _versions(key: str) -> list[Artifact]:
    return client().list_artifacts(key=key, limit=HISTORY)


def _by_id(artifact_id: uuid.UUID) -> Artifact:
    from flowyard.client import NotFoundError

    try:
        return client().read_artifact(artifact_id)
    except NotFoundError:
        raise UsageError(f"no artifact {artifact_id} in this workspace") from None


def _read(value: str) -> tuple[Artifact, list[Artifact]]:
    """An artifact by id, or the latest under a key; with its key's versions, newest first."""
    artifact_id = _uuid(value)
    if artifact_id is not None:
        artifact = _by_id(artifact_id)
        return artifact, _versions(artifact.key) if artifact.key else []
    versions = _versions(_check_key(value))
    if not versions:
        raise UsageError(f"no artifact with key {value!r}; see `flowyard artifact ls`")
    return versions[0], versions


def _shorten(text: str | None, width: int = 50) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("\n", "\\n")


def text_table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    """A table as aligned lines of text (a header and a rule when there are columns)."""
    shown = [[_cell(v) for v in row] for row in rows[:MAX_ROWS]]
    head = [_cell(c) for c in columns]
    width = max([len(head), *(len(r) for r in shown)], default=0)
    grid = ([head] if head else []) + shown
    sizes = [max((len(r[i]) for r in grid if i < len(r)), default=0) for i in range(width)]
    lines = []
    for n, row in enumerate(grid):
        cells = [row[i] if i < len(row) else "" for i in range(width)]
        lines.append("  ".join(c.ljust(sizes[i]) for i, c in enumerate(cells)).rstrip())
        if head and n == 0:
            lines.append("  ".join("-" * size for size in sizes))
    if len(rows) > MAX_ROWS:
        lines.append(f"... showing {MAX_ROWS} of {len(rows)} rows; --output json has them all")
    return lines


def _content(artifact: Artifact) -> tuple[list[tuple[str, object]], list[str]]:
    """Extra ``key: value`` lines and the body below them, by type."""
    data = artifact.data
    if artifact.type == "markdown" and isinstance(data, str):
        return [], ["", data]
    if artifact.type == "table" and isinstance(data, dict):
        rows = data.get("rows") or []
        return [("rows", str(len(rows)))], ["", *text_table(data.get("columns") or [], rows)]
    if artifact.type in ("link", "image") and isinstance(data, dict):
        pairs: list[tuple[str, object]] = [("url", str(data.get("url", "")))]
        if data.get("text"):
            pairs.append(("text", str(data["text"])))
        return pairs, []
    if artifact.type == "progress" and isinstance(data, int | float):
        return [("progress", f"{data:g}%")], []
    return [("data", data)], []


def _versions_line(artifact: Artifact, versions: list[Artifact]) -> str:
    if len(versions) <= 1:
        return "1 version"
    count = f"{len(versions)}+" if len(versions) >= HISTORY else str(len(versions))
    latest = versions[0].id
    where = "this is the latest" if artifact.id == latest else f"the latest is {latest}"
    return f"{count} versions ({where})"


@app.command("ls")
def ls(
    key: str | None = typer.Option(None, "--key", "-k", help="Only this key's versions."),
    flow_run: str | None = typer.Option(
        None, "--flow-run", help="Only the artifacts of this flow run (its id)."
    ),
    type_: str | None = typer.Option(
        None, "--type", "-t", help="Only this type: " + ", ".join(TYPES) + "."
    ),
    limit: int = typer.Option(20, "--limit", min=1, max=500, help="How many artifacts."),
    output: str = output_option(),
) -> None:
    """List artifacts, newest first."""
    if type_ is not None and type_.lower() not in TYPES:
        raise UsageError(f"--type {type_!r}: expected one of {', '.join(TYPES)}")
    run_id = None
    if flow_run is not None and (run_id := _uuid(flow_run)) is None:
        raise UsageError(f"--flow-run {flow_run!r} is not a flow run id (a UUID)")
    artifacts = client().list_artifacts(
        key=_check_key(key) if key is not None else None,
        flow_run_id=run_id,
        type=type_.lower() if type_ else None,
        limit=limit,
    )
    if check_output(output) == "json":
        print_json(artifacts)
        return
    table(
        artifacts,
        [
            ("id", lambda a: a.id),
            ("key", lambda a: a.key),
            ("type", lambda a: a.type),
            ("run", lambda a: a.flow_run_id),
            ("created", lambda a: a.created),
            ("description", lambda a: _shorten(a.description)),
        ],
        empty="No artifacts match." if key or flow_run or type_ else "No artifacts yet.",
    )


@app.command("inspect")
def inspect(
    id_or_key: str = typer.Argument(..., help="Artifact id, or a key (its latest version)."),
    output: str = output_option(),
) -> None:
    """Show an artifact with its data: markdown as text, a table aligned, a link's URL."""
    artifact, versions = _read(id_or_key)
    if check_output(output) == "json":
        print_json(artifact)
        return
    extra, body = _content(artifact)
    pairs: list[tuple[str, object]] = [
        ("id", str(artifact.id)),
        ("key", artifact.key or ""),
        ("type", artifact.type),
        ("description", artifact.description or ""),
        ("flow run", str(artifact.flow_run_id or "")),
        ("task run", str(artifact.task_run_id or "")),
        ("created", local_time(artifact.created)),
        ("updated", local_time(artifact.updated)),
    ]
    if artifact.key:
        pairs.append(("versions", _versions_line(artifact, versions)))
    details(pairs + extra)
    for line in body:
        typer.echo(line)


@app.command("delete")
def delete(
    artifact_id: str = typer.Argument(..., help="Artifact id."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete one artifact (one version of its key)."""
    found = _uuid(artifact_id)
    if found is None:
        raise UsageError(
            f"artifact id {artifact_id!r} is not a UUID; see `flowyard artifact ls --key KEY`"
        )
    artifact = _by_id(found)
    name = f"{artifact.type} artifact {artifact.key or artifact.id}"
    confirm_or_exit(f"Delete {name}?", yes)
    client().delete_artifact(artifact.id)
    typer.echo(f"Deleted {name} ({artifact.id}).")
