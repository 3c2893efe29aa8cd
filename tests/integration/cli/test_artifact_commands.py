"""`flowyard artifact` against a real server: filters, inspect by id or key with the data shown
by type, `--output json`, delete, and clear exit-2 errors."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from flowyard.client import SyncClient
from flowyard.schemas import artifacts as art
from flowyard.schemas import flow_runs as fr
from tests.integration.cli.conftest import Cli


def _key(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _run(api: SyncClient) -> uuid.UUID:
    return api.create_ad_hoc_flow_run(fr.AdHocFlowRunCreate(flow_name="etl")).id


def publish(api: SyncClient, kind: art.ArtifactType, data: Any, **fields: Any) -> art.Artifact:
    return api.create_artifact(art.ArtifactCreate(type=kind, data=data, **fields))


@pytest.fixture
def run_id(api: SyncClient) -> uuid.UUID:
    return _run(api)


def ids(listed: list[dict[str, Any]]) -> list[str]:
    return [a["id"] for a in listed]


def test_artifacts_are_listed_newest_first_and_filtered(
    cli: Cli, api: SyncClient, run_id: uuid.UUID
) -> None:
    key = _key("report")
    long = "The first version of the daily report, which explains at length what was loaded"
    first = publish(api, "markdown", "one", key=key, flow_run_id=run_id, description=long)
    second = publish(api, "markdown", "two", key=key, flow_run_id=run_id)
    progress = publish(api, "progress", 40, flow_run_id=run_id)
    publish(api, "progress", 50, key=key, flow_run_id=_run(api))
    of_run = cli.json("artifact", "ls", "--flow-run", str(run_id))
    assert ids(of_run) == [str(progress.id), str(second.id), str(first.id)]
    assert len(cli.json("artifact", "ls", "--key", key)) == 3  # a key spans runs
    both = cli.json("artifact", "ls", "--key", key, "--flow-run", str(run_id))
    assert ids(both) == [str(second.id), str(first.id)]
    typed = cli.json("artifact", "ls", "--flow-run", str(run_id), "--type", "PROGRESS")
    assert ids(typed) == [str(progress.id)]
    assert len(cli.json("artifact", "ls", "--flow-run", str(run_id), "--limit", "1")) == 1
    lines = cli("artifact", "ls", "--flow-run", str(run_id)).stdout.splitlines()
    assert lines[0] == "id\tkey\ttype\trun\tcreated\tdescription"
    assert lines[1].startswith(f"{progress.id}\t\tprogress\t{run_id}\t")
    assert lines[3].startswith(f"{first.id}\t{key}\tmarkdown\t{run_id}\t")
    assert lines[3].endswith("\tThe first version of the daily report, which expl…")
    nothing = cli("artifact", "ls", "--key", _key("none"))
    assert (nothing.exit_code, nothing.stdout) == (0, "No artifacts match.\n")


def test_inspect_by_key_shows_the_latest_version_and_by_id_any_version(
    cli: Cli, api: SyncClient, run_id: uuid.UUID
) -> None:
    key = _key("rows")
    old = publish(api, "table", [{"name": "alpha", "n": 1}], key=key, flow_run_id=run_id)
    new = publish(
        api, "table", [{"name": "alpha", "n": 1}, {"name": "b", "n": None}], key=key,
        flow_run_id=run_id, description="Rows per source",
    )  # fmt: skip
    shown = cli("artifact", "inspect", key)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith(f"id:          {new.id}\n")
    for line in (
        f"key:         {key}",
        "type:        table",
        "description: Rows per source",
        f"flow run:    {run_id}",
        "versions:    2 versions (this is the latest)",
        "rows:        2",
    ):
        assert line in shown.stdout.splitlines(), shown.stdout
    assert shown.stdout.endswith("\nname   n\n-----  -\nalpha  1\nb\n")
    older = cli("artifact", "inspect", str(old.id))
    assert f"versions:    2 versions (the latest is {new.id})" in older.stdout
    assert older.stdout.endswith("\nname   n\n-----  -\nalpha  1\n")
    as_json = cli.json("artifact", "inspect", key)
    assert as_json["id"] == str(new.id)
    assert as_json["data"] == {"columns": ["name", "n"], "rows": [["alpha", 1], ["b", None]]}
    assert cli.json("artifact", "inspect", str(old.id))["id"] == str(old.id)


def test_inspect_prints_each_type_for_people(cli: Cli, api: SyncClient, run_id: uuid.UUID) -> None:
    report = _key("report")
    publish(api, "markdown", "# Report\n\nAll *good*.", key=report, flow_run_id=run_id)
    shown = cli("artifact", "inspect", report).stdout
    assert "versions:    1 version\n" in shown
    assert shown.endswith("\n\n# Report\n\nAll *good*.\n")
    link = publish(api, "link", {"url": "https://example.com/r", "text": "the report"})
    shown = cli("artifact", "inspect", str(link.id)).stdout
    assert "url:         https://example.com/r\n" in shown
    assert "text:        the report\n" in shown
    assert "versions" not in shown  # no key, no history
    image = publish(api, "image", "https://example.com/chart.png", flow_run_id=run_id)
    shown = cli("artifact", "inspect", str(image.id)).stdout
    assert "url:         https://example.com/chart.png\n" in shown
    progress = publish(api, "progress", 42.5, flow_run_id=run_id)
    assert "progress:    42.5%\n" in cli("artifact", "inspect", str(progress.id)).stdout
    headerless = publish(api, "table", [[1, "x"], [22, {"k": True}]], flow_run_id=run_id)
    shown = cli("artifact", "inspect", str(headerless.id)).stdout
    assert shown.endswith('\n1   x\n22  {"k": true}\n')


def test_delete_removes_one_version_and_asks_first(cli: Cli, api: SyncClient) -> None:
    key = _key("report")
    kept = publish(api, "markdown", "one", key=key)
    dropped = publish(api, "markdown", "two", key=key)
    declined = cli("artifact", "delete", str(dropped.id), input="n\n")
    assert declined.exit_code == 1
    assert len(cli.json("artifact", "ls", "--key", key)) == 2
    deleted = cli("artifact", "delete", str(dropped.id), "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert f"Deleted markdown artifact {key} ({dropped.id})." in deleted.stdout
    assert ids(cli.json("artifact", "ls", "--key", key)) == [str(kept.id)]
    assert "versions:    1 version\n" in cli("artifact", "inspect", key).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("inspect", "no-such-key"), "no artifact with key 'no-such-key'"),
        (("inspect", str(uuid.UUID(int=1))), f"no artifact {uuid.UUID(int=1)} in this workspace"),
        (("inspect", "Not A Key"), "artifact key 'Not A Key': expected lowercase letters"),
        (("delete", "no-such-key", "--yes"), "artifact id 'no-such-key' is not a UUID"),
        (("delete", str(uuid.UUID(int=2)), "--yes"), f"no artifact {uuid.UUID(int=2)} in"),
        (("ls", "--type", "chart"), "--type 'chart': expected one of markdown, table"),
        (("ls", "--flow-run", "yesterday"), "--flow-run 'yesterday' is not a flow run id"),
        (("ls", "--key", "UPPER"), "artifact key 'UPPER': expected lowercase letters"),
    ],
)
def test_a_missing_artifact_or_a_bad_argument_is_one_line_and_exit_two(
    cli: Cli, args: tuple[str, ...], message: str
) -> None:
    result = cli("artifact", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_the_commands_check_types_and_keys_as_the_server_does() -> None:
    from typing import get_args

    from flowyard.cli import artifact

    assert get_args(art.ArtifactType) == artifact.TYPES
    assert f"^{artifact.KEY.pattern}$" == art.KEY
