"""What the UI's buttons and forms change: cancel, retry, pools, keys, variables, secrets."""

from __future__ import annotations

import re

import httpx

from tests.integration.ui.conftest import (
    BrowserFactory,
    make_deployment,
    make_pool,
    post_form,
    set_state,
    start_run,
)


async def test_cancel_and_retry_from_the_run_page_change_the_runs_state(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    await make_pool(client)
    dep = await make_deployment(client)
    run = (await start_run(client, dep["id"]))["id"]
    await set_state(client, run, "PENDING")
    await set_state(client, run, "RUNNING")
    page = f"/runs/{run}"
    r = await post_form(browser, page, f"{page}/cancel")
    assert r.status_code == 303
    assert r.headers["location"] == page
    assert "Cancel requested: the run is now Cancelling." in (await browser.get(page)).text
    assert (await client.get(f"/flow-runs/{run}")).json()["state_type"] == "CANCELLING"
    r = await post_form(browser, page, f"{page}/retry")  # not finished yet: refused, in words
    assert (
        "Could not retry this run: only a finished run can be retried"
        in (await browser.get(page)).text
    )
    await set_state(client, run, "CANCELLED")
    r = await post_form(browser, page, f"{page}/retry")
    assert r.status_code == 303
    after = (await client.get(f"/flow-runs/{run}")).json()
    assert after["state_type"] == "SCHEDULED"
    assert "Retry scheduled" in (await browser.get(page)).text


async def test_a_managed_pool_is_created_from_the_form_with_its_policy(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    fields = {
        "name": "etl-pool",
        "type": "managed",
        "description": "nightly ETL",
        "concurrency_limit": "3",
        "cpu": "2",
        "memory_gib": "8",
        "max_run_hours": "1.5",
    }
    r = await post_form(browser, "/new/work-pool", "/work-pools", fields)
    assert r.status_code == 303
    assert r.headers["location"] == "/work-pools/etl-pool"
    pool = (await client.get("/work-pools/etl-pool")).json()
    assert pool["type"] == "managed"
    assert pool["concurrency_limit"] == 3
    props = pool["base_job_template"]["variables"]["properties"]
    assert props["cpu"]["maximum"] == 2
    assert props["memory_gib"]["maximum"] == 8
    assert props["max_run_seconds"]["maximum"] == 5400
    page = (await browser.get("/work-pools/etl-pool")).text
    assert "Created work pool etl-pool." in page
    assert "8 GiB" in page
    assert "1 h 30 min" in page  # the maximum run time, in words
    again = await post_form(browser, "/new/work-pool", "/work-pools", fields)
    assert again.status_code == 422
    assert "a work pool named &#39;etl-pool&#39; already exists" in again.text
    bad = await post_form(
        browser, "/new/work-pool", "/work-pools",
        {"name": "-bad name", "concurrency_limit": "two", "memory_gib": "-1"},
    )  # fmt: skip
    assert bad.status_code == 422
    assert 'id="name-error"' in bad.text
    assert "expected a whole number" in bad.text
    assert "must be greater than 0" in bad.text
    assert 'value="-bad name"' in bad.text  # what was typed is kept
    names = [p["name"] for p in (await client.get("/work-pools")).json()]
    assert names == ["etl-pool"]  # nothing half-written


async def test_pausing_and_resuming_a_pool(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    await make_pool(client, "p")
    r = await post_form(browser, "/work-pools/p", "/work-pools/p/pause")
    assert r.status_code == 303
    assert (await client.get("/work-pools/p")).json()["paused"] is True
    page = (await browser.get("/work-pools/p")).text
    assert "Work pool p is paused." in page
    assert "Resume pool" in page
    await post_form(browser, "/work-pools/p", "/work-pools/p/resume")
    assert (await client.get("/work-pools/p")).json()["paused"] is False


async def test_a_new_api_key_is_shown_once_and_signs_in(
    browser: httpx.AsyncClient, browser_for: BrowserFactory
) -> None:
    r = await post_form(browser, "/settings", "/settings/api-keys", {"name": "ci"})
    assert r.status_code == 201
    found = re.search(r'id="new-key-value"[^>]* value="(fy_[^"]+)"', r.text)
    assert found is not None
    key = found.group(1)
    assert key not in (await browser.get("/settings")).text  # never shown again
    async with browser_for(key) as ci:
        page = (await ci.get("/settings")).text
        assert "this session" in page
        assert "member" in page
        refused = await post_form(
            ci, "/settings", "/settings/api-keys", {"name": "x", "admin": "on"}
        )
        assert refused.status_code == 403
        assert "Only an admin key can create admin keys." in refused.text
    unnamed = await post_form(browser, "/settings", "/settings/api-keys", {"name": " "})
    assert unnamed.status_code == 422


async def test_revoking_the_key_of_this_session_signs_it_out(
    browser_for: BrowserFactory, client: httpx.AsyncClient
) -> None:
    created = (await client.post("/api-keys", json={"name": "laptop"})).json()
    async with browser_for(created["key"]) as laptop:
        r = await post_form(laptop, "/settings", f"/settings/api-keys/{created['id']}/revoke")
        assert r.status_code == 303
        assert r.headers["location"] == "/sign-in"
        assert (await laptop.get("/settings")).status_code == 303
    keys = {k["id"]: k for k in (await client.get("/api-keys")).json()}
    assert keys[created["id"]]["revoked_at"] is not None


async def test_variables_are_set_as_json_and_deleted(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    bad = await post_form(
        browser, "/settings", "/settings/variables", {"name": "batch", "value": "five hundred"}
    )
    assert bad.status_code == 422
    assert "is not valid JSON" in bad.text
    assert 'value="five hundred"' in bad.text
    badname = await post_form(
        browser, "/settings", "/settings/variables", {"name": "-x", "value": "1"}
    )
    assert "use letters, digits" in badname.text
    ok = await post_form(
        browser, "/settings", "/settings/variables", {"name": "batch", "value": '{"size": 500}'}
    )
    assert ok.status_code == 303
    assert (await client.get("/variables/batch")).json()["value"] == {"size": 500}
    assert "Variable batch created." in (await browser.get("/settings")).text
    await post_form(browser, "/settings", "/settings/variables/batch/delete")
    assert (await client.get("/variables/batch")).status_code == 404


async def test_a_secret_is_set_and_deleted_and_its_value_never_shown(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    value = "ghp_0123456789abcdef"
    r = await post_form(
        browser, "/settings", "/settings/secrets", {"name": "gh-token", "value": value}
    )
    assert r.status_code == 303
    page = (await browser.get("/settings")).text
    assert "gh-token" in page
    assert value not in page
    refused = await post_form(
        browser, "/settings", "/settings/secrets", {"name": "-bad", "value": value}
    )
    assert refused.status_code == 422
    assert value not in refused.text  # not even echoed back into the form
    await post_form(browser, "/settings", "/settings/secrets/gh-token/delete")
    page = (await browser.get("/settings")).text
    assert "Deleted secret gh-token." in page
    assert 'aria-label="Delete secret gh-token"' not in page
    assert (await client.get("/secrets/gh-token")).status_code == 404


async def test_the_usage_page_moves_between_months_but_not_into_the_future(
    browser: httpx.AsyncClient,
) -> None:
    page = (await browser.get("/usage", params={"month": "2025-01"})).text
    assert "January 2025" in page
    assert 'href="/usage?month=2024-12" rel="prev"' in page
    assert 'href="/usage?month=2025-02" rel="next"' in page
    assert "Month ended" in page
    future = (await browser.get("/usage", params={"month": "2999-01"})).text
    assert "This month" in future  # a month not yet begun shows the current one
    assert 'rel="next"' not in future
