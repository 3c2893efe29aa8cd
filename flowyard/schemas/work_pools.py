"""Work pools, their base job templates and the managed resource policy."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from flowyard.schemas._base import INT32_MAX, Out, Wire

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class WorkPoolType(StrEnum):
    MANAGED = "managed"
    PROCESS = "process"


class Isolation(StrEnum):
    STRICT = "strict"
    NONE = "none"


GIB = 1024**3

# The platform's default policy for managed pools: ceilings, not reservations.
DEFAULT_POLICY: dict[str, Any] = {
    "cpu": 4.0,
    "memory_gib": 16.0,
    "storage_gib": 128.0,
    "max_run_seconds": 24 * 3600,
}


def managed_base_job_template(policy: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON-schema template of a managed pool's job variables.

    The policy's numbers are both the defaults and the maxima: a deployment
    may ask for less, never more.
    """
    p = {**DEFAULT_POLICY, **(policy or {})}
    return {
        "job_configuration": {},
        "variables": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "pip_packages": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "default": [],
                    "description": "PEP 508 requirements installed into the run's environment.",
                },
                "requirements_file": {
                    "type": ["string", "null"],
                    "default": None,
                    "description": "Path of a requirements file inside the source.",
                },
                "env": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "default": {},
                    "description": "Environment variables of the run.",
                },
                "runtime": {
                    "type": ["string", "null"],
                    "default": None,
                    "description": "Official runtime (Python) to run on; default: the newest.",
                },
                "cpu": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": p["cpu"],
                    "default": p["cpu"],
                    "description": "vCPUs (a ceiling).",
                },
                "memory_gib": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": p["memory_gib"],
                    "default": p["memory_gib"],
                    "description": "Memory limit in GiB; swap is off.",
                },
                "storage_gib": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": p["storage_gib"],
                    "default": p["storage_gib"],
                    "description": "Ephemeral storage of the work dir in GiB.",
                },
                "max_run_seconds": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": p["max_run_seconds"],
                    "default": p["max_run_seconds"],
                    "description": "Wall-clock limit of a run.",
                },
                "network": {
                    "type": "string",
                    "enum": ["none", "egress"],
                    "default": "none",
                    "description": "none, or egress through the platform's proxy.",
                },
            },
        },
    }


def process_base_job_template() -> dict[str, Any]:
    return {
        "job_configuration": {},
        "variables": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "env": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "default": {},
                },
                "working_dir": {"type": ["string", "null"], "default": None},
            },
        },
    }


def default_base_job_template(pool_type: WorkPoolType) -> dict[str, Any]:
    if pool_type is WorkPoolType.MANAGED:
        return managed_base_job_template()
    return process_base_job_template()


def _normalize_type(value: object) -> object:
    # Prefect spells the managed type "prefect:managed".
    if isinstance(value, str) and value.endswith(":managed"):
        return "managed"
    return value


class WorkPoolCreate(Wire):
    name: str = Field(pattern=NAME_PATTERN)
    type: WorkPoolType = WorkPoolType.MANAGED
    description: str = Field(default="", max_length=2000)
    paused: bool = False
    concurrency_limit: int | None = Field(default=None, ge=0, le=INT32_MAX)
    base_job_template: dict[str, Any] | None = None
    isolation: Isolation = Isolation.STRICT

    _type = field_validator("type", mode="before")(_normalize_type)


class WorkPoolUpdate(Wire):
    description: str | None = Field(default=None, max_length=2000)
    paused: bool | None = None
    concurrency_limit: int | None = Field(default=None, ge=0, le=INT32_MAX)
    base_job_template: dict[str, Any] | None = None
    isolation: Isolation | None = None


class WorkPool(Out):
    id: uuid.UUID
    name: str
    type: WorkPoolType
    description: str
    paused: bool
    concurrency_limit: int | None
    base_job_template: dict[str, Any]
    isolation: Isolation
    created: datetime
    updated: datetime
