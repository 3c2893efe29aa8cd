"""Pull steps: the ``pull`` section of a ``flowyard.yaml`` / ``prefect.yaml``, as a plan.

Step names resolve against a fixed registry of known steps; a YAML file never
names code to import. Each known step parses its parameters into a frozen
dataclass, and the list becomes a :class:`PullPlan` the execution plane acts on
(which repository and ref to clone, which requirements files to install, which
directory to run in). Every path in a plan is relative to the root of the
fetched code; a path that is absolute or climbs out with ``..`` is refused
here, and symbolic links are checked against the real checkout at run time.

Templating follows ``prefect.yaml``: ``{{ $NAME }}`` is an environment
variable; ``{{ step-id.directory }}`` is the directory an earlier step produced
(``git_clone`` produces the code's root); ``{{ prefect.blocks.<type>.<name> }}``
(or ``flowyard.blocks.<type>.<name>``, ``flowyard.secrets.<name>``) as a whole
``credentials`` / ``access_token`` value is a reference to a secret, resolved by
the caller. Anything else in ``{{ }}`` is refused by name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from flowyard.errors import FlowyardError

STEP_PREFIXES = (
    "flowyard.deployments.steps.",
    "prefect.deployments.steps.",
    "prefect.deployments.steps.pull.",
)
ROOT = PurePosixPath(".")

_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_ENV = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_OUTPUT = re.compile(r"^([A-Za-z0-9_-]+)\.([A-Za-z_][A-Za-z0-9_]*)$")
_SECRET = re.compile(
    r"^(?:(?:prefect|flowyard)\.blocks\.(?P<kind>[A-Za-z0-9_-]+)\.(?P<name>[A-Za-z0-9_.-]+)"
    r"|flowyard\.secrets\.(?P<secret>[A-Za-z0-9_.-]+))$"
)


class PullStepError(FlowyardError):
    """A pull step is unknown, malformed, or refers to something it may not."""


@dataclass(frozen=True)
class SecretReference:
    """A secret named in a step, e.g. ``{{ prefect.blocks.secret.github-token }}``."""

    kind: str
    name: str


@dataclass(frozen=True)
class GitCloneStep:
    """Clone ``repository`` at ``commit_sha`` or ``branch`` (default branch if neither)."""

    repository: str
    branch: str | None = None
    commit_sha: str | None = None
    access_token: str | None = field(default=None, repr=False)
    credentials: SecretReference | None = None
    directories: tuple[str, ...] = ()
    step_id: str | None = None

    @property
    def ref(self) -> str | None:
        """What to resolve: the commit if pinned, else the branch."""
        return self.commit_sha or self.branch


@dataclass(frozen=True)
class PipInstallRequirementsStep:
    """Install the requirements file at ``requirements_file`` (relative to the code's root)."""

    requirements_file: PurePosixPath
    step_id: str | None = None


@dataclass(frozen=True)
class SetWorkingDirectoryStep:
    """Run the flow from ``directory`` (relative to the code's root)."""

    directory: PurePosixPath
    step_id: str | None = None


PullStep = GitCloneStep | PipInstallRequirementsStep | SetWorkingDirectoryStep


@dataclass(frozen=True)
class PullPlan:
    """The steps in order, with what the execution plane needs from them."""

    steps: tuple[PullStep, ...] = ()

    @property
    def clone(self) -> GitCloneStep | None:
        """The ``git_clone`` step, if any (there is at most one)."""
        return next((s for s in self.steps if isinstance(s, GitCloneStep)), None)

    @property
    def requirements_files(self) -> tuple[PurePosixPath, ...]:
        return tuple(
            s.requirements_file for s in self.steps if isinstance(s, PipInstallRequirementsStep)
        )

    @property
    def working_directory(self) -> PurePosixPath:
        """The last directory a step produced (as Prefect does), else the code's root."""
        directory = ROOT
        for step in self.steps:
            if isinstance(step, GitCloneStep):
                directory = ROOT
            elif isinstance(step, SetWorkingDirectoryStep):
                directory = step.directory
        return directory


@dataclass
class _Context:
    """What templates may refer to while a plan is being parsed."""

    env: Mapping[str, str]
    where: str = ""
    cwd: PurePosixPath = ROOT
    outputs: dict[str, dict[str, PurePosixPath | None]] = field(default_factory=dict)

    def fail(self, message: str) -> PullStepError:
        return PullStepError(f"{self.where}: {message}")


@dataclass(frozen=True)
class StepDefinition:
    """A known step: its short name, the parameters it accepts, its parser."""

    name: str
    parameters: frozenset[str]
    parse: Callable[[Mapping[str, object], _Context], PullStep]
    outputs: Callable[[PullStep], dict[str, PurePosixPath | None]]


def _git_clone(params: Mapping[str, object], ctx: _Context) -> PullStep:
    repository = _text(params, "repository", ctx)
    if repository is None:
        raise ctx.fail("'repository' is required")
    branch = _text(params, "branch", ctx)
    commit = _text(params, "commit_sha", ctx)
    if branch and commit:
        raise ctx.fail("give either 'branch' or 'commit_sha', not both")
    if params.get("include_submodules"):
        raise ctx.fail("'include_submodules' is not supported by managed execution")
    token, token_ref = _secret(params, "access_token", ctx)
    literal, credentials = _secret(params, "credentials", ctx)
    if literal is not None:
        raise ctx.fail(
            "'credentials' must reference a secret, e.g. '{{ prefect.blocks.secret.name }}'"
        )
    directories = params.get("directories") or ()
    if not isinstance(directories, list | tuple) or not all(
        isinstance(d, str) for d in directories
    ):
        raise ctx.fail("'directories' must be a list of paths")
    return GitCloneStep(
        repository=repository,
        branch=branch,
        commit_sha=commit,
        access_token=token,
        credentials=credentials or token_ref,
        directories=tuple(directories),
        step_id=_step_id(params),
    )


def _pip_install(params: Mapping[str, object], ctx: _Context) -> PullStep:
    directory = (
        _path(params.get("directory"), ctx, "directory") if params.get("directory") else ctx.cwd
    )
    name = _text(params, "requirements_file", ctx) or "requirements.txt"
    file = _join(directory, name, ctx, "requirements_file")
    return PipInstallRequirementsStep(requirements_file=file, step_id=_step_id(params))


def _set_working_directory(params: Mapping[str, object], ctx: _Context) -> PullStep:
    if not params.get("directory"):
        raise ctx.fail("'directory' is required")
    directory = _path(params.get("directory"), ctx, "directory")
    ctx.cwd = directory
    return SetWorkingDirectoryStep(directory=directory, step_id=_step_id(params))


def _directory_output(step: PullStep) -> dict[str, PurePosixPath | None]:
    if isinstance(step, SetWorkingDirectoryStep):
        return {"directory": step.directory}
    return {"directory": ROOT}


_COMMON = frozenset({"id", "requires"})
_REGISTRY: dict[str, StepDefinition] = {
    d.name: d
    for d in (
        StepDefinition(
            "git_clone",
            _COMMON
            | {"repository", "branch", "commit_sha", "access_token", "credentials"}
            | {"include_submodules", "directories"},
            _git_clone,
            _directory_output,
        ),
        StepDefinition(
            "pip_install_requirements",
            _COMMON | {"directory", "requirements_file", "stream_output"},
            _pip_install,
            lambda _: {"stdout": None, "stderr": None},
        ),
        StepDefinition(
            "set_working_directory",
            _COMMON | {"directory"},
            _set_working_directory,
            _directory_output,
        ),
    )
}


def known_step_names() -> tuple[str, ...]:
    """Every accepted spelling: ``flowyard.deployments.steps.*``, ``prefect.*`` and short."""
    return tuple(f"{p}{n}" for p in STEP_PREFIXES for n in _REGISTRY) + tuple(_REGISTRY)


def resolve_step(name: str) -> StepDefinition:
    """The known step ``name`` spells, or :class:`PullStepError` listing the known ones."""
    short = name.strip()
    for prefix in STEP_PREFIXES:
        if short.startswith(prefix) and short[len(prefix) :] in _REGISTRY:
            short = short[len(prefix) :]
            break
    definition = _REGISTRY.get(short)
    if definition is None:
        known = ", ".join(f"{STEP_PREFIXES[0]}{n}" for n in _REGISTRY)
        raise PullStepError(
            f"unknown pull step {name!r}; known steps: {known} "
            "(also under prefect.deployments.steps.* or by their short names)"
        )
    return definition


def parse_pull_steps(
    steps: Sequence[Mapping[str, object]] | None, *, env: Mapping[str, str] | None = None
) -> PullPlan:
    """Parse a ``pull`` list (as loaded from YAML) into a :class:`PullPlan`.

    ``env`` supplies ``{{ $NAME }}`` values (none by default, so any such
    reference is an error naming the variable).
    """
    ctx = _Context(env=env or {})
    parsed: list[PullStep] = []
    for number, item in enumerate(steps or (), start=1):
        ctx.where = f"pull step {number}"
        if not isinstance(item, Mapping) or len(item) != 1:
            raise ctx.fail("each pull step must be a mapping with exactly one step name as its key")
        ((name, params),) = item.items()
        definition = resolve_step(str(name))
        ctx.where = f"pull step {number} ({definition.name})"
        params = params if params is not None else {}
        if not isinstance(params, Mapping):
            raise ctx.fail("its parameters must be a mapping")
        unknown = sorted(set(map(str, params)) - definition.parameters)
        if unknown:
            raise ctx.fail(
                f"unknown parameter(s) {', '.join(unknown)}; "
                f"accepted: {', '.join(sorted(definition.parameters))}"
            )
        step = definition.parse(params, ctx)
        if isinstance(step, GitCloneStep) and any(isinstance(s, GitCloneStep) for s in parsed):
            raise ctx.fail("only one git_clone step is allowed")
        if step.step_id:
            if step.step_id in ctx.outputs:
                raise ctx.fail(f"step id {step.step_id!r} is used twice")
            ctx.outputs[step.step_id] = definition.outputs(step)
        parsed.append(step)
    return PullPlan(tuple(parsed))


# -- parameters and templates ------------------------------------------------------------


def _step_id(params: Mapping[str, object]) -> str | None:
    value = params.get("id")
    return str(value) if value is not None else None


def _text(params: Mapping[str, object], key: str, ctx: _Context) -> str | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str | int | float):
        raise ctx.fail(f"{key!r} must be a string")
    return _render(str(value), ctx, key) or None


