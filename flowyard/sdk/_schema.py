"""The JSON schema of a function's parameters, for deployments.

The layout follows Prefect's ``parameter_schema``: an object schema titled
``Parameters`` whose properties carry ``title`` (the name), ``position``,
``default`` and ``description`` (from the docstring: Google, NumPy or Sphinx
style), with shared models under ``definitions``. Types that have no JSON
schema (arbitrary classes) become ``{}`` rather than failing the deploy.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flowyard.sdk._parameters import parameter_annotation, resolved_hints

__all__ = ["parameter_descriptions", "parameter_schema"]

_GOOGLE_HEADER = re.compile(r"^(\s*)(Args|Arguments|Parameters|Params)\s*:\s*$")
_GOOGLE_ITEM = re.compile(r"^\*{0,2}(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_SECTION = re.compile(r"^\s*[A-Z][A-Za-z ]*:\s*$")
_NUMPY_ITEM = re.compile(r"^\*{0,2}(\w+)\s*(:.*)?$")
_SPHINX_ITEM = re.compile(r"^\s*:param\s+(?:[^:]*\s)?\*{0,2}(\w+)\s*:\s*(.*)$")


def parameter_descriptions(fn: Callable[..., object]) -> dict[str, str]:
    """Parameter descriptions found in ``fn``'s docstring."""
    doc = inspect.getdoc(fn)
    if not doc:
        return {}
    lines = doc.splitlines()
    found = _sphinx(lines) or _google(lines) or _numpy(lines)
    return {name: " ".join(text.split()) for name, text in found.items() if text.strip()}


