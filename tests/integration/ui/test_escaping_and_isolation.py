"""User text is shown as text, and one workspace's pages never show another's objects."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from tests.integration.ui.conftest import (
    BrowserFactory,
    ClientFactory,
    make_deployment,
    make_pool,
    make_workspace_key,
    post_form,
    set_state,
    start_run,
)

SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'


def line(run_id: str, message: str, level: int = 20) -> dict[str, object]:
    return {
        "flow_run_id": run_id,
        "level": level,
        "message": message,
        "timestamp": datetime.now(UTC).isoformat(),
    }


async def test_a_log_line_with_a_script_tag_renders_as_text_in_the_page_and_the_stream(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    await make_pool(client)
    dep = await make_deployment(client)
    run = (await start_run(client, dep["id"]))["id"]
    await client.post("/logs", json={"logs": [line(run, SCRIPT), line(run, IMG, 40)]})
    for path in (f"/runs/{run}", f"/runs/{run}/logs"):
        page = (await browser.get(path)).text
        assert SCRIPT not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<img" not in page
        assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in page
    await set_state(client, run, "CANCELLED", force=True)
    stream = await browser.get(f"/runs/{run}/logs/stream")
    assert SCRIPT not in stream.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in stream.text


async def test_names_parameters_and_descriptions_are_escaped_everywhere(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    await make_pool(client, description=SCRIPT)
    dep = await make_deployment(
        client, flow_name="etl", name="x<b>y", description=SCRIPT, tags=[IMG],
        parameter_schema={
            "type": "object",
            "properties": {"n": {"type": "integer", "description": SCRIPT}, "s": {"type": "string"}},
        },
    )  # fmt: skip
    run = await start_run(client, dep["id"], name="<i>run</i>", parameters={"n": 1, "s": SCRIPT})
    await set_state(client, run["id"], "FAILED", message=SCRIPT, force=True)
    await client.put("/variables/v", json={"value": SCRIPT})
    for path in (
        "/",
        "/runs",
        f"/runs/{run['id']}",
        "/deployments",
        f"/deployments/{dep['id']}",
        f"/deployments/{dep['id']}/run",
        "/work-pools",
        "/work-pools/pool",
        "/settings",
    ):
        page = (await browser.get(path)).text
        assert SCRIPT not in page, path
        assert "<img src=x" not in page, path
        assert "<b>y" not in page, path
        assert "<i>run</i>" not in page, path


async def test_another_workspaces_objects_are_never_listed(
    browser_for: BrowserFactory, client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    other_key = await make_workspace_key(client, "other")
    async with client_for(other_key) as other:
        await make_pool(other, "their-pool")
        dep = await make_deployment(other, "their-pool", flow_name="their-flow")
        run = await start_run(other, dep["id"], name="their-run")
        await other.put("/variables/their_variable", json={"value": 1})
        await other.put("/secrets/their-secret", json={"value": "s3cret"})
    await make_pool(client, "our-pool")
    async with browser_for(client.headers["Authorization"].split()[1]) as ours:
        for path in ("/", "/runs", "/deployments", "/work-pools", "/usage", "/settings"):
            page = (await ours.get(path)).text
            for theirs in (
                "their-pool",
                "their-flow",
                "their-run",
                "their_variable",
                "their-secret",
                run["id"],
            ):
                assert theirs not in page, (path, theirs)
        for path in (
            f"/runs/{run['id']}",
            f"/runs/{run['id']}/live",
            f"/runs/{run['id']}/logs",
            f"/runs/{run['id']}/logs/stream",
            f"/deployments/{dep['id']}",
            f"/deployments/{dep['id']}/run",
            "/work-pools/their-pool",
        ):
            r = await ours.get(path)
            assert r.status_code == 404, path
            assert "belongs to another workspace" in r.text or "not found" in r.text.lower()
    async with browser_for(other_key) as theirs_browser:
        page = (await theirs_browser.get("/runs")).text
        assert "their-run" in page
        assert "our-pool" not in (await theirs_browser.get("/work-pools")).text


async def test_a_run_of_another_workspace_cannot_be_cancelled_or_started_from_here(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, client_for: ClientFactory
) -> None:
    other_key = await make_workspace_key(client, "other")
    async with client_for(other_key) as other:
        await make_pool(other)
        dep = await make_deployment(other)
        run = await start_run(other, dep["id"])
    r = await post_form(browser, "/runs", f"/runs/{run['id']}/cancel")
    assert r.status_code == 404
    r = await post_form(browser, "/runs", f"/deployments/{dep['id']}/run", {"param:n": "2"})
    assert r.status_code == 404
    r = await post_form(browser, "/runs", "/work-pools/pool/pause")
    assert r.status_code == 404
    async with client_for(other_key) as other:
        state = (await other.get(f"/flow-runs/{run['id']}")).json()["state_type"]
        pool = (await other.get("/work-pools/pool")).json()
    assert state == "SCHEDULED"
    assert pool["paused"] is False
