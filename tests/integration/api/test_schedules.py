"""Schedules the scheduler cannot use are refused at the API, naming the field."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from flowyard.server.ops import schedule_checks
from tests.integration.api.conftest import make_deployment, make_pool

DEPLOYMENT = {"flow_name": "etl", "name": "daily", "entrypoint": "flows/etl.py:etl"}

UNUSABLE = [
    ({"interval": 1e300}, "schedules.0.schedule.interval.interval", "less than or equal to"),
    ({"interval": 0}, "schedules.0.schedule.interval.interval", "greater than or equal to 1"),
    ({"interval": -60}, "schedules.0.schedule.interval.interval", "greater than or equal to 1"),
    (
        {"rrule": "FREQ=DAILY;INTERVAL=0"},
        "schedules.0.schedule.rrule.rrule",
        "expected INTERVAL of at least 1",
    ),
    ({"rrule": "FREQ=DAILY;COUNT=0"}, "schedules.0.schedule.rrule.rrule", "COUNT of at least 1"),
    (
        {"rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"},
        "schedules.0.schedule.rrule",
        "never fires after",
    ),
    # Three days from the default start (2020-01-01): all of them past.
    ({"rrule": "FREQ=DAILY;COUNT=3"}, "schedules.0.schedule.rrule", "never fires after"),
    ({"rrule": "FREQ=SECONDLY;BYSECOND=61"}, "schedules.0.schedule.rrule", "cannot be evaluated"),
    ({"cron": "0 0 31 2 *"}, "schedules.0.schedule.cron", "never fires after"),
    ({"every": "tuesday"}, "schedules.0.schedule", "one of 'cron', 'interval' or 'rrule'"),
]


@pytest.mark.parametrize(("schedule", "field", "expected"), UNUSABLE)
async def test_a_schedule_that_cannot_be_used_is_422_naming_the_field_and_nothing_is_written(
    client: httpx.AsyncClient, schedule: dict[str, Any], field: str, expected: str
) -> None:
    r = await client.post(
        "/deployments", json={**DEPLOYMENT, "schedules": [{"schedule": schedule}]}
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field
    assert expected in r.json()["detail"]
    assert (await client.get("/deployments/name/etl/daily")).status_code == 404


async def test_a_never_firing_schedule_in_an_update_leaves_the_old_schedules(
    client: httpx.AsyncClient,
) -> None:
    await make_pool(client)
    dep = await make_deployment(client, schedules=[{"schedule": {"cron": "0 * * * *"}}])
    r = await client.patch(
        f"/deployments/{dep['id']}",
        json={"schedules": [{"schedule": {"interval": 60}}, {"schedule": {"cron": "0 0 30 2 *"}}]},
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "schedules.1.schedule.cron"
    assert "'0 0 30 2 *' never fires" in r.json()["detail"]
    kept = (await client.get(f"/deployments/{dep['id']}")).json()["schedules"]
    assert [s["schedule"]["cron"] for s in kept] == ["0 * * * *"]


async def test_a_rule_whose_next_run_is_not_found_in_the_search_time_is_refused(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow_search(*_: object) -> None:
        time.sleep(0.3)  # as dateutil walking a rule that never fires towards the year 9999

    monkeypatch.setattr(schedule_checks, "SEARCH_SECONDS", 0.05)
    monkeypatch.setattr(schedule_checks, "_first_run", slow_search)
    schedules = [{"schedule": {"rrule": "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"}}]
    r = await client.post("/deployments", json={**DEPLOYMENT, "schedules": schedules})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "schedules.0.schedule.rrule"
    assert "no run found in 0.05 s of searching" in r.json()["detail"]


async def test_schedules_that_fire_rarely_or_far_apart_are_accepted(
    client: httpx.AsyncClient,
) -> None:
    schedules = [
        {"schedule": {"rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29"}},  # leap days only
        {"schedule": {"interval": 100 * 365 * 86400}},  # once a century
        {"schedule": {"cron": "0 0 29 2 *"}},
    ]
    r = await client.post("/deployments", json={**DEPLOYMENT, "schedules": schedules})
    assert r.status_code == 200, r.text
    assert len(r.json()["schedules"]) == 3