def _sphinx(lines: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    current: str | None = None
    for line in lines:
        if match := _SPHINX_ITEM.match(line):
            current = match.group(1)
            found[current] = match.group(2)
        elif current and line.startswith((" ", "\t")) and line.strip():
            found[current] += " " + line.strip()
        else:
            current = None
    return found


def _google(lines: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    in_section = False
    item_indent: int | None = None
    current: str | None = None
    for line in lines:
        if _GOOGLE_HEADER.match(line):
            in_section, item_indent, current = True, None, None
            continue
        if not in_section:
            continue
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0 and _SECTION.match(line):
            in_section = False
            continue
        if item_indent is None:
            item_indent = indent
        if indent == item_indent and (match := _GOOGLE_ITEM.match(line.strip())):
            current = match.group(1)
            found[current] = match.group(3)
        elif indent > item_indent and current:
            found[current] += " " + line.strip()
        elif indent < item_indent:
            in_section = False
    return found


def _numpy(lines: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for i, line in enumerate(lines[:-1]):
        if line.strip() in ("Parameters", "Params") and set(lines[i + 1].strip()) == {"-"}:
            current: str | None = None
            for item in lines[i + 2 :]:
                if not item.strip():
                    continue
                if not item.startswith((" ", "\t")):
                    if set(item.strip()) == {"-"}:
                        found.pop(current or "", None)
                        break
                    match = _NUMPY_ITEM.match(item.strip())
                    current = match.group(1) if match else None
                    if current:
                        found[current] = ""
                elif current:
                    found[current] = (found[current] + " " + item.strip()).strip()
            break
    return found


def parameter_schema(fn: Callable[..., object]) -> dict[str, Any]:
    """The JSON schema of ``fn``'s parameters (names, types, defaults, descriptions)."""
    from pydantic import ConfigDict, Field, create_model
    from pydantic.json_schema import GenerateJsonSchema

    class _Lenient(GenerateJsonSchema):
        def handle_invalid_for_json_schema(self, schema: Any, error_info: str) -> dict[str, Any]:
            return {}

        def emit_warning(self, kind: Any, detail: str) -> None:
            return None

    signature = inspect.signature(fn)
    hints = resolved_hints(fn)
    descriptions = parameter_descriptions(fn)
    fields: dict[str, Any] = {}
    for position, param in enumerate(signature.parameters.values()):
        extra: dict[str, Any] = {"position": position}
        default = ... if param.default is inspect.Parameter.empty else param.default
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            default = ()
        elif param.kind is inspect.Parameter.VAR_KEYWORD:
            default = {}
        fields[f"p{position}"] = (
            parameter_annotation(param, hints),
            Field(
                default,
                alias=param.name,
                title=param.name,
                description=descriptions.get(param.name),
                json_schema_extra=extra,
            ),
        )
    model = create_model(  # type: ignore[call-overload]
        "Parameters", __config__=ConfigDict(arbitrary_types_allowed=True), **fields
    )
    schema: dict[str, Any] = model.model_json_schema(
        by_alias=True,
        ref_template="#/definitions/{model}",
        schema_generator=_Lenient,
    )
    definitions = schema.pop("$defs", {})
    for prop in schema.get("properties", {}).values():
        if prop.get("description") is None:
            prop.pop("description", None)
    return {
        "title": "Parameters",
        "type": "object",
        "properties": schema.get("properties", {}),
        "required": schema.get("required", []),
        "definitions": definitions,
    }


# Names an annotation may use when a flow's module is read rather than imported.
_SAFE_PRELUDE = (
    "from typing import *\n"
    "import datetime, decimal, enum, pathlib, typing, uuid\n"
    "from datetime import date, time, timedelta\n"
    "from decimal import Decimal\n"
    "from pathlib import Path\n"
    "from uuid import UUID\n"
)


@dataclass(frozen=True)
class SourceDescription:
    """What a flow's source file says about it without running the module."""

    flow_name: str | None
    description: str | None
    parameter_schema: dict[str, Any]


def describe_flow_source(text: str, function: str) -> SourceDescription | None:
    """Read the flow's name, docstring and parameter schema from its module's source.

    The module is parsed, never executed (its imports may not be installed
    here): the function's signature is rebuilt with the annotations that use
    only builtins, ``typing``, ``datetime``, ``decimal``, ``pathlib`` and
    ``uuid``, and the defaults that are literals; other annotations become
    "any value" and other defaults ``None``. Returns None when the module has
    no such top-level function.
    """
    import ast

    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    found = next(
        (
            node
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function
        ),
        None,
    )
    if found is None:
        return None
    flow_name = None
    for decorator in found.decorator_list:
        if isinstance(decorator, ast.Call):
            for keyword in decorator.keywords:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    flow_name = str(keyword.value.value)
    namespace: dict[str, Any] = {}
    exec(compile(_SAFE_PRELUDE, "<flow-prelude>", "exec"), namespace)

    def safe_annotation(node: ast.expr | None) -> ast.expr | None:
        if node is None:
            return None
        try:
            eval(compile(ast.Expression(node), "<annotation>", "eval"), dict(namespace))
        except Exception:
            return None
        return node

    def safe_default(node: ast.expr) -> ast.expr:
        try:
            ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return ast.Constant(None)
        return node

    args = found.args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
        arg.annotation = safe_annotation(arg.annotation)
    for extra in (args.vararg, args.kwarg):
        if extra is not None:
            extra.annotation = safe_annotation(extra.annotation)
    args.defaults = [safe_default(d) for d in args.defaults]
    args.kw_defaults = [None if d is None else safe_default(d) for d in args.kw_defaults]
    docstring = ast.get_docstring(found)
    body: list[ast.stmt] = [ast.Expr(ast.Constant(docstring))] if docstring else []
    stub = ast.FunctionDef(
        name=function,
        args=args,
        body=[*body, ast.Pass()],
        decorator_list=[],
        returns=None,
    )
    module = ast.fix_missing_locations(ast.Module(body=[stub], type_ignores=[]))
    exec(compile(module, "<flow-signature>", "exec"), namespace)
    return SourceDescription(
        flow_name=flow_name,
        description=docstring.strip().split("\n\n")[0] if docstring else None,
        parameter_schema=parameter_schema(namespace[function]),
    )
