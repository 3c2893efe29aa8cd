"""The server's egress proxy: the one way out for runs whose network is ``egress``.

An ``egress`` run has a network namespace with loopback only; a bridge inside
forwards ``127.0.0.1:3128`` to this proxy's unix socket (``sandbox/_egress``).
The proxy speaks just enough HTTP for ``HTTP(S)_PROXY``: ``CONNECT host:port``
tunnels (HTTPS, git over HTTPS) and absolute-URI requests (plain HTTP). It
lets a run reach only what the operator's allow-list names, and never — the
check is on the addresses a name resolves to, and the connection goes to the
very address checked — a loopback, private, link-local or otherwise
non-public address unless the allow-list names that address: an allowed name
pointing at ``127.0.0.1`` cannot reach the API's port or PostgreSQL.

The connecting process is identified by ``SO_PEERCRED`` (the run's bridge,
inside the run's cgroup), so refusals are logged with the run and bytes are
counted per run without a socket per run.

Rejected: a stock proxy (squid, tinyproxy) beside the server, which is one
more daemon to configure and cannot tell runs apart; filtering a per-run veth
with nftables, which needs a network device per run on the start path and
still an allow-list by name, which only a proxy sees.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import logging
import os
import re
import socket
import struct
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flowyard.errors import ConfigurationError
from flowyard.execution.sandbox import format_bytes

if TYPE_CHECKING:
    from flowyard.settings import Settings

logger = logging.getLogger("flowyard.egress")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

WEB_PORTS = frozenset({80, 443})
PYPI_HOSTS = ("pypi.org", "files.pythonhosted.org")
# Where uv and pip take their index from, besides the server's own settings.
INDEX_VARIABLES = (
    "UV_DEFAULT_INDEX", "UV_INDEX", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS",
    "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS",
)  # fmt: skip
ALLOW_SETTING = "egress_allow (FLOWYARD_EGRESS_ALLOW)"
HEAD_LIMIT = 64 * 1024
HEAD_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
KEPT_REFUSALS = 20
_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_][a-z0-9_-]{0,62})*$")
# Connection-scoped headers a proxy must not forward (RFC 9110 section 7.6.1).
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "upgrade"}
)


# -- the allow-list ---------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One allow-list entry: ``host``, ``*.suffix``, ``*`` or an address/network, and ports.

    ``ports`` is ``None`` for any port (``:*``); an entry without a port
    allows 80 and 443. A ``!`` in front makes it a denial, which wins.
    """

    text: str
    name: str | None = None  # "pypi.org", ".example.com" for "*.example.com", or "*"
    network: Network | None = None
    ports: frozenset[int] | None = WEB_PORTS
    deny: bool = False

    def matches(self, host: str, port: int) -> bool:
        """Whether this entry names ``host`` (a name or an address literal) on ``port``."""
        if self.ports is not None and port not in self.ports:
            return False
        address = _address_or_none(host)
        if self.network is not None:
            return address is not None and address in self.network
        if self.name == "*":
            return True
        if address is not None or self.name is None:
            return False
        if self.name.startswith("."):
            return host.endswith(self.name)
        return host == self.name

    def names_address(self, address: Address, port: int) -> bool:
        """Whether this entry names ``address`` by IP (names never do)."""
        in_ports = self.ports is None or port in self.ports
        return self.network is not None and in_ports and address in self.network


