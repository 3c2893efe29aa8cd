"""Just enough HTTP/1.x for a forward proxy: request heads, targets, refusals, splicing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from flowyard.execution.egress._allow import HOST_NAME, address_or_none

HEAD_LIMIT = 64 * 1024
HEAD_TIMEOUT = 30.0
# Connection-scoped headers a proxy must not forward (RFC 9110 section 7.6.1).
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "upgrade"}
)


class Refusal(Exception):
    """Ends a proxied request with an HTTP error for the run to read."""

    def __init__(self, status: int, reason: str, body: str, *, note: str = "") -> None:
        super().__init__(reason)
        self.status, self.reason, self.body = status, reason, body
        self.note = note or reason


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]


async def read_head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise Refusal(
            431, "Request Header Fields Too Large", "the request's head is over 64 KiB.\n"
        ) from None


async def read_response_head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
    except asyncio.LimitOverrunError:
        raise Refusal(502, "Bad Gateway", "the response's head is over 64 KiB.\n") from None
    except (asyncio.IncompleteReadError, TimeoutError):
        raise Refusal(
            502,
            "Bad Gateway",
            "the server closed or stalled before answering.\n",
            note="no response",
        ) from None


def parse_request(head: bytes) -> Request:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise Refusal(400, "Bad Request", "expected an HTTP/1.x request line.\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise Refusal(400, "Bad Request", f"malformed header line {line[:80]!r}.\n")
        headers.append((name, value.strip()))
    return Request(parts[0].upper(), parts[1], parts[2], tuple(headers))


def authority(text: str, default_port: int | None = None) -> tuple[str, int]:
    """``(host, port)`` of ``host:port`` or ``[v6]:port``, the host normalized."""
    bad = Refusal(400, "Bad Request", f"{text[:200]!r} is not a host and port.\n")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ("" if not rest else None)
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
    else:
        host, port_text = text, ""
    if port_text is None or (not port_text and default_port is None):
        raise bad
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise bad from None
    if port is None or not 0 < port < 65536:
        raise bad
    host = host.lower().rstrip(".")
    address = address_or_none(host)
    if address is not None:
        return str(address), port
    if not HOST_NAME.match(host):
        raise bad
    return host, port


def join(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def close_after(head: bytes) -> bytes:
    """A response head that tells the run this connection ends with the response."""
    lines = head.decode("latin-1").split("\r\n")
    kept = [
        line
        for line in lines[1:]
        if line and line.split(":", 1)[0].strip().lower() not in HOP_BY_HOP
    ]
    return ("\r\n".join([lines[0], *kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1")


async def splice(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    sent: Callable[[int], None],
    received: Callable[[int], None],
    response_head: Callable[[bytes], bytes] | None = None,
) -> None:
    """Copy both ways until the far end is done (then give the run a moment to finish).

    With ``response_head``, the far end's first head is read and passed through
    it before anything else reaches the run (a request body flows meanwhile).
    """
    outgoing = asyncio.create_task(pump(client_reader, writer, sent))
    try:
        if response_head is not None:
            head = response_head(await read_response_head(reader))
            client_writer.write(head)
            received(len(head))
        await pump(reader, client_writer, received)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(outgoing), 5)
    finally:
        outgoing.cancel()


async def pump(
    source: asyncio.StreamReader, sink: asyncio.StreamWriter, count: Callable[[int], None]
) -> None:
    try:
        while data := await source.read(65536):
            count(len(data))
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except (ConnectionError, OSError, RuntimeError):
        pass  # the other end closed: the splice ends
