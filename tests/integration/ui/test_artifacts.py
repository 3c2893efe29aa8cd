"""Artifacts on the run page, the artifacts list and one artifact's page: each type rendered,
markdown and every other user text unable to run script, a key's history, one workspace only."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.integration.ui.conftest import (
    BrowserFactory,
    ClientFactory,
    make_deployment,
    make_pool,
    make_workspace_key,
    set_state,
    start_run,
)

SCRIPT = "<script>alert(1)</script>"
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"
ARTIFACT_LINK = re.compile(r'<a href="/artifacts/([0-9a-f-]{36})" class="run-name">')


async def new_run(client: httpx.AsyncClient, name: str = "nightly-run") -> str:
    await make_pool(client)
    deployment = await make_deployment(client)
    run_id: str = (await start_run(client, deployment["id"], name=name))["id"]
    return run_id


async def publish(client: httpx.AsyncClient, kind: str, data: Any, **fields: Any) -> str:
    r = await client.post("/artifacts", json={"type": kind, "data": data, **fields})
    assert r.status_code == 201, r.text
    artifact_id: str = r.json()["id"]
    return artifact_id


async def test_the_run_page_shows_each_type_of_artifact_rendered(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    run = await new_run(client)
    await publish(client, "markdown", "# Report\n\n*12* rows loaded", key="report", flow_run_id=run)
    await publish(
        client, "table", [{"name": "a", "n": 1}, {"name": "b", "n": None}], flow_run_id=run,
        description="Rows per source",
    )  # fmt: skip
    await publish(
        client, "link", {"url": "https://example.com/r", "text": "the report"}, flow_run_id=run
    )
    await publish(
        client, "image", "https://example.com/chart.png", key="chart", flow_run_id=run,
        description="Rows per day",
    )  # fmt: skip
    await publish(client, "progress", 42.5, key="load", flow_run_id=run)
    r = await browser.get(f"/runs/{run}")
    assert r.status_code == 200, r.text
    page = r.text
    assert '<h2 id="artifacts-title">Artifacts</h2>' in page
    assert "<h4>Report</h4>" in page  # headings sit under the artifact's own
    assert "<p><em>12</em> rows loaded</p>" in page
    assert '<th scope="col">name</th><th scope="col">n</th>' in page
    assert "<tr><td>a</td><td>1</td></tr>" in page
    assert "<tr><td>b</td><td></td></tr>" in page
    assert "Rows per source" in page
    assert (
        '<a href="https://example.com/r" rel="noopener noreferrer nofollow" target="_blank">'
        "the report</a>"
    ) in page
    assert ('<img src="https://example.com/chart.png" alt="Rows per day" loading="lazy">') in page
    assert '<progress max="100" value="42.5" aria-label="load: 42.5%">' in page
    # Newest first, like the artifacts page and the API.
    assert page.index("load: 42.5%") < page.index("<h4>Report</h4>")
    # The images of a page that shows artifacts come from where the run published them.
    policy = r.headers["Content-Security-Policy"]
    assert "img-src 'self' data: https: http:" in policy
    assert "script-src 'self';" in policy


async def test_an_active_runs_artifacts_appear_as_they_are_published(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    run = await new_run(client)
    page = await browser.get(f"/runs/{run}")
    assert "artifacts-title" not in page.text  # nothing published yet
    assert f'hx-get="/runs/{run}/artifacts"' in page.text  # but the card is polled
    # What it publishes later may hold images: the page allows them from the start.
    assert "img-src 'self' data: https: http:;" in page.headers["Content-Security-Policy"]
    await publish(client, "progress", 40, flow_run_id=run, key="load")
    polled = (await browser.get(f"/runs/{run}/artifacts")).text
    assert "artifacts-title" in polled
    assert "40%" in polled
    assert f'hx-get="/runs/{run}/artifacts"' in polled  # still active: it goes on polling
    await set_state(client, run, "COMPLETED", force=True)
    final = (await browser.get(f"/runs/{run}/artifacts")).text
    assert "40%" in final
    assert "hx-get" not in final  # the run ended: the card stops polling


async def test_a_finished_run_without_artifacts_shows_no_card_and_keeps_the_strict_policy(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    run = await new_run(client)
    await set_state(client, run, "COMPLETED", force=True)
    r = await browser.get(f"/runs/{run}")
    assert r.status_code == 200, r.text
    assert "artifacts-title" not in r.text
    assert 'hx-get="/runs/' + run + '/artifacts"' not in r.text
    assert "img-src 'self' data:;" in r.headers["Content-Security-Policy"]


async def test_markdown_and_other_artifact_text_cannot_run_script(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    run = await new_run(client)
    report = (
        f"# Hi\n\n{SCRIPT}\n\n[x](javascript:alert(1)) [y](https://example.com/y)\n\n"
        '<img src=x onerror="alert(2)">\n\n![p](javascript:alert(3))'
    )
    markdown = await publish(
        client, "markdown", report, key="evil", description=SCRIPT, flow_run_id=run
    )
    table = await publish(client, "table", {SCRIPT: [SCRIPT, {"k": "<b>"}]}, flow_run_id=run)
    link = await publish(
        client, "link", {"url": "https://example.com/?q=<i>", "text": SCRIPT}, flow_run_id=run
    )
    for path in (
        f"/runs/{run}",
        "/artifacts",
        f"/artifacts/{markdown}",
        f"/artifacts/{table}",
        f"/artifacts/{link}",
    ):
        page = (await browser.get(path)).text
        assert SCRIPT not in page, path
        assert "<img src=x" not in page, path
        assert 'href="javascript:' not in page, path
        assert 'src="javascript:' not in page, path
        assert "<b>" not in page, path
        assert "<i>" not in page, path
    page = (await browser.get(f"/artifacts/{markdown}")).text
    assert f"<p>{ESCAPED_SCRIPT}</p>" in page  # raw HTML in markdown is shown as text
    assert "[x](javascript:alert(1))" in page  # the refused link stays text
    assert '<a href="https://example.com/y" rel="noopener noreferrer nofollow">y</a>' in page
    assert f'<p class="artifact-description">{ESCAPED_SCRIPT}</p>' in page
    page = (await browser.get(f"/artifacts/{table}")).text
    assert f'<th scope="col">{ESCAPED_SCRIPT}</th>' in page
    assert f"<td>{ESCAPED_SCRIPT}</td>" in page
    assert "<td>{&#34;k&#34;: &#34;&lt;b&gt;&#34;}</td>" in page  # JSON cells compactly, escaped
    page = (await browser.get(f"/artifacts/{link}")).text
    assert f'target="_blank">{ESCAPED_SCRIPT}</a>' in page


async def test_a_table_renders_headers_cells_and_at_most_500_rows(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    run = await new_run(client)
    headerless = await publish(client, "table", [[1, 2.5], [True, None, "x"]], flow_run_id=run)
    page = (await browser.get(f"/artifacts/{headerless}")).text
    assert "<thead>" not in page
    assert "<tr><td>1</td><td>2.5</td><td></td></tr>" in page  # padded to the widest row
    assert "<tr><td>true</td><td></td><td>x</td></tr>" in page
    big = await publish(client, "table", {"i": list(range(600))}, flow_run_id=run)
    page = (await browser.get(f"/artifacts/{big}")).text
    assert '<th scope="col">i</th>' in page
    assert "<tr><td>499</td></tr>" in page
    assert "<tr><td>500</td></tr>" not in page
    assert "Showing 500 of 600 rows." in page


async def test_the_artifacts_page_lists_the_latest_newest_first_with_filters(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    run = await new_run(client, name="loader-run")
    first = await publish(client, "markdown", "one", key="daily-report", flow_run_id=run)
    second = await publish(client, "progress", 10, key="load", flow_run_id=run)
    loose = await publish(client, "link", "https://example.com", description="No run at all")
    page = (await browser.get("/artifacts")).text
    assert ARTIFACT_LINK.findall(page) == [loose, second, first]
    assert f'<a href="/runs/{run}">loader-run</a>' in page
    assert "No run at all" in page
    assert ARTIFACT_LINK.findall((await browser.get("/artifacts?type=progress")).text) == [second]
    assert ARTIFACT_LINK.findall((await browser.get("/artifacts?key=daily-report")).text) == [first]
    by_run = (await browser.get(f"/artifacts?run={run}")).text
    assert ARTIFACT_LINK.findall(by_run) == [second, first]
    assert f'Of flow run <a href="/runs/{run}">loader-run</a>' in by_run
    none = await browser.get("/artifacts?type=image")
    assert none.status_code == 200
    assert "No artifacts match these filters" in none.text
    empty_note = (await browser.get("/artifacts?type=nonsense")).text
    assert ARTIFACT_LINK.findall(empty_note) == [loose, second, first]  # an unknown type: all


async def test_the_artifact_page_shows_it_in_full_with_its_keys_history(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    run = await new_run(client, name="report-run")
    versions = [
        await publish(
            client, "markdown", f"# Version {n}", key="daily-report", description=f"v{n}",
            flow_run_id=run,
        )
        for n in (1, 2, 3)
    ]  # fmt: skip
    await publish(client, "markdown", "another key", key="weekly-report", flow_run_id=run)
    r = await browser.get(f"/artifacts/{versions[1]}")
    assert r.status_code == 200, r.text
    page = r.text
    assert "<h1>daily-report</h1>" in page
    assert "<h4>Version 2</h4>" in page
    assert f'flow run <a href="/runs/{run}">report-run</a>' in page
    assert "Versions of daily-report" in page
    history = page[page.index("Versions of daily-report") :]
    assert "weekly-report" not in history
    links = re.findall(r'<a href="/artifacts/([0-9a-f-]{36})">', history)
    assert links == [versions[2], versions[0]]  # newest first; the one shown is not a link
    assert history.index(versions[2]) < history.index('aria-current="page"')
    assert history.index('aria-current="page"') < history.index(versions[0])
    unkeyed = await publish(client, "progress", 100, flow_run_id=run)
    page = (await browser.get(f"/artifacts/{unkeyed}")).text
    assert "<h1>progress artifact</h1>" in page
    assert "Versions of" not in page
    assert (await browser.get(f"/artifacts/{run}")).status_code == 404
    assert (await browser.get("/artifacts/not-an-id")).status_code == 404


async def test_another_workspaces_artifacts_are_not_found_and_never_listed(
    browser: httpx.AsyncClient,
    browser_for: BrowserFactory,
    client: httpx.AsyncClient,
    client_for: ClientFactory,
) -> None:
    other_key = await make_workspace_key(client, "other")
    async with client_for(other_key) as other:
        run = await new_run(other, name="their-run")
        theirs = await publish(
            other, "markdown", "their secret report", key="their-report", flow_run_id=run
        )
    await publish(client, "markdown", "our report", key="our-report")
    r = await browser.get(f"/artifacts/{theirs}")
    assert r.status_code == 404
    assert "belongs to another workspace" in r.text
    page = (await browser.get("/artifacts")).text
    assert "our-report" in page
    for text in ("their-report", "their-run", theirs, run):
        assert text not in page, text
    assert (await browser.get(f"/artifacts?run={run}")).status_code == 404
    async with browser_for(other_key) as theirs_browser:
        page = (await theirs_browser.get("/artifacts")).text
        assert "their-report" in page
        assert "our-report" not in page


async def test_a_long_report_shows_its_start_and_says_how_to_read_it_whole(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    run = await new_run(client)
    made = await publish(client, "markdown", "word " * 40_000 + "THE-END", flow_run_id=run)
    for page in (f"/runs/{run}", f"/artifacts/{made}"):
        text = (await browser.get(page)).text
        assert "The report is 200007 characters long; its first 100000 are shown." in text
        assert f"flowyard artifact inspect {made}" in text
        assert "THE-END" not in text