def _render(value: str, ctx: _Context, key: str) -> str:
    """Substitute ``{{ $NAME }}``; refuse every other template in a plain value."""

    def substitute(match: re.Match[str]) -> str:
        expression = match.group(1)
        env = _ENV.match(expression)
        if env is None:
            raise ctx.fail(f"{key!r}: template '{{{{ {expression} }}}}' cannot be used here")
        if env.group(1) not in ctx.env:
            raise ctx.fail(f"{key!r}: environment variable ${env.group(1)} is not set")
        return ctx.env[env.group(1)]

    return _TEMPLATE.sub(substitute, value)


def _secret(
    params: Mapping[str, object], key: str, ctx: _Context
) -> tuple[str | None, SecretReference | None]:
    """``(literal, None)`` or ``(None, reference)`` for a credentials-like parameter."""
    value = params.get(key)
    if value is None or value == "":
        return None, None
    if not isinstance(value, str):
        raise ctx.fail(f"{key!r} must be a string or a secret reference")
    whole = _TEMPLATE.fullmatch(value.strip())
    if whole:
        secret = _SECRET.match(whole.group(1))
        if secret:
            if secret.group("secret"):
                return None, SecretReference("secret", secret.group("secret"))
            return None, SecretReference(secret.group("kind"), secret.group("name"))
    return _render(value, ctx, key), None


