"""The allow-list: which hosts and addresses a run with network ``egress`` may reach.

An entry is a host name, ``*.suffix``, ``*``, or an IP address or network,
with an optional ``:port`` or ``:*``; a ``!`` in front denies, and a denial
wins. Names allow names only; a non-public address (loopback, private,
link-local, ...) is reachable only when an entry names it by IP, whatever a
name resolves to. The defaults make pip and uv work: PyPI and whatever index
the server itself is pointed at.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowyard.errors import ConfigurationError

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
HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_][a-z0-9_-]{0,62})*$"
)


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
        address = address_or_none(host)
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
            if not HOST_NAME.match(suffix):
                raise ValueError(host)
            return Rule(text, name=f".{suffix}", ports=ports, deny=deny)
        host = host.rstrip(".")
        try:
            network = ipaddress.ip_network(host, strict=False)
        except ValueError:
            if not HOST_NAME.match(host):
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
    address = unmapped(address)
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


def address_or_none(host: str) -> Address | None:
    try:
        return unmapped(ipaddress.ip_address(host))
    except ValueError:
        return None


def unmapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
