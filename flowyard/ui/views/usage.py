"""Compute usage: minutes per day this month, per deployment, the limit and reset date."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from fastapi import APIRouter
from fastapi.responses import Response

from flowyard.server.ops import usage
from flowyard.ui import _charts as charts
from flowyard.ui import _pages as pages

router = APIRouter(route_class=pages.UiRoute, include_in_schema=False)


def _shift(month: str, by: int) -> str:
    year, mon = (int(p) for p in month.split("-"))
    index = year * 12 + (mon - 1) + by
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


@router.get("/usage")
async def usage_page(view: pages.View, month: str = "") -> Response:
    today = datetime.now(UTC).date()
    current = today.strftime("%Y-%m")
    chosen = month if re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month) and month <= current else ""
    async with view.scope() as scope:
        by_day = await usage.summary(scope.session, scope.workspace, chosen or None, "day")
        by_deployment = await usage.summary(
            scope.session, scope.workspace, chosen or None, "deployment"
        )
    year, mon = (int(p) for p in by_day.month.split("-"))
    minutes = {date.fromisoformat(b.key): (b.billed_minutes, b.runs) for b in by_day.buckets}
    is_current = by_day.month == current
    return view.render(
        "usage.html",
        scope,
        active="usage",
        title="Usage",
        summary=by_day,
        chart=charts.day_chart(year, mon, minutes, today if is_current else None),
        meter=charts.meter(by_day.used_minutes, by_day.limit_minutes),
        per_deployment=sorted(by_deployment.buckets, key=lambda b: -b.billed_minutes),
        month_label=date(year, mon, 1).strftime("%B %Y"),
        is_current=is_current,
        previous_month=_shift(by_day.month, -1),
        next_month=None if is_current else _shift(by_day.month, 1),
    )
