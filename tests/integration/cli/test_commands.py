"""Each command against a real server: tables, `--output json`, exit codes, clear errors."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flowyard.client import SyncClient
from flowyard.schemas import deployments as dep
from flowyard.schemas import flow_runs as fr
from flowyard.schemas import logs as lg
from flowyard.schemas import task_runs as tr
from flowyard.schemas.states import StateCreate, StateType
from tests.acceptance.git_server import git
from tests.integration.cli.conftest import Cli


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def pool(cli: Cli) -> str:
    name = _name("pool")
    created = cli.json("work-pool", "create", name, "--type", "prefect:managed")
    assert (created["name"], created["type"]) == (name, "managed")
    return name


@pytest.fixture
def deployment(api: SyncClient, pool: str) -> dep.Deployment:
    return api.upsert_deployment(
        dep.DeploymentCreate(
            flow_name=_name("etl"),
            name="daily",
            entrypoint="flows/etl.py:etl",
            source=dep.GitSourceSpec(url="https://example.com/org/repo.git", branch="main"),
            work_pool_name=pool,
            parameter_schema={
                "type": "object",
                "properties": {
                    "n": {"type": "integer", "default": 1},
                    "label": {"type": "string"},
                },
            },
        )
    )


def test_work_pools_from_create_to_delete(cli: Cli, pool: str) -> None:
    assert pool in [p["name"] for p in cli.json("work-pool", "ls")]
    table = cli("work-pool", "ls")
    assert table.exit_code == 0
    assert pool in table.stdout
    updated = cli("work-pool", "update", pool, "--concurrency-limit", "3")
    assert updated.exit_code == 0, updated.output
    assert cli.json("work-pool", "inspect", pool)["concurrency_limit"] == 3
    paused = cli("work-pool", "pause", pool)
    assert "AwaitingResume" in paused.stdout
    assert cli.json("work-pool", "inspect", pool)["paused"] is True
    assert cli("work-pool", "resume", pool).exit_code == 0
    assert cli.json("work-pool", "inspect", pool)["paused"] is False
    printed = cli("work-pool", "get-default-base-job-template", "--type", "managed")
    template = json.loads(printed.stdout)
    assert "pip_packages" in template["variables"]["properties"]
    assert cli("work-pool", "delete", pool, "--yes").exit_code == 0
    assert pool not in [p["name"] for p in cli.json("work-pool", "ls")]


def test_bad_usage_is_one_line_and_exit_two(cli: Cli, pool: str) -> None:
    bad_type = cli("work-pool", "create", _name("p"), "--type", "kubernetes")
    assert bad_type.exit_code == 2
    assert "--type must be 'managed' or 'process'" in bad_type.stderr
    assert "Traceback" not in bad_type.output
    unknown = cli("work-pool", "inspect", pool[:-1])
    assert unknown.exit_code == 2
    assert f"did you mean {pool!r}" in unknown.stderr
    assert cli("no-such-command").exit_code == 2
    assert cli("work-pool", "ls", "--output", "xml").exit_code == 2
    duplicate = cli("work-pool", "create", pool)
    assert duplicate.exit_code == 1
    assert "already exists" in duplicate.stderr


def test_deployments_list_inspect_pause_and_delete(cli: Cli, deployment: dep.Deployment) -> None:
    listed = cli.json("deployment", "ls")
    assert deployment.full_name in [d["flow_name"] + "/" + d["name"] for d in listed]
    inspected = cli.json("deployment", "inspect", deployment.full_name)
    assert inspected["id"] == str(deployment.id)
    assert cli("deployment", "inspect", deployment.full_name).stdout.startswith("name:")
    assert cli("deployment", "pause", deployment.full_name).exit_code == 0
    assert cli.json("deployment", "inspect", str(deployment.id))["paused"] is True
    assert cli("deployment", "resume", deployment.full_name).exit_code == 0
    typo = cli("deployment", "inspect", deployment.full_name + "x")
    assert typo.exit_code == 2
    assert f"did you mean {deployment.full_name!r}" in typo.stderr
    assert cli("deployment", "delete", deployment.full_name, "--yes").exit_code == 0
    assert cli("deployment", "inspect", str(deployment.id)).exit_code == 2


def test_run_checks_parameters_against_the_schema(cli: Cli, deployment: dep.Deployment) -> None:
    run = cli.json(
        "deployment", "run", deployment.full_name, "--param", "n=3", "--param", "label=123"
    )
    assert run["parameters"] == {"n": 3, "label": "123"}
    from_json = cli.json("deployment", "run", deployment.full_name, "--params", '{"n": 5}')
    assert from_json["parameters"] == {"n": 5}
    wrong_type = cli("deployment", "run", deployment.full_name, "--param", "n=many")
    assert wrong_type.exit_code == 2
    assert "parameter 'n': expected an integer, got \"many\"" in wrong_type.stderr
    unknown = cli("deployment", "run", deployment.full_name, "--param", "lable=x")
    assert unknown.exit_code == 2
    assert "did you mean 'label'" in unknown.stderr
    malformed = cli("deployment", "run", deployment.full_name, "--param", "n")
    assert malformed.exit_code == 2
    assert "expected NAME=VALUE" in malformed.stderr


def _drive(api: SyncClient, run_id: uuid.UUID, final: StateType, message: str) -> None:
    """Play a run's life through the API, as a runner would."""
    time.sleep(0.5)
    api.set_flow_run_state(run_id, StateCreate(type=StateType.PENDING))
    api.set_flow_run_state(run_id, StateCreate(type=StateType.RUNNING))
    api.write_logs(
        [
            lg.LogCreate(
                flow_run_id=run_id,
                level=20,
                name="flowyard.flow_runs",
                message="loading 3 rows",
                timestamp=datetime.now(UTC),
            )
        ]
    )
    time.sleep(0.3)
    api.set_flow_run_state(run_id, StateCreate(type=final, message=message))


