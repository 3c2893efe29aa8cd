"""The proxy server: one unix socket, every egress run's connections, per-run accounting."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import logging
import socket
import struct
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flowyard.errors import ConfigurationError
from flowyard.execution.egress._allow import ALLOW_SETTING, Address, AllowList, unmapped
from flowyard.execution.egress._http import (
    HEAD_LIMIT,
    HEAD_TIMEOUT,
    HOP_BY_HOP,
    Refusal,
    Request,
    authority,
    close_after,
    join,
    parse_request,
    read_head,
    splice,
)
from flowyard.execution.sandbox import format_bytes

if TYPE_CHECKING:
    from flowyard.settings import Settings

logger = logging.getLogger("flowyard.egress")

CONNECT_TIMEOUT = 10.0
KEPT_REFUSALS = 20
KEPT_RUNS = 10_000


def socket_path_for(settings: Settings) -> Path:
    """``<home>/run/egress.sock``: next to its own API socket's name, short enough to bind."""
    api = settings.effective_api_socket
    name = "egress.sock" if api.name == "api.sock" else f"{api.stem}-egress.sock"
    path = settings.home / "run" / name
    if len(str(path)) < 100:
        return path
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    return Path("/tmp") / f"flowyard-{digest}-egress.sock"


@dataclass
class EgressUsage:
    """One run's traffic through the proxy, and what it was refused."""

    connections: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    refusals: list[str] = field(default_factory=list)
    refused: int = 0

    def add_sent(self, count: int) -> None:
        self.bytes_sent += count

    def add_received(self, count: int) -> None:
        self.bytes_received += count

    def refuse(self, what: str) -> None:
        self.refused += 1
        if len(self.refusals) < KEPT_REFUSALS:
            self.refusals.append(what)

    def summary(self) -> str:
        """One line for the run's log."""
        line = (
            f"egress: {self.connections} connection{'s' * (self.connections != 1)}, "
            f"{format_bytes(self.bytes_sent)} sent, {format_bytes(self.bytes_received)} received"
        )
        if self.refused:
            more = self.refused - len(self.refusals)
            listed = "; ".join(self.refusals) + (f"; and {more} more" if more else "")
            line += f"; {self.refused} refused: {listed}"
        return line


@dataclass(frozen=True)
class _Upstream:
    host: str
    port: int
    authorization: str | None

    @classmethod
    def parse(cls, url: str) -> _Upstream:
        problem = ConfigurationError(
            f"setting egress_upstream_proxy (FLOWYARD_EGRESS_UPSTREAM_PROXY): expected "
            f"'http://host:port' with an optional 'user:password@', got {_redacted(url)!r}"
        )
        parts = urllib.parse.urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise problem from None
        if parts.scheme != "http" or not parts.hostname or port is None:
            raise problem
        auth = None
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            secret = urllib.parse.unquote(parts.password or "")
            auth = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
        return cls(parts.hostname, port, auth)


