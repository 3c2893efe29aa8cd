"""The real egress proxy in front of a real strict sandbox, and local services to reach.

Every "remote" service here listens on the host's 127.0.0.1, which a run may
reach only through the proxy and only when a test's allow-list names that
address explicitly by IP, as an operator would.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from flowyard.execution.egress import AllowList, EgressProxy
from flowyard.execution.sandbox import LocalSandbox, NetworkMode
from tests.integration.sandbox.conftest import capabilities, run_python, sandbox

__all__ = ["capabilities", "sandbox"]

CLIENT = (Path(__file__).parent / "sandbox_client.py").read_text()


@dataclass
class LocalService:
    """An HTTP server on the host's loopback that says who called it and for what."""

    port: int
    requests: list[str] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)


@pytest.fixture
async def service() -> AsyncIterator[LocalService]:
    made = LocalService(0)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        line = head.split(b"\r\n")[0].decode()
        length = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
        sent = await reader.readexactly(int(length.group(1))) if length else b""
        peer = writer.get_extra_info("peername")[0]
        made.requests.append(line)
        made.peers.append(peer)
        body = f"hello {peer}: {line}".encode() + (b" with " + sent if sent else b"")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nKeep-Alive: timeout=5\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    made.port = server.sockets[0].getsockname()[1]
    async with server:
        yield made


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory: a unix socket's path must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="fy-egress-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


ProxyFactory = Callable[..., Awaitable[EgressProxy]]


@pytest.fixture
async def start_proxy(socket_dir: Path) -> AsyncIterator[ProxyFactory]:
    """Start an egress proxy with an allow-list (and any other options) for this test."""
    started: list[EgressProxy] = []

    async def start(allow: list[str], **options: Any) -> EgressProxy:
        proxy = EgressProxy(
            socket_dir / f"egress-{len(started)}.sock",
            AllowList.parse(allow),
            identify=LocalSandbox.run_of_process,
            **options,
        )
        await proxy.start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        await proxy.close()


@dataclass
class Tries:
    """What one sandboxed run saw, action by action, and its run id."""

    run_id: str
    results: list[dict[str, Any]]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.results[index]


async def run_tries(
    sandbox: LocalSandbox,
    actions: list[list[Any]],
    *,
    proxy: EgressProxy | None = None,
    network: NetworkMode = NetworkMode.EGRESS,
) -> Tries:
    """A sandboxed process trying each action, through ``proxy`` when the network is egress."""
    fields: dict[str, Any] = {"network": network}
    if network is NetworkMode.EGRESS:
        assert proxy is not None
        fields["egress_proxy_socket"] = proxy.socket_path
        fields["env"] = {"HTTP_PROXY": "{egress_proxy}", "HTTPS_PROXY": "{egress_proxy}"}
    run_id = f"eg-{uuid.uuid4().hex[:12]}"
    result = await run_python(
        sandbox, CLIENT.replace("sys.argv[1]", repr(json.dumps(actions))), run_id=run_id, **fields
    )
    assert result.succeeded, result.output_tail
    lines = [line for line in result.output_tail.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == len(actions), result.output_tail
    return Tries(run_id, [json.loads(line.removeprefix("RESULT ")) for line in lines])
