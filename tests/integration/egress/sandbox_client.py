"""Run inside a sandbox (standard library only): try each action, print one JSON line per try.

``argv[1]`` is a JSON list of actions:
``["get", url]`` through ``HTTP(S)_PROXY`` with urllib, as a run's code would;
``["post", url, text]`` the same with a request body;
``["tunnel", "host:port", path]`` a raw ``CONNECT``, then ``GET path`` through it;
``["direct", port]`` a TCP connection straight to ``127.0.0.1:port``.
"""

import json
import os
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request


def get(url, data=None):
    try:
        with urllib.request.urlopen(url, data=data, timeout=15) as response:
            return {"status": response.status, "body": response.read().decode()}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "reason": exc.reason, "body": exc.read().decode()}
    except (urllib.error.URLError, OSError) as exc:
        return {"error": str(getattr(exc, "reason", exc))}


def post(url, text):
    return get(url, text.encode())


def tunnel(target, path):
    proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
    conn = socket.create_connection((proxy.hostname, proxy.port), timeout=15)
    conn.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    data, sent = b"", False
    while True:
        if not sent and b"\r\n\r\n" in data:
            sent = True
            if data.startswith(b"HTTP/1.1 200 "):
                request = f"GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
                conn.sendall(request.encode())
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.decode(errors="replace").partition("\r\n\r\n")
    return {"status_line": head.split("\r\n")[0], "rest": rest}


def direct(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
        return {"connected": True}
    except OSError as exc:
        return {"connected": False, "error": type(exc).__name__}


ACTIONS = {"get": get, "post": post, "tunnel": tunnel, "direct": direct}
for name, *args in json.loads(sys.argv[1]):
    print("RESULT", json.dumps({"action": [name, *args], **ACTIONS[name](*args)}), flush=True)