def _path(value: object, ctx: _Context, key: str) -> PurePosixPath:
    """A directory parameter: ``{{ id.directory }}/rest``, or relative to the current one."""
    if not isinstance(value, str):
        raise ctx.fail(f"{key!r} must be a string")
    text = value.strip()
    base = ctx.cwd
    anchored = _TEMPLATE.match(text)
    reference = _OUTPUT.match(anchored.group(1)) if anchored else None
    if anchored and reference:
        step_id, output = reference.groups()
        if step_id not in ctx.outputs:
            raise ctx.fail(f"{key!r} refers to step {step_id!r}, which is not an earlier step's id")
        produced = ctx.outputs[step_id]
        if output not in produced:
            raise ctx.fail(f"{key!r}: step {step_id!r} has no output {output!r}")
        directory = produced[output]
        if directory is None:
            raise ctx.fail(f"{key!r}: output {step_id}.{output} is only known at run time")
        base, text = directory, text[anchored.end() :].lstrip("/")
    return _join(base, _render(text, ctx, key), ctx, key)


def _join(base: PurePosixPath, relative: str, ctx: _Context, key: str) -> PurePosixPath:
    """``base / relative`` normalized, staying inside the code's root."""
    pure = PurePosixPath(relative) if relative else ROOT
    if pure.is_absolute():
        raise ctx.fail(
            f"{key!r} {relative!r} is absolute; paths must be relative to the code's root"
        )
    parts: list[str] = [p for p in base.parts if p != "."]
    for part in pure.parts:
        if part == "..":
            if not parts:
                raise ctx.fail(f"{key!r} {relative!r} climbs out of the code with '..'")
            parts.pop()
        elif part != ".":
            parts.append(part)
    return PurePosixPath(*parts) if parts else ROOT
