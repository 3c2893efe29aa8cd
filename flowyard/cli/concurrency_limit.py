"""``flowyard concurrency-limit``: named slot counts that flows take with ``concurrency(...)``
or ``rate_limit(...)``; create, list, inspect, change and delete them by name."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from flowyard.schemas.concurrency import ConcurrencyLimit

app = typer.Typer(
    rich_markup_mode=None,
    help="Global concurrency limits: named slots that flows take with concurrency() "
    "or rate_limit().",
    no_args_is_help=True,
)

# As flowyard.schemas.concurrency has them, without importing pydantic for `--help`.
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}")
MAX_LIMIT = 1_000_000
MAX_DECAY = 1_000_000.0
DECAY_HELP = "Slots freed per second after rate_limit() takes them (0: not a rate limit)."


def _check_name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise UsageError(
            f"concurrency limit name {value!r}: expected letters, digits, '_', '.', ':' or '-' "
            "(up to 200, starting with a letter, digit or '_')"
        )
    return value


def _check_limit(value: int, what: str) -> int:
    if not 0 <= value <= MAX_LIMIT:
        raise UsageError(f"{what} {value}: expected a whole number from 0 to {MAX_LIMIT}")
    return value


def _check_decay(value: float) -> float:
    if not (math.isfinite(value) and 0 <= value <= MAX_DECAY):
        raise UsageError(
            f"--slot-decay-per-second {value:g}: expected a number from 0 to {MAX_DECAY:g}"
        )
    return value


def _missing(name: str) -> UsageError:
    names = (limit.name for limit in client().list_concurrency_limits())
    return suggest(name, names, "concurrency limit")


def _read(name: str) -> ConcurrencyLimit:
    from flowyard.client import NotFoundError

    try:
        return client().read_concurrency_limit(_check_name(name))
    except NotFoundError:
        raise _missing(name) from None


def _slots(count: int) -> str:
    return f"{count} slot{'' if count == 1 else 's'}"


def _decay(limit: ConcurrencyLimit) -> str:
    rate = limit.slot_decay_per_second
    return f"{rate:g}/s" if rate > 0 else ""


def _show(limit: ConcurrencyLimit) -> None:
    rate = limit.slot_decay_per_second
    details(
        [
            ("name", limit.name),
            ("id", str(limit.id)),
            ("limit", _slots(limit.limit)),
            ("active slots", f"{limit.active_slots} of {limit.limit} held now"),
            ("active", "yes" if limit.active else "no (it limits nothing)"),
            (
                "slot decay",
                f"{rate:g} slots per second (usable as a rate limit)"
                if rate > 0
                else "none (not usable as a rate limit)",
            ),
            ("created", local_time(limit.created)),
            ("updated", local_time(limit.updated)),
        ]
    )


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Limit name, e.g. database or tag:warehouse."),
    limit: int = typer.Argument(..., help="How many slots may be held at once."),
    inactive: bool = typer.Option(
        False, "--inactive", help="Create it inactive: it limits nothing until activated."
    ),
    slot_decay_per_second: float = typer.Option(0.0, "--slot-decay-per-second", help=DECAY_HELP),
    output: str = output_option(),
) -> None:
    """Create a concurrency limit of LIMIT slots."""
    from flowyard.client import ConflictError
    from flowyard.schemas.concurrency import ConcurrencyLimitCreate

    data = ConcurrencyLimitCreate(
        name=_check_name(name),
        limit=_check_limit(limit, "LIMIT"),
        active=not inactive,
        slot_decay_per_second=_check_decay(slot_decay_per_second),
    )
    try:
        made = client().create_concurrency_limit(data)
    except ConflictError:
        raise UsageError(
            f"concurrency limit {name!r} already exists; change it with "
            f"`flowyard concurrency-limit update {name}`"
        ) from None
    if check_output(output) == "json":
        print_json(made)
        return
    line = f"Created concurrency limit {made.name!r} with {_slots(made.limit)}"
    if made.slot_decay_per_second > 0:
        line += f", freeing {made.slot_decay_per_second:g} per second as a rate limit"
    typer.echo(line + ".")
    if not made.active:
        typer.echo(
            f"It is inactive and limits nothing until "
            f"`flowyard concurrency-limit update {made.name} --active`."
        )


@app.command("ls")
def ls(output: str = output_option()) -> None:
    """List concurrency limits by name, with the slots held now."""
    limits = client().list_concurrency_limits()
    if check_output(output) == "json":
        print_json(limits)
        return
    table(
        limits,
        [
            ("name", lambda c: c.name),
            ("limit", lambda c: c.limit),
            ("active slots", lambda c: c.active_slots),
            ("active", lambda c: "yes" if c.active else "no"),
            ("decay", _decay),
        ],
        empty="No concurrency limits yet: flowyard concurrency-limit create NAME LIMIT",
    )


@app.command("inspect")
def inspect(
    name: str = typer.Argument(..., help="Limit name."), output: str = output_option()
) -> None:
    """Show a concurrency limit with the slots held now."""
    limit = _read(name)
    if check_output(output) == "json":
        print_json(limit)
        return
    _show(limit)


@app.command("update")
def update(
    name: str = typer.Argument(..., help="Limit name."),
    limit: int | None = typer.Option(None, "--limit", help="How many slots may be held at once."),
    active: bool | None = typer.Option(
        None, "--active/--inactive", help="Whether the limit limits anything."
    ),
    slot_decay_per_second: float | None = typer.Option(
        None, "--slot-decay-per-second", help=DECAY_HELP
    ),
    output: str = output_option(),
) -> None:
    """Change a limit's slots, whether it is active, or its slot decay."""
    from flowyard.client import NotFoundError
    from flowyard.schemas.concurrency import ConcurrencyLimitUpdate

    _check_name(name)
    changes: dict[str, object] = {}
    if limit is not None:
        changes["limit"] = _check_limit(limit, "--limit")
    if active is not None:
        changes["active"] = active
    if slot_decay_per_second is not None:
        changes["slot_decay_per_second"] = _check_decay(slot_decay_per_second)
    if not changes:
        raise UsageError(
            "nothing to change: give --limit, --active/--inactive or --slot-decay-per-second"
        )
    try:
        changed = client().update_concurrency_limit(
            name, ConcurrencyLimitUpdate.model_validate(changes)
        )
    except NotFoundError:
        raise _missing(name) from None
    if check_output(output) == "json":
        print_json(changed)
        return
    state = "active" if changed.active else "inactive"
    decay = f", slot decay {changed.slot_decay_per_second:g}/s" if _decay(changed) else ""
    typer.echo(
        f"Updated concurrency limit {changed.name!r}: {_slots(changed.limit)}, {state}{decay}."
    )


@app.command("delete")
def delete(
    name: str = typer.Argument(..., help="Limit name."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a concurrency limit: what it limited is no longer limited."""
    from flowyard.client import NotFoundError

    limit = _read(name)
    held = f" ({_slots(limit.active_slots)} held now)" if limit.active_slots else ""
    confirm_or_exit(f"Delete concurrency limit {limit.name!r}{held}?", yes)
    try:
        client().delete_concurrency_limit(limit.name)
    except NotFoundError:
        raise _missing(name) from None
    typer.echo(f"Deleted concurrency limit {limit.name!r}.")
