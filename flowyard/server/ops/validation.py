"""JSON-schema validation with messages that name the field.

Used for parameters (against a deployment's parameter schema) and job
variables (against a work pool's base job template). Schemas come from
users, so a ``$ref`` resolves within the schema only: the server never
fetches a URL a schema names, and a ``$ref`` that resolves nowhere, or only
to itself, is bad input rather than a crash.
"""

from __future__ import annotations

import math
from typing import Any

from flowyard.server.ops.errors import InvalidInput


def _path(error: Any, root: str) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else ""
        parts.append(missing)
    if error.validator == "additionalProperties" and "'" in error.message:
        parts.append(str(error.message).split("'")[1])
    return ".".join([root, *parts]) if parts else root


def _explain(error: Any) -> str:
    v = error.validator
    if v == "additionalProperties":
        schema = error.schema if isinstance(error.schema, dict) else {}
        known = sorted(schema.get("properties") or {})
        return "is not a known field" + (f"; expected one of {', '.join(known)}" if known else "")
    if v == "required":
        return "is required"
    if v == "maximum":
        return f"must be at most {error.validator_value} (got {error.instance!r})"
    if v in {"minimum", "exclusiveMinimum"}:
        op = ">=" if v == "minimum" else ">"
        return f"must be {op} {error.validator_value} (got {error.instance!r})"
    if v == "type":
        expected = error.validator_value
        if isinstance(expected, list):
            expected = " or ".join(expected)
        return f"expected {expected}, got {type(error.instance).__name__} {error.instance!r}"
    if v == "enum":
        return f"expected one of {', '.join(map(repr, error.validator_value))}"
    return str(error.message)


def _non_finite(value: Any, path: str) -> str | None:
    """The path of the first NaN or infinity in a JSON value (JSON itself has none)."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{path}.{key}")
        if found is not None:
            return found
    return None


def validate(instance: Any, schema: dict[str, Any], root: str) -> None:
    """Raise InvalidInput naming the first offending field under ``root``.

    NaN and infinities are refused whatever the schema: they compare false with
    every bound (a ``cpu`` of NaN would pass ``maximum``) and are not JSON.
    """
    bad = _non_finite(instance, root)
    if bad is not None:
        raise InvalidInput(bad, "must be a finite number, not NaN or infinity")
    if not schema:
        return
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
    from referencing import Registry
    from referencing.exceptions import Unresolvable

    try:
        # An empty registry: no remote retrieval (jsonschema's default fetches URLs).
        validator = Draft202012Validator(schema, registry=Registry())
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    except SchemaError as exc:
        raise InvalidInput(root, f"schema is invalid: {exc.message}") from None
    except Unresolvable as exc:
        raise InvalidInput(
            root, f"cannot be checked: the schema's $ref {exc.ref!r} resolves nowhere in it"
        ) from None
    except RecursionError:
        raise InvalidInput(root, "cannot be checked: the schema's $refs loop forever") from None
    if errors:
        first = errors[0]
        raise InvalidInput(_path(first, root), _explain(first))


def check_schema(schema: dict[str, Any], field: str) -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidInput(field, f"not a valid JSON schema: {exc.message}") from None


def defaults_of(schema: dict[str, Any]) -> dict[str, Any]:
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    return {k: v["default"] for k, v in props.items() if isinstance(v, dict) and "default" in v}