@pytest.mark.parametrize(
    ("final", "code"), [(StateType.COMPLETED, 0), (StateType.FAILED, 1), (StateType.CRASHED, 1)]
)
def test_following_a_run_streams_logs_and_states_and_exits_by_the_final_state(
    cli: Cli, api: SyncClient, deployment: dep.Deployment, final: StateType, code: int
) -> None:
    run = cli.json("deployment", "run", deployment.full_name)
    driver = threading.Thread(target=_drive, args=(api, uuid.UUID(run["id"]), final, "the end"))
    driver.start()
    try:
        result = cli("flow-run", "logs", run["id"], "--follow")
    finally:
        driver.join()
    assert result.exit_code == code, result.output
    assert f"| Flow run {run['name']!r} - loading 3 rows" in result.stdout
    assert "State: RUNNING" in result.stdout
    assert f"finished in state {final.value}" in result.stdout


def test_watch_gives_up_after_its_timeout_saying_how_to_follow(
    cli: Cli, deployment: dep.Deployment
) -> None:
    result = cli("deployment", "run", deployment.full_name, "--watch", "--timeout", "1")
    assert result.exit_code == 1
    assert "Stopped watching after 1 s: the run is still SCHEDULED" in result.stderr
    assert "flowyard flow-run logs" in result.stderr


