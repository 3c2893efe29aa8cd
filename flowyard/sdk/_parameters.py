"""Binding call arguments to parameters, and validating flow parameters.

``CallSignature`` is computed once per flow or task. Its ``bind`` has a fast
path for the common signature (plain positional-or-keyword parameters) that
avoids ``inspect.Signature.bind``, which alone would cost a large part of
the per-task budget; anything unusual falls back to ``inspect``.

Validation uses pydantic, imported on first use so that ``import flowyard``
stays light. One ``TypeAdapter`` per parameter (built once per flow) rather
than one generated model: parameter names such as ``json`` or ``copy`` would
clash with ``BaseModel`` attributes, and per-parameter errors come out
already keyed by parameter name.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from flowyard.sdk._errors import ParameterTypeError, SignatureMismatchError

if TYPE_CHECKING:
    from pydantic import TypeAdapter

_EMPTY = inspect.Parameter.empty
_POK = inspect.Parameter.POSITIONAL_OR_KEYWORD
_KW_ONLY = inspect.Parameter.KEYWORD_ONLY
_VAR_POSITIONAL = inspect.Parameter.VAR_POSITIONAL
_VAR_KEYWORD = inspect.Parameter.VAR_KEYWORD


class CallSignature:
    """A function's parameters, prepared for fast binding and calling."""

    __slots__ = (
        "_adapters",
        "_exact",
        "annotated",
        "defaults",
        "fn",
        "name_set",
        "names",
        "plain",
        "signature",
    )

    def __init__(self, fn: Callable[..., object]) -> None:
        self.fn = fn
        self.signature = inspect.signature(fn)
        params = list(self.signature.parameters.values())
        self.names = tuple(p.name for p in params)
        self.name_set = frozenset(self.names)
        self.defaults = tuple((p.name, p.default) for p in params if p.default is not _EMPTY)
        # "plain": every parameter can be passed by keyword, so fn(**parameters) works.
        self.plain = all(p.kind in (_POK, _KW_ONLY) for p in params)
        self.annotated = any(p.annotation is not _EMPTY for p in params)
        self._adapters: dict[str, TypeAdapter[Any]] | None = None
        self._exact: dict[str, type] | None = None

    def bind(self, args: tuple[object, ...], kwargs: Mapping[str, object]) -> dict[str, object]:
        """The parameters of a call, defaults applied, in signature order."""
        names = self.names
        if self.plain and len(args) <= len(names):
            params = dict(zip(names, args, strict=False))
            if kwargs:
                for key, value in kwargs.items():
                    if key in params or key not in self.name_set:
                        return self._slow_bind(args, kwargs)
                    params[key] = value
            if len(params) != len(names):
                for name, default in self.defaults:
                    if name not in params:
                        params[name] = default
                if len(params) != len(names):
                    return self._slow_bind(args, kwargs)
                return {name: params[name] for name in names}
            if kwargs:
                return {name: params[name] for name in names}
            return params
        return self._slow_bind(args, kwargs)

    def _slow_bind(
        self, args: tuple[object, ...], kwargs: Mapping[str, object]
    ) -> dict[str, object]:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            name = getattr(self.fn, "__name__", repr(self.fn))
            raise SignatureMismatchError(
                f"Error binding parameters for function {name!r}: {exc}.\n"
                f"Function {name!r} has signature {self.signature} but received "
                f"args: {args!r} and kwargs: {list(kwargs)!r}."
            ) from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def to_call(
        self, parameters: Mapping[str, object]
    ) -> tuple[tuple[object, ...], dict[str, object]]:
        """Positional and keyword arguments that call the function with ``parameters``."""
        if self.plain:
            return (), dict(parameters)
        unknown = set(parameters) - self.name_set
        if unknown:
            raise SignatureMismatchError(
                f"Function expects parameters {list(self.names)} but was provided with "
                f"parameters {list(parameters)}"
            )
        args: list[object] = []
        kwargs: dict[str, object] = {}
        for p in self.signature.parameters.values():
            if p.name not in parameters:
                continue
            value = parameters[p.name]
            if p.kind is _VAR_POSITIONAL:
                args.extend(cast("Iterable[object]", value))
            elif p.kind is _VAR_KEYWORD:
                kwargs.update(cast("Mapping[str, object]", value))
            elif p.kind in (_KW_ONLY,) or kwargs:
                kwargs[p.name] = value
            else:
                args.append(value)
        return tuple(args), kwargs

    def call(self, parameters: Mapping[str, object]) -> object:
        """Call the function with ``parameters``."""
        if self.plain:
            return self.fn(**parameters)
        args, kwargs = self.to_call(parameters)
        return self.fn(*args, **kwargs)

    def validate(self, parameters: Mapping[str, object], owner: str) -> dict[str, object]:
        """Coerce ``parameters`` to the type hints; raise naming every bad parameter.

        A parameter still holding its signature default object is not
        validated: ``x: int = None`` is the author's choice, not bad input.
        """
        if not self.annotated:
            return dict(parameters)  # nothing to check; keeps pydantic unimported
        defaults = dict(self.defaults)
        if self._exact is None:
            self._exact = _exact_types(self)
        exact = self._exact
        if all(
            (name in defaults and value is defaults[name]) or type(value) is exact.get(name)
            for name, value in parameters.items()
        ):
            # Defaults, and values already of their plain type (an int for `int`), are
            # what pydantic would return: no need to load it (a run's start-up path).
            return dict(parameters)
        import pydantic

        if self._adapters is None:
            self._adapters = _build_adapters(self)
        coerced: dict[str, object] = {}
        problems: list[str] = []
        for name, value in parameters.items():
            adapter = self._adapters.get(name)
            if adapter is None or (name in defaults and value is defaults[name]):
                coerced[name] = value
                continue
            try:
                coerced[name] = adapter.validate_python(value)
            except pydantic.ValidationError as exc:
                expected = _type_name(self.signature.parameters[name].annotation, self.fn, name)
                for error in exc.errors(include_url=False):
                    location = ".".join(str(part) for part in (name, *error["loc"]))
                    problems.append(
                        f"{location}: {error['msg']} (got {_short_repr(error.get('input'))}, "
                        f"expected {expected})"
                    )
        if problems:
            raise ParameterTypeError(
                f"{owner} received invalid parameters:\n - " + "\n - ".join(problems)
            )
        return coerced


