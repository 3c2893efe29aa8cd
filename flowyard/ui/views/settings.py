"""Settings: API keys (a new key is shown once), variables, secrets (values never shown), and
the concurrency limits with the slots held now (read-only: managed from the CLI)."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ValidationError

from flowyard.schemas import variables as vs
from flowyard.server.ops import concurrency, secrets, variables, workspaces
from flowyard.server.ops.errors import DomainError, InvalidInput
from flowyard.ui import _pages as pages
from flowyard.ui import _sessions as sessions
from flowyard.ui.views.forms import pydantic_errors

router = APIRouter(route_class=pages.UiRoute, include_in_schema=False)

PAGE = 100
NAME_HELP = "use letters, digits, '_', '.' or '-' (up to 255; not starting with '.' or '-')"


def _valid_name(name: str) -> bool:
    return re.fullmatch(vs.NAME, name) is not None


@dataclass(frozen=True)
class LimitRow:
    """One concurrency limit as the card shows it."""

    name: str
    limit: int
    held: int
    active: bool
    decay: float


async def _limits(scope: pages.Scope) -> list[LimitRow]:
    rows = await concurrency.list_limits(scope.session, scope.principal)
    held = await concurrency.held_slots(scope.session, [row.id for row in rows])
    return [
        LimitRow(row.name, row.limit, held.get(row.id, 0), row.active, row.slot_decay_per_second)
        for row in rows
    ]


def _preview(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _page(
    view: pages.View,
    scope: pages.Scope,
    *,
    status: int = 200,
    variables_after: str = "",
    secrets_after: str = "",
    **context: Any,
) -> Response:
    session, principal = scope.session, scope.principal
    keys = await workspaces.list_api_keys(session, principal)
    var_rows, next_vars = await variables.list_variables(
        session, principal, limit=PAGE, cursor=variables_after or None
    )
    secret_rows, next_secrets = await secrets.list_secrets(
        session, principal, limit=PAGE, cursor=secrets_after or None
    )
    defaults: dict[str, Any] = {
        "new_key": None,
        "key_error": "",
        "variable_errors": {},
        "variable_values": {},
        "secret_errors": {},
        "secret_name": "",
    }
    return view.render(
        "settings.html",
        scope,
        status=status,
        active="settings",
        title="Settings",
        keys=keys,
        current_key_id=principal.key_id,
        variables=[(v, _preview(v.value.get("value"))) for v in var_rows],
        next_variables=next_vars,
        secrets=secret_rows,
        next_secrets=next_secrets,
        concurrency_limits=await _limits(scope),
        **{**defaults, **context},
    )


@router.get("/settings")
async def settings_page(
    view: pages.View, variables_after: str = "", secrets_after: str = ""
) -> Response:
    async with view.scope() as scope:
        return await _page(
            view, scope, variables_after=variables_after[:255], secrets_after=secrets_after[:255]
        )


@router.post("/settings/api-keys")
async def create_key(view: pages.View) -> Response:
    form = await view.form()
    name = form.get("name").strip()
    admin = form.get("admin") == "on"
    async with view.scope() as scope:
        if not 1 <= len(name) <= 100:
            return await _page(
                view, scope, status=422, key_error="Name the key (1 to 100 characters)."
            )
        if admin and not scope.principal.is_admin:
            return await _page(
                view, scope, status=403, key_error="Only an admin key can create admin keys."
            )
        row, key = await workspaces.create_api_key(
            scope.session, scope.principal.workspace_id, name, admin=admin
        )
        return await _page(view, scope, status=201, new_key=(row, key))


@router.post("/settings/api-keys/{key_id}/revoke")
async def revoke_key(view: pages.View, key_id: uuid.UUID) -> Response:
    await view.form()
    async with view.scope() as scope:
        row = await workspaces.revoke_api_key(scope.session, scope.principal, str(key_id))
        own = scope.principal.key_id == row.id
    if own:
        view.set_cookies[sessions.SESSION_COOKIE] = None
        view.notify("ok", f"Revoked key {row.prefix}, which this session used: sign in again.")
        return view.redirect("/sign-in")
    view.notify("ok", f"Revoked API key {row.name} ({row.prefix}).")
    return view.redirect("/settings")


@router.post("/settings/variables")
async def set_variable(view: pages.View) -> Response:
    form = await view.form()
    name, text = form.get("name").strip(), form.get("value")
    errors: dict[str, str] = {}
    value: Any = None
    if not _valid_name(name):
        errors["name"] = NAME_HELP
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        errors["value"] = f'is not valid JSON ({exc.msg}); a string needs quotes: "text"'
    if not errors:
        try:
            async with view.scope() as scope:
                _, created = await variables.set_variable(
                    scope.session, scope.principal, name, vs.VariableSet(value=value)
                )
        except InvalidInput as exc:
            errors["value"] = exc.detail
        except ValidationError as exc:
            errors.update(pydantic_errors(exc))
        except DomainError as exc:
            if exc.status_code == 404:
                raise
            errors["value"] = str(exc)
        else:
            view.notify("ok", f"Variable {name} {'created' if created else 'updated'}.")
            return view.redirect("/settings#variables")
    async with view.scope() as scope:
        return await _page(
            view,
            scope,
            status=422,
            variable_errors=errors,
            variable_values={"name": name, "value": text},
        )


@router.post("/settings/variables/{name}/delete")
async def delete_variable(view: pages.View, name: str) -> Response:
    await view.form()
    async with view.scope() as scope:
        await variables.delete_variable(scope.session, scope.principal, name)
    view.notify("ok", f"Deleted variable {name}.")
    return view.redirect("/settings#variables")


@router.post("/settings/secrets")
async def set_secret(view: pages.View) -> Response:
    form = await view.form()
    name, value = form.get("name").strip(), form.get("value")
    errors: dict[str, str] = {}
    if not _valid_name(name):
        errors["name"] = NAME_HELP
    if not value:
        errors["value"] = "enter the secret's value"
    if not errors:
        try:
            data = vs.SecretSet(value=value)
            async with view.scope() as scope:
                _, created = await secrets.set_secret(
                    scope.session, scope.principal, view.ctx.keys, name, data
                )
        except ValidationError as exc:
            errors.update(pydantic_errors(exc))
        except DomainError as exc:
            if exc.status_code == 404:
                raise
            errors["value"] = str(exc)
        else:
            view.notify("ok", f"Secret {name} {'created' if created else 'updated'}.")
            return view.redirect("/settings#secrets")
    async with view.scope() as scope:
        # The value is never sent back, not even to the person who typed it.
        return await _page(view, scope, status=422, secret_errors=errors, secret_name=name)


@router.post("/settings/secrets/{name}/delete")
async def delete_secret(view: pages.View, name: str) -> Response:
    await view.form()
    async with view.scope() as scope:
        await secrets.delete_secret(scope.session, scope.principal, name)
    view.notify("ok", f"Deleted secret {name}.")
    return view.redirect("/settings#secrets")