class EgressProxy:
    """An HTTP proxy on a unix socket enforcing an :class:`AllowList`.

    ``source_address`` is the local address outbound connections leave from
    (``egress_source_address``); ``upstream`` an ``http://host:port`` proxy
    every connection goes through (``egress_upstream_proxy``). ``identify``
    maps the connecting process's pid to its run id (for logs and
    :meth:`take_usage`). ``await start()``, then ``await close()``.
    """

    def __init__(
        self,
        socket_path: Path,
        allow: AllowList,
        *,
        source_address: str = "",
        upstream: str = "",
        identify: Callable[[int], str | None] | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.allow = allow
        self._source: Address | None = None
        if source_address:
            try:
                self._source = ipaddress.ip_address(source_address)
            except ValueError:
                raise ConfigurationError(
                    "setting egress_source_address (FLOWYARD_EGRESS_SOURCE_ADDRESS): "
                    f"expected an IP address of this host, got {source_address!r}"
                ) from None
        self._upstream = _Upstream.parse(upstream) if upstream else None
        self._identify = identify
        self._usage: dict[str, EgressUsage] = {}
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        identify: Callable[[int], str | None] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> EgressProxy:
        """The proxy this server's settings describe; :class:`ConfigurationError` if they are wrong."""
        return cls(
            socket_path_for(settings),
            AllowList.for_settings(settings, environ),
            source_address=settings.egress_source_address,
            upstream=settings.egress_upstream_proxy,
            identify=identify,
        )

    def describe(self) -> str:
        """One line for logs: what runs may reach and how traffic leaves."""
        how = f"from {self._source}" if self._source else "from the host's default address"
        if self._upstream is not None:
            how += f" through {self._upstream.host}:{self._upstream.port}"
        return f"allowed: {self.allow.describe()}; outbound {how}"

    async def start(self) -> None:
        """Listen on :attr:`socket_path` (mode 0666: runs connect as an unprivileged user)."""
        path = self.socket_path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_socket():
            with socket.socket(socket.AF_UNIX) as probe:
                if probe.connect_ex(str(path)) == 0:
                    raise OSError(f"{path} is served by another process")
            path.unlink()
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(path), limit=HEAD_LIMIT
        )
        path.chmod(0o666)
        logger.info("egress proxy on %s; %s", path, self.describe())

    async def close(self) -> None:
        """Stop listening and end every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def take_usage(self, run_id: str) -> EgressUsage:
        """What run ``run_id`` did so far; later traffic starts a new count."""
        return self._usage.pop(run_id, None) or EgressUsage()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        run_id = self._run_of(writer)
        usage = self._usage_of(run_id)
        usage.connections += 1
        upstream: asyncio.StreamWriter | None = None
        try:
            try:
                request = parse_request(await asyncio.wait_for(read_head(reader), HEAD_TIMEOUT))
            except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
                return
            host, port, head = self._destination(request)
            try:
                up_reader, upstream = await self._open(host, port, tunnel=head is None)
                if head is None:
                    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                else:
                    upstream.write(head)
                    usage.add_sent(len(head))
                await splice(
                    reader,
                    writer,
                    up_reader,
                    upstream,
                    sent=usage.add_sent,
                    received=usage.add_received,
                    response_head=None if head is None else close_after,
                )
            except Refusal as refusal:
                refusal.note = f"{host}:{port} ({refusal.note})"
                raise
        except Refusal as refusal:
            self._refuse(writer, refusal, run_id, usage)
        except (
            ConnectionError,
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass  # either side went away mid-request: nothing to tell anyone
        finally:
            for end in (writer, upstream):
                if end is not None:
                    end.close()
            if task is not None:
                self._handlers.discard(task)

    def _usage_of(self, run_id: str | None) -> EgressUsage:
        if run_id is None:
            return EgressUsage()
        if run_id not in self._usage and len(self._usage) >= KEPT_RUNS:
            # Runs whose usage nobody took (their pipeline died): forget the oldest.
            del self._usage[next(iter(self._usage))]
        return self._usage.setdefault(run_id, EgressUsage())

    def _run_of(self, writer: asyncio.StreamWriter) -> str | None:
        if self._identify is None:
            return None
        try:
            creds = writer.get_extra_info("socket").getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
            )
            pid = struct.unpack("3i", creds)[0]
            return self._identify(pid) if pid > 0 else None
        except OSError:
            logger.exception("egress: cannot tell which run connected")
            return None

    def _destination(self, request: Request) -> tuple[str, int, bytes | None]:
        """``(host, port, head to send)``; ``head`` is ``None`` for a ``CONNECT`` tunnel."""
        if request.method == "CONNECT":
            host, port = authority(request.target)
            head = None
        else:
            host, port, head = self._forwarded(request)
        if not self.allow.allows(host, port):
            raise Refusal(
                403,
                f"Forbidden: {host}:{port} is not on the egress allow-list",
                f"{host}:{port} is not on this server's egress allow-list "
                f"(allowed: {self.allow.describe()}).\n"
                f"The server's operator can add it to the setting {ALLOW_SETTING}.\n",
                note=f"{host}:{port} (not on the allow-list)",
            )
        return host, port, head

    def _forwarded(self, request: Request) -> tuple[str, int, bytes]:
        parts = urllib.parse.urlsplit(request.target)
        if parts.scheme.lower() != "http" or not parts.netloc:
            hint = "; HTTPS goes through CONNECT (set HTTPS_PROXY)" if parts.scheme else ""
            raise Refusal(
                400,
                "Bad Request",
                f"this is a proxy: send 'CONNECT host:port' or an absolute http:// URI{hint}.\n",
            )
        host, port = authority(parts.netloc.rpartition("@")[2], default_port=80)
        shown = join(host, port) if port != 80 else join(host, None)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        target = f"http://{shown}{path}" if self._upstream else path
        lines = [f"{request.method} {target} {request.version}"]
        named = {
            token.strip().lower()
            for name, value in request.headers
            if name.lower() == "connection"
            for token in value.split(",")
        }
        for name, value in request.headers:
            lowered = name.lower()
            if lowered not in HOP_BY_HOP and lowered not in named and lowered != "host":
                lines.append(f"{name}: {value}")
        lines.append(f"Host: {shown}")
        if self._upstream is not None and self._upstream.authorization:
            lines.append(f"Proxy-Authorization: {self._upstream.authorization}")
        lines.append("Connection: close")
        return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _open(
        self, host: str, port: int, *, tunnel: bool
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        addresses = await self._checked_addresses(host, port)
        if self._upstream is not None:
            return await self._through_upstream(self._upstream, host, port, tunnel=tunnel)
        failures: list[str] = []
        for address in addresses:
            try:
                return await self._connect(str(address), port)
            except OSError as exc:
                failures.append(f"{address}: {exc.strerror or exc or type(exc).__name__}")
        raise Refusal(
            502,
            "Bad Gateway",
            f"cannot connect to {host}:{port}: {'; '.join(failures)}\n",
            note="cannot connect",
        )

    async def _checked_addresses(self, host: str, port: int) -> list[Address]:
        """The addresses of ``host`` a run may reach; refuses if it resolves to none of them."""
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError) as exc:
            if self._upstream is not None:
                return []  # the upstream proxy resolves names this host cannot
            raise Refusal(
                502,
                "Bad Gateway",
                f"cannot resolve {host}: {exc or type(exc).__name__}\n",
                note="cannot resolve",
            ) from None
        found: list[Address] = []
        for info in infos:
            address = unmapped(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
            if address not in found:
                found.append(address)
        refusals = [r for a in found if (r := self.allow.refuses_address(a, port))]
        # Through an upstream proxy its own lookup picks the address: every one must pass.
        if refusals and (self._upstream is not None or len(refusals) == len(found)):
            raise Refusal(
                403,
                f"Forbidden: {host} resolves to {refusals[0]}",
                f"{host} resolves to {' and '.join(refusals)}.\n"
                "Runs may not reach loopback, private, link-local or other non-public addresses; "
                f"the server's operator can allow one by IP in the setting {ALLOW_SETTING}.\n",
                note=f"resolves to {refusals[0]}",
            )
        allowed = [a for a in found if self.allow.refuses_address(a, port) is None]
        if self._source is not None and self._upstream is None:
            allowed = [a for a in allowed if a.version == self._source.version]
            if not allowed:
                raise Refusal(
                    502,
                    "Bad Gateway",
                    f"{host} has no IPv{self._source.version} address, and outbound traffic "
                    f"leaves from {self._source} (egress_source_address).\n",
                    note=f"no IPv{self._source.version} address",
                )
        return allowed

    async def _connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        local = (str(self._source), 0) if self._source is not None else None
        return await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=local, limit=HEAD_LIMIT),
            CONNECT_TIMEOUT,
        )

    async def _through_upstream(
        self, up: _Upstream, host: str, port: int, *, tunnel: bool
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            reader, writer = await self._connect(up.host, up.port)
        except OSError as exc:
            raise Refusal(
                502,
                "Bad Gateway",
                f"cannot connect to the upstream proxy {up.host}:{up.port}: "
                f"{exc.strerror or exc or type(exc).__name__}\n",
                note="upstream proxy unreachable",
            ) from None
        if not tunnel:
            return reader, writer
        target = join(host, port)
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        if up.authorization:
            lines.append(f"Proxy-Authorization: {up.authorization}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            answer = await asyncio.wait_for(read_head(reader), CONNECT_TIMEOUT)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            answer = b""
        status = answer.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        if status.split(" ")[1:2] != ["200"]:
            writer.close()
            raise Refusal(
                502,
                "Bad Gateway",
                f"the upstream proxy {up.host}:{up.port} answered {status or 'nothing'!r}\n",
                note=f"upstream proxy answered {status or 'nothing'!r}",
            )
        return reader, writer

    def _refuse(
        self,
        writer: asyncio.StreamWriter,
        refusal: Refusal,
        run_id: str | None,
        usage: EgressUsage,
    ) -> None:
        usage.refuse(refusal.note)
        logger.warning("egress refused for run %s: %s", run_id or "(unknown)", refusal.note)
        body = f"flowyard egress proxy: {refusal.body}".encode()
        head = (
            f"HTTP/1.1 {refusal.status} {refusal.reason}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.write(head.encode("latin-1") + body)


def _redacted(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)
