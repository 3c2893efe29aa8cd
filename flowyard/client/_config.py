"""Which server to talk to, and with which key.

Sources, first match wins for the URL:

1. explicit arguments (``get_client(api_url=..., api_key=...)``);
2. ``FLOWYARD_API_URL`` / ``FLOWYARD_API_KEY`` in the environment;
3. ``api_url`` / ``api_key`` in ``$FLOWYARD_HOME/settings.toml`` (what
   ``flowyard config set`` writes; the same order as :mod:`flowyard.settings`);
4. the active profile of ``$FLOWYARD_HOME/profiles.toml`` (``flowyard login``;
   ``FLOWYARD_PROFILE`` picks another one);
5. ``$FLOWYARD_HOME/credentials``, written by the server on its first start.

The key is resolved the same way with one guard: a key stored next to a URL
(a profile, the credentials file) is only sent to that URL. A key from the
environment or the arguments goes wherever the URL points, because the user
put both there. So ``FLOWYARD_API_URL=https://elsewhere`` never leaks the
local admin key to another host.

Nothing configured at all gives ``None``: the SDK then runs flows in-process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from flowyard.client._profiles import flowyard_home, load_profiles, profiles_path
from flowyard.errors import ConfigurationError

UNIX_SCHEME = "unix://"
# Host part of the base URL when talking over a unix socket; any name works.
UDS_BASE_URL = "http://flowyard/api"


@dataclass(frozen=True)
class ClientConfig:
    """A resolved server: API URL, key, and a human description of where they came from."""

    api_url: str
    api_key: str | None = field(default=None, repr=False)
    source: str = "arguments"
    uds: str | None = None


@dataclass(frozen=True)
class Endpoint:
    """How to reach an API URL: the HTTP base URL, and a unix socket if any."""

    base_url: str
    uds: str | None
    display: str


def parse_api_url(api_url: str, uds: str | None = None) -> Endpoint:
    """``http(s)://host[:port][/path]`` or ``unix:///path/to.sock``.

    A URL without a path means the API's default ``/api`` prefix, so both
    ``http://127.0.0.1:4280`` and ``http://127.0.0.1:4280/api`` work.
    """
    text = api_url.strip()
    if text.startswith(UNIX_SCHEME):
        socket_path = text[len(UNIX_SCHEME) :]
        if not socket_path.startswith("/"):
            raise ConfigurationError(
                f"api_url {api_url!r}: a unix socket URL needs an absolute path, "
                "e.g. unix:///run/flowyard/api.sock"
            )
        return Endpoint(UDS_BASE_URL, socket_path, text)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"api_url {api_url!r}: expected http(s)://host:port/api or unix:///path/to.sock"
        )
    path = parts.path.rstrip("/") or "/api"
    base = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    return Endpoint(base, uds, f"{base} via {uds}" if uds else base)


def same_server(a: str, b: str) -> bool:
    """Whether two API URLs name the same API (after normalising)."""
    try:
        return parse_api_url(a) == parse_api_url(b)
    except ConfigurationError:
        return False


@dataclass(frozen=True)
class _Source:
    label: str
    api_url: str | None
    api_key: str | None
    # A stored key belongs to the URL stored with it.
    key_bound_to_url: bool


def resolve_config(
    api_url: str | None = None,
    api_key: str | None = None,
    *,
    uds: str | None = None,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> ClientConfig | None:
    """The server to use, or ``None`` when nothing is configured anywhere."""
    env = os.environ if env is None else env
    home = home or flowyard_home(env)
    sources = _sources(api_url, api_key, env, home)
    seen: list[_Source] = []
    url_source: _Source | None = None
    for source in sources:
        seen.append(source)
        if source.api_url:
            url_source = source
            break
    if url_source is None or url_source.api_url is None:
        return None
    url = url_source.api_url
    try:
        parse_api_url(url, uds)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc} (from {url_source.label})") from None
    key_source = next(
        (
            s
            for s in chain(seen, sources)
            if s.api_key
            and (not s.key_bound_to_url or (s.api_url is not None and same_server(s.api_url, url)))
        ),
        None,
    )
    label = url_source.label
    if key_source is not None and key_source is not url_source:
        label += f", key from {key_source.label}"
    return ClientConfig(url, key_source.api_key if key_source else None, label, uds)


def _sources(
    api_url: str | None, api_key: str | None, env: Mapping[str, str], home: Path
) -> Iterator[_Source]:
    """The sources in order, each read only when an earlier one did not settle it."""
    yield _Source("arguments", api_url or None, api_key or None, key_bound_to_url=False)
    yield _Source(
        "environment (FLOWYARD_API_URL)",
        env.get("FLOWYARD_API_URL") or None,
        env.get("FLOWYARD_API_KEY") or None,
        key_bound_to_url=False,
    )
    yield _settings_file(home / "settings.toml")
    profile = _active_profile(env, home)
    if profile is not None:
        yield profile
    credentials = _credentials(home / "credentials")
    if credentials is not None:
        yield credentials


def _settings_file(path: Path) -> _Source:
    label = f"settings file {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return _Source(label, None, None, key_bound_to_url=False)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read settings from {path}: {exc}") from None
    import tomllib  # only with a file to read: not on a managed run's start-up path

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"cannot read settings from {path}: {exc}") from None
    values = {str(k).lower(): v for k, v in data.items()}
    url, key = values.get("api_url"), values.get("api_key")
    return _Source(
        label,
        url if isinstance(url, str) and url else None,
        key if isinstance(key, str) and key else None,
        key_bound_to_url=False,
    )


def _active_profile(env: Mapping[str, str], home: Path) -> _Source | None:
    path = profiles_path(home)
    profiles = load_profiles(path)
    chosen = env.get("FLOWYARD_PROFILE") or None
    if chosen is not None:
        profiles = profiles.activate(chosen)  # an unknown name is an error, not a fallback
    profile = profiles.current()
    if profile is None:
        return None
    return _Source(f"profile {profile.name!r} in {path}", profile.api_url, profile.api_key, True)


def _credentials(path: Path) -> _Source | None:
    """The server's first-start credentials file, if there is one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"cannot read credentials from {path}: {exc}") from None
    url = data.get("api_url") if isinstance(data, dict) else None
    key = data.get("api_key") if isinstance(data, dict) else None
    if not isinstance(url, str) or not url or not isinstance(key, str | None):
        raise ConfigurationError(f'{path}: expected {{"api_url": ..., "api_key": ...}}')
    return _Source(f"credentials file {path}", _reachable(url), key or None, True)


def _reachable(url: str) -> str:
    # A server bound to every interface writes that address; connect to loopback.
    parts = urlsplit(url)
    if parts.hostname in ("0.0.0.0", "::"):
        loopback = "127.0.0.1" if parts.hostname == "0.0.0.0" else "[::1]"
        netloc = loopback + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url
