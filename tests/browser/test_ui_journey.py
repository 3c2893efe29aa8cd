"""The web UI in a real browser against a real server process.

The journey follows DESIGN.md's user path through the UI: sign in, create a
managed pool, start a deployment run from its form, watch its logs arrive
live, cancel it while it runs, and see the compute on the usage page. A
screenshot of every page lands in ``test-output/ui-screenshots/``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import Shots, Site, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

POOL = "my-managed-pool"


def _deploy(site: Site) -> str:
    """A git deployment whose flow takes a required ``n`` and an optional ``greeting``."""
    r = site.api.post(
        "/deployments",
        json={
            "flow_name": "my-flow",
            "name": "test-managed-flow",
            "entrypoint": "flow.py:my_flow",
            "source": {"kind": "git", "url": "https://example.com/org/flows.git", "branch": "main"},
            "work_pool_name": POOL,
            "job_variables": {"pip_packages": ["pandas"]},
            "parameter_schema": {
                "type": "object",
                "properties": {
                    "n": {"type": "integer", "title": "n", "minimum": 1},
                    "greeting": {"type": "string", "default": "hello"},
                },
                "required": ["n"],
            },
            "description": "Counts to n and says hello.",
        },
    )
    assert r.status_code == 200, r.text
    deployment_id: str = r.json()["id"]
    return deployment_id


def test_sign_in_create_a_pool_run_from_the_form_watch_logs_cancel_and_see_usage(
    page: Page, site: Site, shots: Shots
) -> None:
    from playwright.sync_api import expect

    # Signed out, any page leads to sign-in and back.
    page.goto("/runs?state=RUNNING")
    expect(page).to_have_url(re.compile(r"/sign-in\?next=%2Fruns%3Fstate%3DRUNNING$"))
    expect(page.get_by_label("API key")).to_be_focused()
    shots.take(page, "sign-in")
    sign_in(page, site.admin_key)
    expect(page).to_have_url(re.compile(r"/runs\?state=RUNNING$"))
    expect(page.get_by_role("heading", name="Flow runs", level=1)).to_be_visible()

    # Empty database: every page says how to start.
    page.goto("/")
    expect(page.get_by_role("heading", name="Get started")).to_be_visible()
    shots.take(page, "dashboard-empty")
    page.goto("/runs")
    expect(page.get_by_text("No flow runs yet")).to_be_visible()
    shots.take(page, "runs-empty")
    page.goto("/usage")
    expect(page.get_by_text("No compute used yet")).to_be_visible()

    # Create a managed pool from the form; a bad value is refused beside its field.
    page.goto("/work-pools")
    expect(page.get_by_text("No work pools yet")).to_be_visible()
    page.get_by_role("link", name="Create work pool").click()
    page.get_by_label("Name").fill("not a valid name!")
    page.get_by_role("button", name="Create pool").click()
    expect(page.locator("#name-error")).to_contain_text("letters, digits")
    expect(page.get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    shots.take(page, "work-pool-new-with-error")
    page.get_by_label("Name").fill(POOL)
    page.get_by_label("Type").select_option("managed")
    page.get_by_label("Concurrency limit").fill("2")
    page.get_by_label("Memory (GiB)").fill("8")
    page.get_by_role("button", name="Create pool").click()
    expect(page).to_have_url(re.compile(rf"/work-pools/{POOL}$"))
    expect(page.get_by_role("status")).to_contain_text(f"Created work pool {POOL}")
    expect(page.get_by_text("8 GiB", exact=True)).to_be_visible()
    page.get_by_role("button", name="Pause pool").click()
    expect(page.get_by_role("button", name="Resume pool")).to_be_visible()
    page.get_by_role("button", name="Resume pool").click()
    expect(page.get_by_role("button", name="Pause pool")).to_be_visible()
    shots.take(page, "work-pool")
    page.goto("/work-pools")
    expect(page.get_by_role("link", name=POOL)).to_be_visible()
    shots.take(page, "work-pools")

    # A deployment (deployed from the CLI or SDK) and its Run form.
    deployment_id = _deploy(site)
    page.goto("/deployments")
    shots.take(page, "deployments")
    page.get_by_role("link", name="my-flow/test-managed-flow").first.click()
    expect(page.get_by_text("https://example.com/org/flows.git")).to_be_visible()
    shots.take(page, "deployment")
    page.get_by_role("link", name="Run", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/deployments/{deployment_id}/run$"))
    page.get_by_role("button", name="Start run").click()  # n is required and empty
    expect(page.locator(".field-error").first).to_be_visible()
    expect(page.get_by_label(re.compile(r"^n\b"))).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Job variables").fill('{"env": {"GREETING_STYLE": "loud"}}')
    shots.take(page, "run-form-with-error")
    page.get_by_label(re.compile(r"^n\b")).fill("3")
    page.get_by_role("button", name="Start run").click()
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    run_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("status")).to_contain_text("Started run")
    expect(page.locator("pre.code").first).to_contain_text('"n": 3')
    expect(page.locator(".live-status")).to_contain_text("Scheduled")
    body = site.api.get(f"/flow-runs/{run_id}").json()
    assert body["parameters"]["n"] == 3
    assert body["job_variables"]["env"] == {"GREETING_STYLE": "loud"}

    # The execution plane picks it up; the page follows without a reload.
    assert site.claim(POOL) == [run_id]
    site.log(run_id, (20, "preparing compute"), (20, "environment ready: 1 package (cached)"))
    site.set_state(run_id, "RUNNING")
    site.log(
        run_id,
        (20, "counting to 3"),
        (40, "step 2 of 3 failed once; retrying"),
        (20, "processed 512 rows"),
    )
    live_lines = page.locator(".log-lines .log-msg")
    expect(live_lines.filter(has_text="processed 512 rows")).to_have_count(1)
    expect(page.locator(".live-status")).to_contain_text("Running")
    expect(page.locator(".run-status")).to_contain_text("Running")  # the status above follows
    expect(page.locator(".substeps")).to_contain_text("environment ready")  # PENDING's steps
    expect(page.locator(".log-line")).to_have_count(5)
    shots.take(page, "run-live-logs")

    # Level filter and search apply to the lines (and to the live stream).
    page.get_by_label("Level").select_option(label="ERROR and above")
    expect(page.locator(".log-line")).to_have_count(1)
    expect(page.locator(".log-line")).to_contain_text("failed once")
    page.get_by_label("Level").select_option(label="All levels")
    expect(page.locator(".log-line")).to_have_count(5)
    page.get_by_label("Search").fill("rows")
    expect(page.locator(".log-line")).to_have_count(1)
    expect(page.locator(".log-line")).to_contain_text("processed 512 rows")
    site.log(run_id, (20, "processed 1024 rows"), (20, "not this one"))
    expect(page.locator(".log-line")).to_have_count(2)  # live, and still filtered
    page.get_by_label("Search").fill("")
    expect(page.locator(".log-line")).to_have_count(7)

    # Cancel while it runs; the dispatcher stops it and tears the sandbox down.
    page.get_by_role("button", name="Cancel run").click()
    expect(page.get_by_role("status")).to_contain_text("Cancel requested")
    expect(page.locator(".live-status")).to_contain_text("Cancelling")
    site.log(run_id, (30, "cancel requested: stopping the sandbox"))
    site.set_state(run_id, "CANCELLED", message="cancelled by the user")
    r = site.api.post(
        f"/flow-runs/{run_id}/execution",
        params={"teardown": "true"},
        json={"peak_memory_bytes": 300 * 2**20, "cpu_seconds": 1.25, "exit_code": -15},
    )
    assert r.status_code == 200, r.text
    expect(page.locator(".live-status")).to_contain_text("Cancelled")
    expect(page.locator(".log-live")).to_have_class(re.compile(r"\bended\b"))
    expect(page.locator(".log-msg").filter(has_text="stopping the sandbox")).to_have_count(1)
    expect(page.get_by_role("button", name="Retry run")).to_be_visible()  # by the poll
    expect(page.locator(".stats")).to_contain_text("300 MiB of 8 GiB")  # the pool's limit
    shots.take(page, "run-cancelled")

    # The runs list, the dashboard and the usage page now show the run.
    page.goto("/runs")
    expect(page.get_by_role("link", name=body["name"])).to_be_visible()
    shots.take(page, "runs")
    page.goto("/")
    expect(page.get_by_role("heading", name="Get started")).to_have_count(0)
    expect(page.locator(".figure").first).to_contain_text("1 run created in the last 24 hours")
    expect(page.locator(".figure").nth(1)).to_contain_text("1 minute (no limit)")
    shots.take(page, "dashboard")
    r = site.api.patch("/workspaces/default", json={"monthly_limit_minutes": 600})
    assert r.status_code == 200, r.text
    page.goto("/usage")
    expect(page.get_by_text("No compute used yet")).to_have_count(0)
    expect(page.locator(".figure").first).to_contain_text("1 of 600 minutes used")
    expect(page.get_by_role("cell", name="my-flow/test-managed-flow", exact=True)).to_be_visible()
    shots.take(page, "usage")

    # Settings: a new key is shown once; a secret's value never.
    page.goto("/settings")
    page.get_by_label("New key name").fill("ci-deployer")
    page.get_by_role("button", name="Create key").click()
    new_key = page.locator("#new-key-value").input_value()
    assert new_key.startswith("fy_")
    page.locator("#secret-name").fill("github-token")
    page.locator("#secret-value").fill("ghp_do-not-show-me")
    page.get_by_role("button", name="Set secret").click()
    expect(page.get_by_role("cell", name="github-token", exact=True)).to_be_visible()
    assert "ghp_do-not-show-me" not in page.content()
    assert new_key not in page.content()  # shown once, then gone
    shots.take(page, "settings")
    assert shots.problems == [], "\n".join(shots.problems)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/sign-in$"))
    page.goto("/settings")
    expect(page).to_have_url(re.compile(r"/sign-in\?next=%2Fsettings$"))


def test_a_hostile_log_line_is_shown_as_text_and_runs_nothing(page: Page, site: Site) -> None:
    from playwright.sync_api import expect

    r = site.api.post("/work-pools", json={"name": "hostile-pool", "type": "managed"})
    assert r.status_code == 201, r.text
    r = site.api.post(
        "/deployments",
        json={
            "flow_name": "x",
            "name": "y",
            "entrypoint": "f.py:f",
            "work_pool_name": "hostile-pool",
        },
    )
    assert r.status_code == 200, r.text
    run = site.api.post(f"/deployments/{r.json()['id']}/runs", json={"name": "<b>bold</b>"})
    assert run.status_code == 201, run.text
    run_id = run.json()["id"]
    payload = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    site.log(run_id, (20, payload))
    sign_in(page, site.admin_key)
    page.goto(f"/runs/{run_id}")
    expect(page.locator(".log-msg").first).to_have_text(payload)
    expect(page.get_by_role("heading", level=1)).to_have_text("<b>bold</b>")
    site.log(run_id, (20, payload.replace("pwned = ", "pwned_live = ")))  # over the live stream
    expect(page.locator(".log-msg")).to_have_count(2)
    assert page.evaluate("typeof window.pwned + typeof window.pwned_live") == "undefinedundefined"
