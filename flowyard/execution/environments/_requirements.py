"""Requirements as the cache key sees them, and the key itself.

Equivalent spellings of a requirement map to one string (``Pandas >= 2`` and
``pandas>=2``), the list is de-duplicated and sorted, and the key hashes it
with the runtime, Flowyard's identity and the index settings. Over-distinguishing
only costs a cache miss; under-distinguishing would hand a run the wrong
packages, so unknown syntax is kept verbatim rather than guessed at.

Refused on purpose: pip options (``-r``, ``-e``, ``--index-url``...: indexes are
the operator's), local paths and ``file:`` URLs (they would read the server's
disk).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from flowyard.execution import sources
from flowyard.execution.environments._errors import RequirementError
from flowyard.execution.environments._runtimes import Runtime

DEFAULT_SDK_REQUIREMENTS: tuple[str, ...] = ("pydantic>=2.7", "httpx>=0.27", "pyyaml")
"""What the Flowyard SDK needs at run time; installed into every environment."""

KEY_FORMAT = 1

_NAME = re.compile(
    r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[([^\]]*)\])?\s*(.*)$", re.S
)
_SEPARATORS = re.compile(r"[-_.]+")
_SPECIFIER = re.compile(r"^(~=|==|!=|<=|>=|<|>)[A-Za-z0-9.*+!_-]+$|^===\S+$")
_TRAILING_OPTION = re.compile(r"\s--?[A-Za-z]")
# pip's rule: a comment starts at '#' at the start of a line or after whitespace.
_COMMENT = re.compile(r"(^|\s)#.*$")


def canonical_name(name: str) -> str:
    """PEP 503 normalization: lower case, runs of ``-_.`` become ``-``."""
    return _SEPARATORS.sub("-", name).lower()


def normalize_requirement(text: str) -> str:
    """One canonical spelling of a PEP 508 requirement, or :class:`RequirementError`."""
    line = _COMMENT.sub("", text).strip()
    if not line:
        raise RequirementError("empty requirement")
    if line.startswith("-") or _TRAILING_OPTION.search(line):
        raise RequirementError(
            f"{line!r}: pip options are not accepted in requirements "
            "(package indexes are configured by the operator)"
        )
    match = _NAME.match(line)
    if not match:
        raise RequirementError(
            f"{line!r} is not a package requirement (expected a name such as 'pandas>=2'; "
            "local paths are not accepted)"
        )
    name, extras, rest = match.groups()
    result = canonical_name(name)
    if extras is not None:
        items = sorted({canonical_name(e.strip()) for e in extras.split(",") if e.strip()})
        result += f"[{','.join(items)}]" if items else ""
    rest = rest.strip()
    if rest.startswith("@"):
        url, marker = _split_url(rest[1:].strip())
        if not url:
            raise RequirementError(f"{line!r}: a URL is expected after '@'")
        if url.lower().startswith("file:"):
            raise RequirementError(f"{line!r}: file: URLs are not accepted")
        result += f" @ {url}"
    else:
        spec, _, marker = rest.partition(";")
        specifiers = [s.replace(" ", "") for s in spec.strip().strip("()").split(",") if s.strip()]
        for item in specifiers:
            if not _SPECIFIER.match(item):
                raise RequirementError(
                    f"{line!r}: {item!r} is not a version specifier (expected e.g. '>=1.2')"
                )
        result += ",".join(sorted(specifiers))
    marker = " ".join(marker.split())
    return f"{result}; {marker}" if marker else result


def _split_url(text: str) -> tuple[str, str]:
    # PEP 508: a URL requirement's marker follows whitespace and ';'.
    parts = re.split(r"\s+;", text, maxsplit=1)
    return parts[0].strip(), parts[1] if len(parts) > 1 else ""


def parse_requirements_text(text: str, *, source: str = "requirements file") -> tuple[str, ...]:
    """The requirements in a requirements file's text, each normalized, in file order."""
    found: list[str] = []
    pending = ""
    first = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            first = number
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if not _COMMENT.sub("", line).strip():
            continue
        try:
            found.append(normalize_requirement(line))
        except RequirementError as exc:
            raise RequirementError(f"{source}, line {first}: {exc}") from exc
    return tuple(found)


def read_requirements_file(path: Path, *, name: str | None = None) -> tuple[str, ...]:
    """Read and normalize a requirements file; ``name`` is how messages call it."""
    shown = name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise RequirementError(f"requirements file {shown!r} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RequirementError(f"requirements file {shown!r} cannot be read: {exc}") from exc
    return parse_requirements_text(text, source=shown)


def normalize_requirements(requirements: Iterable[str]) -> tuple[str, ...]:
    """Normalized, de-duplicated and sorted."""
    return tuple(sorted({normalize_requirement(r) for r in requirements}))


@dataclass(frozen=True)
class IndexSettings:
    """Where packages come from. Empty means uv's default (PyPI)."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()

    def uv_arguments(self) -> list[str]:
        args: list[str] = []
        if self.index_url:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        return args

    def fingerprint(self) -> dict[str, object]:
        """The settings without credentials: rotating an index password keeps the key."""
        return {
            "index_url": sources.redact(self.index_url) if self.index_url else None,
            "extra_index_urls": [sources.redact(u) for u in self.extra_index_urls],
        }

    @property
    def secrets(self) -> tuple[str, ...]:
        """The userinfo parts of the index URLs, for redaction."""
        found: list[str] = []
        for url in (self.index_url or "", *self.extra_index_urls):
            match = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/@\s]+)@", url)
            if match:
                found.append(match.group(1))
                found.extend(p for p in match.group(1).split(":") if len(p) >= 4)
        return tuple(found)


def environment_key(
    runtime: Runtime,
    requirements: Iterable[str],
    *,
    index: IndexSettings,
    flowyard_identity: str,
) -> str:
    """sha256 over (runtime and version, Flowyard identity, requirements, index settings).

    ``requirements`` must already be normalized (see :func:`normalize_requirements`).
    """
    material = {
        "format": KEY_FORMAT,
        "runtime": {
            "name": runtime.name,
            "version": runtime.version,
            "python": str(runtime.python_path),
        },
        "flowyard": flowyard_identity,
        "requirements": sorted(set(requirements)),
        "index": index.fingerprint(),
    }
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()