@dataclass(frozen=True)
class AllowList:
    """What runs may reach: the package index by default, plus the operator's entries."""

    rules: tuple[Rule, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """Raises :class:`ConfigurationError` naming the setting and the bad entry."""
        return cls(tuple(parse_rule(entry) for entry in entries))

    @classmethod
    def for_settings(
        cls, settings: Settings, environ: Mapping[str, str] | None = None
    ) -> AllowList:
        """The package index's hosts (see :func:`package_index_entries`), then ``egress_allow``."""
        rules: list[Rule] = []
        for entry in package_index_entries(settings, os.environ if environ is None else environ):
            try:
                rules.append(parse_rule(entry))
            except ConfigurationError as exc:
                logger.warning("egress: package index host left off the allow-list: %s", exc)
        return cls((*rules, *cls.parse(settings.egress_allow).rules))

    def allows(self, host: str, port: int) -> bool:
        """Whether ``host:port`` is on the list (before any name is resolved)."""
        if any(rule.deny and rule.matches(host, port) for rule in self.rules):
            return False
        return any(not rule.deny and rule.matches(host, port) for rule in self.rules)

    def refuses_address(self, address: Address, port: int) -> str | None:
        """Why a connection to ``address`` (resolved or literal) is refused, or ``None``."""
        if any(rule.deny and rule.names_address(address, port) for rule in self.rules):
            return f"{address}, which the allow-list denies"
        kind = non_public_kind(address)
        named = any(not rule.deny and rule.names_address(address, port) for rule in self.rules)
        if kind is not None and not named:
            article = "an" if kind[0] in "aeiou" else "a"
            return f"{address}, {article} {kind} address"
        return None

    def describe(self) -> str:
        """The entries as the operator would write them."""
        return ", ".join(rule.text for rule in self.rules) or "(nothing)"


def parse_rule(entry: str) -> Rule:
    """One ``egress_allow`` entry; see :class:`Rule` and ``docs/sandbox.md``."""
    text = entry.strip()
    deny = text.startswith("!")
    body = text[1:].strip() if deny else text
    try:
        host, ports = _split_host_port(body)
        host = host.lower()
        if host == "*":
            return Rule(text, name="*", ports=ports, deny=deny)
        if host.startswith("*."):
            suffix = host[2:].rstrip(".")
            if not _NAME.match(suffix):
                raise ValueError(host)
            return Rule(text, name=f".{suffix}", ports=ports, deny=deny)
        host = host.rstrip(".")
        try:
            network = ipaddress.ip_network(host, strict=False)
        except ValueError:
            if not _NAME.match(host):
                raise
            return Rule(text, name=host, ports=ports, deny=deny)
        return Rule(text, network=network, ports=ports, deny=deny)
    except ValueError:
        raise ConfigurationError(
            f"setting {ALLOW_SETTING}: {entry!r} is not a host name, '*.suffix', '*', or an IP "
            "address or network, with an optional ':port' or ':*' (and '!' in front to deny)"
        ) from None


def package_index_entries(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """PyPI's hosts and those of every index the server's uv and pip are pointed at."""
    urls = [settings.pip_index_url, *settings.pip_extra_index_urls]
    for name in INDEX_VARIABLES:
        urls += environ.get(name, "").split()
    entries = list(PYPI_HOSTS)
    for url in urls:
        # uv's UV_INDEX takes "name=url" items.
        if "=" in url.split("://", 1)[0]:
            url = url.split("=", 1)[1]
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            continue
        try:
            port = parts.port
        except ValueError:
            continue
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        entry = host if port is None or port in WEB_PORTS else f"{host}:{port}"
        if entry not in entries:
            entries.append(entry)
    return entries


def non_public_kind(address: Address) -> str | None:
    """``loopback``, ``private``, ... for an address no run may reach unasked; else ``None``."""
    address = _unmapped(address)
    for kind, flag in (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return kind
    return None if address.is_global else "non-public"


def socket_path_for(settings: Settings) -> Path:
    """``<home>/run/egress.sock``: next to its own API socket's name, short enough to bind."""
    api = settings.effective_api_socket
    name = "egress.sock" if api.name == "api.sock" else f"{api.stem}-egress.sock"
    path = settings.home / "run" / name
    if len(str(path)) < 100:
        return path
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    return Path("/tmp") / f"flowyard-{digest}-egress.sock"


def _split_host_port(text: str) -> tuple[str, frozenset[int] | None]:
    port_text: str | None = None
    if text.startswith("["):
        close = text.index("]")
        host, rest = text[1:close], text[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(text)
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text
    if not host:
        raise ValueError(text)
    if port_text is None:
        return host, WEB_PORTS
    if port_text == "*":
        return host, None
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(text)
    return host, frozenset({port})


def _address_or_none(host: str) -> Address | None:
    try:
        return _unmapped(ipaddress.ip_address(host))
    except ValueError:
        return None


def _unmapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# -- what a run did ---------------------------------------------------------------------


@dataclass
class EgressUsage:
    """One run's traffic through the proxy, and what it was refused."""

    connections: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    refusals: list[str] = field(default_factory=list)
    refused: int = 0

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


class _Refusal(Exception):
    """Ends a proxied request with an HTTP error for the run to read."""

    def __init__(self, status: int, reason: str, body: str, *, note: str = "") -> None:
        super().__init__(reason)
        self.status, self.reason, self.body = status, reason, body
        self.note = note or reason


@dataclass(frozen=True)
class _Request:
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]


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


# -- the proxy --------------------------------------------------------------------------


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
        usage = self._usage.setdefault(run_id, EgressUsage()) if run_id else EgressUsage()
        usage.connections += 1
        upstream: asyncio.StreamWriter | None = None
        try:
            try:
                request = _parse_request(await asyncio.wait_for(_read_head(reader), HEAD_TIMEOUT))
            except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
                return
            host, port, head = self._destination(request)
            try:
                up_reader, upstream = await self._open(host, port, tunnel=head is None)
                if head is None:
                    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                else:
                    upstream.write(head)
                    usage.bytes_sent += len(head)
                    response = _close_after(await _read_response_head(up_reader))
                    writer.write(response)
                    usage.bytes_received += len(response)
            except _Refusal as refusal:
                refusal.note = f"{host}:{port} ({refusal.note})"
                raise
            await _splice(reader, writer, up_reader, upstream, usage)
        except _Refusal as refusal:
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

    def _destination(self, request: _Request) -> tuple[str, int, bytes | None]:
        """``(host, port, head to send)``; ``head`` is ``None`` for a ``CONNECT`` tunnel."""
        if request.method == "CONNECT":
            host, port = _authority(request.target)
            head = None
        else:
            host, port, head = self._forwarded(request)
        if not self.allow.allows(host, port):
            raise _Refusal(
                403,
                f"Forbidden: {host}:{port} is not on the egress allow-list",
                f"{host}:{port} is not on this server's egress allow-list "
                f"(allowed: {self.allow.describe()}).\n"
                f"The server's operator can add it to the setting {ALLOW_SETTING}.\n",
                note=f"{host}:{port} (not on the allow-list)",
            )
        return host, port, head

    def _forwarded(self, request: _Request) -> tuple[str, int, bytes]:
        parts = urllib.parse.urlsplit(request.target)
        if parts.scheme.lower() != "http" or not parts.netloc:
            hint = "; HTTPS goes through CONNECT (set HTTPS_PROXY)" if parts.scheme else ""
            raise _Refusal(
                400,
                "Bad Request",
                f"this is a proxy: send 'CONNECT host:port' or an absolute http:// URI{hint}.\n",
            )
        host, port = _authority(parts.netloc.rpartition("@")[2], default_port=80)
        authority = _join(host, port) if port != 80 else _join(host, None)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        target = f"http://{authority}{path}" if self._upstream else path
        lines = [f"{request.method} {target} {request.version}"]
        named = {
            token.strip().lower()
            for name, value in request.headers
            if name.lower() == "connection"
            for token in value.split(",")
        }
        for name, value in request.headers:
            lowered = name.lower()
            if lowered not in _HOP_BY_HOP and lowered not in named and lowered != "host":
                lines.append(f"{name}: {value}")
        lines.append(f"Host: {authority}")
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
        raise _Refusal(
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
            raise _Refusal(
                502,
                "Bad Gateway",
                f"cannot resolve {host}: {exc or type(exc).__name__}\n",
                note="cannot resolve",
            ) from None
        found: list[Address] = []
        for info in infos:
            address = _unmapped(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
            if address not in found:
                found.append(address)
        refusals = [r for a in found if (r := self.allow.refuses_address(a, port))]
        # Through an upstream proxy its own lookup picks the address: every one must pass.
        if refusals and (self._upstream is not None or len(refusals) == len(found)):
            raise _Refusal(
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
                raise _Refusal(
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
            raise _Refusal(
                502,
                "Bad Gateway",
                f"cannot connect to the upstream proxy {up.host}:{up.port}: "
                f"{exc.strerror or exc or type(exc).__name__}\n",
                note="upstream proxy unreachable",
            ) from None
        if not tunnel:
            return reader, writer
        authority = _join(host, port)
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if up.authorization:
            lines.append(f"Proxy-Authorization: {up.authorization}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            answer = await asyncio.wait_for(_read_head(reader), CONNECT_TIMEOUT)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            answer = b""
        status = answer.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        if status.split(" ")[1:2] != ["200"]:
            writer.close()
            raise _Refusal(
                502,
                "Bad Gateway",
                f"the upstream proxy {up.host}:{up.port} answered {status or 'nothing'!r}\n",
                note=f"upstream proxy answered {status or 'nothing'!r}",
            )
        return reader, writer

    def _refuse(
        self,
        writer: asyncio.StreamWriter,
        refusal: _Refusal,
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


# -- HTTP, just enough -----------------------------------------------------------------


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise _Refusal(
            431, "Request Header Fields Too Large", "the request's head is over 64 KiB.\n"
        ) from None


async def _read_response_head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
    except asyncio.LimitOverrunError:
        raise _Refusal(502, "Bad Gateway", "the response's head is over 64 KiB.\n") from None
    except (asyncio.IncompleteReadError, TimeoutError):
        raise _Refusal(
            502,
            "Bad Gateway",
            "the server closed or stalled before answering.\n",
            note="no response",
        ) from None


def _parse_request(head: bytes) -> _Request:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _Refusal(400, "Bad Request", "expected an HTTP/1.x request line.\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise _Refusal(400, "Bad Request", f"malformed header line {line[:80]!r}.\n")
        headers.append((name, value.strip()))
    return _Request(parts[0].upper(), parts[1], parts[2], tuple(headers))


def _authority(text: str, default_port: int | None = None) -> tuple[str, int]:
    """``(host, port)`` of ``host:port`` or ``[v6]:port``, the host normalized."""
    bad = _Refusal(400, "Bad Request", f"{text[:200]!r} is not a host and port.\n")
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
    address = _address_or_none(host)
    if address is not None:
        return str(address), port
    if not _NAME.match(host):
        raise bad
    return host, port


def _join(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def _close_after(head: bytes) -> bytes:
    """A response head that tells the run this connection ends with the response."""
    lines = head.decode("latin-1").split("\r\n")
    kept = [
        line
        for line in lines[1:]
        if line and line.split(":", 1)[0].strip().lower() not in _HOP_BY_HOP
    ]
    return ("\r\n".join([lines[0], *kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1")


async def _splice(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    usage: EgressUsage,
) -> None:
    """Copy both ways until the far end is done (then give the run a moment to finish)."""

    def sent(count: int) -> None:
        usage.bytes_sent += count

    def received(count: int) -> None:
        usage.bytes_received += count

    outgoing = asyncio.create_task(_pump(client_reader, writer, sent))
    incoming = asyncio.create_task(_pump(reader, client_writer, received))
    try:
        await incoming
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(outgoing), 5)
    finally:
        outgoing.cancel()
        incoming.cancel()


async def _pump(
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


def _redacted(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)
