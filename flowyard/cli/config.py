"""``flowyard config``: the effective settings and where they came from."""

from __future__ import annotations

import json

import typer

app = typer.Typer(rich_markup_mode=None, help="Show and change settings.", no_args_is_help=True)

_SECRET_FIELDS = {"api_key"}


@app.command("show")
def show(
    output: str = typer.Option("table", "--output", "-o", help="table or json."),
) -> None:
    """Print the effective settings (environment over settings file over defaults)."""
    from flowyard.settings import Settings, settings_file

    settings = Settings()
    values = settings.model_dump(mode="json")
    values["database_url"] = settings.effective_database_url
    values["api_url"] = settings.effective_api_url
    for name in _SECRET_FIELDS:
        if values.get(name):
            values[name] = "********"
    if output == "json":
        typer.echo(json.dumps(values, indent=2, sort_keys=True))
        return
    typer.echo(f"# settings file: {settings_file()}")
    for key in sorted(values):
        typer.echo(f"{key.upper():32} {json.dumps(values[key])}")


@app.command("set")
def set_(
    key: str = typer.Argument(..., help="Setting name, e.g. port or FLOWYARD_PORT."),
    value: str = typer.Argument(..., help="New value (JSON for lists and maps)."),
) -> None:
    """Write a setting to the settings file."""
    from flowyard.cli._errors import UsageError
    from flowyard.settings import Settings, settings_file

    name = key.lower().removeprefix("flowyard_")
    if name not in Settings.model_fields:
        raise UsageError(f"unknown setting {key!r}; see `flowyard config show`")
    path = settings_file()
    import tomllib

    data: dict[str, object] = {}
    if path.is_file():
        data = tomllib.loads(path.read_text())
    try:
        parsed: object = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    candidate = {**data, name: parsed}
    from pydantic import ValidationError

    try:
        Settings.model_validate({k: v for k, v in candidate.items() if k in Settings.model_fields})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UsageError(f"{name}: {err['msg']}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_to_toml(candidate))
    typer.echo(f"{name} = {json.dumps(parsed)} written to {path}")


def _to_toml(data: dict[str, object]) -> str:
    # Settings are flat scalars, lists and string maps; JSON literals are valid TOML for those
    # except maps, which become inline tables.
    lines = []
    for key in sorted(data):
        value = data[key]
        if isinstance(value, dict):
            inner = ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items())
            lines.append(f"{key} = {{{inner}}}")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"
