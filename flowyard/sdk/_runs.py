"""In-memory records of flow runs and task runs, as hooks and reporters see them.

Hooks receive these (``hook(flow, flow_run, state)``), ``flowyard.runtime``
reads them, and reporters translate them to the wire. They are slotted
mutable records because the engine updates ``state`` and timings in place on
the hot path; nothing outside the engine should write to them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

from flowyard.sdk._states import State

_ADJECTIVES = [
    "amber",
    "azure",
    "bold",
    "brave",
    "bright",
    "brisk",
    "calm",
    "clever",
    "cosmic",
    "crimson",
    "daring",
    "dazzling",
    "eager",
    "electric",
    "emerald",
    "fancy",
    "fearless",
    "fiery",
    "gentle",
    "gilded",
    "glowing",
    "golden",
    "graceful",
    "hidden",
    "humble",
    "icy",
    "jolly",
    "keen",
    "lively",
    "lucky",
    "lunar",
    "mellow",
    "merry",
    "misty",
    "nimble",
    "noble",
    "olive",
    "patient",
    "polar",
    "proud",
    "quick",
    "quiet",
    "rapid",
    "rustic",
    "scarlet",
    "shiny",
    "silent",
    "silver",
    "smart",
    "snowy",
    "solar",
    "sturdy",
    "sunny",
    "swift",
    "tidy",
    "turquoise",
    "vivid",
    "warm",
    "wise",
    "witty",
    "zealous",
]
_NOUNS = [
    "albatross",
    "alpaca",
    "badger",
    "beaver",
    "bison",
    "bobcat",
    "caracal",
    "cheetah",
    "condor",
    "corgi",
    "coyote",
    "crane",
    "dingo",
    "dolphin",
    "eagle",
    "falcon",
    "ferret",
    "finch",
    "fox",
    "gazelle",
    "gecko",
    "heron",
    "hippo",
    "ibex",
    "jackal",
    "jaguar",
    "kestrel",
    "koala",
    "lemur",
    "leopard",
    "lynx",
    "magpie",
    "marmot",
    "mink",
    "moose",
    "narwhal",
    "ocelot",
    "okapi",
    "oriole",
    "otter",
    "owl",
    "panda",
    "panther",
    "pelican",
    "puffin",
    "quail",
    "raven",
    "robin",
    "salamander",
    "seal",
    "sparrow",
    "starling",
    "swan",
    "tapir",
    "tiger",
    "toucan",
    "viper",
    "walrus",
    "wombat",
    "yak",
]


def generate_flow_run_name() -> str:
    """A readable random name such as ``crimson-otter``."""
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}"


class FlowRun:
    """One execution of a flow."""

    __slots__ = (
        "deployment_id",
        "deployment_name",
        "end_time",
        "flow_name",
        "flow_version",
        "id",
        "name",
        "parameters",
        "parent_flow_run_id",
        "parent_task_run_id",
        "run_count",
        "scheduled_start_time",
        "start_time",
        "state",
        "tags",
    )

    def __init__(
        self,
        *,
        id: UUID,
        name: str,
        flow_name: str,
        parameters: Mapping[str, object],
        state: State[object],
        tags: frozenset[str] = frozenset(),
        flow_version: str | None = None,
        parent_task_run_id: UUID | None = None,
        parent_flow_run_id: UUID | None = None,
        deployment_id: UUID | None = None,
        deployment_name: str | None = None,
        scheduled_start_time: datetime | None = None,
    ) -> None:
        self.id = id
        self.name = name
        self.flow_name = flow_name
        self.flow_version = flow_version
        self.parameters = parameters
        self.state = state
        self.tags = tags
        self.parent_task_run_id = parent_task_run_id
        self.parent_flow_run_id = parent_flow_run_id
        self.deployment_id = deployment_id
        self.deployment_name = deployment_name
        self.scheduled_start_time = scheduled_start_time
        self.run_count = 0
        self.start_time: datetime | None = None
        self.end_time: datetime | None = None

    @property
    def state_name(self) -> str:
        return self.state.name

    def __repr__(self) -> str:
        return f"FlowRun(id={self.id!s}, name={self.name!r}, flow_name={self.flow_name!r}, state={self.state})"


class TaskRun:
    """One execution of a task (or the stand-in for a subflow inside its parent)."""

    __slots__ = (
        "cache_key",
        "dynamic_key",
        "end_time",
        "flow_run_id",
        "id",
        "name",
        "run_count",
        "start_time",
        "state",
        "tags",
        "task_key",
        "task_name",
    )

    def __init__(
        self,
        *,
        id: UUID,
        name: str,
        task_name: str,
        task_key: str,
        dynamic_key: str,
        flow_run_id: UUID | None,
        tags: frozenset[str],
        state: State[object],
    ) -> None:
        self.id = id
        self.name = name
        self.task_name = task_name
        self.task_key = task_key
        self.dynamic_key = dynamic_key
        self.flow_run_id = flow_run_id
        self.tags = tags
        self.state = state
        self.run_count = 0
        self.cache_key: str | None = None
        self.start_time: datetime | None = None
        self.end_time: datetime | None = None

    @property
    def state_name(self) -> str:
        return self.state.name

    def __repr__(self) -> str:
        return f"TaskRun(id={self.id!s}, name={self.name!r}, state={self.state})"