def test_flow_runs_list_inspect_logs_cancel_retry_delete(
    cli: Cli, api: SyncClient, deployment: dep.Deployment
) -> None:
    run = cli.json("deployment", "run", deployment.full_name)
    run_id = run["id"]
    assert run_id in [r["id"] for r in cli.json("flow-run", "ls", "--state", "scheduled")]
    listed = cli.json("flow-run", "ls", "--deployment", deployment.full_name)
    assert [r["id"] for r in listed] == [run_id]
    assert cli.json("flow-run", "inspect", run_id)["state_type"] == "SCHEDULED"
    assert f"\t{deployment.full_name}\t" in cli("flow-run", "ls").stdout
    task_run = uuid.uuid4()
    now = datetime.now(UTC)
    api.upsert_task_runs(
        [
            tr.TaskRunUpsert(
                id=task_run,
                flow_run_id=uuid.UUID(run_id),
                name="double-0",
                state_type=StateType.COMPLETED,
                timestamp=now,
            )
        ]
    )
    api.write_logs(
        [
            lg.LogCreate(
                flow_run_id=uuid.UUID(run_id),
                task_run_id=writer,
                level=level,
                name=name,
                message=text,
                timestamp=now,
            )
            for level, writer, name, text in (
                (10, None, "flowyard.flow_runs", "debug detail"),
                (40, None, "flowyard.flow_runs", "something broke"),
                (40, task_run, "flowyard.task_runs", "Finished in state Failed()"),
                (40, None, "flowyard.execution", "sandbox gone"),
            )
        ]
    )
    logs = cli("flow-run", "logs", run_id, "--level", "error")
    # Each line says who wrote it, as the SDK's console does.
    assert f"| Flow run {run['name']!r} - something broke" in logs.stdout
    assert "| Task run 'double-0' - Finished in state Failed()" in logs.stdout
    assert "| execution - sandbox gone" in logs.stdout
    assert "debug detail" not in logs.stdout
    lines = cli.json("flow-run", "logs", run_id)
    assert len(lines) == 4
    assert [line["task_run_name"] for line in lines] == [None, None, "double-0", None]
    assert cli("flow-run", "cancel", run_id).exit_code == 0
    assert cli.json("flow-run", "inspect", run_id)["state_type"] == "CANCELLED"
    assert cli("flow-run", "retry", run_id).exit_code == 0
    assert cli.json("flow-run", "inspect", run_id)["state_type"] == "SCHEDULED"
    assert cli("flow-run", "delete", run_id, "--yes").exit_code == 0
    assert cli("flow-run", "inspect", run_id).exit_code == 2
    assert cli("flow-run", "inspect", "not-a-uuid").exit_code == 2
    assert cli("flow-run", "ls", "--state", "sleeping").exit_code == 2


def test_usage_workspaces_and_api_keys(cli: Cli) -> None:
    usage = cli.json("usage", "--by", "day")
    assert usage["by"] == "day"
    assert "used_minutes" in usage
    assert "min used of" in cli("usage").stdout
    assert cli("usage", "--month", "2026-13").exit_code == 2
    space = _name("team")
    created = cli.json("workspace", "create", space, "--monthly-limit", "100")
    assert created["key"].startswith("fy_")
    assert space in [w["name"] for w in cli.json("workspace", "ls")]
    assert cli("workspace", "set-limit", space, "--minutes", "50").exit_code == 0
    limits = {w["name"]: w["monthly_limit_minutes"] for w in cli.json("workspace", "ls")}
    assert limits[space] == 50
    assert cli("workspace", "set-limit", space).exit_code == 2
    key = cli.json("api-key", "create", "ci-bot")
    assert key["key"].startswith("fy_")
    listed = cli("api-key", "ls")
    assert "ci-bot" in listed.stdout
    assert key["key"] not in listed.stdout
    assert cli("api-key", "revoke", key["id"]).exit_code == 0
    revoked = [k for k in cli.json("api-key", "ls") if k["id"] == key["id"]]
    assert revoked[0]["revoked_at"] is not None


def test_variables_and_secrets_never_print_a_secret(cli: Cli) -> None:
    name = _name("v")
    assert cli("variable", "set", name, '{"rows": 3}').exit_code == 0
    assert cli("variable", "get", name).stdout.strip() == '{"rows": 3}'
    assert name in [v["name"] for v in cli.json("variable", "ls")]
    assert cli("variable", "delete", name).exit_code == 0
    assert cli("variable", "get", name).exit_code == 2
    secret = _name("s")
    assert cli("secret", "set", secret, input="hunter2\n").exit_code == 0
    shown = cli("secret", "get", secret)
    assert "hunter2" not in shown.output
    assert "********" in shown.stdout
    assert "hunter2" not in cli("secret", "ls").output
    assert cli("secret", "delete", secret).exit_code == 0


