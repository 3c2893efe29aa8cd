"""`flowyard concurrency-limit` against a real server: create, list with the slots held, inspect,
update, delete with confirmation, `--output json`, and clear exit-2 errors."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from flowyard.client import SyncClient
from flowyard.schemas import concurrency as cl
from tests.integration.cli.conftest import Cli


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _listed(cli: Cli, name: str) -> dict[str, Any] | None:
    found = [limit for limit in cli.json("concurrency-limit", "ls") if limit["name"] == name]
    return found[0] if found else None


def _row(cli: Cli, name: str) -> list[str]:
    """The tab-separated `ls` line of ``name`` (piped output has no table borders)."""
    lines = cli("concurrency-limit", "ls").stdout.splitlines()
    assert lines[0] == "name\tlimit\tactive slots\tactive\tdecay"
    found = [line.split("\t") for line in lines[1:] if line.split("\t")[0] == name]
    assert len(found) == 1, lines
    return found[0]


@pytest.fixture
def limit(cli: Cli) -> str:
    name = _name("database")
    made = cli("concurrency-limit", "create", name, "2")
    assert made.exit_code == 0, made.output
    assert made.stdout == f"Created concurrency limit {name!r} with 2 slots.\n"
    return name


def test_a_limit_from_create_to_delete(cli: Cli, limit: str) -> None:
    assert _row(cli, limit) == [limit, "2", "0", "yes", ""]
    listed = _listed(cli, limit)
    assert listed is not None
    assert (listed["limit"], listed["active"], listed["active_slots"]) == (2, True, 0)
    assert listed["slot_decay_per_second"] == 0.0
    shown = cli("concurrency-limit", "inspect", limit)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith(f"name:         {limit}\n")
    for line in (
        f"id:           {listed['id']}",
        "limit:        2 slots",
        "active slots: 0 of 2 held now",
        "active:       yes",
        "slot decay:   none (not usable as a rate limit)",
    ):
        assert line in shown.stdout.splitlines(), shown.stdout
    assert cli.json("concurrency-limit", "inspect", limit)["id"] == listed["id"]

    changed = cli("concurrency-limit", "update", limit, "--limit", "5", "--inactive")
    assert changed.exit_code == 0, changed.output
    assert changed.stdout == f"Updated concurrency limit {limit!r}: 5 slots, inactive.\n"
    assert _row(cli, limit) == [limit, "5", "0", "no", ""]
    assert (
        "active:       no (it limits nothing)" in cli("concurrency-limit", "inspect", limit).stdout
    )
    as_json = cli.json("concurrency-limit", "update", limit, "--active")
    assert (as_json["limit"], as_json["active"]) == (5, True)  # what was not given is kept
    decayed = cli("concurrency-limit", "update", limit, "--slot-decay-per-second", "0.5")
    assert decayed.stdout == (
        f"Updated concurrency limit {limit!r}: 5 slots, active, slot decay 0.5/s.\n"
    )
    assert _row(cli, limit) == [limit, "5", "0", "yes", "0.5/s"]

    declined = cli("concurrency-limit", "delete", limit, input="n\n")
    assert declined.exit_code == 1
    assert _listed(cli, limit) is not None
    deleted = cli("concurrency-limit", "delete", limit, "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert deleted.stdout == f"Deleted concurrency limit {limit!r}.\n"
    assert _listed(cli, limit) is None


def test_create_takes_inactive_and_a_slot_decay_and_prints_json(cli: Cli) -> None:
    name = _name("tag:warehouse")  # a ':' travels in the URL path
    made = cli("concurrency-limit", "create", name, "10", "--slot-decay-per-second", "2.5")
    assert made.exit_code == 0, made.output
    assert made.stdout == (
        f"Created concurrency limit {name!r} with 10 slots, freeing 2.5 per second "
        "as a rate limit.\n"
    )
    shown = cli("concurrency-limit", "inspect", name).stdout
    assert "slot decay:   2.5 slots per second (usable as a rate limit)\n" in shown
    other = _name("api")
    quiet = cli("concurrency-limit", "create", other, "1", "--inactive")
    assert quiet.stdout == (
        f"Created concurrency limit {other!r} with 1 slot.\n"
        f"It is inactive and limits nothing until "
        f"`flowyard concurrency-limit update {other} --active`.\n"
    )
    third = _name("zero")
    created = cli.json("concurrency-limit", "create", third, "0", "--inactive")
    assert (created["name"], created["limit"], created["active"]) == (third, 0, False)
    assert created["active_slots"] == 0
    for made_name in (name, other, third):
        assert cli("concurrency-limit", "delete", made_name, "-y").exit_code == 0


def test_the_slots_held_now_are_shown(cli: Cli, api: SyncClient, limit: str) -> None:
    grant = api.acquire_concurrency_slots(cl.SlotRequest(names=[limit]))
    assert grant.acquired
    assert _row(cli, limit) == [limit, "2", "1", "yes", ""]
    assert "active slots: 1 of 2 held now\n" in cli("concurrency-limit", "inspect", limit).stdout
    asked = cli("concurrency-limit", "delete", limit, input="n\n")
    assert asked.exit_code == 1
    assert f"Delete concurrency limit {limit!r} (1 slot held now)?" in asked.stdout
    assert grant.lease_id is not None
    api.release_concurrency_lease(grant.lease_id)
    assert _row(cli, limit)[2] == "0"


def test_an_empty_list_says_how_to_create_one(cli: Cli, api: SyncClient) -> None:
    for existing in api.list_concurrency_limits():
        api.delete_concurrency_limit(existing.name)
    listed = cli("concurrency-limit", "ls")
    assert (listed.exit_code, listed.stdout) == (
        0,
        "No concurrency limits yet: flowyard concurrency-limit create NAME LIMIT\n",
    )
    assert cli.json("concurrency-limit", "ls") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "bad name", "1"), "concurrency limit name 'bad name': expected letters"),
        (("create", ":tag", "1"), "concurrency limit name ':tag': expected letters"),
        (("create", "x" * 201, "1"), "(up to 200, starting with a letter, digit or '_')"),
        (("create", "fine", "1000001"), "LIMIT 1000001: expected a whole number from 0 to"),
        (
            ("create", "fine", "1", "--slot-decay-per-second", "-1"),
            "--slot-decay-per-second -1: expected a number from 0 to 1e+06",
        ),
        (("inspect", "no/such"), "concurrency limit name 'no/such': expected letters"),
        (("inspect", "no-such-limit"), "no concurrency limit named 'no-such-limit'"),
        (("update", "no-such-limit", "--limit", "3"), "no concurrency limit named 'no-such-limit'"),
        (("update", "some-limit"), "nothing to change: give --limit, --active/--inactive or"),
        (("update", "some-limit", "--limit", "2000000"), "--limit 2000000: expected a whole"),
        (("delete", "no-such-limit", "--yes"), "no concurrency limit named 'no-such-limit'"),
        (("delete", "bad name", "--yes"), "concurrency limit name 'bad name': expected"),
    ],
)
def test_a_bad_name_or_a_missing_limit_is_one_line_and_exit_two(
    cli: Cli, args: tuple[str, ...], message: str
) -> None:
    result = cli("concurrency-limit", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_a_name_taken_or_a_typo_is_one_line_and_exit_two(cli: Cli, limit: str) -> None:
    taken = cli("concurrency-limit", "create", limit, "3")
    assert taken.exit_code == 2, taken.output
    assert taken.stderr == (
        f"Error: concurrency limit {limit!r} already exists; change it with "
        f"`flowyard concurrency-limit update {limit}`\n"
    )
    typo = cli("concurrency-limit", "inspect", limit[:-1])
    assert typo.exit_code == 2
    assert f"did you mean {limit!r}" in typo.stderr
    assert typo.stderr.count("\n") == 1
    assert cli("concurrency-limit", "ls", "--output", "xml").exit_code == 2
    assert cli.json("concurrency-limit", "inspect", limit)["limit"] == 2  # unchanged


def test_the_commands_check_names_and_bounds_as_the_server_does() -> None:
    from pydantic import ValidationError

    from flowyard.cli import concurrency_limit as cmd

    assert f"^{cmd.NAME.pattern}$" == cl.NAME
    top = cl.ConcurrencyLimitCreate(
        name="x", limit=cmd.MAX_LIMIT, slot_decay_per_second=cmd.MAX_DECAY
    )
    assert (top.limit, top.slot_decay_per_second) == (cmd.MAX_LIMIT, cmd.MAX_DECAY)
    with pytest.raises(ValidationError):
        cl.ConcurrencyLimitCreate(name="x", limit=cmd.MAX_LIMIT + 1)
    with pytest.raises(ValidationError):
        cl.ConcurrencyLimitUpdate(slot_decay_per_second=cmd.MAX_DECAY * 1.01)
