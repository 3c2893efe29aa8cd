"""Server-Sent Events: lines in, events out, as the HTML standard specifies.

Only the parsing lives here (no I/O), so it is tested on its own. The rules
that matter for resuming a stream: ``id:`` sets the last event id, which
persists across events until changed (an ``id:`` with no value resets it);
an event is dispatched on a blank line if it has data (or, more leniently
than browsers, a name: ``event: end`` alone still ends a stream); ``retry:``
sets the reconnection delay in milliseconds; lines starting with ``:`` are
comments (servers send them as keep-alives).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event."""

    event: str
    data: str
    id: str | None = None
    retry_ms: int | None = None


class SseParser:
    """Feed it lines (without their line ending); it returns completed events."""

    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ServerSentEvent | None:
        """Take one line; return the event it completes, if any."""
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value or None
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def feed_all(self, lines: Iterable[str]) -> Iterator[ServerSentEvent]:
        """Every event completed by ``lines``."""
        for line in lines:
            event = self.feed(line)
            if event is not None:
                yield event

    def _dispatch(self) -> ServerSentEvent | None:
        name, data = self._event, self._data
        self._event, self._data = "", []
        if not data and not name:
            return None
        return ServerSentEvent(
            name or "message", "\n".join(data), self.last_event_id, self.retry_ms
        )


async def parse_events(
    lines: AsyncIterable[str], parser: SseParser | None = None
) -> AsyncIterator[ServerSentEvent]:
    """Events from a stream of lines, e.g. ``httpx.Response.aiter_lines()``."""
    parser = parser or SseParser()
    async for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
