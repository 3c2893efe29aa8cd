"""Flows that try to get out of their sandbox, each printing what it saw (``log_prints``)."""

from __future__ import annotations

import errno
import os
import socket
import time
import urllib.request

from flowyard import flow


@flow(log_prints=True)
def read_files(paths: list[str]) -> None:
    for path in paths:
        try:
            with open(path, "rb") as fh:
                print(f"READ {path} {fh.read(16)!r}")
        except OSError as exc:
            print(f"BLOCKED {path} {type(exc).__name__}")


@flow(log_prints=True)
def hold_a_secret(seconds: float) -> None:
    with open("secret.txt", "w") as fh:
        fh.write("theirs")
    print(f"HOLDING in {os.getcwd()}")
    time.sleep(seconds)


@flow(log_prints=True)
def connect(ports: list[int], tunnels: list[str], fetch: str = "") -> None:
    for port in ports:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=3).close()
            print(f"CONNECTED {port}")
        except OSError as exc:
            print(f"REFUSED {port} {type(exc).__name__}")
    print(f"PROXY {os.environ.get('HTTPS_PROXY')}")
    for target in tunnels:
        with socket.create_connection(("127.0.0.1", 3128), timeout=10) as conn:
            conn.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            status = conn.recv(4096).split(b"\r\n")[0].decode()
            print(f"TUNNEL {target}: {status}")
    if fetch:
        # The stand-in for a remote host listens on the host's loopback, which the
        # run's NO_PROXY rightly keeps for the run's own: go through the proxy anyway.
        os.environ.pop("NO_PROXY", None)
        os.environ.pop("no_proxy", None)
        print(f"FETCHED {urllib.request.urlopen(fetch, timeout=15).read().decode()}")


@flow
def allocate() -> None:
    chunks = []
    while True:
        chunks.append(b"x" * (8 << 20))


@flow(log_prints=True)
def fill_disk() -> None:
    written = 0
    try:
        with open("fill", "wb") as fh:
            while True:
                fh.write(b"x" * (1 << 20))
                fh.flush()
                written += 1
    except OSError as exc:
        print(f"stopped after {written} MiB: {errno.errorcode[exc.errno or 0]}")
    os.remove("fill")


@flow
def sleep(seconds: float) -> None:
    time.sleep(seconds)


@flow
def fork_bomb() -> None:
    try:
        while True:
            if os.fork() == 0:
                os.execv("/bin/sleep", ["sleep", "120"])
    except OSError:
        os._exit(3)  # as a bomb would: no final state, the sandbox says what happened


@flow(log_prints=True)
def ticks(count: int) -> int:
    for i in range(count):
        print(f"tick {i}")
        time.sleep(0.5)
    return count