def resolved_hints(fn: Callable[..., object]) -> dict[str, object]:
    """Type hints of ``fn`` with string annotations resolved where possible."""
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:
        # An unresolvable forward reference leaves that parameter unvalidated;
        # the rest still resolve from the raw annotations below.
        hints: dict[str, object] = {}
        for name, annotation in getattr(fn, "__annotations__", {}).items():
            if not isinstance(annotation, str):
                hints[name] = annotation
        return hints


def parameter_annotation(param: inspect.Parameter, hints: Mapping[str, object]) -> object:
    """The type a parameter's values must have (``*args``/``**kwargs`` as containers)."""
    annotation = hints.get(param.name, Any) if param.annotation is not _EMPTY else Any
    if param.kind is _VAR_POSITIONAL:
        return tuple[annotation, ...]  # type: ignore[valid-type]
    if param.kind is _VAR_KEYWORD:
        return dict[str, annotation]  # type: ignore[valid-type]
    return annotation


_PLAIN_TYPES = frozenset({int, float, str, bool, bytes})


def _exact_types(sig: CallSignature) -> dict[str, type]:
    """Parameters annotated with a plain scalar type, which a value of exactly it passes as is."""
    hints = resolved_hints(sig.fn)
    found: dict[str, type] = {}
    for param in sig.signature.parameters.values():
        if param.kind in (_VAR_POSITIONAL, _VAR_KEYWORD):
            continue
        annotation = parameter_annotation(param, hints)
        if isinstance(annotation, type) and annotation in _PLAIN_TYPES:
            found[param.name] = annotation
    return found


def _build_adapters(sig: CallSignature) -> dict[str, TypeAdapter[Any]]:
    from pydantic import ConfigDict, PydanticUserError, TypeAdapter
    from pydantic.errors import PydanticSchemaGenerationError

    hints = resolved_hints(sig.fn)
    adapters: dict[str, TypeAdapter[Any]] = {}
    config = ConfigDict(arbitrary_types_allowed=True)
    for param in sig.signature.parameters.values():
        annotation = parameter_annotation(param, hints)
        if annotation is Any:
            continue
        try:
            adapters[param.name] = TypeAdapter(cast(Any, annotation), config=config)
        except PydanticUserError:
            # Models, dataclasses and TypedDicts carry their own config.
            try:
                adapters[param.name] = TypeAdapter(cast(Any, annotation))
            except PydanticSchemaGenerationError:
                continue
        except PydanticSchemaGenerationError:
            continue
    return adapters


def _type_name(annotation: object, fn: Callable[..., object], name: str) -> str:
    hint = resolved_hints(fn).get(name, annotation)
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _short_repr(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
