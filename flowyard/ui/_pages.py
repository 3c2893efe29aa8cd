"""The frame every page shares: who is asking, rendering, forms, and error pages.

Views take a :class:`Viewer` (the browser session, checked before the view
runs), open a :class:`Scope` (one short transaction that authenticates the
session's key and reads through ``ops``), and return :meth:`Viewer.render`.
Rendering happens after the transaction closes, so on SQLite a page holds
the writer lock only while it reads.

Errors raised by ``ops`` (not found, forbidden, bad input) become pages here
rather than the API's JSON, through :class:`UiRoute`, which also adds the
security headers: a strict Content-Security-Policy (no inline script or
style; htmx is configured not to inject styles), no framing, no caching.
Pages showing artifacts widen only ``img-src``, to http(s) images.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy.ext.asyncio import AsyncSession

from flowyard._version import __version__
from flowyard.server.context import ServerContext
from flowyard.server.db import StorageError
from flowyard.server.db import models as m
from flowyard.server.ops import auth, workspaces
from flowyard.server.ops.auth import Principal
from flowyard.server.ops.errors import DomainError, Forbidden, NotFound, Unauthorized
from flowyard.ui import _sessions as sessions
from flowyard.ui._errors import BadForm, CsrfRefused, InvalidSession
from flowyard.ui._formatting import FILTERS

logger = logging.getLogger("flowyard.ui")
R = TypeVar("R", bound=Response)

TEMPLATES = Path(__file__).parent / "templates"
MAX_FORM_BYTES = 1024 * 1024


def content_security_policy(images: str = "'self' data:") -> str:
    """The pages' policy; only where images may come from varies (see allow_remote_images)."""
    return (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src {images}; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    )


