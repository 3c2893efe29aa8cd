"""What every source gives the pipeline: a protocol and a result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable


@dataclass(frozen=True)
class FetchedSource:
    """Code laid out in ``path``, at ``revision``.

    ``revision`` is the full commit SHA for git and a content version (a digest
    of the objects' versions or etags) for storage. ``cached`` is true when no
    network transfer was needed.
    """

    path: Path
    revision: str
    duration_seconds: float
    cached: bool
    kind: Literal["git", "storage"] = "git"
    # Set when ``path`` is a cache's own copy, shared and read-only (see
    # ``GitSource.lease``): call it once done reading; until then it is not evicted.
    release: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    @property
    def short_revision(self) -> str:
        """The first seven characters of the revision, as git prints them."""
        return self.revision[:7]

    def summary(self) -> str:
        """A log line for the run's PENDING stage, e.g. ``cloned abc1234 in 0.04 s``."""
        verb = "cloned" if self.kind == "git" else "downloaded"
        cached = " (cached)" if self.cached else ""
        return f"{verb} {self.short_revision}{cached} in {self.duration_seconds:.2f} s"


@runtime_checkable
class Source(Protocol):
    """Something that can lay a deployment's code out in a directory."""

    @property
    def description(self) -> str:
        """Where the code comes from, with no secret in it (for logs and errors)."""
        ...

    async def fetch(self, destination: Path) -> FetchedSource:
        """Put the code in ``destination`` (absent or empty) and say what was put there."""
        ...
