"""Artifacts as the pages show them: markdown as HTML, tables capped, links and images checked.

Markdown is rendered on the server by markdown-it-py's CommonMark preset
(plus tables) with raw HTML off: a ``<script>`` in a report is shown as
text, and markdown-it's link check refuses ``javascript:``, ``vbscript:``
and ``data:`` links (``data:`` images excepted). That output is the one
string a template marks safe. Rejected: sanitising rendered HTML afterwards
(a second parser to trust) and rendering in the browser (a script the
Content-Security-Policy would have to allow).

A report's headings move down three levels (``#`` becomes ``<h4>``), so its
title sits under the artifact's own heading instead of competing with the
page's. Links in it get ``rel="noopener noreferrer nofollow"``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, get_args
from urllib.parse import urlsplit

from markdown_it import MarkdownIt

from flowyard.schemas import artifacts as s
from flowyard.server.db import models as m
from flowyard.ui._formatting import compact_json, pretty_json

if TYPE_CHECKING:
    from markdown_it.renderer import RendererHTML
    from markdown_it.token import Token
    from markdown_it.utils import EnvType, OptionsDict

MAX_ROWS = 500
# Rendering takes about 3 s per MiB of markdown: a page shows this much of a report.
MAX_MARKDOWN_CHARS = 100_000
TYPES: tuple[str, ...] = get_args(s.ArtifactType)
REL = "noopener noreferrer nofollow"
HEADING_SHIFT = 3


def _link_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    tokens[idx].attrSet("rel", REL)
    return self.renderToken(tokens, idx, options, env)


def _heading(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    token.tag = f"h{min(int(token.tag[1]) + HEADING_SHIFT, 6)}"
    return self.renderToken(tokens, idx, options, env)


def _renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("heading_open", _heading)
    md.add_render_rule("heading_close", _heading)
    return md


_MARKDOWN = _renderer()


def render_markdown(text: str) -> str:
    """HTML for ``text``; safe to insert unescaped because raw HTML is off."""
    html: str = _MARKDOWN.render(text)
    return html


def web_url(value: Any) -> str | None:
    """``value`` if it is an http(s) URL (the server checks this too), else None."""
    if not isinstance(value, str):
        return None
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.netloc else None


def cell(value: Any) -> str:
    """A table cell as text: strings as they are, nothing as empty, other JSON compactly."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return compact_json(value)


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[str]]  # the first MAX_ROWS, padded to one width
    total: int

    @property
    def capped(self) -> bool:
        return self.total > len(self.rows)


@dataclass(frozen=True)
class Shown:
    """One artifact, ready for a template; exactly one of the content fields is set."""

    id: uuid.UUID
    key: str | None
    type: str
    description: str | None
    flow_run_id: uuid.UUID | None
    task_run_id: uuid.UUID | None
    created: datetime
    updated: datetime
    html: str | None = None  # markdown, rendered
    table: Table | None = None
    url: str | None = None  # a link's or an image's
    text: str | None = None
    percent: str | None = None  # progress, "42.5"
    progress: float | None = None
    raw: str | None = None  # data in no shape this page knows, as JSON
    markdown_chars: int | None = None  # set when only the report's start is shown
    markdown_shown: int = MAX_MARKDOWN_CHARS

    @property
    def title(self) -> str:
        return self.key or f"{self.type} artifact"

    @property
    def alt(self) -> str:
        return self.description or self.text or self.key or "image artifact"


def _table(data: Any) -> Table | None:
    if not isinstance(data, dict):
        return None
    columns, rows = data.get("columns"), data.get("rows")
    if not isinstance(columns, list) or not isinstance(rows, list):
        return None
    if not all(isinstance(r, list) for r in rows):
        return None
    first = rows[:MAX_ROWS]
    width = max([len(columns), *(len(r) for r in first)])
    return Table(
        columns=[cell(c) for c in columns],
        rows=[[cell(v) for v in r] + [""] * (width - len(r)) for r in first],
        total=len(rows),
    )


def _content(kind: str, data: Any) -> dict[str, Any]:
    if kind == "markdown" and isinstance(data, str):
        if len(data) > MAX_MARKDOWN_CHARS:
            return {"html": render_markdown(data[:MAX_MARKDOWN_CHARS]), "markdown_chars": len(data)}
        return {"html": render_markdown(data)}
    if kind == "table" and (table := _table(data)) is not None:
        return {"table": table}
    if kind in ("link", "image") and isinstance(data, dict) and (url := web_url(data.get("url"))):
        text = data.get("text")
        return {"url": url, "text": text if isinstance(text, str) and text else None}
    if kind == "progress" and isinstance(data, int | float) and not isinstance(data, bool):
        value = min(max(float(data), 0.0), 100.0)
        return {"progress": value, "percent": f"{round(value, 1):g}"}
    return {"raw": pretty_json(data)}


def present(row: m.Artifact) -> Shown:
    """``row`` with its content rendered for its type (markdown once, here)."""
    return Shown(
        id=row.id,
        key=row.key,
        type=row.type,
        description=row.description,
        flow_run_id=row.flow_run_id,
        task_run_id=row.task_run_id,
        created=row.created,
        updated=row.updated,
        **_content(row.type, (row.data or {}).get("value")),
    )
