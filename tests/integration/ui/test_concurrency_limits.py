"""The Settings page's Concurrency limits card: each limit with the slots held now, whether it is
active and its slot decay; an empty state that says how to create one; names shown as text;
one workspace only."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import update

from flowyard.server.context import ServerContext
from flowyard.server.db import models as m
from tests.integration.ui.conftest import BrowserFactory, ClientFactory, make_workspace_key

SCRIPT = "<script>alert(1)</script>"
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"


async def make_limit(client: httpx.AsyncClient, name: str, limit: int, **fields: Any) -> None:
    r = await client.post("/concurrency-limits", json={"name": name, "limit": limit, **fields})
    assert r.status_code == 201, r.text


async def take(client: httpx.AsyncClient, *names: str, **fields: Any) -> None:
    r = await client.post("/concurrency-limits/acquire", json={"names": list(names), **fields})
    assert r.status_code == 200, r.text
    assert r.json()["acquired"], r.text


def card(page: str) -> str:
    """The card's HTML, so that nothing elsewhere on the page satisfies an assertion."""
    found = re.search(r'<section class="card" id="concurrency-limits".*?</section>', page, re.S)
    assert found is not None, "the settings page has no concurrency limits card"
    return found.group(0)


def row(html: str, name: str) -> str:
    found = re.search(rf'<tr>\s*<td class="mono">{re.escape(name)}</td>.*?</tr>', html, re.S)
    assert found is not None, f"no row for {name!r} in {html}"
    return found.group(0)


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


async def test_the_card_lists_each_limit_with_its_slots_status_and_decay(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    await make_limit(client, "database", 5)
    await make_limit(client, "tag:warehouse", 2, active=False)
    await make_limit(client, "api-calls", 10, slot_decay_per_second=0.5)
    r = await browser.get("/settings")
    assert r.status_code == 200, r.text
    html = card(r.text)
    assert '<h2 id="limits-title">Concurrency limits</h2>' in html
    names = re.findall(r'<td class="mono">([^<]*)</td>', html)
    assert names == ["api-calls", "database", "tag:warehouse"]  # by name
    database = row(html, "database")
    assert text(database) == "database 0 of 5 active none"
    assert '<meter min="0" max="5" low="4.0" high="4.5" optimum="0" value="0"' in database
    assert 'aria-label="0 of 5 slots of database held"' in database
    assert text(row(html, "tag:warehouse")) == "tag:warehouse 0 of 2 inactive none"
    assert text(row(html, "api-calls")) == "api-calls 0 of 10 active 0.5 slots/s rate limit"
    assert "No concurrency limits" not in html


async def test_the_card_shows_the_slots_held_now(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    await make_limit(client, "database", 5)
    await make_limit(client, "gpu", 1)
    await take(client, "database", slots=2)
    await take(client, "database", "gpu")
    html = card((await browser.get("/settings")).text)
    database, gpu = row(html, "database"), row(html, "gpu")
    assert "3 of 5" in text(database)
    assert 'value="3"' in database
    assert "1 of 1" in text(gpu)
    assert '<meter min="0" max="1" low="0.8" high="0.5" optimum="0" value="1"' in gpu


async def test_a_limit_of_no_slots_has_no_meter(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    await make_limit(client, "closed", 0)
    closed = row(card((await browser.get("/settings")).text), "closed")
    assert text(closed) == "closed 0 of 0 active none"
    assert "<meter" not in closed


async def test_an_empty_card_says_how_to_create_a_limit(browser: httpx.AsyncClient) -> None:
    html = card((await browser.get("/settings")).text)
    assert "No concurrency limits" in html
    assert "<code>flowyard concurrency-limit create NAME LIMIT</code>" in html
    assert "<table" not in html


async def test_a_limit_name_is_shown_as_text(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, ctx: ServerContext
) -> None:
    # The API refuses such a name; one written to the database some other way is still text.
    await make_limit(client, "renamed", 3)
    async with ctx.db.session() as session:
        limits = m.ConcurrencyLimit
        await session.execute(
            update(limits).where(limits.name == "renamed").values(name=SCRIPT + '"x')
        )
    page = (await browser.get("/settings")).text
    html = card(page)
    assert SCRIPT not in page
    assert f'<td class="mono">{ESCAPED_SCRIPT}&#34;x</td>' in html
    assert f'aria-label="0 of 3 slots of {ESCAPED_SCRIPT}&#34;x held"' in html


async def test_another_workspaces_limits_are_not_listed(
    browser_for: BrowserFactory, client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    other_key = await make_workspace_key(client, "other")
    async with client_for(other_key) as other:
        await make_limit(other, "their-limit", 4)
    await make_limit(client, "our-limit", 4)
    async with browser_for(client.headers["Authorization"].split()[1]) as ours:
        html = card((await ours.get("/settings")).text)
    assert "our-limit" in html
    assert "their-limit" not in html
