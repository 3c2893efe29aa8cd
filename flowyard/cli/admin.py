"""``flowyard usage``, ``workspace``, ``api-key``, ``variable``, ``secret``, ``profile``, ``login``."""

from __future__ import annotations

import json
import re
import sys

import typer

from flowyard.cli._common import (
    check_output,
    client,
    local_time,
    output_option,
    print_json,
    table,
)
from flowyard.cli._errors import UsageError

workspace_app = typer.Typer(
    rich_markup_mode=None, help="Workspaces and their compute limits.", no_args_is_help=True
)
api_key_app = typer.Typer(
    rich_markup_mode=None, help="API keys of the workspace.", no_args_is_help=True
)
variable_app = typer.Typer(
    rich_markup_mode=None, help="Variables: named JSON values flows read.", no_args_is_help=True
)
secret_app = typer.Typer(
    rich_markup_mode=None,
    help="Secrets: encrypted values, never printed back.",
    no_args_is_help=True,
)
profile_app = typer.Typer(
    rich_markup_mode=None, help="Servers the CLI and SDK can point at.", no_args_is_help=True
)


# -- usage ------------------------------------------------------------------------------


def usage(
    month: str | None = typer.Option(None, "--month", help="YYYY-MM (default: this month)."),
    by: str | None = typer.Option(None, "--by", help="Split by `deployment` or `day`."),
    output: str = output_option(),
) -> None:
    """Compute minutes used this month against the workspace's limit."""
    if month is not None and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise UsageError(f"--month {month!r}: expected YYYY-MM, e.g. 2026-11")
    if by is not None and by not in ("deployment", "day"):
        raise UsageError(f"--by {by!r}: expected 'deployment' or 'day'")
    summary = client().read_usage(month, by)  # type: ignore[arg-type]
    if check_output(output) == "json":
        print_json(summary)
        return
    limit = "no limit" if summary.limit_minutes is None else f"{summary.limit_minutes} min"
    typer.echo(
        f"{summary.month}: {summary.used_minutes} min used of {limit}"
        + (
            f", {summary.remaining_minutes} min left"
            if summary.remaining_minutes is not None
            else ""
        )
        + f"; {summary.open_runs} run(s) using compute now; resets on {summary.resets_on}."
    )
    if by:
        table(
            summary.buckets,
            [
                (by, lambda b: b.key),
                ("runs", lambda b: b.runs),
                ("minutes", lambda b: b.billed_minutes),
                ("seconds", lambda b: f"{b.seconds:.0f}"),
            ],
            empty="No compute used in that month.",
        )


# -- workspaces -------------------------------------------------------------------------


@workspace_app.command("ls")
def workspace_ls(output: str = output_option()) -> None:
    """List workspaces (all with an admin key, else your own)."""
    spaces = client().list_workspaces()
    if check_output(output) == "json":
        print_json(spaces)
        return
    table(
        spaces,
        [
            ("name", lambda w: w.name),
            ("monthly limit (min)", lambda w: w.monthly_limit_minutes or "none"),
            ("concurrency limit", lambda w: w.concurrency_limit or "none"),
            ("created", lambda w: w.created),
        ],
    )


@workspace_app.command("create")
def workspace_create(
    name: str = typer.Argument(...),
    monthly_limit: int | None = typer.Option(
        None, "--monthly-limit", min=0, help="Minutes a month."
    ),
    output: str = output_option(),
) -> None:
    """Create a workspace (admin key); prints its first admin key once."""
    from flowyard.schemas import workspaces as ws

    created = client().create_workspace(
        ws.WorkspaceCreate(name=name, monthly_limit_minutes=monthly_limit)
    )
    if check_output(output) == "json":
        print_json(created)
        return
    typer.echo(
        f"Created workspace {name!r}. Its admin API key (shown once):\n\n    {created.key}\n"
    )


