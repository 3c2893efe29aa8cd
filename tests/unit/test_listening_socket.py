"""The API's TCP socket: answers on a kept-alive connection are not held back."""

from __future__ import annotations

import asyncio
import socket

from flowyard.server.serve import bind_socket


def test_connections_accepted_by_the_server_have_tcp_nodelay() -> None:
    # Without TCP_NODELAY, each answer on a kept-alive connection waits for the
    # client's delayed ACK: 40 ms per request on Linux.
    listening = bind_socket("127.0.0.1", 0)
    port = listening.getsockname()[1]
    seen: list[int] = []

    async def serve() -> None:
        done = asyncio.Event()

        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()
            done.set()

        server = await asyncio.start_server(accepted, sock=listening)
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.wait_for(done.wait(), 5)
            writer.close()

    asyncio.run(serve())
    assert seen
    assert seen[0] != 0
