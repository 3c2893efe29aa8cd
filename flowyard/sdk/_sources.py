"""Where a deployment's code comes from: git, object storage, or a local directory.

The SDK only describes and checks a source; fetching git repositories and
storage prefixes is the server's job (its execution plane keeps pinned
mirrors and caches). A local directory is the exception: its flow is loaded
at once, so that it can also be called and its parameter schema computed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlsplit, urlunsplit

from flowyard.sdk._entrypoints import load_flow_from_entrypoint, parse_entrypoint
from flowyard.sdk._errors import SDKError
from flowyard.sdk._secrets import Secret

if TYPE_CHECKING:
    from uuid import UUID

    from flowyard.sdk._deployments import DeploymentSpec, ScheduleSpec
    from flowyard.sdk._flows import Flow

__all__ = ["GitRepository", "RemoteStorage", "SourceSpec", "SourcedFlow", "flow_from_source"]

STORAGE_SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "abfss")
_GIT_SCHEMES = ("https", "http", "ssh", "git")
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:[\w./~-]+$")
_COMMIT = re.compile(r"^[0-9a-fA-F]{7,40}$")

Credentials = Mapping[str, "str | Secret"]


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))
    return url


@dataclass(frozen=True)
class GitRepository:
    """A git repository to deploy from, optionally pinned to a branch or commit.

    ``credentials`` (for example ``{"access_token": Secret.load("github")}``)
    are never shown in ``repr``. ``commit_sha`` is accepted as Prefect's
    name for ``commit``.
    """

    url: str
    credentials: Credentials | None = None
    name: str | None = None
    branch: str | None = None
    commit_sha: InitVar[str | None] = None
    include_submodules: bool = False
    directories: Sequence[str] | None = None
    commit: str | None = field(default=None, kw_only=True)

    def __post_init__(self, commit_sha: str | None) -> None:
        if commit_sha and self.commit and commit_sha != self.commit:
            raise ValueError("give commit or commit_sha, not two different commits")
        object.__setattr__(self, "commit", self.commit or commit_sha)
        if not isinstance(self.url, str) or not is_git_url(self.url):
            raise ValueError(
                f"GitRepository url {_mask_url(str(self.url))!r} is not a git URL "
                "(https://, ssh://, git:// or user@host:path)"
            )
        if self.commit is not None and not _COMMIT.match(self.commit):
            raise ValueError(f"commit {self.commit!r} is not a commit hash (7 to 40 hex digits)")
        if self.branch is not None and (not self.branch.strip() or ".." in self.branch):
            raise ValueError(f"branch {self.branch!r} is not a valid branch name")
        for key, value in (self.credentials or {}).items():
            if not isinstance(value, str | Secret):
                raise TypeError(f"credential {key!r} must be a string or a Secret")

    def __repr__(self) -> str:
        parts = [f"url={_mask_url(self.url)!r}"]
        if self.branch:
            parts.append(f"branch={self.branch!r}")
        if self.commit:
            parts.append(f"commit={self.commit!r}")
        if self.credentials:
            parts.append("credentials=<hidden>")
        return f"GitRepository({', '.join(parts)})"


def is_git_url(url: str) -> bool:
    if _SCP_LIKE.match(url):
        return True
    parts = urlsplit(url)
    if parts.scheme not in _GIT_SCHEMES or not parts.netloc:
        return False
    return (parts.scheme != "http" and parts.scheme != "https") or bool(parts.path.strip("/"))


def _is_git_repository(path: Path) -> bool:
    """A working tree with its ``.git``, or a bare repository."""
    return (path / ".git").exists() or (
        (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()
    )


@dataclass(frozen=True)
class SourceSpec:
    """A checked description of a deployment's source, as sent to the server."""

    kind: Literal["git", "storage", "local"]
    url: str
    branch: str | None = None
    commit: str | None = None
    credentials: Credentials | None = field(default=None, repr=False)
    include_submodules: bool = False
    # fsspec options of a storage source that are not credentials (endpoint, region...).
    options: Mapping[str, object] = field(default_factory=dict)

    def __repr__(self) -> str:
        extra = "".join(
            f", {k}={v!r}" for k, v in (("branch", self.branch), ("commit", self.commit)) if v
        )
        return f"SourceSpec(kind={self.kind!r}, url={_mask_url(self.url)!r}{extra})"


# Storage settings that are credentials: stored encrypted as a secret, never in the deployment.
CREDENTIAL_SETTINGS = frozenset(
    {
        "key",
        "secret",
        "token",
        "password",
        "account_key",
        "sas_token",
        "connection_string",
        "client_secret",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
    }
)


@dataclass(frozen=True)
class RemoteStorage:
    """An object-storage prefix to deploy from, with fsspec settings (Prefect's spelling).

    ``RemoteStorage("s3://bucket/flows", key=Secret.load("aws-key"),
    secret=Secret.load("aws-secret"), client_kwargs={"endpoint_url": ...})``:
    credential settings (``key``, ``secret``, ``token``, ``account_key``...)
    are kept in a server secret, never in the deployment; the others are
    passed to fsspec as they are. Without credentials the server uses its
    own (its environment, instance role or configuration files).
    """

    url: str
    settings: Mapping[str, object] = field(default_factory=dict)

    def __init__(self, url: str, **settings: object) -> None:
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "settings", dict(settings))
        scheme = urlsplit(url).scheme
        if scheme not in STORAGE_SCHEMES or not urlsplit(url).netloc:
            raise ValueError(
                f"RemoteStorage url {url!r} must be a bucket URL: "
                f"{', '.join(s + '://bucket/path' for s in STORAGE_SCHEMES)}"
            )
        for key, value in self.settings.items():
            if key in CREDENTIAL_SETTINGS and not isinstance(value, str | Secret):
                raise TypeError(f"storage setting {key!r} must be a string or a Secret")

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{k}={'<hidden>' if k in CREDENTIAL_SETTINGS else repr(v)}"
            for k, v in self.settings.items()
        )
        return f"RemoteStorage({self.url!r}{', ' + shown if shown else ''})"


