"""Wrappers that change how a task argument is treated: ``unmapped``, ``allow_failure``, ``quote``."""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["BaseAnnotation", "allow_failure", "quote", "unmapped"]

T = TypeVar("T")


class BaseAnnotation(Generic[T]):
    """A value wrapped with an instruction for the engine; removed before the task runs."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def unwrap(self) -> T:
        return self.value

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.value == other.value  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), id(self.value)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"


class unmapped(BaseAnnotation[T]):
    """Pass this argument whole to every mapped task run instead of iterating over it."""

    __slots__ = ()

    def __getitem__(self, _: object) -> T:
        return self.value


class allow_failure(BaseAnnotation[T]):
    """Run the downstream task even if this upstream future or state failed.

    The downstream task receives the upstream exception in place of its result.
    """

    __slots__ = ()


class quote(BaseAnnotation[T]):
    """Pass this argument as is: do not look inside it for futures or states."""

    __slots__ = ()

    def unquote(self) -> T:
        return self.value
