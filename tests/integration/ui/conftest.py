"""The in-process server's pages, signed in through the sign-in form like a browser."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from flowyard.server.context import ServerContext
from tests.integration.api.conftest import (  # noqa: F401 - fixtures re-exported for these tests
    ClientFactory,
    admin_key,
    app_transport,
    client,
    client_for,
    ctx,
    make_deployment,
    make_pool,
    make_workspace_key,
    settings,
)

BrowserFactory = Callable[[str | None], AbstractAsyncContextManager[httpx.AsyncClient]]
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = _CSRF.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


async def sign_in(browser: httpx.AsyncClient, key: str) -> httpx.Response:
    page = await browser.get("/sign-in")
    assert page.status_code == 200, page.text
    return await browser.post(
        "/sign-in", data={"csrf_token": csrf_of(page.text), "api_key": key, "next": "/"}
    )


async def post_form(
    browser: httpx.AsyncClient, page_url: str, action: str, fields: dict[str, Any] | None = None
) -> httpx.Response:
    """Submit a form as a browser would: read the page for its token, then post."""
    page = await browser.get(page_url)
    assert page.status_code == 200, page.text
    return await browser.post(action, data={"csrf_token": csrf_of(page.text), **(fields or {})})


@pytest.fixture
def browser_for(app_transport: httpx.ASGITransport) -> BrowserFactory:  # noqa: F811
    """A cookie-keeping client, signed in with ``key`` (or anonymous for None)."""

    @asynccontextmanager
    async def make(key: str | None) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(transport=app_transport, base_url="http://test") as browser:
            if key is not None:
                r = await sign_in(browser, key)
                assert r.status_code == 303, r.text
            yield browser

    return make


@pytest.fixture
async def browser(
    browser_for: BrowserFactory,
    admin_key: str,  # noqa: F811
) -> AsyncIterator[httpx.AsyncClient]:
    async with browser_for(admin_key) as b:
        yield b


@pytest.fixture
async def anonymous(browser_for: BrowserFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with browser_for(None) as b:
        yield b


async def start_run(api: httpx.AsyncClient, deployment_id: object, **body: Any) -> dict[str, Any]:
    r = await api.post(f"/deployments/{deployment_id}/runs", json={"parameters": {"n": 1}, **body})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def set_state(api: httpx.AsyncClient, run_id: object, state: str, **body: Any) -> None:
    r = await api.post(f"/flow-runs/{run_id}/state", json={"type": state, **body})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ACCEPT", r.text


def random_id() -> uuid.UUID:
    return uuid.uuid4()


__all__ = ["ServerContext"]
