"""Log lines as they cross the wire, and the text type reports use.

Log content is never interpreted: it is stored and returned as sent. The one
exception is what no database can store — NUL characters (PostgreSQL text
cannot hold them) and unpaired surrogates (not encodable as UTF-8) — which
become U+FFFD rather than failing a whole batch of a running flow's output.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BeforeValidator, Field

from flowyard.schemas._base import Out, Wire
from flowyard.schemas.times import UtcTime

REPLACEMENT = "\ufffd"


def storable_text(value: object) -> object:
    """A string with NUL characters and unpaired surrogates replaced by U+FFFD.

    Runs before pydantic's own string check (which refuses surrogates), so a
    stray byte in a program's output costs one character, not the batch.
    Anything else passes through for that check to judge.
    """
    if not isinstance(value, str):
        return value
    if value.isascii():
        return value.replace("\x00", REPLACEMENT) if "\x00" in value else value
    try:
        value.encode()
    except UnicodeEncodeError:
        # Through UTF-16, each unpaired surrogate becomes exactly one U+FFFD.
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value.replace("\x00", REPLACEMENT)


# Free text from running code: stored as sent, minus what storage cannot hold.
ReportText = Annotated[str, BeforeValidator(storable_text)]

MAX_BATCH = 50_000


class LogCreate(Wire):
    flow_run_id: uuid.UUID
    task_run_id: uuid.UUID | None = None
    level: int = Field(ge=0, le=100)
    name: ReportText = Field(default="", max_length=200)
    message: ReportText = Field(max_length=1_000_000)
    timestamp: UtcTime


class LogBatch(Wire):
    """Up to 50,000 lines of any runs the caller may write to, in order."""

    logs: list[LogCreate] = Field(max_length=MAX_BATCH)


class LogsWritten(Wire):
    count: int


class Log(Out):
    id: int
    flow_run_id: uuid.UUID
    task_run_id: uuid.UUID | None
    # The name of the task run that wrote the line, if it was recorded.
    task_run_name: str | None = None
    level: int
    name: str
    message: str
    timestamp: datetime


class LogPage(Wire):
    items: list[Log]
    # Pass back as ``after`` to read on: the last line returned, or the
    # ``after`` given when nothing newer exists yet. Stable across appends.
    next_cursor: int | None
    # More lines matching the filters exist past ``next_cursor`` right now.
    has_more: bool = False
