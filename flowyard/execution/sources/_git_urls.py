"""Which git remotes Flowyard will talk to, and how it names their mirrors.

Only https, http and ssh (URL or ``user@host:path`` form) reach the network.
``file://`` and plain paths need the operator's ``allow_local``. Everything else
is refused by name — notably ``ext::`` and other ``<transport>::`` helpers, which
run arbitrary commands, and ``git://``, which is unauthenticated. Credentials
found in a URL are moved out of it so they never reach git's argv, the mirror's
config or a log line.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from flowyard.execution.sources._errors import RefusedSourceError
from flowyard.execution.sources._redaction import redact

RemoteKind = Literal["https", "http", "ssh", "scp", "file"]

_NETWORK_SCHEMES: dict[str, RemoteKind] = {
    "https": "https",
    "http": "http",
    "ssh": "ssh",
    "git+ssh": "ssh",
    "ssh+git": "ssh",
}
_TRANSPORT_HELPER = re.compile(r"^(?P<transport>[A-Za-z][A-Za-z0-9+.-]*)::")
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
# git's rule: "host:path" is scp-like when a colon comes before any slash.
_SCP = re.compile(r"^(?:(?P<user>[^@/:\s]+)@)?(?P<host>[^@/:\s]+):(?P<path>.+)$")


@dataclass(frozen=True)
class GitRemote:
    """A validated remote: ``url`` carries no credentials and is what git is given."""

    url: str
    kind: RemoteKind
    host: str
    path: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def protocol(self) -> str:
        """The name git's ``GIT_ALLOW_PROTOCOL`` uses for this remote."""
        return {"scp": "ssh", "file": "file"}.get(self.kind, self.kind)

    @property
    def normalized(self) -> str:
        """One spelling per repository: no user, lower-case host, no ``.git`` or ``/``."""
        path = self.path.rstrip("/")
        path = path.removesuffix(".git").rstrip("/")
        kind = "ssh" if self.kind == "scp" else self.kind
        return f"{kind}://{self.host.lower()}/{path.lstrip('/')}"

    @property
    def cache_id(self) -> str:
        """The mirror's directory name: a digest of the normalized URL."""
        return hashlib.sha256(self.normalized.encode()).hexdigest()[:32]


def parse_git_remote(url: str, *, allow_local: bool = False) -> GitRemote:
    """Validate ``url`` and return it as a :class:`GitRemote`, or refuse it by name."""
    text = url.strip()
    shown = redact(text)
    if not text:
        raise RefusedSourceError("the git repository URL is empty")
    if any(ord(c) < 32 or c == "\x7f" for c in text):
        raise RefusedSourceError(f"git URL {shown!r} contains control characters")
    if text.startswith("-"):
        raise RefusedSourceError(
            f"git URL {shown!r} starts with '-' (it would be read as an option)"
        )
    helper = _TRANSPORT_HELPER.match(text)
    if helper:
        raise RefusedSourceError(
            f"git transport helper '{helper.group('transport')}::' is not allowed; "
            "use an https://, http:// or ssh:// URL"
        )
    scheme_match = _SCHEME.match(text)
    if scheme_match:
        return _parse_url(text, scheme_match.group("scheme").lower(), shown, allow_local)
    scp = _SCP.match(text)
    if scp and "/" not in scp.group("host"):
        host = scp.group("host")
        _check_host(host, shown)
        return GitRemote(
            url=text, kind="scp", host=host, path=scp.group("path"), username=scp.group("user")
        )
    return _parse_local(text, shown, allow_local)


def _parse_url(text: str, scheme: str, shown: str, allow_local: bool) -> GitRemote:
    if scheme == "file":
        if not allow_local:
            raise RefusedSourceError(
                f"local git source {shown!r} is not allowed on this server "
                "(the operator can enable allow_local_sources)"
            )
        path = unquote(urlsplit(text).path)
        return GitRemote(url=f"file://{path}", kind="file", host="", path=path)
    kind = _NETWORK_SCHEMES.get(scheme)
    if kind is None:
        raise RefusedSourceError(
            f"git transport '{scheme}://' is not allowed; use https://, http:// or ssh://"
        )
    parts = urlsplit(text)
    host = parts.hostname or ""
    _check_host(host, shown)
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    netloc = host if ":" not in host else f"[{host}]"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if kind == "ssh":
        if password:
            raise RefusedSourceError(
                f"git URL {shown!r} carries a password; ssh remotes authenticate with keys"
            )
        # The ssh login name is not a secret and git needs it in the URL.
        netloc = f"{username}@{netloc}" if username else netloc
        username = None
    elif username and not password:
        # https://<token>@host/... is a common way to paste a token.
        username, password = None, username
    clean = urlunsplit((kind, netloc, parts.path, parts.query, ""))
    return GitRemote(
        url=clean,
        kind=kind,
        host=f"{host}:{parts.port}" if parts.port else host,
        path=parts.path,
        username=username,
        password=password,
    )


def _parse_local(text: str, shown: str, allow_local: bool) -> GitRemote:
    if not allow_local:
        raise RefusedSourceError(
            f"{shown!r} is not a remote git URL and local sources are not allowed on this "
            "server; use https://, http:// or ssh:// (the operator can enable allow_local_sources)"
        )
    path = str(Path(text).expanduser().absolute())
    return GitRemote(url=path, kind="file", host="", path=path)


def _check_host(host: str, shown: str) -> None:
    if not host:
        raise RefusedSourceError(f"git URL {shown!r} has no host")
    if host.startswith("-"):
        raise RefusedSourceError(f"git URL {shown!r} has a host starting with '-'")
