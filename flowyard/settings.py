"""Effective settings: ``FLOWYARD_*`` environment variables over a settings file.

One pydantic-settings object. The file is ``$FLOWYARD_HOME/settings.toml``
(``~/.flowyard`` by default); environment variables win over it, and explicit
command-line flags win over both (the CLI passes them as overrides).
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_PORT = 4280


def flowyard_home() -> Path:
    """The data dir: ``$FLOWYARD_HOME`` or ``~/.flowyard``."""
    return Path(os.environ.get("FLOWYARD_HOME") or Path.home() / ".flowyard").expanduser()


def settings_file() -> Path:
    return flowyard_home() / "settings.toml"


class _TomlFileSource(PydanticBaseSettingsSource):
    """Reads ``settings.toml`` keys (without the ``FLOWYARD_`` prefix, any case)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ is overridden; pydantic never calls this

    def __call__(self) -> dict[str, Any]:
        path = settings_file()
        if not path.is_file():
            return {}
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        fields = set(self.settings_cls.model_fields)
        return {k.lower(): v for k, v in data.items() if k.lower() in fields}


class Settings(BaseSettings):
    """Every tunable of Flowyard, with its default."""

    model_config = SettingsConfigDict(env_prefix="FLOWYARD_", extra="ignore")

    home: Path = Field(default_factory=flowyard_home, description="Data directory.")
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means SQLite at <home>/flowyard.db.",
    )
    host: str = Field(default="127.0.0.1", description="Address the server listens on.")
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535, description="Server port.")
    api_url: str = Field(default="", description="API the CLI and SDK talk to.")
    api_socket: str = Field(
        default="", description="Unix socket of the API; empty = <home>/api.sock."
    )
    api_key: str = Field(default="", description="API key for api_url.")
    server_key: str = Field(
        default="",
        description="Signs run tokens and encrypts secrets; empty = <home>/server.key. "
        "Replicas sharing a database must share it.",
    )
    dispatcher: bool = Field(default=True, description="Run the managed dispatcher in the server.")
    scheduler: bool = Field(
        default=True, description="Run the scheduler and late-run services in the server."
    )
    scheduler_loop_seconds: float = Field(
        default=5.0, gt=0, description="Seconds between scheduler and late-run passes."
    )
    scheduler_horizon_seconds: float = Field(
        default=3600.0, ge=0, description="How far ahead scheduled runs are created."
    )
    scheduler_max_runs: int = Field(
        default=10, ge=1, description="Most future runs created ahead per schedule."
    )
    scheduler_min_runs: int = Field(
        default=3, ge=1, description="Fewest future runs kept per schedule, past the horizon."
    )
    scheduler_max_catchup_runs: int = Field(
        default=100, ge=1, description="Most missed runs one pass creates for a catchup schedule."
    )
    late_runs_after_seconds: float = Field(
        default=15.0, ge=0, description="Grace before a run not started on time is named Late."
    )
    lost_run_seconds: float = Field(
        default=90.0,
        ge=30,
        description="Silence after which an active run's supervisor is taken for dead and the "
        "run is CRASHED (heartbeats come every 10 s).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_body_bytes: int = Field(default=16 * 1024 * 1024, description="Largest request body.")
    allow_local_sources: bool = Field(
        default=False, description="Allow file:// and local-path deployment sources."
    )
    runtimes: dict[str, str] = Field(
        default_factory=dict,
        description="Official runtimes: name -> interpreter path. Empty means the "
        "server's own Python as 'python<major>.<minor>'.",
    )
    pip_index_url: str = Field(default="", description="Package index for run environments.")
    pip_extra_index_urls: list[str] = Field(default_factory=list)
    environment_cache_bytes: int = Field(
        default=20 * 1024**3, description="Size bound of the environment cache."
    )
    isolation: Literal["strict", "none"] = Field(
        default="strict", description="Default isolation mode of new managed pools."
    )
    host_cpus: float = Field(
        default=0.0, ge=0, description="Cores for admission (8 runs per core); 0 = the host's."
    )
    host_memory_bytes: int = Field(
        default=0,
        ge=0,
        description="Memory all managed runs together may use (their parent cgroup's limit); "
        "0 = the host's (or the server's cgroup limit) less a reserve of 10%, 512 MiB to 4 GiB.",
    )
    egress_allow: list[str] = Field(
        default_factory=list,
        description="Hosts runs with network 'egress' may reach, besides PyPI and the "
        "configured indexes: host, *.suffix, IP, CIDR, with :port; !entry denies.",
    )
    egress_source_address: str = Field(
        default="", description="Local IP every outbound run connection is bound to."
    )
    egress_upstream_proxy: str = Field(
        default="",
        description="http://[user:password@]host:port carrying every allowed run connection.",
    )
    result_max_bytes: int = Field(
        default=10 * 1024**2, ge=1, description="Largest single object in the result store."
    )
    results_quota_bytes: int = Field(
        default=1024**3, ge=0, description="Total result storage per workspace."
    )

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlFileSource(settings_cls))

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.home / 'flowyard.db'}"

    @property
    def effective_api_socket(self) -> Path:
        """The API's unix socket; short enough for the kernel's 108-byte limit."""
        if self.api_socket:
            return Path(self.api_socket)
        path = self.home / "api.sock"
        if len(str(path)) < 100:
            return path
        import hashlib

        digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:12]
        return Path("/tmp") / f"flowyard-{digest}.sock"

    @property
    def effective_api_url(self) -> str:
        return self.api_url or f"http://{self.host}:{self.port}/api"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once. Tests call ``get_settings.cache_clear()``."""
    return Settings()


def load_settings(**overrides: object) -> Settings:
    """Settings with explicit overrides; invalid values become one clear error."""
    from pydantic import ValidationError

    from flowyard.errors import ConfigurationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigurationError(
            f"setting {name} (FLOWYARD_{name.upper()}): {first['msg']}, got {first.get('input')!r}"
        ) from None
