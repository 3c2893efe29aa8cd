"""Who may see pages: sign-in, the session cookie, sign-out, CSRF, and the security headers."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import httpx
import pytest

from flowyard.settings import Settings
from flowyard.ui import _pages as pages
from flowyard.ui import _sessions as sessions
from flowyard.ui import views
from tests.integration.ui.conftest import BrowserFactory, csrf_of, post_form, sign_in


@pytest.fixture
def database_url(sqlite_template: Path, tmp_path: Path) -> str:
    """SQLite only: sessions, CSRF and redirects never reach dialect-specific SQL."""
    target = tmp_path / "test.db"
    shutil.copyfile(sqlite_template, target)
    return f"sqlite+aiosqlite:///{target}"


PAGES = [
    "/",
    "/runs",
    f"/runs/{uuid.uuid4()}",
    f"/runs/{uuid.uuid4()}/logs",
    f"/runs/{uuid.uuid4()}/live",
    f"/runs/{uuid.uuid4()}/logs/stream",
    "/deployments",
    f"/deployments/{uuid.uuid4()}",
    f"/deployments/{uuid.uuid4()}/run",
    "/work-pools",
    "/work-pools/some-pool",
    "/new/work-pool",
    "/usage",
    "/settings",
    "/no-such-page",
]


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_sends_a_signed_out_visitor_to_sign_in_and_back(
    anonymous: httpx.AsyncClient, path: str
) -> None:
    r = await anonymous.get(path)
    assert r.status_code == 303
    location = r.headers["location"]
    assert location.startswith("/sign-in")
    if path != "/":
        assert httpx.URL(location).params["next"] == path


async def test_a_signed_out_log_stream_is_refused_not_redirected(
    anonymous: httpx.AsyncClient,
) -> None:
    r = await anonymous.get(
        f"/runs/{uuid.uuid4()}/logs/stream", headers={"Accept": "text/event-stream"}
    )
    assert r.status_code == 401  # an EventSource cannot follow a redirect to a page
    assert "location" not in r.headers


async def test_a_signed_out_htmx_request_is_redirected_by_htmx_not_swapped(
    anonymous: httpx.AsyncClient,
) -> None:
    r = await anonymous.get(
        "/runs",
        params={"fragment": "rows"},
        headers={"HX-Request": "true", "HX-Current-URL": "http://test/runs?state=FAILED"},
    )
    assert r.status_code == 204
    assert r.headers["HX-Redirect"] == "/sign-in?next=%2Fruns%3Fstate%3DFAILED"


async def test_signing_in_sets_an_httponly_lax_cookie_that_does_not_hold_the_key(
    anonymous: httpx.AsyncClient, admin_key: str
) -> None:
    r = await sign_in(anonymous, admin_key)
    assert r.status_code == 303
    assert r.headers["location"] == "/"
    cookie = next(
        h for h in r.headers.get_list("set-cookie") if h.startswith(sessions.SESSION_COOKIE + "=")
    )
    attributes = cookie.lower()
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "secure" not in attributes  # plain HTTP here
    assert admin_key not in cookie
    assert admin_key.split("_", 2)[2] not in cookie  # the secret part (it may hold "_")
    page = await anonymous.get("/")
    assert page.status_code == 200
    assert "Dashboard" in page.text


async def test_over_https_the_session_cookie_is_secure(
    app_transport: httpx.ASGITransport, admin_key: str
) -> None:
    async with httpx.AsyncClient(transport=app_transport, base_url="https://test") as browser:
        r = await sign_in(browser, admin_key)
    cookie = next(
        h for h in r.headers.get_list("set-cookie") if h.startswith(sessions.SESSION_COOKIE + "=")
    )
    assert "secure" in cookie.lower()


async def test_signing_in_returns_to_the_page_asked_for_but_never_to_another_site(
    anonymous: httpx.AsyncClient, admin_key: str
) -> None:
    page = await anonymous.get("/sign-in", params={"next": "/usage"})
    token = csrf_of(page.text)
    assert 'name="next" value="/usage"' in page.text
    r = await anonymous.post(
        "/sign-in", data={"csrf_token": token, "api_key": admin_key, "next": "/usage"}
    )
    assert r.headers["location"] == "/usage"
    anonymous.cookies.clear()
    page = await anonymous.get("/sign-in")
    r = await anonymous.post(
        "/sign-in",
        data={"csrf_token": csrf_of(page.text), "api_key": admin_key, "next": "//evil.example/x"},
    )
    assert r.headers["location"] == "/"


async def test_a_wrong_key_is_refused_with_a_message_and_no_session(
    anonymous: httpx.AsyncClient,
) -> None:
    r = await sign_in(anonymous, "fy_000000000000_not-a-real-key")
    assert r.status_code == 401
    assert "Sign-in failed: invalid API key" in r.text
    assert sessions.SESSION_COOKIE not in anonymous.cookies
    r = await sign_in(anonymous, "hunter2")
    assert "keys start with fy_" in r.text
    assert (await anonymous.get("/")).status_code == 303


async def test_sign_in_without_the_form_token_is_refused(
    anonymous: httpx.AsyncClient, admin_key: str
) -> None:
    await anonymous.get("/sign-in")
    r = await anonymous.post("/sign-in", data={"api_key": admin_key, "csrf_token": "forged"})
    assert r.status_code == 403
    assert sessions.SESSION_COOKIE not in anonymous.cookies


async def test_signing_out_ends_the_session(browser: httpx.AsyncClient) -> None:
    r = await post_form(browser, "/", "/sign-out")
    assert r.status_code == 303
    assert r.headers["location"] == "/sign-in"
    assert (await browser.get("/")).status_code == 303
    assert "You are signed out." in (await browser.get("/sign-in")).text


async def test_a_revoked_key_ends_every_session_made_with_it(
    browser_for: BrowserFactory, client: httpx.AsyncClient
) -> None:
    created = (await client.post("/api-keys", json={"name": "laptop"})).json()
    async with browser_for(created["key"]) as browser:
        assert (await browser.get("/runs")).status_code == 200
        await client.delete(f"/api-keys/{created['id']}")
        r = await browser.get("/runs")
        assert r.status_code == 303
        assert r.headers["location"].startswith("/sign-in")
        assert "revoked" in (await browser.get("/sign-in")).text


async def test_a_tampered_or_foreign_cookie_is_not_a_session(
    anonymous: httpx.AsyncClient, admin_key: str, settings: Settings
) -> None:
    await sign_in(anonymous, admin_key)
    good = anonymous.cookies[sessions.SESSION_COOKIE]
    anonymous.cookies.set(sessions.SESSION_COOKIE, good[:-4] + "AAAA")
    assert (await anonymous.get("/")).status_code == 303
    from flowyard.server.keys import ServerKeys

    _, foreign = sessions.new_session(ServerKeys.from_master(b"another server"), admin_key)
    anonymous.cookies.set(sessions.SESSION_COOKIE, foreign)
    assert (await anonymous.get("/")).status_code == 303


def _post_routes() -> list[str]:
    paths = []
    for router in views.ROUTERS:
        for route in router.routes:
            assert isinstance(route, pages.UiRoute)
            if "POST" in route.methods and route.path != "/sign-in":
                paths.append(route.path)
    return sorted(paths)


def _fill(path: str) -> str:
    return (
        path.replace("{run_id}", str(uuid.uuid4()))
        .replace("{deployment_id}", str(uuid.uuid4()))
        .replace("{key_id}", str(uuid.uuid4()))
        .replace("{name}", "something")
    )


def test_every_form_of_the_ui_is_covered_by_the_csrf_tests() -> None:
    assert len(_post_routes()) >= 12


@pytest.mark.parametrize("path", _post_routes())
async def test_every_form_refuses_a_post_without_its_csrf_token(
    browser: httpx.AsyncClient, path: str
) -> None:
    missing = await browser.post(_fill(path), data={"name": "x"})
    assert missing.status_code == 403, missing.text
    assert "This form could not be accepted" in missing.text
    wrong = await browser.post(_fill(path), data={"csrf_token": "not-the-token", "name": "x"})
    assert wrong.status_code == 403


async def test_a_form_posted_from_another_site_is_refused_even_with_a_token(
    browser: httpx.AsyncClient,
) -> None:
    page = await browser.get("/new/work-pool")
    r = await browser.post(
        "/work-pools",
        data={"csrf_token": csrf_of(page.text), "name": "p1", "type": "managed"},
        headers={"Origin": "http://evil.example"},
    )
    assert r.status_code == 403
    assert "another site" in r.text


async def test_the_token_travels_in_a_header_for_htmx_requests(browser: httpx.AsyncClient) -> None:
    page = await browser.get("/new/work-pool")
    r = await browser.post(
        "/work-pools",
        data={"name": "by-htmx", "type": "managed"},
        headers={"X-CSRF-Token": csrf_of(page.text), "HX-Request": "true"},
    )
    assert r.status_code == 204
    assert r.headers["HX-Redirect"] == "/work-pools/by-htmx"


async def test_pages_carry_a_strict_content_security_policy_and_are_not_cached(
    browser: httpx.AsyncClient,
) -> None:
    r = await browser.get("/runs")
    policy = r.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    assert 'style="' not in r.text  # the policy forbids inline styles: there are none


async def test_unknown_api_paths_still_answer_json_not_a_page(anonymous: httpx.AsyncClient) -> None:
    r = await anonymous.get("/api/no-such-endpoint")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not Found"}
    assert (await anonymous.get("/api/health")).json() == {"status": "ok"}


async def test_static_assets_are_served_without_a_session(anonymous: httpx.AsyncClient) -> None:
    for asset in ("app.css", "app.js", "htmx.min.js", "htmx-ext-sse.min.js"):
        r = await anonymous.get(f"/static/{asset}")
        assert r.status_code == 200, asset
        assert len(r.content) > 500
