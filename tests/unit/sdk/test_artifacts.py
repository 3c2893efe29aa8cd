"""Artifacts from the SDK: tied to the run and task that publish them, checked at the call,
sent through the installed backend, and never a failed flow when there is no server."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from datetime import date

import pytest

from flowyard import flow, task
from flowyard.artifacts import (
    create_image_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from flowyard.runtime import flow_run, task_run
from flowyard.sdk import InMemoryArtifacts, ObjectNotFound, _artifacts, set_artifact_backend


@pytest.fixture
def kept() -> Iterator[InMemoryArtifacts]:
    backend = InMemoryArtifacts()
    set_artifact_backend(backend)
    yield backend
    set_artifact_backend(None)


def test_an_artifact_belongs_to_the_flow_run_and_task_run_that_publish_it(
    kept: InMemoryArtifacts,
) -> None:
    ids: dict[str, object] = {}

    @task
    def summarise(rows: int) -> uuid.UUID:
        ids["task"] = task_run.id
        return create_table_artifact([{"rows": rows}], key="summary")  # type: ignore[return-value]

    @flow
    def report() -> tuple[uuid.UUID, uuid.UUID]:
        ids["flow"] = flow_run.id
        in_flow = create_markdown_artifact("# Done", key="daily-report", description="d")
        return in_flow, summarise(3)  # type: ignore[return-value]

    in_flow, in_task = report()
    flow_made, task_made = kept.artifacts[in_flow], kept.artifacts[in_task]
    assert (flow_made.type, flow_made.data, flow_made.key) == ("markdown", "# Done", "daily-report")
    assert (flow_made.flow_run_id, flow_made.task_run_id) == (uuid.UUID(str(ids["flow"])), None)
    assert task_made.flow_run_id == uuid.UUID(str(ids["flow"]))
    assert task_made.task_run_id == uuid.UUID(str(ids["task"]))
    assert task_made.data == [{"rows": 3}]


def test_a_task_called_outside_a_flow_publishes_an_artifact_of_no_run(
    kept: InMemoryArtifacts,
) -> None:
    @task
    def alone() -> uuid.UUID:
        return create_markdown_artifact("# alone")  # type: ignore[return-value]

    made = kept.artifacts[alone()]
    assert (made.flow_run_id, made.task_run_id) == (None, None)


def test_outside_a_run_an_artifact_belongs_to_no_run(kept: InMemoryArtifacts) -> None:
    made = kept.artifacts[create_link_artifact("https://example.com", "docs")]  # type: ignore[index]
    assert (made.data, made.flow_run_id, made.task_run_id) == (
        {"url": "https://example.com", "text": "docs"},
        None,
        None,
    )
    image = kept.artifacts[create_image_artifact("https://example.com/a.png")]  # type: ignore[index]
    assert image.data == {"url": "https://example.com/a.png", "text": None}


def test_tables_of_each_form_are_sent_as_json(kept: InMemoryArtifacts) -> None:
    rows = create_table_artifact([{"day": date(2026, 1, 2), "v": float("nan")}, {"v": 1.5}])
    columns = create_table_artifact({"a": (1, 2), "b": ["x"]})
    plain = create_table_artifact([(1, 2), (3, 4)])
    assert kept.artifacts[rows].data == [{"day": "2026-01-02", "v": None}, {"v": 1.5}]  # type: ignore[index]
    assert kept.artifacts[columns].data == {"a": [1, 2], "b": ["x"]}  # type: ignore[index]
    assert kept.artifacts[plain].data == [[1, 2], [3, 4]]  # type: ignore[index]
    with pytest.raises(TypeError, match="list of rows or a dict of columns"):
        create_table_artifact("a,b")  # type: ignore[arg-type]


def test_mistakes_are_refused_at_the_call(kept: InMemoryArtifacts) -> None:
    with pytest.raises(ValueError, match="lowercase letters, digits and dashes"):
        create_markdown_artifact("x", key="Daily Report")
    with pytest.raises(ValueError, match="from 0 to 100"):
        create_progress_artifact(120)
    with pytest.raises(TypeError, match="a number from 0 to 100"):
        create_progress_artifact("half")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="markdown must be text"):
        create_markdown_artifact(3)  # type: ignore[arg-type]
    assert kept.artifacts == {}


def test_progress_is_created_then_updated(kept: InMemoryArtifacts) -> None:
    made = create_progress_artifact(0, key="load", description="starting")
    assert update_progress_artifact(made, 50) == made  # type: ignore[arg-type]
    assert (kept.artifacts[made].data, kept.artifacts[made].description) == (50, "starting")  # type: ignore[index]
    update_progress_artifact(made, 100, description="done")  # type: ignore[arg-type]
    assert (kept.artifacts[made].data, kept.artifacts[made].description) == (100, "done")  # type: ignore[index]
    with pytest.raises(ObjectNotFound):
        update_progress_artifact(uuid.uuid4(), 10)


def test_inside_an_event_loop_the_calls_are_awaitable(kept: InMemoryArtifacts) -> None:
    @flow
    async def async_report() -> uuid.UUID:
        made = await create_progress_artifact(10)  # type: ignore[misc]
        return await update_progress_artifact(made, 20)  # type: ignore[no-any-return,misc]

    made = asyncio.run(async_report())  # type: ignore[arg-type]
    assert kept.artifacts[made].data == 20


def test_with_no_server_artifacts_are_not_kept_and_a_flow_still_succeeds(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_artifacts, "_warned", False)

    @flow
    def report() -> uuid.UUID:
        create_markdown_artifact("# one")
        return create_markdown_artifact("# two")  # type: ignore[return-value]

    with caplog.at_level(logging.WARNING, logger="flowyard.artifacts"):
        assert isinstance(report(), uuid.UUID)
    warnings = [r.getMessage() for r in caplog.records if r.name == "flowyard.artifacts"]
    assert warnings == [
        "Artifacts are not kept: no Flowyard server is configured (FLOWYARD_API_URL). "
        "The first was a markdown artifact."
    ]