@workspace_app.command("set-limit")
def workspace_set_limit(
    name: str = typer.Argument(...),
    minutes: int | None = typer.Option(None, "--minutes", min=0, help="Monthly compute minutes."),
    unlimited: bool = typer.Option(False, "--unlimited", help="Remove the monthly limit."),
) -> None:
    """Set a workspace's monthly compute-minute limit (admin key)."""
    from flowyard.schemas import workspaces as ws

    if (minutes is None) == (not unlimited):
        raise UsageError("give either --minutes N or --unlimited")
    client().update_workspace(
        name,
        ws.WorkspaceUpdate(monthly_limit_minutes=minutes, clear_monthly_limit=unlimited),
    )
    shown = "no limit" if unlimited else f"{minutes} minutes a month"
    typer.echo(f"Workspace {name!r}: {shown}. Runs waiting on the quota start if it allows.")


# -- API keys ---------------------------------------------------------------------------


@api_key_app.command("create")
def api_key_create(
    name: str = typer.Argument(..., help="What the key is for."),
    admin: bool = typer.Option(False, "--admin", help="An admin key (manages workspaces)."),
    output: str = output_option(),
) -> None:
    """Create an API key; the key is shown once."""
    from flowyard.schemas import workspaces as ws

    created = client().create_api_key(ws.ApiKeyCreate(name=name, admin=admin))
    if check_output(output) == "json":
        print_json(created)
        return
    typer.echo(f"Created API key {name!r} (shown once, store it now):\n\n    {created.key}\n")


@api_key_app.command("ls")
def api_key_ls(output: str = output_option()) -> None:
    """List API keys (never their secret part)."""
    keys = client().list_api_keys()
    if check_output(output) == "json":
        print_json(keys)
        return
    table(
        keys,
        [
            ("id", lambda k: k.id),
            ("name", lambda k: k.name),
            ("prefix", lambda k: f"fy_{k.prefix}_…"),
            ("admin", lambda k: "yes" if k.is_admin else ""),
            ("last used", lambda k: k.last_used),
            (
                "status",
                lambda k: f"revoked {local_time(k.revoked_at)}" if k.revoked_at else "active",
            ),
        ],
    )


@api_key_app.command("revoke")
def api_key_revoke(key: str = typer.Argument(..., help="The key's id, name or prefix.")) -> None:
    """Revoke an API key: it stops working at once."""
    revoked = client().revoke_api_key(key)
    typer.echo(f"Revoked API key {revoked.name!r} ({revoked.id}).")


# -- variables --------------------------------------------------------------------------


@variable_app.command("set")
def variable_set(
    name: str = typer.Argument(...),
    value: str = typer.Argument(..., help="JSON, or plain text for a string."),
    tag: list[str] = typer.Option([], "--tag"),
) -> None:
    """Create or change a variable."""
    from flowyard.schemas.variables import VariableSet

    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    client().set_variable(name, VariableSet(value=parsed, tags=tag))
    typer.echo(f"Set variable {name!r}.")


@variable_app.command("get")
def variable_get(name: str = typer.Argument(...)) -> None:
    """Print a variable's value (JSON)."""
    from flowyard.client import NotFoundError

    try:
        value = client().read_variable(name).value
    except NotFoundError:
        raise UsageError(f"no variable named {name!r}") from None
    typer.echo(value if isinstance(value, str) else json.dumps(value))


@variable_app.command("ls")
def variable_ls(output: str = output_option()) -> None:
    """List variables."""
    variables = list(client().iter_variables())
    if check_output(output) == "json":
        print_json(variables)
        return
    table(
        variables,
        [
            ("name", lambda v: v.name),
            ("value", lambda v: json.dumps(v.value)[:60]),
            ("tags", lambda v: v.tags),
            ("updated", lambda v: v.updated),
        ],
    )


@variable_app.command("delete")
def variable_delete(name: str = typer.Argument(...)) -> None:
    """Delete a variable."""
    from flowyard.client import NotFoundError

    try:
        client().delete_variable(name)
    except NotFoundError:
        raise UsageError(f"no variable named {name!r}") from None
    typer.echo(f"Deleted variable {name!r}.")


