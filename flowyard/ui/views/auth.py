"""Sign in with an API key; sign out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from flowyard.server.ops import auth
from flowyard.server.ops.errors import Unauthorized
from flowyard.ui import _pages as pages
from flowyard.ui import _sessions as sessions
from flowyard.ui._errors import CsrfRefused, InvalidSession

router = APIRouter(route_class=pages.UiRoute, include_in_schema=False)


def _sign_in_page(
    request: Request, nonce: str, *, error: str = "", status: int = 200, next_url: str = "/"
) -> HTMLResponse:
    ctx = pages.context_of(request)
    notice = sessions.open_notice(ctx.keys, request.cookies.get(sessions.NOTICE_COOKIE))
    html = pages.templates.get_template("sign_in.html").render(
        title="Sign in",
        csrf_token=sessions.sign_in_token(ctx.keys, nonce),
        error=error,
        notice=notice,
        next_url=next_url,
    )
    response = HTMLResponse(html, status_code=status)
    pages.set_cookie(request, response, sessions.SIGN_IN_COOKIE, nonce, max_age=3600)
    if notice is not None:
        response.delete_cookie(sessions.NOTICE_COOKIE, path="/")
    return response


@router.get("/sign-in")
async def sign_in_form(request: Request, next: str | None = None) -> Response:
    ctx = pages.context_of(request)
    try:
        sessions.open_session(ctx.keys, request.cookies.get(sessions.SESSION_COOKIE))
    except InvalidSession:
        nonce = request.cookies.get(sessions.SIGN_IN_COOKIE) or sessions.new_nonce()
        return _sign_in_page(request, nonce, next_url=pages.safe_next(next))
    return RedirectResponse(pages.safe_next(next), status_code=303)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    ctx = pages.context_of(request)
    form = await pages.read_form(request)
    pages.check_origin(request)
    nonce = request.cookies.get(sessions.SIGN_IN_COOKIE)
    if not nonce or not sessions.tokens_match(
        sessions.sign_in_token(ctx.keys, nonce), form.get(sessions.CSRF_FIELD)
    ):
        raise CsrfRefused("the sign-in form has expired")
    next_url = pages.safe_next(form.get("next"))
    key = form.get("api_key").strip()
    error = ""
    if not key:
        error = "Enter an API key."
    elif not key.startswith("fy_"):
        error = "That is not an API key: keys start with fy_."
    else:
        try:
            async with ctx.db.session() as session:
                principal = await auth.authenticate(session, ctx.keys, f"Bearer {key}")
        except Unauthorized as exc:
            error = f"Sign-in failed: {exc}."
        else:
            if principal.kind != "api_key":
                error = "Sign in with an API key, not a run token."
    if error:
        return _sign_in_page(request, nonce, error=error, status=401, next_url=next_url)
    _, cookie = sessions.new_session(ctx.keys, key)
    response = RedirectResponse(next_url, status_code=303)
    pages.set_cookie(
        request, response, sessions.SESSION_COOKIE, cookie, max_age=sessions.SESSION_SECONDS
    )
    response.delete_cookie(sessions.SIGN_IN_COOKIE, path="/")
    return response


@router.post("/sign-out")
async def sign_out(view: pages.View) -> Response:
    await view.form()
    view.set_cookies[sessions.SESSION_COOKIE] = None
    view.notify("ok", "You are signed out.")
    response = RedirectResponse("/sign-in", status_code=303)
    return view.finish(response)