def source_spec(source: str | Path | GitRepository | RemoteStorage) -> SourceSpec:
    """Classify and check a source given to ``Flow.from_source``."""
    if isinstance(source, RemoteStorage):
        credentials = {k: v for k, v in source.settings.items() if k in CREDENTIAL_SETTINGS}
        return SourceSpec(
            kind="storage",
            url=source.url,
            credentials=cast("Credentials", credentials) or None,
            options={k: v for k, v in source.settings.items() if k not in CREDENTIAL_SETTINGS},
        )
    if isinstance(source, GitRepository):
        return SourceSpec(
            kind="git",
            url=source.url,
            branch=source.branch,
            commit=source.commit,
            credentials=source.credentials,
            include_submodules=source.include_submodules,
        )
    if isinstance(source, Path):
        return SourceSpec(kind="local", url=str(source.resolve()))
    if not isinstance(source, str) or not source.strip():
        raise TypeError("source must be a git URL, a storage URL, a local path or a GitRepository")
    text = source.strip()
    scheme = urlsplit(text).scheme
    if scheme in STORAGE_SCHEMES:
        if not urlsplit(text).netloc:
            raise ValueError(f"storage URL {text!r} names no bucket or container")
        return SourceSpec(kind="storage", url=text)
    if scheme == "file":
        local = Path(urlsplit(text).path).resolve()
        # A file:// URL naming a git repository is that repository, fetched with git.
        if _is_git_repository(local):
            return SourceSpec(kind="git", url=text)
        return SourceSpec(kind="local", url=str(local))
    if is_git_url(text) or text.endswith(".git"):
        return SourceSpec(kind="git", url=text)
    if scheme and len(scheme) > 1:
        raise ValueError(
            f"source {_mask_url(text)!r} has an unsupported scheme {scheme!r}; use a git URL, "
            f"one of {', '.join(s + '://' for s in STORAGE_SCHEMES)} or a local path"
        )
    return SourceSpec(kind="local", url=str(Path(text).expanduser().resolve()))


class SourcedFlow:
    """A flow whose code lives in git or object storage: deployable, not callable here."""

    def __init__(self, source: SourceSpec, entrypoint: str) -> None:
        self.source = source
        self.entrypoint = str(parse_entrypoint(entrypoint))
        function = self.entrypoint.rpartition(":")[2].rpartition(".")[2]
        # The server reads the real name from the decorator; this is the default it would get.
        self.name = function.replace("_", "-")

    def __call__(self, *args: object, **kwargs: object) -> object:
        raise SDKError(
            f"flow {self.entrypoint!r} comes from {self.source.kind} source "
            f"{_mask_url(self.source.url)!r} and is not loaded in this process; deploy it "
            "with .deploy(...) and run the deployment"
        )

    def to_deployment(self, name: str, **options: Any) -> DeploymentSpec:
        """A deployment of this flow, validated but not yet sent anywhere."""
        from flowyard.sdk._deployments import build_spec

        return build_spec(self, name, **options)

    def deploy(
        self,
        name: str,
        work_pool_name: str | None = None,
        *,
        image: str | None = None,
        job_variables: Mapping[str, object] | None = None,
        interval: float | Iterable[float] | None = None,
        cron: str | Iterable[str] | None = None,
        rrule: str | Iterable[str] | None = None,
        schedules: Sequence[ScheduleSpec] | None = None,
        paused: bool | None = None,
        concurrency_limit: int | None = None,
        parameters: Mapping[str, object] | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        work_queue_name: str | None = None,
        enforce_parameter_schema: bool = True,
        print_next_steps: bool = True,
        build: bool = False,
        push: bool = False,
    ) -> UUID:
        """Create or update the deployment on the server; returns its id."""
        from flowyard.sdk._deployments import apply_spec, build_spec

        del build, push
        variables = dict(job_variables or {})
        if image is not None:
            variables["image"] = image
        spec = build_spec(
            self,
            name,
            interval=interval,
            cron=cron,
            rrule=rrule,
            schedules=schedules,
            paused=paused,
            concurrency_limit=concurrency_limit,
            parameters=parameters,
            description=description,
            tags=tags,
            version=version,
            enforce_parameter_schema=enforce_parameter_schema,
            work_pool_name=work_pool_name,
            work_queue_name=work_queue_name,
            job_variables=variables,
        )
        return apply_spec(spec, print_next_steps=print_next_steps)

    def serve(self, *args: object, **kwargs: object) -> None:
        raise SDKError(
            "serve() runs flows in this process and needs their code here; use "
            "Flow.from_source with a local directory, or deploy to a work pool instead"
        )

    def __repr__(self) -> str:
        return f"SourcedFlow(entrypoint={self.entrypoint!r}, source={self.source!r})"


def flow_from_source(
    source: str | Path | GitRepository | RemoteStorage, entrypoint: str
) -> Flow[..., Any] | SourcedFlow:
    """``Flow.from_source``: load a local flow now, or describe a remote one."""
    spec = source_spec(source)
    parse_entrypoint(entrypoint)
    if spec.kind != "local":
        return SourcedFlow(spec, entrypoint)
    flow = load_flow_from_entrypoint(spec.url, entrypoint)
    flow.source = spec
    return flow