def test_login_saves_and_activates_a_profile(cli: Cli, api: SyncClient, tmp_path: Path) -> None:
    other = Cli(tmp_path / "elsewhere")
    key = cli.json("api-key", "create", "laptop")["key"]
    url = str(api.api_url)
    logged = other("login", "--url", url, "--key", key, "--profile", "lab")
    assert logged.exit_code == 0, logged.output
    assert "as workspace 'default'" in logged.stdout
    assert "* lab" in other("profile", "ls").stdout
    assert other.json("work-pool", "ls") is not None  # the profile reaches the server
    assert other("profile", "use", "lbb").exit_code == 2
    assert other("profile", "delete", "lab").exit_code == 0
    bad = other("login", "--url", url, "--key", "fy_nope_nope")
    assert bad.exit_code == 1


def test_an_unreachable_server_says_which_url_and_how_to_start_one(cli: Cli) -> None:
    result = cli("work-pool", "ls", FLOWYARD_API_URL="http://127.0.0.1:9/api")
    assert result.exit_code == 1
    assert "http://127.0.0.1:9/api" in result.stderr
    assert "flowyard server start" in result.stderr
    assert "Traceback" not in result.output


def test_deploy_reads_flowyard_yaml_and_init_writes_one(
    cli: Cli, api: SyncClient, pool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True)
    (project / "flows" / "etl.py").write_text(
        "from flowyard import flow\n\n@flow(name='yaml-etl')\ndef etl(n: int = 2):\n    return n\n"
    )
    git("init", "-q", "-b", "main", str(project), cwd=tmp_path)
    git("remote", "add", "origin", "https://git.example.com/org/project.git", cwd=project)
    monkeypatch.chdir(project)
    assert cli("init").exit_code == 0
    written = (project / "flowyard.yaml").read_text()
    assert "entrypoint: flows/etl.py:etl" in written
    assert "repository: https://git.example.com/org/project.git" in written
    assert cli("init").exit_code == 2  # never overwrites without --force
    (project / "flowyard.yaml").write_text(
        written.replace("my-managed-pool", pool).replace("parameters: {}", "parameters: {n: 4}")
    )
    deployed = cli("deploy", "--all")
    assert deployed.exit_code == 0, deployed.output
    saved = api.read_deployment_by_name("yaml-etl/etl")
    assert saved.parameters == {"n": 4}
    assert saved.source["url"] == "https://git.example.com/org/project.git"
    assert saved.parameter_schema["properties"]["n"]["type"] == "integer"
    assert cli("deploy", "nope").exit_code == 2


def test_help_is_fast_to_load_and_docs_are_current() -> None:
    import subprocess
    import sys

    probe = (
        "import sys; from flowyard.cli.main import app; "
        "heavy = [m for m in ('sqlalchemy', 'fastapi', 'httpx', 'pydantic', 'uvicorn') "
        "if m in sys.modules]; print(heavy)"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr
    from flowyard.cli.docs import render

    committed = Path(__file__).resolve().parents[3] / "docs" / "cli.md"
    assert committed.read_text() == render(), "docs/cli.md is stale: run `make docs`"


def test_flow_run_inspect_shows_what_execution_measured(
    cli: Cli, api: SyncClient, deployment: dep.Deployment
) -> None:
    run_id = cli.json("deployment", "run", deployment.full_name)["id"]
    report = fr.ExecutionReport(
        backend="local",
        exit_code=137,
        peak_memory_bytes=300 * 1024**2,
        peak_storage_bytes=12 * 1024**2,
        cpu_seconds=1.25,
        crash_reason="out of memory: limit 256 MiB reached (peak 256 MiB)",
    )
    api.record_execution(uuid.UUID(run_id), report)
    shown = cli("flow-run", "inspect", run_id).stdout
    for line in (
        "exit code:",
        "137",
        "peak memory:",
        "300.0 MiB",
        "cpu seconds:",
        "1.25",
        "peak storage:",
        "12.0 MiB",
        "crash reason:",
        "out of memory: limit 256 MiB reached",
    ):
        assert line in shown, shown
    as_json = cli.json("flow-run", "inspect", run_id)
    assert as_json["peak_storage_bytes"] == 12 * 1024**2
    assert as_json["exit_code"] == 137
