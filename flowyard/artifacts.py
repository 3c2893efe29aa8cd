"""Artifacts: reports, tables, links, images and progress a run publishes
(``from flowyard.artifacts import create_markdown_artifact``), as in Prefect."""

from __future__ import annotations

from flowyard.sdk._artifacts import (
    create_image_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

__all__ = [
    "create_image_artifact",
    "create_link_artifact",
    "create_markdown_artifact",
    "create_progress_artifact",
    "create_table_artifact",
    "update_progress_artifact",
]
