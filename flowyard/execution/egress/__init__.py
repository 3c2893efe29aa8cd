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

from flowyard.execution.egress._allow import (
    ALLOW_SETTING,
    PYPI_HOSTS,
    WEB_PORTS,
    AllowList,
    Rule,
    non_public_kind,
    package_index_entries,
    parse_rule,
)
from flowyard.execution.egress._proxy import EgressProxy, EgressUsage, socket_path_for

__all__ = [
    "ALLOW_SETTING",
    "PYPI_HOSTS",
    "WEB_PORTS",
    "AllowList",
    "EgressProxy",
    "EgressUsage",
    "Rule",
    "non_public_kind",
    "package_index_entries",
    "parse_rule",
    "socket_path_for",
]
