"""Finding and resolving futures and states inside task arguments.

Arguments are searched through lists, tuples (named ones too), sets and
dicts, as Prefect does; ``quote(x)`` stops the search and ``allow_failure(x)``
lets a failed upstream through (the task receives its exception). Values of
atomic types are skipped without a look, which is what keeps the common case
cheap. Containers are rebuilt only when something inside them changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from flowyard.sdk._annotations import BaseAnnotation, allow_failure, quote
from flowyard.sdk._errors import UpstreamTaskError
from flowyard.sdk._futures import FlowyardFuture
from flowyard.sdk._states import State

__all__ = ["collect_upstream", "resolve_parameters", "upstream_futures", "wait_for_upstream"]

_ATOMIC = frozenset({int, float, str, bool, type(None), bytes, complex})
_SEQUENCES = (list, tuple, set, frozenset)


def collect_upstream(value: object, found: list[FlowyardFuture[object]]) -> None:
    """Append every future inside ``value`` (outside ``quote``) to ``found``."""
    cls = type(value)
    if cls in _ATOMIC:
        return
    if isinstance(value, FlowyardFuture):
        found.append(value)
    elif isinstance(value, BaseAnnotation):
        if not isinstance(value, quote):
            collect_upstream(value.value, found)
    elif isinstance(value, _SEQUENCES):
        for item in value:
            collect_upstream(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            collect_upstream(item, found)


def _final_result(state: State[object], allow_failed: bool) -> object:
    if not state.is_completed() and not (allow_failed and state.is_failed()):
        raise UpstreamTaskError(
            f"Upstream task run '{state.state_details.task_run_id}' did not reach a "
            "'COMPLETED' state."
        )
    return state.result(raise_on_failure=False)


def resolve_value(value: object, allow_failed: bool = False) -> object:
    """``value`` with futures and states replaced by their results.

    Raises:
        UpstreamTaskError: an upstream run did not complete (and is not allowed to fail).
    """
    cls = type(value)
    if cls in _ATOMIC:
        return value
    if isinstance(value, FlowyardFuture):
        value.wait()
        return _final_result(value.state, allow_failed)
    if isinstance(value, State):
        return _final_result(value, allow_failed)
    if isinstance(value, BaseAnnotation):
        if isinstance(value, quote):
            return value.value
        return resolve_value(value.value, allow_failed or isinstance(value, allow_failure))
    if isinstance(value, _SEQUENCES):
        items = [resolve_value(item, allow_failed) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return cast(Any, cls)(*items)
        return cast(Any, cls)(items)
    if isinstance(value, dict):
        resolved = {key: resolve_value(item, allow_failed) for key, item in value.items()}
        if all(resolved[key] is item for key, item in value.items()):
            return value
        return cast(Any, cls)(resolved) if cls is not dict else resolved
    return value


def resolve_parameters(parameters: dict[str, object]) -> dict[str, object]:
    """The parameters with futures and states resolved (the same dict if none were found)."""
    changed: dict[str, object] | None = None
    for name, value in parameters.items():
        if type(value) in _ATOMIC:
            continue
        resolved = resolve_value(value)
        if resolved is not value:
            if changed is None:
                changed = dict(parameters)
            changed[name] = resolved
    return parameters if changed is None else changed


def wait_for_upstream(wait_for: Iterable[object]) -> None:
    """Wait for every future or state in ``wait_for``; raise if one did not complete."""
    for item in wait_for:
        resolve_value(item)


def upstream_futures(
    parameters: Mapping[str, object], wait_for: Iterable[object] | None
) -> list[FlowyardFuture[object]]:
    """The futures a task run depends on, through its arguments and ``wait_for``."""
    found: list[FlowyardFuture[object]] = []
    for value in parameters.values():
        if type(value) not in _ATOMIC:
            collect_upstream(value, found)
    if wait_for:
        for item in wait_for:
            collect_upstream(item, found)
    return found