# -- secrets ----------------------------------------------------------------------------


@secret_app.command("set")
def secret_set(
    name: str = typer.Argument(...),
    value: str | None = typer.Option(
        None, "--value", help="The value (default: read from standard input or a prompt)."
    ),
) -> None:
    """Store a secret, encrypted; the value is never printed back."""
    if value is None:
        value = (
            sys.stdin.read().rstrip("\n")
            if not sys.stdin.isatty()
            else typer.prompt(f"Value of {name}", hide_input=True)
        )
    if not value:
        raise UsageError("the secret's value is empty")
    client().set_secret(name, value)
    typer.echo(f"Stored secret {name!r}.")


@secret_app.command("get")
def secret_get(name: str = typer.Argument(...)) -> None:
    """Show that a secret exists and when it changed (never its value)."""
    from flowyard.client import NotFoundError

    try:
        info = client().read_secret(name)
    except NotFoundError:
        raise UsageError(f"no secret named {name!r}") from None
    typer.echo(f"{info.name}: ******** (updated {local_time(info.updated)})")


@secret_app.command("ls")
def secret_ls(output: str = output_option()) -> None:
    """List secrets (names only)."""
    secrets = list(client().iter_secrets())
    if check_output(output) == "json":
        print_json(secrets)
        return
    table(secrets, [("name", lambda s: s.name), ("updated", lambda s: s.updated)])


@secret_app.command("delete")
def secret_delete(name: str = typer.Argument(...)) -> None:
    """Delete a secret."""
    from flowyard.client import NotFoundError

    try:
        client().delete_secret(name)
    except NotFoundError:
        raise UsageError(f"no secret named {name!r}") from None
    typer.echo(f"Deleted secret {name!r}.")


# -- profiles ---------------------------------------------------------------------------


def login(
    url: str = typer.Option(..., "--url", help="The server's API, e.g. http://host:4280/api."),
    key: str = typer.Option(..., "--key", help="An API key of your workspace."),
    profile: str = typer.Option("default", "--profile", help="Name to save it under."),
) -> None:
    """Point the CLI and SDK at a server (checks the key, saves a profile, activates it)."""
    from flowyard.client import Profile, get_sync_client, load_profiles, save_profiles

    api_url = url.rstrip("/")
    if not api_url.endswith("/api") and "://" in api_url and not api_url.startswith("unix"):
        api_url += "/api"
    with get_sync_client(api_url, key, required=True) as api:
        me = api.read_me()
    save_profiles(load_profiles().with_profile(Profile(profile, api_url, key)))
    typer.echo(f"Logged in to {api_url} as workspace {me.workspace.name!r} (profile {profile!r}).")


@profile_app.command("ls")
def profile_ls() -> None:
    """List saved profiles; * marks the active one."""
    from flowyard.client import load_profiles

    profiles = load_profiles()
    if not profiles.profiles:
        typer.echo("No profiles: `flowyard login --url URL --key KEY` saves one.")
    for name, entry in sorted(profiles.profiles.items()):
        typer.echo(f"{'*' if name == profiles.active else ' '} {name}\t{entry.api_url}")


@profile_app.command("use")
def profile_use(name: str = typer.Argument(...)) -> None:
    """Make a saved profile the active one."""
    from flowyard.client import load_profiles, save_profiles

    profiles = load_profiles()
    if name not in profiles.profiles:
        from flowyard.cli._common import suggest

        raise suggest(name, profiles.profiles, "profile")
    save_profiles(profiles.activate(name))
    typer.echo(f"Using profile {name!r}.")


@profile_app.command("delete")
def profile_delete(name: str = typer.Argument(...)) -> None:
    """Delete a saved profile."""
    from flowyard.client import load_profiles, save_profiles

    profiles = load_profiles()
    if name not in profiles.profiles:
        from flowyard.cli._common import suggest

        raise suggest(name, profiles.profiles, "profile")
    save_profiles(profiles.without(name))
    typer.echo(f"Deleted profile {name!r}.")