SECURITY_HEADERS = {
    "Content-Security-Policy": content_security_policy(),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def query(params: Mapping[str, Any] | None = None, **more: Any) -> str:
    """``?a=1&b=2`` from the non-empty values (lists repeat the key); '' when none."""
    merged = {**(params or {}), **more}
    pairs: list[tuple[str, str]] = []
    for key, value in merged.items():
        values = value if isinstance(value, list | tuple) else [value]
        pairs += [(key, str(v)) for v in values if v not in (None, "", False)]
    return "?" + urlencode(pairs) if pairs else ""


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template is HTML; user text is always escaped
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    env.filters["q"] = lambda value: quote(str(value), safe="")
    env.globals.update(query=query, version=__version__)
    return env


templates = _environment()


def safe_next(target: str | None) -> str:
    """A local path to return to after sign-in; anything else becomes the dashboard."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def secure_cookies(request: Request) -> bool:
    return request.url.scheme == "https"


@dataclass(frozen=True)
class Scope:
    """One transaction of one page, on behalf of the signed-in key."""

    session: AsyncSession
    principal: Principal
    workspace: m.Workspace
    # Read while the transaction is open: a rolled-back transaction (a refused
    # form) expires the row, and the page is rendered after it closes.
    workspace_name: str


@dataclass(frozen=True)
class Form:
    """A parsed ``application/x-www-form-urlencoded`` body."""

    fields: Mapping[str, list[str]] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[-1] if values else default

    def getlist(self, name: str) -> list[str]:
        return list(self.fields.get(name, []))


@dataclass
class Viewer:
    """The browser session of a request, already shown to be well-formed and unexpired."""

    request: Request
    ctx: ServerContext
    browser: sessions.Session
    csrf: str
    set_cookies: dict[str, str | None] = field(default_factory=dict)

    @asynccontextmanager
    async def scope(self) -> AsyncIterator[Scope]:
        async with self.ctx.db.session() as session:
            try:
                principal = await auth.authenticate(
                    session, self.ctx.keys, f"Bearer {self.browser.api_key}"
                )
            except Unauthorized as exc:
                raise InvalidSession(str(exc)) from None
            if principal.kind != "api_key":
                raise InvalidSession("sign in with an API key")
            workspace = await workspaces.read_workspace(session, principal.workspace_id)
            yield Scope(session, principal, workspace, workspace.name)

    async def form(self) -> Form:
        """The posted form, refused unless it carries this session's CSRF token."""
        form = await read_form(self.request)
        check_origin(self.request)
        given = form.get(sessions.CSRF_FIELD) or self.request.headers.get(sessions.CSRF_HEADER)
        if not sessions.tokens_match(self.csrf, given):
            raise CsrfRefused("this form is missing its security token or it has expired")
        return form

    def notify(self, kind: str, text: str) -> None:
        """Show ``text`` once on the next page rendered for this browser."""
        notice = sessions.Notice(kind, text)
        self.set_cookies[sessions.NOTICE_COOKIE] = sessions.seal_notice(self.ctx.keys, notice)

    def redirect(self, url: str) -> Response:
        if is_htmx(self.request):
            response: Response = Response(status_code=204, headers={"HX-Redirect": url})
        else:
            response = RedirectResponse(url, status_code=303)
        return self.finish(response)

    def render(
        self,
        template: str,
        scope: Scope,
        *,
        status: int = 200,
        active: str = "",
        title: str = "",
        **context: Any,
    ) -> HTMLResponse:
        notice = sessions.open_notice(
            self.ctx.keys, self.request.cookies.get(sessions.NOTICE_COOKIE)
        )
        if notice is not None and sessions.NOTICE_COOKIE not in self.set_cookies:
            self.set_cookies[sessions.NOTICE_COOKIE] = None  # shown now: drop it
        html = templates.get_template(template).render(
            request_path=self.request.url.path,
            csrf_token=self.csrf,
            workspace_name=scope.workspace_name,
            is_admin=scope.principal.is_admin,
            notice=notice,
            active=active,
            title=title,
            htmx=is_htmx(self.request),
            **context,
        )
        return self.finish(HTMLResponse(html, status_code=status))

    def finish(self, response: R) -> R:
        for name, value in self.set_cookies.items():
            if value is None:
                response.delete_cookie(name, path="/")
            else:
                set_cookie(self.request, response, name, value, max_age=300)
        return response


def allow_remote_images(response: R) -> R:
    """The same policy, but images may come from any http(s) URL: for pages showing artifacts,
    whose images (and those in their markdown) live wherever the run published them."""
    response.headers["Content-Security-Policy"] = content_security_policy(
        "'self' data: https: http:"
    )
    return response


def set_cookie(
    request: Request, response: Response, name: str, value: str, *, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
    )


def context_of(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


def viewer(request: Request) -> Viewer:
    """The request's browser session, or ``InvalidSession`` (answered by a sign-in redirect)."""
    ctx = context_of(request)
    browser = sessions.open_session(ctx.keys, request.cookies.get(sessions.SESSION_COOKIE))
    return Viewer(request, ctx, browser, sessions.csrf_token(ctx.keys, browser))


View = Annotated[Viewer, Depends(viewer)]


async def read_form(request: Request) -> Form:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("", "application/x-www-form-urlencoded"):
        raise BadForm(f"expected a form (application/x-www-form-urlencoded), not {content_type}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise BadForm("the form is larger than 1 MiB")
    try:
        text = body.decode()
        fields = parse_qs(text, keep_blank_values=True, max_num_fields=2000, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadForm(f"the form could not be read: {exc}") from None
    return Form(fields)


def check_origin(request: Request) -> None:
    """A browser names the page a form came from; it must be one of ours."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        if origin == "null":
            raise CsrfRefused("this form was sent from an opaque origin")
        return
    if urlsplit(origin).netloc != request.headers.get("host", ""):
        raise CsrfRefused("this form was sent from another site")


def sign_in_redirect(request: Request, reason: str) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if is_htmx(request):
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        target = current.path + (f"?{current.query}" if current.query else "") or "/"
    url = "/sign-in" + query(next=safe_next(target) if target != "/" else None)
    response: Response
    if "text/event-stream" in request.headers.get("accept", ""):
        response = Response(reason, status_code=401, media_type="text/plain")
    elif is_htmx(request):
        response = Response(status_code=204, headers={"HX-Redirect": url})
    else:
        response = RedirectResponse(url, status_code=303)
    if request.cookies.get(sessions.SESSION_COOKIE):
        response.delete_cookie(sessions.SESSION_COOKIE, path="/")
        notice = sessions.Notice("error", reason)
        key = context_of(request).keys
        set_cookie(
            request,
            response,
            sessions.NOTICE_COOKIE,
            sessions.seal_notice(key, notice),
            max_age=300,
        )
    return response


def error_page(status: int, heading: str, detail: str) -> HTMLResponse:
    html = templates.get_template("error.html").render(
        status=status, heading=heading, detail=detail, title=heading
    )
    return HTMLResponse(html, status_code=status)


def _answer_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, InvalidSession):
        return sign_in_redirect(request, str(exc))
    if isinstance(exc, CsrfRefused):
        return error_page(
            403, "This form could not be accepted", f"{exc}. Reload the page and try again."
        )
    if isinstance(exc, BadForm):
        return error_page(400, "This form could not be read", str(exc))
    if isinstance(exc, NotFound):
        return error_page(
            404,
            "Not found",
            f"{exc}. It may have been deleted, or it belongs to another workspace.",
        )
    if isinstance(exc, Forbidden):
        return error_page(403, "Not allowed", str(exc))
    if isinstance(exc, DomainError):
        return error_page(exc.status_code, "That did not work", str(exc))
    if isinstance(exc, RequestValidationError):
        return error_page(404, "Not found", "This address does not name anything here.")
    if isinstance(exc, StorageError):
        logger.error("storage error on %s: %s", request.url.path, exc)
        return error_page(503, "The database is unavailable", "Try again in a moment.")
    logger.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_page(500, "Something went wrong", "The error was logged on the server.")


class UiRoute(APIRoute):
    """A page route: errors become pages and every answer carries the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                response = await handler(request)
            except Exception as exc:  # every error becomes a page; the unexpected are logged
                response = _answer_error(request, exc)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return page


def api_not_found() -> JSONResponse:
    """Unknown ``/api`` paths keep the API's JSON answer even though pages own ``/``."""
    return JSONResponse({"detail": "Not Found"}, status_code=404)
