"""Deployments: where the code is, how to run it, and when."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, field_validator

from flowyard.schemas._base import INT32_MAX, Out, Wire
from flowyard.schemas.times import utc_representable


class GitSourceSpec(Wire):
    kind: Literal["git"] = "git"
    url: str = Field(min_length=1, max_length=2000)
    branch: str | None = Field(default=None, max_length=255)
    tag: str | None = Field(default=None, max_length=255)
    commit: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{7,64}$")
    # Name of a secret holding an access token for private repositories.
    credentials_secret: str | None = Field(default=None, max_length=255)
    directory: str | None = Field(default=None, max_length=500)


class StorageSourceSpec(Wire):
    kind: Literal["storage"] = "storage"
    url: str = Field(pattern=r"^(s3|gs|gcs|az|abfs|memory)://.+")
    credentials_secret: str | None = Field(default=None, max_length=255)
    options: dict[str, Any] = Field(default_factory=dict)


class LocalSourceSpec(Wire):
    kind: Literal["local"] = "local"
    path: str = Field(min_length=1, max_length=2000)


SourceSpec = Annotated[
    GitSourceSpec | StorageSourceSpec | LocalSourceSpec, Field(discriminator="kind")
]


def validate_entrypoint(value: str) -> str:
    """`path/to/file.py:function`, relative, without `..`."""
    path, sep, func = value.rpartition(":")
    if not sep or not path or not func:
        raise ValueError("expected 'path/to/file.py:function'")
    if not func.isidentifier():
        raise ValueError(f"{func!r} is not a Python function name")
    if not path.endswith(".py"):
        raise ValueError("the path part must name a .py file")
    if path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":"):
        raise ValueError("the path must be relative to the source root")
    if ".." in path.replace("\\", "/").split("/"):
        raise ValueError("the path must not contain '..'")
    return value


class CronSchedule(Wire):
    cron: str = Field(min_length=1, max_length=200)
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a valid cron expression")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


# A century: past any run a scheduler plans, and well inside the dates it can
# count in (a larger interval overflowed date arithmetic and was never run).
MAX_INTERVAL_SECONDS = 100 * 365 * 86400


class IntervalSchedule(Wire):
    interval: float = Field(
        ge=1,
        le=MAX_INTERVAL_SECONDS,
        allow_inf_nan=False,
        description="Seconds between runs: at least 1, at most a century.",
    )
    # Naive: wall time in ``timezone``.
    anchor_date: Annotated[datetime, AfterValidator(utc_representable)] | None = None
    timezone: str = "UTC"

    @property
    def delta(self) -> timedelta:
        return timedelta(seconds=self.interval)


def _private(obj: object, name: str) -> Any:
    # dateutil keeps a parsed rule's fields in private attributes only.
    return getattr(obj, f"_{name}")


class RRuleSchedule(Wire):
    rrule: str = Field(min_length=1, max_length=2000)
    timezone: str = "UTC"

    @field_validator("rrule")
    @classmethod
    def _valid_rrule(cls, value: str) -> str:
        from dateutil.rrule import rrule, rrulestr

        try:
            parsed = rrulestr(value, cache=False)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"invalid rrule: {exc}") from None
        rules: list[Any] = [parsed] if isinstance(parsed, rrule) else _private(parsed, "rrule")
        for rule in rules:
            if _private(rule, "interval") < 1:
                raise ValueError("invalid rrule: expected INTERVAL of at least 1")
            count = _private(rule, "count")
            if count is not None and count < 1:
                raise ValueError("invalid rrule: expected COUNT of at least 1")
        return value


def _schedule_kind(value: Any) -> str | None:
    """Which schedule a payload is, by its one telling field."""
    if isinstance(value, dict):
        for kind in ("cron", "interval", "rrule"):
            if kind in value:
                return kind
        return None
    if isinstance(value, CronSchedule):
        return "cron"
    if isinstance(value, IntervalSchedule):
        return "interval"
    if isinstance(value, RRuleSchedule):
        return "rrule"
    return None


# Told apart by field, so a bad interval is reported as the interval's error
# rather than as a cron schedule missing its expression.
ScheduleSpec = Annotated[
    Annotated[CronSchedule, Tag("cron")]
    | Annotated[IntervalSchedule, Tag("interval")]
    | Annotated[RRuleSchedule, Tag("rrule")],
    Discriminator(
        _schedule_kind,
        custom_error_type="schedule_kind",
        custom_error_message="expected a schedule with one of 'cron', 'interval' or 'rrule'",
    ),
]


class DeploymentScheduleCreate(Wire):
    schedule: ScheduleSpec
    active: bool = True
    catchup: bool = False


class DeploymentSchedule(Out):
    id: uuid.UUID
    schedule: dict[str, Any]
    active: bool
    catchup: bool


class DeploymentCreate(Wire):
    """Create-or-update by (flow_name, name), like Prefect's deploy."""

    flow_name: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^/]+$")
    work_pool_name: str | None = Field(default=None, max_length=100)
    source: SourceSpec | None = None
    entrypoint: str = Field(max_length=500)
    pull_steps: list[dict[str, Any]] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    parameter_schema: dict[str, Any] = Field(default_factory=dict)
    job_variables: dict[str, Any] = Field(default_factory=dict)
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list)
    version: str | None = Field(default=None, max_length=100)
    description: str = Field(default="", max_length=20_000)
    paused: bool = False
    concurrency_limit: int | None = Field(default=None, ge=0, le=INT32_MAX)
    schedules: list[DeploymentScheduleCreate] = Field(default_factory=list)

    _entrypoint = field_validator("entrypoint")(validate_entrypoint)


class DeploymentUpdate(Wire):
    work_pool_name: str | None = None
    parameters: dict[str, Any] | None = None
    job_variables: dict[str, Any] | None = None
    tags: list[str] | None = None
    description: str | None = Field(default=None, max_length=20_000)
    paused: bool | None = None
    concurrency_limit: int | None = Field(default=None, ge=0, le=INT32_MAX)
    schedules: list[DeploymentScheduleCreate] | None = None


class Deployment(Out):
    id: uuid.UUID
    flow_name: str
    name: str
    work_pool_id: uuid.UUID | None
    work_pool_name: str | None = None
    source: dict[str, Any]
    entrypoint: str
    pull_steps: list[dict[str, Any]] = Field(default_factory=list)
    parameters: dict[str, Any]
    parameter_schema: dict[str, Any]
    job_variables: dict[str, Any]
    tags: list[str]
    version: str | None
    description: str
    paused: bool
    concurrency_limit: int | None
    schedules: list[DeploymentSchedule] = Field(default_factory=list)
    created: datetime
    updated: datetime
    warnings: list[str] = Field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"


class ServedClaim(Wire):
    """A ``flow.serve()`` process asking for due runs of the deployments it serves."""

    deployment_ids: list[uuid.UUID] = Field(min_length=1, max_length=1000)
    worker: str = Field(min_length=1, max_length=100)
    limit: int = Field(default=10, ge=1, le=100)
