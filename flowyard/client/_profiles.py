"""Named server profiles in ``$FLOWYARD_HOME/profiles.toml``.

``flowyard login`` and ``flowyard profile`` write this file; the client reads
the active profile when nothing more specific is configured. The file holds
API keys, so it is written with mode 0600 (created that way through a
temporary file and an atomic rename, never widened).

The format::

    active = "prod"

    [profiles.prod]
    api_url = "https://flowyard.example.com/api"
    api_key = "fy_..."

The standard library reads TOML but does not write it; the file is flat
strings only, so it is written by hand with JSON string escapes, which TOML
basic strings accept.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from flowyard.errors import ConfigurationError

PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def flowyard_home(env: Mapping[str, str] | None = None) -> Path:
    """``$FLOWYARD_HOME`` or ``~/.flowyard``.

    The same rule as :func:`flowyard.settings.flowyard_home`, repeated here so
    that importing the client does not import pydantic-settings.
    """
    env = os.environ if env is None else env
    return Path(env.get("FLOWYARD_HOME") or Path.home() / ".flowyard").expanduser()


def profiles_path(home: Path | None = None) -> Path:
    """Where profiles live: ``<home>/profiles.toml``."""
    return (home or flowyard_home()) / "profiles.toml"


@dataclass(frozen=True)
class Profile:
    """A server to talk to: its API URL and the key to use there."""

    name: str
    api_url: str
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Profiles:
    """The whole file: every profile and which one is active. Changes return a copy."""

    active: str | None = None
    profiles: Mapping[str, Profile] = field(default_factory=lambda: MappingProxyType({}))

    def current(self) -> Profile | None:
        """The active profile, or ``None`` when none is active."""
        return self.profiles.get(self.active) if self.active else None

    def with_profile(self, profile: Profile, *, activate: bool = True) -> Profiles:
        """Add or replace ``profile`` (and make it active unless told not to)."""
        if not PROFILE_NAME.match(profile.name):
            raise ConfigurationError(
                f"profile name {profile.name!r}: use letters, digits, '_', '.' or '-'"
            )
        profiles = MappingProxyType({**self.profiles, profile.name: profile})
        return Profiles(profile.name if activate else self.active, profiles)

    def without(self, name: str) -> Profiles:
        """Remove a profile; if it was active, no profile is active afterwards."""
        self._require(name)
        profiles = MappingProxyType({k: v for k, v in self.profiles.items() if k != name})
        return Profiles(None if self.active == name else self.active, profiles)

    def activate(self, name: str) -> Profiles:
        """Make ``name`` the active profile."""
        self._require(name)
        return replace(self, active=name)

    def _require(self, name: str) -> None:
        if name not in self.profiles:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise ConfigurationError(f"no profile named {name!r} (known: {known})")


def load_profiles(path: Path | None = None) -> Profiles:
    """Read the profiles file; a missing file is no profiles, a malformed one an error."""
    path = path or profiles_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Profiles()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read profiles from {path}: {exc}") from None
    import tomllib  # only with a file to read: not on a managed run's start-up path

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"cannot read profiles from {path}: {exc}") from None
    active = data.get("active")
    tables = data.get("profiles", {})
    if not isinstance(tables, dict) or (active is not None and not isinstance(active, str)):
        raise ConfigurationError(f'{path}: expected `active = "name"` and [profiles.<name>]')
    profiles: dict[str, Profile] = {}
    for name, table in tables.items():
        url = table.get("api_url") if isinstance(table, dict) else None
        key = table.get("api_key") if isinstance(table, dict) else None
        if not isinstance(url, str) or not url or not isinstance(key, str | None):
            raise ConfigurationError(f"{path}: profile {name!r} needs an api_url string")
        profiles[name] = Profile(name, url, key or None)
    return Profiles(active, MappingProxyType(profiles))


def save_profiles(profiles: Profiles, path: Path | None = None) -> None:
    """Write the profiles file with mode 0600, atomically."""
    path = path or profiles_path()
    lines = [f"active = {json.dumps(profiles.active)}", ""] if profiles.active else []
    for name in sorted(profiles.profiles):
        profile = profiles.profiles[name]
        lines.append(f"[profiles.{json.dumps(name)}]")
        lines.append(f"api_url = {json.dumps(profile.api_url)}")
        if profile.api_key:
            lines.append(f"api_key = {json.dumps(profile.api_key)}")
        lines.append("")
    write_private(path, "\n".join(lines))


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # A leftover temporary file may have any mode: start from a fresh one.
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
