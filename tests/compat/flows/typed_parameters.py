"""Parameters coerced from type hints: a pydantic model, an enum, dates, lists."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, Field

from flowyard import flow, task


class Granularity(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"


class Window(BaseModel):
    start: date
    end: date
    granularity: Granularity = Granularity.DAILY


class Filters(BaseModel):
    regions: list[str] = Field(default_factory=list)
    min_amount: float = 0.0


@task
def count_periods(window: Window) -> int:
    days = (window.end - window.start).days + 1
    return days if window.granularity is Granularity.DAILY else (days + 6) // 7


@flow
def sales_report(window: Window, filters: Filters = Filters(), top_n: int = 3) -> dict[str, object]:
    return {
        "periods": count_periods(window),
        "granularity": window.granularity.value,
        "regions": filters.regions,
        "min_amount": filters.min_amount,
        "top_n": top_n,
    }


if __name__ == "__main__":
    print(sales_report({"start": "2024-01-01", "end": "2024-01-31", "granularity": "weekly"}))  # type: ignore[arg-type]
