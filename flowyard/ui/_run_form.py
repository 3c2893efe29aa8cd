"""The Run form of a deployment, generated from its parameter JSON schema.

Each top-level property becomes one labelled input chosen by its type:
text, whole number, number, a true/false choice, a list of allowed values,
or JSON for anything structured. An empty input means "use the
deployment's default". Reading the form only turns text into JSON values
(and names the field whose text is not one); whether the values satisfy the
schema is decided by ``ops`` when the run is created, and its error names
the field, which the page shows beside that input.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

JSON_KINDS = {"object", "array"}


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    kind: str  # text | integer | number | boolean | choice | json
    required: bool
    description: str
    default: str  # the default shown to the user, as JSON text ('' when none)
    value: str  # what the input holds now
    options: tuple[tuple[str, str], ...] = ()  # (value as JSON text, label)
    error: str = ""

    @property
    def input_id(self) -> str:
        return "param-" + "".join(c if c.isalnum() else "-" for c in self.name)


def _subschemas(schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            return [o for o in options if isinstance(o, Mapping) and o.get("type") != "null"]
    return [schema]


def kind_of(schema: Mapping[str, Any]) -> str:
    """The input for a property: one clear scalar type gets its own input; the rest JSON."""
    options = _subschemas(schema)
    if len(options) != 1:
        return "json"
    only = options[0]
    if isinstance(only.get("enum"), list) and only["enum"]:
        return "choice"
    declared = only.get("type")
    if isinstance(declared, list):
        non_null = [t for t in declared if t != "null"]
        declared = non_null[0] if len(non_null) == 1 else None
    if declared in ("string", "integer", "number", "boolean"):
        return "text" if declared == "string" else str(declared)
    return "json"


def _as_text(kind: str, value: Any) -> str:
    if value is None and kind != "json":
        return ""
    if kind == "text" and isinstance(value, str):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


def build_fields(
    schema: Mapping[str, Any],
    defaults: Mapping[str, Any],
    submitted: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> list[FormField]:
    """The form's fields in the schema's order, holding ``submitted`` text if any."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return []
    required = set(schema.get("required") or ())
    fields = []
    for name, prop in properties.items():
        prop = prop if isinstance(prop, Mapping) else {}
        kind = kind_of(prop)
        default_value = defaults[name] if name in defaults else prop.get("default")
        has_default = name in defaults or "default" in prop
        default = _as_text(kind, default_value) if has_default else ""
        options: tuple[tuple[str, str], ...] = ()
        if kind == "choice":
            enum = _subschemas(prop)[0]["enum"]
            options = tuple(
                (json.dumps(v), v if isinstance(v, str) else json.dumps(v)) for v in enum
            )
        value = (submitted or {}).get(name, "")
        fields.append(
            FormField(
                name=name,
                label=str(prop.get("title") or name),
                kind=kind,
                required=name in required and not has_default,
                description=str(prop.get("description") or ""),
                default=default,
                value=value,
                options=options,
                error=(errors or {}).get(name, ""),
            )
        )
    return fields


def _number(text: str, whole: bool) -> int | float:
    if "_" in text:  # Python accepts 1_000; JSON and people reading it do not
        raise ValueError(text)
    if whole:
        return int(text)
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return (
        int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value
    )


def read_value(kind: str, text: str) -> Any:
    """The JSON value of one input's text; raises ValueError with a message for a person."""
    if kind == "text":
        return text
    stripped = text.strip()
    if kind == "integer":
        try:
            return _number(stripped, whole=True)
        except ValueError:
            raise ValueError("expected a whole number") from None
    if kind == "number":
        try:
            return _number(stripped, whole=False)
        except ValueError:
            raise ValueError("expected a number") from None
    if kind == "boolean":
        if stripped not in ("true", "false"):
            raise ValueError("choose true or false")
        return stripped == "true"
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as exc:
        what = (
            "choose one of the listed values"
            if kind == "choice"
            else f"is not valid JSON ({exc.msg})"
        )
        raise ValueError(what) from None


def read_parameters(
    fields: list[FormField], submitted: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """(parameters, errors by field). Empty inputs are left out: the defaults apply."""
    parameters: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in fields:
        text = submitted.get(f.name, "")
        if text == "" or (f.kind != "text" and not text.strip()):
            continue
        try:
            parameters[f.name] = read_value(f.kind, text)
        except ValueError as exc:
            errors[f.name] = str(exc)
    return parameters, errors


def read_json_object(text: str) -> dict[str, Any]:
    """A JSON object from a textarea ('' is ``{}``); raises ValueError naming the problem."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(value, dict):
        raise ValueError('expected a JSON object, like {"pip_packages": ["pandas"]}')
    return value


def field_of_error(path: str, names: set[str]) -> tuple[str, str]:
    """Which input an ``ops`` error path belongs to: ``parameters.n.x`` -> ('n', 'x: ')."""
    root, _, rest = path.partition(".")
    if root == "parameters" and rest:
        name, _, inner = rest.partition(".")
        if name in names:
            return name, f"{inner}: " if inner else ""
    if root == "job_variables":
        return "job_variables", f"{rest}: " if rest else ""
    return "", f"{path}: "
