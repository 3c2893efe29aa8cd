"""The ``egress`` network mode's in-sandbox end: a TCP listener bridged to a unix socket.

An egress run gets its own network namespace with loopback only, like
``none``: no route leaves it. The server's egress proxy (which holds the
operator's allow-list and outbound address) listens on a unix socket bound
into the sandbox; this bridge listens on ``127.0.0.1:3128`` inside and
splices each connection to that socket, so ``HTTP(S)_PROXY`` pointed at
:data:`EGRESS_PROXY_URL` works and nothing else does. The bridge runs as the
sandbox user with the runtime's Python, binds before the run's command
starts (its first process exits only once it listens), and dies with the
sandbox's pid namespace.
"""

from __future__ import annotations

from flowyard.execution.sandbox._layout import EGRESS_PROXY_ADDRESS, EGRESS_SOCKET_PATH

BRIDGE_SOURCE = f"""
import os, socket, threading
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind({EGRESS_PROXY_ADDRESS!r})
listener.listen(64)
if os.fork():
    os._exit(0)
os.setsid()
def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
def serve(client):
    upstream = socket.socket(socket.AF_UNIX)
    try:
        upstream.connect({EGRESS_SOCKET_PATH!r})
    except OSError:
        client.close()
        return
    threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
    pump(client, upstream)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


def bridge_command(python: str) -> str:
    """A shell command starting the bridge; it returns once the bridge listens."""
    quoted = BRIDGE_SOURCE.replace("'", "'\"'\"'")
    return f"{python} -I -S -c '{quoted}' </dev/null >/dev/null 2>&1"
