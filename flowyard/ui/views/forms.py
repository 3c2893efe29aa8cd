"""Reading form inputs and turning validation errors into per-field messages."""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import ValidationError


def number_or_none(text: str, *, whole: bool = False) -> float | int | None:
    """'' is None; otherwise a finite number (an integer when ``whole``)."""
    text = text.strip()
    if not text:
        return None
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        raise ValueError("expected a whole number" if whole else "expected a number") from None
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value


def pydantic_errors(
    exc: ValidationError, help_text: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The first message per top-level field; ``help_text`` replaces terse pattern errors."""
    out: dict[str, str] = {}
    for error in exc.errors():
        loc = error.get("loc", ())
        field = str(loc[0]) if loc else "form"
        if field in out:
            continue
        if error.get("type") == "string_pattern_mismatch" and help_text and field in help_text:
            out[field] = help_text[field]
        else:
            out[field] = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    return out
